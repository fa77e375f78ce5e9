"""`txpatterns detect` and `txpatterns run` from the command line, as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.conninfo import make_conninfo

from pipeline import Stream, make_stream, reference_detections
from txpatterns.cli import DETECT_FLAGS, cli
from txpatterns.patterns import ACTION_TYPES, PRESETS
from txpatterns.state.db import schema_name

TXPATTERNS = Path(sys.executable).with_name("txpatterns")
SEED = PRESETS["seed"]

# Every option of `detect`, as README.md and the settings (DETECT_FLAGS) document them.
DETECT_OPTIONS = (
    "--input", "--output", "--importance", "--quarantine", "--postgres", "--namespace",
    "--workdir", "--checkpoint", "--master", "--trigger", "--max-chunks-per-batch",
    "--until-idle", "--config", "--preset", "--set", "--help",
)  # fmt: skip


def environment(**settings: str) -> dict[str, str]:
    """The calling environment without its TXP_* settings, plus these and a local Spark."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXP_")}
    return env | {"SPARK_LOCAL_IP": "127.0.0.1"} | settings


def txp(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TXPATTERNS), *map(str, args)],
        cwd=cwd,
        env=env or environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def detect_args(stream: Stream, dsn: str, namespace: str, *more: str) -> list[str]:
    return [
        "detect",
        "--input", str(stream.input),
        "--output", str(stream.output),
        "--importance", str(stream.importance),
        "--postgres", dsn,
        "--namespace", namespace,
        "--preset", "seed",
        *more,
    ]  # fmt: skip


def verify(stream: Stream, cwd: Path) -> subprocess.CompletedProcess[str]:
    return txp(
        "verify", "--input", stream.input, "--importance", stream.importance,
        "--output", stream.output, "--preset", "seed", cwd=cwd,
    )  # fmt: skip


def scalar(dsn: str, namespace: str, sql: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql.replace("{schema}", schema_name(namespace))).fetchone()
    assert row is not None
    return int(row[0])


def applied_chunks(dsn: str, namespace: str) -> int:
    """Chunks in the ledger; 0 while the namespace does not exist yet."""
    try:
        return scalar(dsn, namespace, "SELECT count(*) FROM {schema}.chunks")
    except psycopg.errors.UndefinedTable:
        return 0


def pending(dsn: str, namespace: str) -> int:
    return scalar(dsn, namespace, "SELECT count(*) FROM {schema}.detections WHERE file_seq IS NULL")


# --help and usage errors -----------------------------------------------------------------------


def test_detect_help_shows_every_documented_option() -> None:
    result = CliRunner().invoke(cli, ["detect", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    shown = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", result.output, re.MULTILINE))
    assert set(DETECT_OPTIONS) <= shown, set(DETECT_OPTIONS) - shown
    # Each setting-backed option is a documented setting: the flags layer maps all of them.
    flags = {"--" + name.removesuffix("_url").replace("_", "-") for name in DETECT_FLAGS}
    assert flags <= shown
    # The test-only crash option is accepted but not shown.
    assert "--crash-at" not in result.output
    assert "txpatterns detect --input" in result.output


def test_detect_without_input_exits_2_with_a_clear_message(
    postgres_dsn: str, tmp_path: Path
) -> None:
    # Without any setting at all (no flags, no txpatterns.toml, no TXP_* variables).
    bare = txp("detect", cwd=tmp_path, timeout=120)
    assert bare.returncode == 2, bare.stderr
    assert "Error: detect needs --input, --output, --importance" in bare.stderr
    assert "Traceback" not in bare.stderr
    # --output and --importance given, --input missing; nothing is created anywhere.
    work = tmp_path / "work"
    result = txp(
        "detect", "--output", tmp_path / "out", "--importance", tmp_path / "imp.csv",
        "--postgres", postgres_dsn, "--workdir", work, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Error: detect needs --input" in result.stderr
    assert "Traceback" not in result.stderr
    assert not work.exists() and not (tmp_path / "out").exists()
    # A bad value is refused by the settings layer, naming the flag.
    bad = txp("detect", "--max-chunks-per-batch", "two", cwd=tmp_path)
    assert bad.returncode == 2
    assert "max_chunks_per_batch" in bad.stderr and "Traceback" not in bad.stderr


# The detector as a command ---------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.postgres
def test_detect_until_idle_prints_the_summary_and_the_output_verifies(
    postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, rows=1000, chunk_rows=250)
    work = tmp_path / "work"
    result = txp(
        *detect_args(stream, postgres_dsn, namespace, "--until-idle", "--workdir", str(work)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = Counter(p for p, *_ in reference_detections(stream, SEED))
    counts = ", ".join(f"{action} {expected[p]:,}" for p, action in ACTION_TYPES.items())
    summary = (
        re.escape(f"Applied 4 chunks (1,000 valid rows, 0 invalid); detections: {counts}; ")
        + r"(\d+) output files? written\.\n"
    )
    match = re.fullmatch(summary, result.stdout)
    assert match, result.stdout
    files = int(match.group(1))
    assert files == -(-sum(expected.values()) // 50)
    assert len(list(stream.output.iterdir())) == files
    # The checkpoint is under --workdir by default, one per namespace.
    assert (work / "checkpoints" / namespace / "offsets").is_dir()
    checked = verify(stream, tmp_path)
    assert checked.returncode == 0, checked.stdout
    assert "OK: the output equals the reference exactly." in checked.stdout


@pytest.mark.spark
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_second_detector_is_refused_and_a_signal_stops_the_first_cleanly(
    postgres_dsn: str, namespace: str, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """Ctrl-C (SIGINT) or SIGTERM: the batch in hand finishes, pending detections are written."""
    stream = make_stream(tmp_path, rows=1000, chunk_rows=250)
    total = len(reference_detections(stream, SEED))
    assert total % 50, "the test needs a last, partial file"
    # Partial files wait an hour: only the stop writes the last detections.
    env = environment(TXP_OUTPUT_MAX_WAIT="1h")
    args = detect_args(
        stream, postgres_dsn, namespace, "--checkpoint", str(stream.checkpoint),
        "--trigger", "250ms",
    )  # fmt: skip
    log = tmp_path / "first.out", tmp_path / "first.err"
    with log[0].open("w") as out, log[1].open("w") as err:
        first = subprocess.Popen(
            [str(TXPATTERNS), *args], cwd=tmp_path, env=env, stdout=out, stderr=err, text=True
        )
    try:
        deadline = time.monotonic() + 240
        while applied_chunks(postgres_dsn, namespace) < 4:
            assert first.poll() is None, log[1].read_text()[-3000:]
            assert time.monotonic() < deadline, "the detector did not apply the chunks"
            time.sleep(0.5)
        # Full files are written right after the batch's chunks are committed; the rest waits.
        while pending(postgres_dsn, namespace) != total % 50:
            assert first.poll() is None, log[1].read_text()[-3000:]
            assert time.monotonic() < deadline, "the full files were not written"
            time.sleep(0.2)
        time.sleep(1)
        assert first.poll() is None
        assert pending(postgres_dsn, namespace) == total % 50

        started = time.monotonic()
        second = txp(*args, cwd=tmp_path, env=env, timeout=60)
        assert time.monotonic() - started < 30
        assert second.returncode == 2
        assert "another detector is running on namespace" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None, "the refused detector must not disturb the first"

        first.send_signal(stop_signal)
        assert first.wait(timeout=30) == 0, log[1].read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    stdout, stderr = log[0].read_text(), log[1].read_text()
    assert "Stopping after the batch in hand" in stderr
    assert stdout.startswith("Applied 4 chunks (1,000 valid rows, 0 invalid)"), stdout
    # The pending detections were written before it exited.
    assert pending(postgres_dsn, namespace) == 0
    checked = verify(stream, tmp_path)
    assert checked.returncode == 0, checked.stdout
    assert "OK: the output equals the reference exactly." in checked.stdout


# The whole pipeline ----------------------------------------------------------------------------


@pytest.fixture
def database(postgres_dsn: str) -> Iterator[str]:
    """A fresh database (`run` always uses the namespace `run`), dropped after the test."""
    name = f"txp_run_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(postgres_dsn, dbname=name)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.spark
@pytest.mark.postgres
@pytest.mark.slow
def test_run_publishes_detects_and_verifies_end_to_end(database: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    result = txp(
        "run", "--rows", "5000", "--interval", "0.1s", "--chunk-rows", "1000",
        "--workdir", work, "--postgres", database, "--preset", "seed", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "Generated 5,000 rows" in result.stdout
    assert "Published and applied 5 chunks" in result.stdout
    assert "Reference: 5 chunks (0..4), 5,000 valid rows, 0 invalid rows, preset seed" in (
        result.stdout
    )
    assert result.stdout.rstrip().endswith("OK: the output equals the reference exactly.")
    assert len(list((work / "streaming" / "input").glob("chunk_*.csv/_SUCCESS"))) == 5
    assert any((work / "streaming" / "output").glob("pattern_detected_*.csv/_SUCCESS"))
