"""The detector against the reference engine, on a real Spark session and a real PostgreSQL."""

from __future__ import annotations

import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pipeline import (
    SCALED_50K,
    make_stream,
    output_agrees,
    reference_detections,
    run_detector,
    state_detections,
)
from txpatterns.detect.runner import Detector
from txpatterns.patterns import PATTERN_IDS, PRESETS
from txpatterns.state.db import StateError, drop_namespace, schema_name
from txpatterns.store import LOCAL

pytestmark = [pytest.mark.spark, pytest.mark.postgres]


def test_seed_preset_on_1000_rows_equals_the_reference(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, rows=1000, chunk_rows=100)
    thresholds = PRESETS["seed"]
    progress = run_detector(spark, postgres_dsn, stream, namespace, thresholds)
    assert progress.chunks_applied == 10
    expected = reference_detections(stream, thresholds)
    assert {p for p, *_ in expected} == set(PATTERN_IDS)
    assert state_detections(postgres_dsn, namespace) == expected
    agrees, summary = output_agrees(stream, thresholds)
    assert agrees, summary


@pytest.fixture(scope="module")
def stream_50k(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_stream(tmp_path_factory.mktemp("s50k"), rows=50_000, chunk_rows=5_000, seed=3)


def test_scaled_thresholds_on_50000_rows_fire_often_and_equal_the_reference(
    spark: Any, postgres_dsn: str, namespace: str, stream_50k: Any, tmp_path: Path
) -> None:
    output = tmp_path / "output"
    run_detector(spark, postgres_dsn, stream_50k, namespace, SCALED_50K, output=str(output))
    expected = reference_detections(stream_50k, SCALED_50K)
    per_pattern = Counter(p for p, *_ in expected)
    assert all(per_pattern[p] >= 3 for p in PATTERN_IDS), per_pattern
    assert state_detections(postgres_dsn, namespace) == expected
    with psycopg.connect(postgres_dsn) as conn:
        sizes = [
            r[0]
            for r in conn.execute(
                f"SELECT detections FROM {schema_name(namespace)}.output_files ORDER BY seq"
            )
        ]
    # 50 to a file, the last one partial.
    assert sizes and all(s == 50 for s in sizes[:-1]) and 0 < sizes[-1] <= 50
    assert sum(sizes) == len(expected)


def test_batching_does_not_change_the_result(
    spark: Any, postgres_dsn: str, stream_50k: Any, tmp_path: Path
) -> None:

    results = []
    for name, per_batch in (("b_one", 1), ("b_all", 0), ("b_three", 3)):
        drop_namespace(postgres_dsn, name)
        run_detector(
            spark, postgres_dsn, stream_50k, name, SCALED_50K,
            output=str(tmp_path / name), checkpoint=str(tmp_path / f"ck_{name}"),
            max_chunks_per_batch=per_batch,
        )  # fmt: skip
        with psycopg.connect(postgres_dsn) as conn:
            batches = conn.execute(
                f"SELECT count(DISTINCT batch_id) FROM {schema_name(name)}.chunks"
            ).fetchone()
        results.append(
            (per_batch, batches[0] if batches else 0, state_detections(postgres_dsn, name))
        )
        drop_namespace(postgres_dsn, name)
    (_, one_batches, one), (_, all_batches, everything), (_, three_batches, three) = results
    assert one_batches == 10 and all_batches == 1 and three_batches == 4
    assert one == everything == three == reference_detections(stream_50k, SCALED_50K)


def test_lost_checkpoint_double_counts_nothing(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, rows=3000, chunk_rows=500)
    thresholds = PRESETS["seed"]
    run_detector(spark, postgres_dsn, stream, namespace, thresholds)
    shutil.rmtree(stream.checkpoint)
    # More chunks arrive while the checkpoint is gone.
    more = make_stream(tmp_path / "more", rows=3000, chunk_rows=500, seed=9)
    for chunk in sorted(more.input.glob("chunk_*.csv")):
        index = int(chunk.name.split("_")[1].split(".")[0]) + 6
        shutil.copytree(chunk, stream.input / f"chunk_{index}.csv")
    run_detector(spark, postgres_dsn, stream, namespace, thresholds)
    with psycopg.connect(postgres_dsn) as conn:
        totals = conn.execute(
            f"SELECT count(*), sum(valid_rows) FROM {schema_name(namespace)}.chunks"
        ).fetchone()
        pairs = conn.execute(f"SELECT sum(n) FROM {schema_name(namespace)}.pairs").fetchone()
    assert totals == (12, 6000)
    assert pairs == (6000,)
    assert state_detections(postgres_dsn, namespace) == reference_detections(stream, thresholds)
    agrees, summary = output_agrees(stream, thresholds)
    assert agrees, summary


def test_a_checkpoint_ahead_of_the_ledger_loses_nothing(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    # Batches are applied after Spark commits them, so a crash can leave the checkpoint ahead
    # of the ledger. The extreme case: a checkpoint at the end of the stream, an empty ledger.
    stream = make_stream(tmp_path, rows=3000, chunk_rows=500)
    thresholds = PRESETS["seed"]
    ahead = f"{namespace}_ahead"
    drop_namespace(postgres_dsn, ahead)
    try:
        run_detector(spark, postgres_dsn, stream, ahead, thresholds, output=str(tmp_path / "o"))
    finally:
        drop_namespace(postgres_dsn, ahead)
    assert (stream.checkpoint / "commits").is_dir()
    progress = run_detector(spark, postgres_dsn, stream, namespace, thresholds)
    assert progress.chunks_applied == 6
    assert state_detections(postgres_dsn, namespace) == reference_detections(stream, thresholds)
    agrees, summary = output_agrees(stream, thresholds)
    assert agrees, summary


def test_a_second_detector_on_the_namespace_is_refused(
    postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, rows=200, chunk_rows=100)
    first = Detector(stream.settings(namespace), PRESETS["seed"], LOCAL, dsn=postgres_dsn)
    try:
        with pytest.raises(StateError, match="another detector is running on namespace"):
            Detector(stream.settings(namespace), PRESETS["seed"], LOCAL, dsn=postgres_dsn)
    finally:
        first.close()
    # Released with its connection: a new one may start.
    Detector(stream.settings(namespace), PRESETS["seed"], LOCAL, dsn=postgres_dsn).close()


def test_other_thresholds_on_a_used_namespace_are_refused(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    stream = make_stream(tmp_path, rows=200, chunk_rows=100)
    run_detector(spark, postgres_dsn, stream, namespace, PRESETS["seed"])
    with pytest.raises(StateError, match="other thresholds"):
        run_detector(spark, postgres_dsn, stream, namespace, PRESETS["banksim"])


def test_embedded_postgres_works_too(spark: Any, embedded_dsn: str, tmp_path: Path) -> None:
    stream = make_stream(tmp_path, rows=1000, chunk_rows=250)
    run_detector(spark, embedded_dsn, stream, "embedded", PRESETS["seed"])
    assert state_detections(embedded_dsn, "embedded") == reference_detections(
        stream, PRESETS["seed"]
    )


def test_formula_like_names_are_neutralised_for_spreadsheets(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    import csv

    from chunks import imp, tx, write_chunks, write_importance
    from pipeline import Stream

    stream = Stream(tmp_path)
    # Three cheap purchases each: CHILD under the seed preset (n > 2, average < 800).
    rows = [tx(c, m, "5") for c, m in (("=1+2", "M1"), ("@SUM(A1)", "-M2"), ("C3", "+M3"))]
    write_chunks(stream.input, [rows * 3])
    write_importance(stream.importance, [imp("C3", "+M3", "1")])
    run_detector(spark, postgres_dsn, stream, namespace, PRESETS["seed"])
    cells = []
    for part in stream.output.glob("*/part-00000.csv"):
        with part.open(newline="") as f:
            cells += [cell for row in list(csv.reader(f))[1:] for cell in row[4:]]
    assert {"'=1+2", "M1", "'@SUM(A1)", "'-M2", "C3", "'+M3"} <= set(cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    agrees, summary = output_agrees(stream, PRESETS["seed"])
    assert agrees, summary


def test_explain_shows_the_figures_at_first_detection(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    import json
    import math

    from click.testing import CliRunner

    from txpatterns.cli import cli

    stream = make_stream(tmp_path, rows=1000, chunk_rows=100)
    run_detector(spark, postgres_dsn, stream, namespace, PRESETS["seed"])
    first = {}
    for pattern, customer, merchant, chunk in sorted(reference_detections(stream, PRESETS["seed"])):
        first.setdefault(pattern, (customer, merchant, chunk))

    def explain(pattern: str, customer: str, merchant: str) -> dict[str, Any]:
        result = CliRunner().invoke(
            cli,
            ["explain", "--pattern", pattern, "--customer", customer, "--merchant", merchant,
             "--postgres", postgres_dsn, "--namespace", namespace, "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    customer, merchant, chunk = first["PatId1"]
    up = explain("PatId1", customer, merchant)
    assert up["detected"] and up["chunk_index"] == chunk
    f = up["figures"]
    assert (
        f["N"] > 500 and f["n"] >= f["n_cut"] and f["k"] == max(1, math.ceil(f["customers"] / 10))
    )
    assert Decimal(f["w"]) <= Decimal(f["w_cut"]) and f["j"] == max(
        1, math.ceil(f["weighted"] / 10)
    )

    customer, merchant, chunk = first["PatId2"]
    child = explain("PatId2", customer, merchant)
    assert child["detected"] and child["chunk_index"] == chunk
    assert child["figures"]["n"] > 2
    assert Decimal(child["figures"]["S"]) < 800 * child["figures"]["n"]

    _, merchant, chunk = first["PatId3"]
    dei = explain("PatId3", "", merchant)
    assert dei["chunk_index"] == chunk and 10 < dei["figures"]["F"] < dei["figures"]["M"]

    never = explain("PatId2", "C_NOBODY", merchant)
    assert never == {**never, "detected": False}
    assert "N" in never["current"] and "n" not in never["current"]


def test_status_reports_progress_and_whether_a_detector_runs(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    import json

    from click.testing import CliRunner

    from txpatterns.cli import cli

    stream = make_stream(tmp_path, rows=1000, chunk_rows=100)
    run_detector(spark, postgres_dsn, stream, namespace, PRESETS["seed"])
    expected = Counter(p for p, *_ in reference_detections(stream, PRESETS["seed"]))
    # Two more complete chunks arrive after the run: they are waiting.
    for index in (10, 11):
        shutil.copytree(stream.input / "chunk_0.csv", stream.input / f"chunk_{index}.csv")

    def status() -> dict[str, Any]:
        result = CliRunner().invoke(
            cli,
            ["status", "--postgres", postgres_dsn, "--namespace", namespace,
             "--input", str(stream.input), "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.output))

    figures = status()
    assert figures["chunks_applied"] == 10 and figures["last_chunk"] == 9
    assert figures["chunks_published"] == 12 and figures["chunks_waiting"] == 2
    assert 0 <= figures["lag_seconds"] < 120
    assert figures["rows_valid"] == 1000 and figures["rows_invalid"] == 0
    assert figures["detections"] == {p: expected[p] for p in PATTERN_IDS}
    assert figures["detections_pending"] == 0 and figures["output_files_incomplete"] == 0
    assert figures["output_files_complete"] == -(-sum(expected.values()) // 50)
    assert figures["chunk_seconds"]["p50"] is not None
    assert figures["detector_running"] is False
    holder = Detector(stream.settings(namespace), PRESETS["seed"], LOCAL, dsn=postgres_dsn)
    try:
        assert status()["detector_running"] is True
    finally:
        holder.close()
    assert status()["detector_running"] is False


def test_the_native_reader_gives_the_same_result(
    spark: Any, postgres_dsn: str, stream_50k: Any, tmp_path: Path
) -> None:

    drop_namespace(postgres_dsn, "native_reader")
    try:
        run_detector(
            spark, postgres_dsn, stream_50k, "native_reader", SCALED_50K, reader="native",
            output=str(tmp_path / "out"), checkpoint=str(tmp_path / "ck"),
        )  # fmt: skip
        assert state_detections(postgres_dsn, "native_reader") == reference_detections(
            stream_50k, SCALED_50K
        )
    finally:
        drop_namespace(postgres_dsn, "native_reader")


def test_the_native_reader_splits_and_rejects_lines_like_the_python_reader(
    spark: Any, postgres_dsn: str, tmp_path: Path
) -> None:
    from chunks import TX_HEADER, imp, tx, write_importance
    from pipeline import Stream

    stream = Stream(tmp_path)
    good = [tx(f"C{i}", "M1", "5", gender="MF"[i % 2]) for i in range(12)]
    chunk0 = stream.input / "chunk_0.csv"
    chunk0.mkdir(parents=True)
    # A BOM, CRLF endings, a bad row, an empty line, and no final line break.
    body = "\ufeff" + TX_HEADER + "\r\n" + "\r\n".join([*good, "x,y", ""]) + "\r\n" + good[0]
    (chunk0 / "part-00000.csv").write_bytes(body.encode())
    # A second part with the wrong header: rejected whole.
    (chunk0 / "part-00001.csv").write_text("nope\n" + "\n".join(good) + "\n")
    (chunk0 / "_SUCCESS").touch()
    write_importance(stream.importance, [imp("C1", "M1", "1")])
    results = {}
    for reader in ("python", "native"):
        name = f"reader_{reader}"
        drop_namespace(postgres_dsn, name)
        run_detector(
            spark, postgres_dsn, stream, name, PRESETS["seed"], reader=reader,
            output=str(tmp_path / f"out_{reader}"), checkpoint=str(tmp_path / f"ck_{reader}"),
        )  # fmt: skip
        with psycopg.connect(postgres_dsn) as conn:
            totals = conn.execute(
                f"SELECT valid_rows, invalid_rows FROM {schema_name(name)}.chunks"
            ).fetchall()
        results[reader] = (totals, state_detections(postgres_dsn, name))
        drop_namespace(postgres_dsn, name)
    # 13 good rows; bad: "x,y", the empty line, and the 13 lines of the wrong-header part.
    assert results["python"][0] == [(13, 15)]
    assert results["native"] == results["python"]


def test_the_warm_up_runs_the_delta_code_on_every_core(spark: Any) -> None:
    from txpatterns.detect.batch import warm_up

    # One task per core, each yielding the one pair of its two-line file.
    assert warm_up(spark) == spark.sparkContext.defaultParallelism
