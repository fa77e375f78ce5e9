"""The whole pipeline over S3 (SeaweedFS on 127.0.0.1): publish, detect, verify."""

from __future__ import annotations

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
