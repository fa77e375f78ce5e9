"""A Spark standalone master and one worker from the installed PySpark, on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest


@dataclass(frozen=True)
class SparkCluster:
    master_url: str
    web_url: str
    worker_dir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, text: str, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if text in response.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not show {text!r} in {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    root = tmp_path_factory.mktemp("spark-cluster")
    home = os.path.dirname(pyspark.__file__)
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(root / "work"), "SPARK_LOG_DIR": str(root / "logs")}  # fmt: skip
    port, web, worker_web = free_port(), free_port(), free_port()
    spark_class = os.path.join(home, "bin", "spark-class")
    processes = []
    logs = [root / "master.log", root / "worker.log"]
    commands = [
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(web)],
        [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
         "--cores", "2", "--memory", "2g", "--webui-port", str(worker_web),
         f"spark://127.0.0.1:{port}"],
    ]  # fmt: skip
    try:
        for command, log in zip(commands, logs, strict=True):
            with log.open("w") as out:
                processes.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            if log is logs[0]:
                wait_for(f"http://127.0.0.1:{web}/json/", "ALIVE", 60, log)
        wait_for(f"http://127.0.0.1:{web}/json/", '"aliveworkers" : 1', 60, logs[1])
        yield SparkCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}", root / "work")
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
