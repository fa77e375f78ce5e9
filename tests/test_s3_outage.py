"""The S3 server going away in the middle of a run: the detector waits with backoff and
recovers, or stops with a clear error; either way nothing is lost or duplicated."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fix_s3 import S3Bucket
from txpatterns.detect.runner import Detector
from txpatterns.errors import TxpError
from txpatterns.generate import generate
from txpatterns.patterns import PRESETS
from txpatterns.publish import publish
from txpatterns.reference import replay_folder
from txpatterns.settings import DetectSettings
from txpatterns.state.db import schema_name
from txpatterns.store import Store, s3_store
from txpatterns.verify import compare, read_output

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.postgres, pytest.mark.slow]


class Proxy:
    """A TCP relay on 127.0.0.1 to the S3 server; stopping it is an outage for its clients."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.listener: socket.socket | None = None
        self.connections: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def publish_rows(source: Path, dest: str, store: Store, max_chunks: int | None) -> None:
    with source.open("rb") as f:
        publish(f, str(source), dest, store, chunk_rows=250, interval=0, max_chunks=max_chunks)


def applied(dsn: str, namespace: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"SELECT count(*) FROM {schema_name(namespace)}.chunks").fetchone()
    return int(row[0]) if row else 0


@dataclass
class Outage:
    """Half a stream published on S3, and a relay the detector reaches the server through."""

    transactions: Path
    importance: Path
    direct: Store
    proxy: Proxy
    settings: DetectSettings

    def publish_rest(self) -> None:
        publish_rows(self.transactions, self.settings.input or "", self.direct, max_chunks=None)

    def agrees(self) -> tuple[bool, Any]:
        replay = replay_folder(
            self.settings.input or "", str(self.importance), PRESETS["seed"], store=self.direct
        )
        diff = compare(replay.detections, read_output(self.settings.output or "", self.direct))
        return diff.agrees and not diff.output.incomplete, diff


def half_published(s3_bucket: S3Bucket, namespace: str, tmp_path: Path, seed: int) -> Outage:
    transactions, importance = tmp_path / "transactions.csv", tmp_path / "importance.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=2000, seed=seed)
    direct = s3_store(s3_bucket.endpoint_url, "us-east-1", "test", "test")
    input_url = s3_bucket.url("streaming", "input")
    publish_rows(transactions, input_url, direct, max_chunks=4)
    s3_bucket.fs.put(str(importance), s3_bucket.url("CustomerImportance.csv"))
    proxy = Proxy(int(s3_bucket.endpoint_url.rsplit(":", 1)[1]))
    proxy.start()
    settings = DetectSettings(
        input=input_url,
        output=s3_bucket.url("streaming", "output"),
        importance=s3_bucket.url("CustomerImportance.csv"),
        namespace=namespace,
        checkpoint=str(tmp_path / "checkpoint"),
        trigger=0.25,  # type: ignore[arg-type]
        max_wait=0,  # type: ignore[arg-type]
    )
    return Outage(transactions, importance, direct, proxy, settings)


def in_background(
    detector: Detector, spark: Any, stop: threading.Event | None = None
) -> tuple[threading.Thread, list[BaseException]]:
    """Run a continuous detector in a thread; its exception, if any, lands in the list."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            detector.run(spark, until_idle=False, stop=stop)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, failure


def wait_applied(dsn: str, namespace: str, count: int, failure: list[BaseException]) -> None:
    deadline = time.monotonic() + 120
    while applied(dsn, namespace) < count:
        assert not failure, failure
        assert time.monotonic() < deadline, f"fewer than {count} chunks applied in time"
        time.sleep(0.25)


def test_detector_rides_out_an_outage(
    spark: Any, postgres_dsn: str, namespace: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    outage = half_published(s3_bucket, namespace, tmp_path, seed=11)
    detector = Detector(
        outage.settings, PRESETS["seed"],
        s3_store(outage.proxy.url, "us-east-1", "test", "test"), dsn=postgres_dsn,
    )  # fmt: skip
    stop = threading.Event()
    thread, failure = in_background(detector, spark, stop)
    try:
        wait_applied(postgres_dsn, namespace, 4, failure)
        outage.proxy.stop()  # the server is gone for the detector...
        outage.publish_rest()  # ...while chunks land
        time.sleep(4)
        assert thread.is_alive() and not failure, failure
        outage.proxy.start()
        wait_applied(postgres_dsn, namespace, 8, failure)
    finally:
        stop.set()
        thread.join(timeout=120)
        detector.close()
        outage.proxy.stop()
    assert not failure, failure
    agrees, diff = outage.agrees()
    assert agrees, diff


def test_detector_stops_with_a_clear_error_when_the_server_is_unreachable(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = DetectSettings(
        input="s3://nowhere/streaming/input",
        output="s3://nowhere/streaming/output",
        importance="s3://nowhere/CustomerImportance.csv",
        namespace=namespace,
        checkpoint=str(tmp_path / "checkpoint"),
    )
    store = Store(s3_store(dead, "us-east-1", "test", "test").options, retries=2, backoff=0.1)
    detector = Detector(settings, PRESETS["seed"], store, dsn=postgres_dsn)
    started = time.monotonic()
    try:
        with pytest.raises(TxpError, match="bucket 'nowhere'"):
            detector.run(spark, until_idle=True)
    finally:
        detector.close()
    assert time.monotonic() - started < 60


def test_a_long_outage_stops_the_detector_and_a_restart_loses_nothing(
    spark: Any, postgres_dsn: str, namespace: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    outage = half_published(s3_bucket, namespace, tmp_path, seed=12)
    # A short retry budget, so that the outage outlasts it.
    through_proxy = Store(
        s3_store(outage.proxy.url, "us-east-1", "test", "test").options, retries=1, backoff=0.2
    )
    detector = Detector(outage.settings, PRESETS["seed"], through_proxy, dsn=postgres_dsn)
    thread, failure = in_background(detector, spark)
    try:
        wait_applied(postgres_dsn, namespace, 4, failure)
        outage.proxy.stop()
        outage.publish_rest()
        thread.join(timeout=180)
        assert not thread.is_alive(), "the detector kept waiting through a long outage"
    finally:
        detector.close()
    assert failure and isinstance(failure[0], TxpError), failure
    assert "tries" in str(failure[0]) or "cannot" in str(failure[0])
    # The server is back: a new detector finishes the stream, nothing lost or twice.
    outage.proxy.start()
    try:
        restarted = Detector(
            outage.settings, PRESETS["seed"],
            s3_store(outage.proxy.url, "us-east-1", "test", "test"), dsn=postgres_dsn,
        )  # fmt: skip
        try:
            restarted.run(spark, until_idle=True)
        finally:
            restarted.close()
    finally:
        outage.proxy.stop()
    assert applied(postgres_dsn, namespace) == 8
    agrees, diff = outage.agrees()
    assert agrees, diff
