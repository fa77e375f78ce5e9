"""The detector on a real Spark standalone cluster: tasks run on the worker's executor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fix_spark_cluster import SparkCluster
from pipeline import make_stream, output_agrees
from txpatterns.patterns import PRESETS

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.slow]

TXPATTERNS = Path(sys.executable).with_name("txpatterns")


def test_detect_on_a_standalone_cluster(
    spark_cluster: SparkCluster, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path / "data", rows=2000, chunk_rows=250)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "TXP_OUTPUT_MAX_WAIT": "0"}
    result = subprocess.run(
        [str(TXPATTERNS), "detect", "--input", str(stream.input), "--output", str(stream.output),
         "--importance", str(stream.importance), "--postgres", postgres_dsn,
         "--namespace", namespace, "--workdir", str(tmp_path / "work"),
         "--master", spark_cluster.master_url, "--preset", "seed", "--until-idle"],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Applied 8 chunks" in result.stdout
    agrees, summary = output_agrees(stream, PRESETS["seed"])
    assert agrees, summary
    # The executor the worker started ran the tasks (its log records them); in a standalone
    # cluster the driver runs none.
    executor_logs = list(spark_cluster.worker_dir.glob("app-*/*/stderr"))
    assert executor_logs, "the worker started no executor"
    finished = sum(log.read_text().count("Finished task") for log in executor_logs)
    # The one micro-batch's 8 chunks are read as one run of chunks per core: 2 tasks.
    assert finished >= 2, "the executor ran fewer tasks than the worker has cores"
