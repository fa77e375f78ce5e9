"""The whole pipeline over S3 (SeaweedFS on 127.0.0.1): publish, detect, verify."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fix_s3 import S3Bucket
from txpatterns.cli import cli
from txpatterns.detect.runner import Detector
from txpatterns.generate import generate
from txpatterns.patterns import PRESETS
from txpatterns.settings import DetectSettings
from txpatterns.store import s3_store

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.postgres]


def test_publish_detect_verify_on_s3(
    spark: Any, postgres_dsn: str, namespace: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    transactions, importance = tmp_path / "transactions.csv", tmp_path / "importance.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=2000, seed=5)
    runner = CliRunner()
    env = s3_bucket.env
    published = runner.invoke(
        cli,
        ["publish", "--source", str(transactions), "--to", s3_bucket.url("streaming", "input"),
         "--chunk-rows", "250", "--interval", "0", "--endpoint-url", s3_bucket.endpoint_url],
        env=env,
    )  # fmt: skip
    assert published.exit_code == 0, published.output
    s3_bucket.fs.put(str(importance), s3_bucket.url("CustomerImportance.csv"))

    store = s3_store(s3_bucket.endpoint_url, "us-east-1", "test", "test")
    settings = DetectSettings(
        input=s3_bucket.url("streaming", "input"),
        output=s3_bucket.url("streaming", "output"),
        importance=s3_bucket.url("CustomerImportance.csv"),
        namespace=namespace,
        checkpoint=str(tmp_path / "checkpoint"),
        max_wait=0,  # type: ignore[arg-type]
    )
    detector = Detector(settings, PRESETS["seed"], store, dsn=postgres_dsn)
    try:
        progress = detector.run(spark, until_idle=True)
    finally:
        detector.close()
    assert progress.chunks_applied == 8
    assert progress.files_written > 0
    assert s3_bucket.fs.ls(s3_bucket.url("streaming", "output"))

    verified = runner.invoke(
        cli,
        ["verify", "--input", s3_bucket.url("streaming", "input"),
         "--importance", s3_bucket.url("CustomerImportance.csv"),
         "--output", s3_bucket.url("streaming", "output"), "--preset", "seed",
         "--set", f"s3.endpoint_url={s3_bucket.endpoint_url}"],
        env=env,
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert "OK: the output equals the reference exactly." in verified.output


def test_a_missing_bucket_stops_the_detector_with_a_clear_error(
    spark: Any, postgres_dsn: str, namespace: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    from txpatterns.errors import TxpError

    store = s3_store(s3_bucket.endpoint_url, "us-east-1", "test", "test")
    missing = f"{s3_bucket.name}-gone"
    settings = DetectSettings(
        input=s3_bucket.url("streaming", "input"),
        output=f"s3://{missing}/streaming/output",
        importance=s3_bucket.url("CustomerImportance.csv"),
        namespace=namespace,
        checkpoint=str(tmp_path / "checkpoint"),
    )
    detector = Detector(settings, PRESETS["seed"], store, dsn=postgres_dsn)
    try:
        with pytest.raises(TxpError, match=f"bucket '{missing}' does not exist"):
            detector.run(spark, until_idle=True)
    finally:
        detector.close()


def test_publisher_and_detector_side_by_side_on_s3(
    spark: Any, postgres_dsn: str, namespace: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys
    import threading

    import psycopg

    from txpatterns.state.db import schema_name

    transactions, importance = tmp_path / "transactions.csv", tmp_path / "importance.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=2000, seed=8)
    s3_bucket.fs.put(str(importance), s3_bucket.url("CustomerImportance.csv"))
    settings = DetectSettings(
        input=s3_bucket.url("streaming", "input"),
        output=s3_bucket.url("streaming", "output"),
        importance=s3_bucket.url("CustomerImportance.csv"),
        namespace=namespace,
        checkpoint=str(tmp_path / "checkpoint"),
        trigger=0.25,  # type: ignore[arg-type]
        max_wait=0,  # type: ignore[arg-type]
    )
    store = s3_store(s3_bucket.endpoint_url, "us-east-1", "test", "test")
    detector = Detector(settings, PRESETS["seed"], store, dsn=postgres_dsn)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: detector.run(spark, until_idle=False, stop=stop))
    thread.start()
    try:
        # Mechanism X as its own process, started while Y already watches the empty prefix.
        publisher = subprocess.run(
            [str(Path(sys.executable).with_name("txpatterns")), "publish",
             "--source", str(transactions), "--to", settings.input or "",
             "--chunk-rows", "250", "--interval", "0.3s"],
            env={**os.environ, **s3_bucket.env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert publisher.returncode == 0, publisher.stderr
        with psycopg.connect(postgres_dsn) as conn:
            for _ in range(240):
                row = conn.execute(
                    f"SELECT count(*) FROM {schema_name(namespace)}.chunks"
                ).fetchone()
                if row and row[0] == 8:
                    break
                time.sleep(0.25)
    finally:
        stop.set()
        thread.join(timeout=120)
        detector.close()
    verified = CliRunner().invoke(
        cli,
        ["verify", "--input", settings.input or "",
         "--importance", s3_bucket.url("CustomerImportance.csv"),
         "--output", settings.output or "", "--preset", "seed"],
        env=s3_bucket.env,
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    assert "Reference: 8 chunks" in verified.output
    assert "OK: the output equals the reference exactly." in verified.output


def test_rejected_credentials_are_a_clear_error(
    s3_server_with_identities: Any, tmp_path: Path
) -> None:
    server = s3_server_with_identities
    fs = server.filesystem()
    fs.mkdir("locked")
    transactions, importance = tmp_path / "transactions.csv", tmp_path / "importance.csv"
    with transactions.open("w", newline="") as tx, importance.open("w", newline="") as imp:
        generate(tx, imp, rows=300, seed=2)
    wrong = {**server.env, "TXP_S3_SECRET_ACCESS_KEY": "not-the-secret",
             "AWS_SECRET_ACCESS_KEY": "not-the-secret"}  # fmt: skip
    result = CliRunner().invoke(
        cli,
        ["publish", "--source", str(transactions), "--to", "s3://locked/streaming/input",
         "--interval", "0"],
        env=wrong,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "'locked'" in result.output and "credentials" in result.output
    assert "Traceback" not in result.output
    assert "not-the-secret" not in result.output
    assert not fs.ls("locked")
    # The right key pair works on the same server.
    result = CliRunner().invoke(
        cli,
        ["publish", "--source", str(transactions), "--to", "s3://locked/streaming/input",
         "--interval", "0"],
        env=server.env,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
