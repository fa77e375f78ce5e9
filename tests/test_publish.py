"""Mechanism X: `txpatterns publish` lays a source out as paced, complete, resumable chunks.

Every test reads back what was really written (local folders, a real HTTP server, a real
SeaweedFS S3 server) and compares bytes with the source.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import cache
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner, Result

from fix_s3 import S3Bucket
from txpatterns.cli import cli
from txpatterns.generate import generate
from txpatterns.publish import ChunkPublished, PublishError, publish
from txpatterns.store import LOCAL

HEADER = b"step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount,fraud"
PART = "part-00000.csv"
SUCCESS = "_SUCCESS"
MANIFEST = "_publish.json"


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(autouse=True)
def _clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No TXP_*/AWS_* settings or ./txpatterns.toml from the machine leak into a test."""
    for name in list(os.environ):
        if name.startswith(("TXP_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@cache
def generated_rows(rows: int, seed: int = 7) -> bytes:
    """The data lines (no header) of a generated BankSim-format transactions file."""
    tx, imp = io.StringIO(), io.StringIO()
    generate(tx, imp, rows=rows, seed=seed)
    data = tx.getvalue().encode()
    header, _, body = data.partition(b"\n")
    assert header == HEADER
    return body


def write_source(path: Path, rows: int, seed: int = 7) -> bytes:
    data = HEADER + b"\n" + generated_rows(rows, seed)
    path.write_bytes(data)
    return data


def lines(data: bytes) -> list[bytes]:
    """Split as a binary file iterates: on b'\\n' only, keeping it; a last partial line stays."""
    pieces = data.split(b"\n")
    return [p + b"\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def run(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """`txpatterns publish ARGS` in this process."""
    return CliRunner().invoke(
        cli, ["publish", *(str(a) for a in args)], env=env, catch_exceptions=False
    )


def ok(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    """`txpatterns publish ARGS`, which must succeed."""
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    return result


def cli_command() -> list[str]:
    """How to start the CLI as a real process."""
    if importlib.util.find_spec("txpatterns.__main__") is not None:
        return [sys.executable, "-m", "txpatterns"]
    return [str(Path(sys.executable).with_name("txpatterns"))]


def subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TXP_", "AWS_"))}


def chunk_indexes(dest: Path) -> list[int]:
    return sorted(int(p.name[len("chunk_") : -len(".csv")]) for p in dest.glob("chunk_*.csv"))


def assert_published(dest: Path, source: bytes, chunk_rows: int) -> list[bytes]:
    """DEST holds exactly the chunks of `source`, complete, in order; returns the parts."""
    header, *rows = lines(source)
    expected_chunks = -(-len(rows) // chunk_rows)
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted([MANIFEST, *(f"chunk_{i}.csv" for i in range(expected_chunks))])
    assert json.loads((dest / MANIFEST).read_text())["chunk_rows"] == chunk_rows
    parts = []
    for i in range(expected_chunks):
        folder = dest / f"chunk_{i}.csv"
        assert sorted(p.name for p in folder.iterdir()) == [SUCCESS, PART], folder
        assert (folder / SUCCESS).read_bytes() == b""
        part = (folder / PART).read_bytes()
        expected_header = header if header.endswith(b"\n") else header + b"\n"
        assert part.startswith(expected_header), f"chunk {i} does not start with the header"
        assert part[len(expected_header) :] == b"".join(
            rows[i * chunk_rows : (i + 1) * chunk_rows]
        ), f"chunk {i} holds other rows than source rows {i * chunk_rows}.."
        parts.append(part)
    bodies = b"".join(p[len(header) :] for p in parts)
    assert bodies == source[len(header) :]
    return parts


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under `root`: (inode, mtime_ns, size), to prove nothing was rewritten."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_user_error(result: Result, *fragments: str, one_line: bool = True) -> str:
    """Exit code 2, no traceback, an `Error:` message containing every fragment."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("Error:"), message
    if one_line:
        assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------------------------------
# Layout and bytes


@pytest.mark.parametrize(("rows", "chunk_rows"), [(2500, 1000), (2000, 500), (7, 10), (5, 1)])
def test_layout_is_contiguous_complete_chunks_with_the_source_bytes(
    tmp_path: Path, rows: int, chunk_rows: int
) -> None:
    source = write_source(tmp_path / "transactions.csv", rows)
    dest = tmp_path / "input"

    result = run(
        "--source", "transactions.csv", "--to", dest, "--chunk-rows", chunk_rows, "--interval", "0"
    )

    assert result.exit_code == 0, result.output
    chunks = -(-rows // chunk_rows)
    noun = "chunk" if chunks == 1 else "chunks"
    assert f"Published {chunks} {noun} (0..{chunks - 1}), {rows:,} rows" in result.stdout
    assert_published(dest, source, chunk_rows)
    assert result.stderr.count("published ") == chunks
    assert not list(dest.rglob("*.tmp*"))


MALFORMED = [
    b"this is not,a transaction\n",
    b"\xff\xfe not utf-8 at all,,,\n",
    b"1,'C1','2','F','28007','M1','28007','es_food',abc,0\n",
    b"\n",
    b"2,'C2','2','F','28007','M1','28007','es_food',1.5,0,extra\n",
    b"3,'C3','2','F','28007','M\ry','28007','es_food',2,0\n",  # a lone CR is not a line end
    b"   \n",
]


def edge_source(kind: str) -> bytes:
    rows = lines(generated_rows(11, seed=3))
    if kind in ("crlf", "crlf-no-final-newline"):
        header = HEADER + b"\r\n"
        rows = [r[:-1] + b"\r\n" for r in rows]
    else:
        header = HEADER + b"\n"
    if kind == "malformed":
        rows = rows[:3] + MALFORMED[:4] + rows[3:6] + MALFORMED[4:] + rows[6:]
    data = header + b"".join(rows)
    if kind in ("no-final-newline", "crlf-no-final-newline"):
        data = data.rstrip(b"\r\n")
    return data


@pytest.mark.parametrize("kind", ["no-final-newline", "crlf", "crlf-no-final-newline", "malformed"])
@pytest.mark.parametrize("chunk_rows", [3, 4, 100])
def test_unusual_bytes_are_published_unchanged(tmp_path: Path, kind: str, chunk_rows: int) -> None:
    source = edge_source(kind)
    (tmp_path / "t.csv").write_bytes(source)
    dest = tmp_path / "out"

    result = run("--source", "t.csv", "--to", dest, "--chunk-rows", chunk_rows, "--interval", "0")

    assert result.exit_code == 0, result.output
    parts = assert_published(dest, source, chunk_rows)
    if kind.startswith("crlf"):
        assert all(p.startswith(HEADER + b"\r\n") for p in parts)
    if kind.endswith("no-final-newline"):
        assert not parts[-1].endswith(b"\n")
        assert all(p.endswith(b"\n") for p in parts[:-1])
    if kind == "malformed":
        published = [row for p in parts for row in lines(p)[1:]]
        for row in MALFORMED:
            assert published.count(row) == 1, row


def test_header_without_newline_and_no_rows_publishes_no_chunk(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(HEADER)
    result = run("--source", "t.csv", "--to", "out", "--interval", "0")
    assert result.exit_code == 0, result.output
    assert chunk_indexes(tmp_path / "out") == []


def test_library_reports_what_it_published(tmp_path: Path) -> None:
    source = HEADER + b"\n" + generated_rows(25)
    seen: list[ChunkPublished] = []
    result = publish(
        io.BytesIO(source),
        "mem",
        str(tmp_path / "out"),
        LOCAL,
        chunk_rows=10,
        interval=0,
        on_chunk=seen.append,
    )
    assert (result.first_chunk, result.chunks, result.rows, result.next_chunk) == (0, 3, 25, 3)
    assert result.source_exhausted
    assert result.already_published == 0
    assert [(c.index, c.rows) for c in seen] == [(0, 10), (1, 10), (2, 5)]
    parts = assert_published(tmp_path / "out", source, 10)
    assert [c.bytes for c in seen] == [len(p) for p in parts]
    assert result.bytes == sum(len(p) for p in parts)


def test_a_reader_never_sees_a_marker_before_the_whole_part(tmp_path: Path) -> None:
    """Poll the folder while a publisher writes big chunks: a marker implies a complete part."""
    chunk_rows, chunks = 60_000, 4
    source = HEADER + b"\n" + generated_rows(20_000) * (chunk_rows * chunks // 20_000)
    rows = lines(source)[1:]
    expected = [
        HEADER + b"\n" + b"".join(rows[i : i + chunk_rows]) for i in range(0, len(rows), chunk_rows)
    ]
    dest = tmp_path / "out"
    errors: list[BaseException] = []

    def run_publisher() -> None:
        try:
            publish(io.BytesIO(source), "mem", str(dest), LOCAL, chunk_rows=chunk_rows,
                    interval=0.02)  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    publisher = threading.Thread(target=run_publisher)
    publisher.start()
    checked: set[int] = set()
    polls = 0
    while True:
        alive = publisher.is_alive()  # sampled first: the pass below sees all it wrote
        polls += 1
        for i in range(chunks):
            if i not in checked and (dest / f"chunk_{i}.csv" / SUCCESS).exists():
                assert (dest / f"chunk_{i}.csv" / PART).read_bytes() == expected[i], i
                checked.add(i)
        if not alive:
            break
    publisher.join()
    assert not errors, errors
    assert checked == set(range(chunks))
    assert polls > chunks  # the reader really ran while chunks were appearing


# ---------------------------------------------------------------------------------------------
# Resumption


def publish_reference(tmp_path: Path, source: bytes, chunk_rows: int) -> dict[str, bytes]:
    """What an uninterrupted publish writes: {relative path: bytes}."""
    ref = tmp_path / "reference"
    publish(io.BytesIO(source), "ref", str(ref), LOCAL, chunk_rows=chunk_rows, interval=0)
    return {str(p.relative_to(ref)): p.read_bytes() for p in sorted(ref.rglob("*")) if p.is_file()}


def contents(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("broken", [4, 1, 0])
def test_rerun_rewrites_a_chunk_whose_marker_is_missing(tmp_path: Path, broken: int) -> None:
    source = write_source(tmp_path / "t.csv", 450)  # chunks 0..4, the last one partial
    dest = tmp_path / "out"
    ok("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    expected = contents(dest)
    (dest / f"chunk_{broken}.csv" / SUCCESS).unlink()
    before = snapshot(dest)

    result = run("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")

    assert result.exit_code == 0, result.output
    noun = "chunk" if broken == 4 else "chunks"
    assert f"Published {5 - broken} {noun} ({broken}..4)" in result.stdout
    assert contents(dest) == expected
    assert_published(dest, source, 100)
    after = snapshot(dest)
    for i in range(5):
        part = f"chunk_{i}.csv/{PART}"
        # Complete chunks before the broken one are left alone; from it on, all are rewritten.
        assert (after[part][0] == before[part][0]) == (i < broken), part


@pytest.mark.parametrize("cut", [0, 1, 0.5])
def test_rerun_replaces_a_truncated_part_left_without_marker(tmp_path: Path, cut: float) -> None:
    source = write_source(tmp_path / "t.csv", 450)
    expected = publish_reference(tmp_path, source, 100)
    dest = tmp_path / "out"
    result = run(
        "--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0", "--max-chunks", 2
    )
    assert result.exit_code == 0, result.output
    assert "run again to continue from chunk 2" in result.stdout
    # A publisher killed while writing chunk 2: part written in part, no marker.
    full = expected[f"chunk_2.csv/{PART}"]
    (dest / "chunk_2.csv").mkdir()
    (dest / "chunk_2.csv" / PART).write_bytes(full[: int(len(full) * cut)] if cut else b"")

    result = run("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")

    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (2..4), 250 rows" in result.stdout
    assert contents(dest) == expected
    assert_published(dest, source, 100)


def test_rerun_after_a_real_kill_completes_the_stream(tmp_path: Path) -> None:
    source = write_source(tmp_path / "t.csv", 1000)
    dest = tmp_path / "out"
    command = [
        *cli_command(),
        "publish",
        "--source",
        "t.csv",
        "--to",
        str(dest),
        "--chunk-rows",
        "100",
        "--interval",
        "0.5s",
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while not (dest / "chunk_1.csv" / SUCCESS).exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the publisher wrote no second chunk in 30 s"
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        out, err = process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL, (out, err)
    done = [i for i in chunk_indexes(dest) if (dest / f"chunk_{i}.csv" / SUCCESS).exists()]
    assert 2 <= len(done) < 10, "the kill should land in the middle of the stream"
    assert done == list(range(len(done)))

    result = run("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")

    assert result.exit_code == 0, result.output
    assert f"Published {10 - len(done)} chunks ({len(done)}..9)" in result.stdout
    assert_published(dest, source, 100)
    assert contents(dest) == publish_reference(tmp_path, source, 100)


def test_second_publish_of_a_finished_source_writes_nothing(tmp_path: Path) -> None:
    write_source(tmp_path / "t.csv", 300)
    dest = tmp_path / "out"
    ok("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    before = snapshot(dest)

    result = run("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "1s")

    assert result.exit_code == 0, result.output
    assert "Nothing to publish" in result.stdout
    assert "all 3 chunks" in result.stdout
    assert "published " not in result.stderr
    assert snapshot(dest) == before


def test_max_chunks_then_continue(tmp_path: Path) -> None:
    source = write_source(tmp_path / "t.csv", 550)
    dest = tmp_path / "out"
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")

    first = run(*args, "--max-chunks", 2)
    assert first.exit_code == 0, first.output
    assert "Published 2 chunks (0..1), 200 rows" in first.stdout
    assert "run again to continue from chunk 2" in first.stdout
    assert chunk_indexes(dest) == [0, 1]

    second = run(*args, "--max-chunks", 3)
    assert second.exit_code == 0, second.output
    assert "Published 3 chunks (2..4), 300 rows" in second.stdout
    assert chunk_indexes(dest) == [0, 1, 2, 3, 4]

    # Exactly the chunks left: the run ends with the source and says so.
    third = run(*args, "--max-chunks", 1)
    assert third.exit_code == 0, third.output
    assert "Published 1 chunk (5..5), 50 rows" in third.stdout
    assert "run again" not in third.stdout
    assert_published(dest, source, 100)
    assert "Nothing to publish" in run(*args, "--max-chunks", 1).stdout


def test_start_chunk_before_the_resume_point_rewrites_identical_chunks(tmp_path: Path) -> None:
    source = write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    ok(*args)
    expected = contents(dest)
    before = snapshot(dest)

    result = run(*args, "--start-chunk", 2)

    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (2..4), 250 rows" in result.stdout
    assert contents(dest) == expected
    assert_published(dest, source, 100)
    after = snapshot(dest)
    for i in range(5):
        part = f"chunk_{i}.csv/{PART}"
        assert (after[part][0] == before[part][0]) == (i < 2), part


def test_start_chunk_on_a_partial_destination_rewrites_from_there(tmp_path: Path) -> None:
    source = write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    ok(*args, "--max-chunks", 3)

    result = run(*args, "--start-chunk", 1)

    assert result.exit_code == 0, result.output
    assert "Published 4 chunks (1..4)" in result.stdout
    assert_published(dest, source, 100)


@pytest.mark.parametrize("start", [3, 7])
def test_start_chunk_beyond_the_resume_point_is_refused(tmp_path: Path, start: int) -> None:
    write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    ok(*args, "--max-chunks", 2)
    before = snapshot(dest)

    result = run(*args, "--start-chunk", start)

    assert_user_error(result, f"--start-chunk {start}", "chunk 2")
    assert snapshot(dest) == before


def test_start_chunk_past_the_end_of_the_source_is_refused(tmp_path: Path) -> None:
    write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    ok(*args)
    before = snapshot(dest)

    result = run(*args, "--start-chunk", 5)

    assert_user_error(result, "--start-chunk 5", "past the end")
    assert snapshot(dest) == before


@pytest.mark.parametrize("finished", [False, True])
def test_a_different_chunk_rows_on_a_published_destination_is_refused(
    tmp_path: Path, finished: bool
) -> None:
    write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    first = ("--source", "t.csv", "--to", dest, "--interval", "0", "--chunk-rows", 100)
    ok(*first, *([] if finished else ["--max-chunks", "2"]))
    before = snapshot(dest)

    result = run("--source", "t.csv", "--to", dest, "--interval", "0", "--chunk-rows", 50)

    assert_user_error(result, "--chunk-rows 100", str(dest))
    assert snapshot(dest) == before


def test_a_different_chunk_rows_is_refused_even_when_chunk_0_lost_its_marker(
    tmp_path: Path,
) -> None:
    # Resuming at chunk 0 must not re-chunk the source while chunks 1.. still stand.
    write_source(tmp_path / "t.csv", 450)
    dest = tmp_path / "out"
    ok("--source", "t.csv", "--to", dest, "--interval", "0", "--chunk-rows", 100)
    (dest / "chunk_0.csv" / "_SUCCESS").unlink()
    before = snapshot(dest)

    result = run("--source", "t.csv", "--to", dest, "--interval", "0", "--chunk-rows", 200)

    assert_user_error(result, "--chunk-rows 100", str(dest))
    assert snapshot(dest) == before


# ---------------------------------------------------------------------------------------------
# Pacing


class FakeTime:
    """A clock that only moves when the publisher sleeps or an upload 'takes' time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, f"sleep({seconds})"
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("costs", "expected"),
    [
        # Uploads cheaper than the interval: exactly on the grid, whatever they cost.
        ([0.5, 1.25, 0.0, 1.75, 0.5, 0.25], [0, 2, 4, 6, 8, 10]),
        # One upload longer than the interval: the next chunk goes at once, then back on grid.
        ([0.5, 0.5, 3.0, 0.5, 0.5, 0.5], [0, 2, 4, 7, 8, 10]),
        # Every upload too slow: no sleeping at all, back to back.
        ([2.5, 2.5, 2.5], [0, 2.5, 5]),
    ],
)
def test_chunk_j_is_published_j_intervals_after_the_first(
    tmp_path: Path, costs: list[float], expected: list[float]
) -> None:
    fake = FakeTime()
    start = fake.now
    published: list[float] = []

    def on_chunk(chunk: ChunkPublished) -> None:
        # The chunk is visible now; then the upload "costs" time before the next one.
        assert (tmp_path / "out" / f"chunk_{chunk.index}.csv" / SUCCESS).exists()
        published.append(fake.now - start)
        fake.now += costs[chunk.index]

    source = HEADER + b"\n" + generated_rows(len(costs) * 10)
    result = publish(
        io.BytesIO(source),
        "mem",
        str(tmp_path / "out"),
        LOCAL,
        chunk_rows=10,
        interval=2.0,
        on_chunk=on_chunk,
        clock=fake.clock,
        sleep=fake.sleep,
    )

    assert result.chunks == len(costs)
    assert published == expected
    # No sleep after the last chunk: the run ends as soon as it is visible (and paid for).
    assert fake.now - start == expected[-1] + costs[-1]
    assert_published(tmp_path / "out", source, 10)


def test_pacing_counts_from_the_first_chunk_of_a_resumed_run(tmp_path: Path) -> None:
    source = HEADER + b"\n" + generated_rows(50)
    dest = str(tmp_path / "out")
    publish(io.BytesIO(source), "mem", dest, LOCAL, chunk_rows=10, interval=0, max_chunks=2)
    fake = FakeTime()
    start = fake.now
    published: list[tuple[int, float]] = []
    publish(
        io.BytesIO(source),
        "mem",
        dest,
        LOCAL,
        chunk_rows=10,
        interval=3.0,
        on_chunk=lambda c: published.append((c.index, fake.now - start)),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert published == [(2, 0), (3, 3), (4, 6)]


def test_interval_zero_never_sleeps(tmp_path: Path) -> None:
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s with interval 0")

    source = HEADER + b"\n" + generated_rows(100)
    result = publish(
        io.BytesIO(source),
        "mem",
        str(tmp_path / "out"),
        LOCAL,
        chunk_rows=10,
        interval=0,
        sleep=no_sleep,
    )
    assert result.chunks == 10
    assert_published(tmp_path / "out", source, 10)


@pytest.mark.parametrize("interval", ["0", "0s", "0ms"])
def test_cli_interval_zero_publishes_without_waiting(tmp_path: Path, interval: str) -> None:
    source = write_source(tmp_path / "t.csv", 300)
    started = time.monotonic()
    result = run("--source", "t.csv", "--to", "out", "--chunk-rows", 10, "--interval", interval)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert_published(tmp_path / "out", source, 10)
    # 30 chunks: any real pause between them (the default is 1 s) would show.
    assert elapsed < 3, f"30 chunks with --interval {interval} took {elapsed:.2f} s"


@pytest.mark.slow
def test_real_time_pacing(tmp_path: Path) -> None:
    source = write_source(tmp_path / "t.csv", 50)
    started = time.monotonic()
    result = run("--source", "t.csv", "--to", "out", "--chunk-rows", 10, "--interval", "0.4s")
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert_published(tmp_path / "out", source, 10)
    assert 1.2 <= elapsed <= 2.0, f"5 chunks at 0.4 s took {elapsed:.2f} s, expected 1.6 s"
    marks = [(tmp_path / "out" / f"chunk_{i}.csv" / SUCCESS).stat().st_mtime for i in range(5)]
    span = marks[-1] - marks[0]
    assert 1.3 <= span <= 1.9, f"first to last marker took {span:.2f} s, expected 1.6 s"
    assert all(0.2 <= b - a <= 0.6 for a, b in itertools.pairwise(marks)), marks


def test_negative_interval_and_zero_chunk_rows_are_refused_by_the_library(tmp_path: Path) -> None:
    source = HEADER + b"\n" + generated_rows(5)
    with pytest.raises(PublishError, match="interval"):
        publish(io.BytesIO(source), "mem", str(tmp_path / "o"), LOCAL, interval=-1)
    with pytest.raises(PublishError, match="chunk-rows"):
        publish(io.BytesIO(source), "mem", str(tmp_path / "o"), LOCAL, chunk_rows=0)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Sources


def test_http_source_publishes_identical_bytes(tmp_path: Path, http_server: str) -> None:
    source = write_source(tmp_path / "transactions.csv", 1234)
    dest = tmp_path / "out"

    result = run(
        "--source",
        f"{http_server}/transactions.csv",
        "--to",
        dest,
        "--chunk-rows",
        500,
        "--interval",
        "0",
    )

    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (0..2), 1,234 rows" in result.stdout
    assert_published(dest, source, 500)


def test_http_source_resumes(tmp_path: Path, http_server: str) -> None:
    source = write_source(tmp_path / "transactions.csv", 1234)
    dest = tmp_path / "out"
    args = (
        "--source",
        f"{http_server}/transactions.csv",
        "--to",
        dest,
        "--chunk-rows",
        500,
        "--interval",
        "0",
    )
    ok(*args, "--max-chunks", 1)
    (dest / "chunk_0.csv" / SUCCESS).unlink()
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (0..2)" in result.stdout
    assert_published(dest, source, 500)
    assert "Nothing to publish" in run(*args).stdout


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_source_file(tmp_path: Path) -> None:
    result = run("--source", "nope.csv", "--to", "out", "--interval", "0")
    assert_user_error(result, "not found", "nope.csv")
    assert not (tmp_path / "out").exists()


def test_directory_as_source(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    result = run("--source", "folder", "--to", "out", "--interval", "0")
    assert_user_error(result, "folder", "not a file")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "data",
    [
        b"step,customer,age,gender,zipcodeOri,merchant,zipMerchant,category,amount\n1,2\n",
        b"Source,Target,Weight,typeTrans,fraud\n'C1','M1',1,'es_food',0\n",
        b"0,'C1','2','F','28007','M1','28007','es_food',10,0\n",
        b"",
    ],
    ids=["missing-column", "importance-file", "no-header", "empty"],
)
def test_wrong_header_is_refused_naming_the_expected_one(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "t.csv").write_bytes(data)
    result = run("--source", "t.csv", "--to", "out", "--interval", "0")
    assert_user_error(result, "t.csv", "wrong header", HEADER.decode(), one_line=False)
    assert not (tmp_path / "out").exists()


def test_http_404_source(tmp_path: Path, http_server: str) -> None:
    result = run("--source", f"{http_server}/missing.csv", "--to", "out", "--interval", "0")
    assert_user_error(result, "404", f"{http_server}/missing.csv")
    assert not (tmp_path / "out").exists()


def test_http_connection_refused(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("--source", f"http://127.0.0.1:{port}/t.csv", "--to", "out", "--interval", "0")
    assert_user_error(result, f"http://127.0.0.1:{port}/t.csv")


def test_destination_that_is_a_regular_file(tmp_path: Path) -> None:
    write_source(tmp_path / "t.csv", 20)
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = run("--source", "t.csv", "--to", "blocker", "--interval", "0")
    assert_user_error(result, "blocker")
    assert (tmp_path / "blocker").read_text() == "a file, not a folder"


def test_destination_under_a_regular_file(tmp_path: Path) -> None:
    write_source(tmp_path / "t.csv", 20)
    (tmp_path / "blocker").write_text("a file, not a folder")
    result = run("--source", "t.csv", "--to", "blocker/input", "--interval", "0")
    assert_user_error(result, "blocker/input")
    assert (tmp_path / "blocker").read_text() == "a file, not a folder"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--chunk-rows", "0"], "chunk_rows"),
        (["--chunk-rows", "ten"], "chunk_rows"),
        (["--interval", "soon"], "interval"),
        (["--interval", "-1s"], "interval"),
        (["--max-chunks", "0"], "--max-chunks"),
        (["--start-chunk", "-1"], "--start-chunk"),
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    write_source(tmp_path / "t.csv", 20)
    result = run("--source", "t.csv", "--to", "out", *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert fragment in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_required_flags_exit_2() -> None:
    result = run("--source", "t.csv")
    assert result.exit_code == 2
    assert "--to" in result.stderr


# ---------------------------------------------------------------------------------------------
# Memory


@pytest.mark.slow
def test_two_million_rows_are_streamed_in_bounded_memory(tmp_path: Path) -> None:
    rows = generated_rows(20_000, seed=11)
    big, dest = tmp_path / "big.csv", tmp_path / "out"
    try:
        with open(big, "wb") as f:
            f.write(HEADER + b"\n")
            for _ in range(100):
                f.write(rows)
        size = big.stat().st_size
        assert size > 140_000_000
        command = [
            *cli_command(),
            "publish",
            "--source",
            str(big),
            "--to",
            str(dest),
            "--interval",
            "0",
            "--chunk-rows",
            "10000",
        ]
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        peak = 0
        watched = psutil.Process(process.pid)
        try:
            while process.poll() is None:
                try:
                    peak = max(peak, watched.memory_info().rss)
                except psutil.NoSuchProcess:
                    break
                assert time.monotonic() - started < 120, "publishing 2,000,000 rows hangs"
                time.sleep(0.05)
        finally:
            process.kill()
            out, _ = process.communicate(timeout=30)
        assert process.returncode == 0, out
        assert b"Published 200 chunks (0..199), 2,000,000 rows" in out
        assert peak > 0
        assert peak < 300 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"
        # Streaming needs ~40 MiB here; holding the source's lines in a list needs ~290 MiB,
        # just under the limit above, so also check that no large share of the file is held.
        assert peak < size * 0.75, f"peak RSS {peak / 2**20:.0f} MiB for a {size >> 20} MiB file"

        assert chunk_indexes(dest) == list(range(200))
        whole = hashlib.sha256()
        with open(big, "rb") as f:
            assert f.readline() == HEADER + b"\n"
            for block in iter(lambda: f.read(1 << 20), b""):
                whole.update(block)
        parts = hashlib.sha256()
        for i in range(200):
            folder = dest / f"chunk_{i}.csv"
            assert (folder / SUCCESS).is_file()
            part = (folder / PART).read_bytes()
            assert part.startswith(HEADER + b"\n")
            assert part.count(b"\n") == 10_001
            parts.update(part[len(HEADER) + 1 :])
        assert parts.hexdigest() == whole.hexdigest()
    finally:
        big.unlink(missing_ok=True)
        shutil.rmtree(dest, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# S3 (SeaweedFS)


def s3_contents(bucket: S3Bucket, prefix: str) -> dict[str, bytes]:
    """{key relative to prefix: bytes} of every object under s3://bucket/prefix."""
    root = f"{bucket.name}/{prefix}"
    keys = bucket.fs.find(root)
    return {key[len(root) + 1 :]: bucket.fs.cat_file(key) for key in sorted(keys)}


def assert_s3_published(bucket: S3Bucket, prefix: str, source: bytes, chunk_rows: int) -> None:
    header, *rows = lines(source)
    found = s3_contents(bucket, prefix)
    n = -(-len(rows) // chunk_rows)
    expected_keys = {MANIFEST} | {
        f"chunk_{i}.csv/{name}" for i in range(n) for name in (PART, SUCCESS)
    }
    assert set(found) == expected_keys
    assert json.loads(found[MANIFEST])["chunk_rows"] == chunk_rows
    for i in range(n):
        assert found[f"chunk_{i}.csv/{SUCCESS}"] == b""
        part = found[f"chunk_{i}.csv/{PART}"]
        assert part == header + b"".join(rows[i * chunk_rows : (i + 1) * chunk_rows])


@pytest.mark.s3
def test_s3_publish_layout_and_bytes(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    source = write_source(tmp_path / "t.csv", 2345)
    dest = s3_bucket.url("streaming", "input")

    result = run(
        "--source",
        "t.csv",
        "--to",
        dest,
        "--chunk-rows",
        1000,
        "--interval",
        "0",
        env=s3_bucket.env,
    )

    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (0..2), 2,345 rows" in result.stdout
    assert f"published {dest}/chunk_2.csv" in result.stderr
    assert_s3_published(s3_bucket, "streaming/input", source, 1000)

    again = run(
        "--source",
        "t.csv",
        "--to",
        dest,
        "--chunk-rows",
        1000,
        "--interval",
        "0",
        env=s3_bucket.env,
    )
    assert again.exit_code == 0, again.output
    assert "Nothing to publish" in again.stdout


@pytest.mark.s3
def test_s3_settings_from_the_endpoint_flag_and_aws_variables(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    source = write_source(tmp_path / "t.csv", 30)
    env = {k: v for k, v in s3_bucket.env.items() if k.startswith("AWS_")}
    result = run(
        "--source",
        "t.csv",
        "--to",
        s3_bucket.url("in"),
        "--chunk-rows",
        10,
        "--interval",
        "0",
        "--endpoint-url",
        s3_bucket.endpoint_url,
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert_s3_published(s3_bucket, "in", source, 10)


@pytest.mark.s3
def test_s3_resumes_after_a_missing_marker(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    source = write_source(tmp_path / "t.csv", 450)
    dest = s3_bucket.url("streaming", "input")
    args = ("--source", "t.csv", "--to", dest, "--chunk-rows", 100, "--interval", "0")
    ok(*args, "--max-chunks", 3, env=s3_bucket.env)
    # Killed between part and marker of chunk 2; chunk 3 half-uploaded is impossible on S3.
    s3_bucket.fs.rm(f"{s3_bucket.name}/streaming/input/chunk_2.csv/{SUCCESS}")
    s3_bucket.fs.pipe_file(f"{s3_bucket.name}/streaming/input/chunk_2.csv/{PART}", b"garbage")

    result = run(*args, env=s3_bucket.env)

    assert result.exit_code == 0, result.output
    assert "Published 3 chunks (2..4), 250 rows" in result.stdout
    assert_s3_published(s3_bucket, "streaming/input", source, 100)

    refused = run(
        "--source", "t.csv", "--to", dest, "--chunk-rows", 50, "--interval", "0", env=s3_bucket.env
    )
    assert_user_error(refused, "--chunk-rows 100")


@pytest.mark.s3
def test_s3_missing_bucket_is_a_clear_error(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    write_source(tmp_path / "t.csv", 30)
    missing = f"{s3_bucket.name}-missing"
    result = run(
        "--source",
        "t.csv",
        "--to",
        f"s3://{missing}/streaming/input",
        "--interval",
        "0",
        env=s3_bucket.env,
    )
    assert_user_error(result, f"bucket {missing!r} does not exist")
    assert not s3_bucket.fs.exists(missing)


@pytest.mark.s3
def test_s3_source(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    source = edge_source("malformed") + HEADER[:10]  # and no newline at the end
    s3_bucket.fs.pipe_file(f"{s3_bucket.name}/data/transactions.csv", source)
    dest = tmp_path / "out"

    result = run(
        "--source",
        s3_bucket.url("data", "transactions.csv"),
        "--to",
        dest,
        "--chunk-rows",
        4,
        "--interval",
        "0",
        env=s3_bucket.env,
    )

    assert result.exit_code == 0, result.output
    assert_published(dest, source, 4)

    to_s3 = run(
        "--source",
        s3_bucket.url("data", "transactions.csv"),
        "--to",
        s3_bucket.url("out"),
        "--chunk-rows",
        4,
        "--interval",
        "0",
        env=s3_bucket.env,
    )
    assert to_s3.exit_code == 0, to_s3.output
    assert_s3_published(s3_bucket, "out", source, 4)


@pytest.mark.s3
def test_s3_missing_source_object(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    result = run(
        "--source", s3_bucket.url("nope.csv"), "--to", "out", "--interval", "0", env=s3_bucket.env
    )
    assert_user_error(result, s3_bucket.url("nope.csv"))
    assert not (tmp_path / "out").exists()
