"""Crash safety with real SIGKILLs: `txpatterns detect --crash-at POINT[:N]` kills itself there.

Several crashes in a row on one namespace, output and checkpoint, while chunks keep arriving,
then a clean run: the output must hold every reference detection exactly once, and the state
must count every chunk once. Each subprocess starts its own Spark, so there is one scenario.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pipeline import Stream, make_stream, output_agrees, reference_detections, state_detections
from txpatterns.patterns import PRESETS
from txpatterns.state.db import schema_name

pytestmark = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.slow]

TXPATTERNS = Path(sys.executable).with_name("txpatterns")
ROWS, CHUNK_ROWS = 3000, 300
CHUNKS = ROWS // CHUNK_ROWS


def detect(
    stream: Stream, dsn: str, namespace: str, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `txpatterns detect --until-idle` in a subprocess, two chunks per micro-batch."""
    args = [
        str(TXPATTERNS), "detect",
        "--input", str(stream.input),
        "--output", str(stream.output),
        "--importance", str(stream.importance),
        "--postgres", dsn,
        "--namespace", namespace,
        "--checkpoint", str(stream.checkpoint),
        "--until-idle",
        "--max-chunks-per-batch", "2",
        "--preset", "seed",
    ]  # fmt: skip
    if crash_at is not None:
        args += ["--crash-at", crash_at]
    # No TXP_* setting from the calling environment; files are written at once.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXP_")}
    env |= {"SPARK_LOCAL_IP": "127.0.0.1", "TXP_OUTPUT_MAX_WAIT": "0"}
    return subprocess.run(
        args, env=env, cwd=stream.root, capture_output=True, text=True, timeout=300, check=False
    )


def crash(stream: Stream, dsn: str, namespace: str, point: str) -> None:
    result = detect(stream, dsn, namespace, point)
    assert result.returncode == -9, (
        f"--crash-at {point}: exit {result.returncode}, not SIGKILL: the point was not reached\n"
        f"{result.stdout}\n{result.stderr[-3000:]}"
    )


def query(dsn: str, namespace: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path TO {schema_name(namespace)}")
        return conn.execute(sql).fetchall()


def ledger(dsn: str, namespace: str) -> list[int]:
    return [int(str(r[0])) for r in query(dsn, namespace, "SELECT chunk_index FROM chunks")]


def pending_chunks(dsn: str, namespace: str) -> set[int]:
    """The chunks whose detections wait for a file."""
    rows = query(dsn, namespace, "SELECT chunk_index FROM detections WHERE file_seq IS NULL")
    return {int(str(r[0])) for r in rows}


def incomplete_files(dsn: str, namespace: str) -> list[str]:
    rows = query(
        dsn, namespace, "SELECT name FROM output_files WHERE completed_at IS NULL ORDER BY seq"
    )
    return [str(r[0]) for r in rows]


def publish_chunks(source: Stream, target: Stream, indexes: range) -> None:
    """Copy published chunks, part first and marker last, as the publisher writes them."""
    for index in indexes:
        folder = f"chunk_{index}.csv"
        (target.input / folder).mkdir(parents=True)
        shutil.copy(source.input / folder / "part-00000.csv", target.input / folder)
        shutil.copy(source.input / folder / "_SUCCESS", target.input / folder)


def chunk_rows(stream: Stream) -> dict[int, int]:
    """The rows of every chunk, from its part file (the generated data is all valid)."""
    return {
        i: len((stream.input / f"chunk_{i}.csv" / "part-00000.csv").read_bytes().splitlines()) - 1
        for i in range(CHUNKS)
    }


def assert_exactly_once(stream: Stream, dsn: str, namespace: str) -> None:
    """The final run finished; output and state are as if nothing had ever crashed."""
    result = detect(stream, dsn, namespace)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.startswith("Applied "), result.stdout
    thresholds = PRESETS["seed"]
    agrees, summary = output_agrees(stream, thresholds)
    assert agrees, summary
    assert state_detections(dsn, namespace) == reference_detections(stream, thresholds)
    # Each chunk once, with its rows; the pair counts add up to the valid rows, once each.
    chunks = query(
        dsn, namespace, "SELECT chunk_index, valid_rows, invalid_rows FROM chunks ORDER BY 1"
    )
    rows = chunk_rows(stream)
    assert chunks == [(i, rows[i], 0) for i in range(CHUNKS)]
    assert sum(rows.values()) == ROWS
    assert query(dsn, namespace, "SELECT sum(n) FROM pairs") == [(ROWS,)]
    assert query(dsn, namespace, "SELECT sum(n) FROM merchants") == [(ROWS,)]
    # Every detection is in a complete file, and every file recorded is on disk, complete.
    assert pending_chunks(dsn, namespace) == set()
    assert incomplete_files(dsn, namespace) == []
    names = {str(r[0]) for r in query(dsn, namespace, "SELECT name FROM output_files")}
    on_disk = {p.name for p in stream.output.iterdir()}
    assert on_disk == names
    assert all((stream.output / name / "_SUCCESS").is_file() for name in names)


def test_repeated_sigkills_while_chunks_arrive_lose_and_duplicate_nothing(
    postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    source = make_stream(tmp_path / "source", rows=ROWS, chunk_rows=CHUNK_ROWS)
    stream = Stream(tmp_path / "live")
    stream.input.mkdir(parents=True)
    shutil.copy(source.importance, stream.importance)
    dsn = postgres_dsn

    # Half the chunks are there. Batch (0,1) is done and written; chunk 2 of batch (2,3) is
    # committed, its detections not yet in a file.
    publish_chunks(source, stream, range(5))
    crash(stream, dsn, namespace, "after-commit:3")
    assert sorted(ledger(dsn, namespace)) == [0, 1, 2]
    assert pending_chunks(dsn, namespace) == {2}
    assert incomplete_files(dsn, namespace) == []
    assert any(stream.output.iterdir())

    # More arrive. Whatever the checkpoint says, the run starts at the ledger's next chunk:
    # batch (3,4) is applied; batch (5,6) is staged, then killed.
    publish_chunks(source, stream, range(5, 7))
    crash(stream, dsn, namespace, "after-stage:2")
    assert sorted(ledger(dsn, namespace)) == [0, 1, 2, 3, 4]
    assert pending_chunks(dsn, namespace) == set()
    assert incomplete_files(dsn, namespace) == []

    # Batch (5,6) again: the first output file is recorded and half written, without a marker.
    publish_chunks(source, stream, range(7, 9))
    crash(stream, dsn, namespace, "mid-file:1")
    assert sorted(ledger(dsn, namespace)) == [0, 1, 2, 3, 4, 5, 6]
    [half] = incomplete_files(dsn, namespace)
    part = stream.output / half / "part-00000.csv"
    assert part.is_file() and not (stream.output / half / "_SUCCESS").exists()
    half_bytes = part.read_bytes()

    # The last chunk arrives. Recovery completes that file; a later file is recorded, and killed
    # before it is written.
    publish_chunks(source, stream, range(9, CHUNKS))
    crash(stream, dsn, namespace, "after-file-recorded:2")
    assert (stream.output / half / "_SUCCESS").is_file()
    # Written again under the same name with the same rows: the half was its first half.
    full = part.read_bytes()
    assert half_bytes and len(half_bytes) == len(full) // 2 and full.startswith(half_bytes)
    [recorded] = incomplete_files(dsn, namespace)
    assert recorded != half and not (stream.output / recorded).exists()

    # Recovery writes that file, part and marker, and is killed before recording it complete.
    crash(stream, dsn, namespace, "before-file-complete:1")
    assert incomplete_files(dsn, namespace) == [recorded]
    assert (stream.output / recorded / "_SUCCESS").is_file()
    written = (stream.output / recorded / "part-00000.csv").read_bytes()

    assert_exactly_once(stream, dsn, namespace)
    assert (stream.output / recorded / "part-00000.csv").read_bytes() == written
