"""Helpers for detector tests: make a published stream, run the detector, read its state."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from txpatterns.detect.runner import Detector, Progress
from txpatterns.generate import generate
from txpatterns.patterns import Thresholds
from txpatterns.publish import publish
from txpatterns.reference import replay_folder
from txpatterns.settings import DetectSettings
from txpatterns.state.db import schema_name
from txpatterns.store import LOCAL
from txpatterns.verify import compare, read_output

# Thresholds for a ~50,000-row generated dataset: every pattern fires many times.
SCALED_50K = Thresholds(
    upgrade_min_merchant_txns=4_000,
    upgrade_top_pct=Decimal(10),
    upgrade_bottom_pct=Decimal(10),
    child_min_txns=8,
    child_max_avg_amount=Decimal(30),
    dei_min_female_customers=20,
)


@dataclass(frozen=True)
class Stream:
    """A generated dataset published as chunks under `root`."""

    root: Path

    @property
    def input(self) -> Path:
        return self.root / "streaming" / "input"

    @property
    def output(self) -> Path:
        return self.root / "streaming" / "output"

    @property
    def quarantine(self) -> Path:
        return self.root / "streaming" / "quarantine"

    @property
    def transactions(self) -> Path:
        return self.root / "transactions.csv"

    @property
    def importance(self) -> Path:
        return self.root / "CustomerImportance.csv"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    def settings(self, namespace: str, **changes: Any) -> DetectSettings:
        values: dict[str, Any] = {
            "input": str(self.input),
            "output": str(self.output),
            "importance": str(self.importance),
            "namespace": namespace,
            "workdir": str(self.root / "work"),
            "checkpoint": str(self.checkpoint),
            "max_wait": Decimal(0),
        }
        values.update(changes)
        return DetectSettings(**values)


def make_stream(root: Path, rows: int, chunk_rows: int, seed: int = 0) -> Stream:
    stream = Stream(root)
    root.mkdir(parents=True, exist_ok=True)
    with (
        stream.transactions.open("w", newline="") as tx,
        stream.importance.open("w", newline="") as imp,
    ):
        generate(tx, imp, rows=rows, seed=seed, weight_mode="independent")
    with stream.transactions.open("rb") as source:
        publish(source, "transactions.csv", str(stream.input), LOCAL, chunk_rows=chunk_rows,
                interval=0)  # fmt: skip
    return stream


def run_detector(
    spark: Any, dsn: str, stream: Stream, namespace: str, thresholds: Thresholds, **changes: Any
) -> Progress:
    detector = Detector(stream.settings(namespace, **changes), thresholds, LOCAL, dsn=dsn)
    try:
        return detector.run(spark, until_idle=True)
    finally:
        detector.close()


def state_detections(dsn: str, namespace: str) -> set[tuple[str, str, str, int]]:
    """(pattern, customer, merchant, first chunk) of every detection in the state."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT pattern_id, customer, merchant, chunk_index "
            f"FROM {schema_name(namespace)}.detections"
        ).fetchall()
    return {(str(a), str(b), str(c), int(d)) for a, b, c, d in rows}


def reference_detections(stream: Stream, thresholds: Thresholds) -> set[tuple[str, str, str, int]]:
    replay = replay_folder(str(stream.input), str(stream.importance), thresholds)
    return {(d.pattern_id, d.customer, d.merchant, d.chunk_index) for d in replay.detections}


def output_agrees(stream: Stream, thresholds: Thresholds) -> tuple[bool, str]:
    """Whether the output files hold every reference key exactly once, and nothing else."""
    replay = replay_folder(str(stream.input), str(stream.importance), thresholds)
    diff = compare(replay.detections, read_output(str(stream.output)))
    summary = (
        f"missing {diff.missing[:5]}, extra {diff.extra[:5]}, duplicated {diff.duplicated[:5]}, "
        f"problems {diff.output.problems[:5]}, incomplete {diff.output.incomplete}"
    )
    return diff.agrees and not diff.output.incomplete, summary
