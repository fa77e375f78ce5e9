"""Invalid rows: quarantined with line, column and reason, counted apart, and in no statistic.

A dirty chunk (every kind of malformed row, plus a second part file with a wrong header) must
leave exactly the state and detections of the same chunk without those rows, and the same
detections as the reference engine, which rejects the same rows.
"""

from __future__ import annotations

import csv
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chunks import IMPORTANCE_HEADER, TX_HEADER, imp, tx
from pipeline import Stream, reference_detections, run_detector, state_detections
from txpatterns.detect.deltas import PAIR, QUARANTINE_COLUMNS, REJECTED, part_deltas
from txpatterns.detect.runner import quarantine_location
from txpatterns.patterns import CHILD, DEI_NEEDED, UPGRADE, Thresholds
from txpatterns.reference import replay_folder
from txpatterns.schema import WRONG_HEADER, check_transaction, split_line
from txpatterns.settings import DetectSettings
from txpatterns.state.db import drop_namespace, schema_name

# Small figures, so that one merchant of ten rows shows every pattern.
TINY = Thresholds(
    upgrade_min_merchant_txns=5,
    upgrade_top_pct=Decimal(10),
    upgrade_bottom_pct=Decimal(10),
    child_min_txns=2,
    child_max_avg_amount=Decimal(800),
    dei_min_female_customers=2,
)

# Chunk 0, part-00000: the valid rows of M1 (C1 CHILD and UPGRADE; F {C1,C3,C7} < M {C2,C4,C5,
# C6}: DEI-NEEDED) and M2, with the invalid rows between them. Each invalid row would change a
# detection if it were counted: one more row makes C2 a CHILD, one more female customer (C8)
# ends M1's DEI-NEEDED.
VALID_0 = [
    tx("C1", "M1", "12.50"),
    tx("C1", "M1", "10"),
    tx("C1", "M1", "7.25"),
    tx("C2", "M1", "20", gender="M"),
    tx("C2", "M1", "30", gender="M"),
    tx("C3", "M1", "5"),
    tx("C4", "M1", "5", gender="M"),
    tx("C5", "M1", "5", gender="M"),
    tx("C6", "M1", "5", gender="M"),
    tx("C7", "M1", "5"),
    tx("C9", "M2", "100", gender="M"),
    tx("C9", "M2", "100", gender="M"),
]
# (line as written, column, reason) in file order.
INVALID_0: list[tuple[str, str, str]] = [
    ("0,'C2','2','M','28007','M1','28007','es_food',5", "", "expected 10 fields, found 9"),
    (
        "0,'C2','2','M','28007','M1','28007','es_food',12,5x,0",
        "",
        "expected 10 fields, found 11",
    ),
    (tx("C2", "M1", "abc", gender="M"), "amount", "not a non-negative decimal: 'abc'"),
    (tx("C2", "M1", "5", gender="X"), "gender", "not one of F, M, E, U: 'X'"),
    (tx("", "M1", "5", gender="M"), "customer", "empty"),
    (tx("C8", "M1", "-5"), "amount", "not a non-negative decimal: '-5'"),
    (tx("C8", "M1", "5", step=-1), "step", "not a non-negative integer: '-1'"),
    ("", "", "expected 10 fields, found 1"),
]
# Chunk 0, part-00001: a file whose header is wrong (no fraud column): every line is rejected.
WRONG_HEADER_LINES = [
    TX_HEADER.removesuffix(",fraud"),
    tx("C2", "M1", "5", gender="M"),
    tx("C8", "M1", "5"),
]
# Chunk 1: clean; its third row makes C9 a CHILD at chunk 1.
VALID_1 = [tx("C9", "M2", "100", gender="M"), tx("C4", "M1", "7", gender="M")]

IMPORTANCE = [imp("C1", "M1", "1"), imp("C2", "M1", "5"), imp("C3", "M1", "9")]
BAD_IMPORTANCE = "'C4','M1',x,'es_food',0"

EXPECTED_DETECTIONS = {
    (UPGRADE, "C1", "M1", 0),
    (CHILD, "C1", "M1", 0),
    (DEI_NEEDED, "", "M1", 0),
    (CHILD, "C9", "M2", 1),
}


def write_part(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def dirty_chunk_0() -> list[str]:
    """Chunk 0's part-00000 lines (header first): valid and invalid rows interleaved."""
    lines = [TX_HEADER]
    invalid = iter(INVALID_0)
    for row in VALID_0:
        lines.append(row)
        bad = next(invalid, None)
        if bad is not None:
            lines.append(bad[0])
    return lines


def make_stream(root: Path, *, dirty: bool) -> Stream:
    stream = Stream(root)
    chunk_0 = stream.input / "chunk_0.csv"
    if dirty:
        write_part(chunk_0, "part-00000.csv", dirty_chunk_0())
        write_part(chunk_0, "part-00001.csv", WRONG_HEADER_LINES)
    else:
        write_part(chunk_0, "part-00000.csv", [TX_HEADER, *VALID_0])
    write_part(stream.input / "chunk_1.csv", "part-00000.csv", [TX_HEADER, *VALID_1])
    for index in (0, 1):
        (stream.input / f"chunk_{index}.csv" / "_SUCCESS").write_text("")
    bad_importance = [BAD_IMPORTANCE] if dirty else []
    write_part(root, stream.importance.name, [IMPORTANCE_HEADER, *IMPORTANCE, *bad_importance])
    return stream


def statistics(dsn: str, namespace: str) -> dict[str, list[tuple[Any, ...]]]:
    schema = schema_name(namespace)
    with psycopg.connect(dsn) as conn:
        return {
            "pairs": conn.execute(
                f"SELECT merchant, customer, n, amount, has_f, has_m, w FROM {schema}.pairs "
                "ORDER BY merchant, customer"
            ).fetchall(),
            "merchants": conn.execute(
                f"SELECT merchant, n, customers, weighted, female, male FROM {schema}.merchants "
                "ORDER BY merchant"
            ).fetchall(),
            "chunks": conn.execute(
                f"SELECT chunk_index, valid_rows, invalid_rows FROM {schema}.chunks "
                "ORDER BY chunk_index"
            ).fetchall(),
        }


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.spark
@pytest.mark.postgres
def test_invalid_rows_are_quarantined_and_count_in_no_statistic(
    spark: Any, postgres_dsn: str, namespace: str, tmp_path: Path
) -> None:
    dirty = make_stream(tmp_path / "dirty", dirty=True)
    clean = make_stream(tmp_path / "clean", dirty=False)
    clean_namespace = f"t_{uuid.uuid4().hex[:12]}"
    try:
        progress = run_detector(spark, postgres_dsn, dirty, namespace, TINY)
        run_detector(spark, postgres_dsn, clean, clean_namespace, TINY)
        dirty_stats = statistics(postgres_dsn, namespace)
        clean_stats = statistics(postgres_dsn, clean_namespace)
        clean_detections = state_detections(postgres_dsn, clean_namespace)
    finally:
        drop_namespace(postgres_dsn, clean_namespace)

    invalid_0 = len(INVALID_0) + len(WRONG_HEADER_LINES)
    assert progress.chunks_applied == 2
    assert (progress.valid_rows, progress.invalid_rows) == (len(VALID_0) + 2, invalid_0)

    # The ledger counts the invalid rows apart from the valid ones.
    assert dirty_stats["chunks"] == [(0, len(VALID_0), invalid_0), (1, len(VALID_1), 0)]
    assert clean_stats["chunks"] == [(0, len(VALID_0), 0), (1, len(VALID_1), 0)]

    # The statistics are those of the chunk without its invalid rows.
    assert dirty_stats["pairs"] == clean_stats["pairs"]
    assert dirty_stats["merchants"] == clean_stats["merchants"]
    assert sum(p[2] for p in dirty_stats["pairs"]) == len(VALID_0) + len(VALID_1)
    m1 = next(m for m in dirty_stats["merchants"] if m[0] == "M1")
    assert m1 == ("M1", 11, 7, 3, 3, 4)
    pairs = {(p[0], p[1]): p[2:6] for p in dirty_stats["pairs"]}
    assert pairs["M1", "C2"] == (2, Decimal(50), False, True)
    assert ("M1", "C8") not in pairs and ("M1", "") not in pairs

    # The detections: as the reference engine finds them on the dirty stream, as on the clean.
    detections = state_detections(postgres_dsn, namespace)
    assert detections == EXPECTED_DETECTIONS
    assert detections == reference_detections(dirty, TINY) == clean_detections
    assert reference_detections(clean, TINY) == EXPECTED_DETECTIONS

    # The quarantine, beside the output: chunk 0 only, every invalid row with line and reason.
    assert quarantine_location(dirty.settings(namespace), str(dirty.output)) == str(
        dirty.quarantine
    )
    folder = dirty.quarantine / "chunk_0.csv"
    assert (folder / "_SUCCESS").is_file()
    assert not (dirty.quarantine / "chunk_1.csv").exists()
    header, *rows = read_csv(folder / "part-00000.csv")
    assert tuple(header) == QUARANTINE_COLUMNS
    assert QUARANTINE_COLUMNS == ("chunk", "file", "line", "column", "reason", "raw")
    part_0 = str(dirty.input / "chunk_0.csv" / "part-00000.csv")
    part_1 = str(dirty.input / "chunk_0.csv" / "part-00001.csv")
    lines = dirty_chunk_0()
    expected = [
        ["0", part_0, str(lines.index(raw) + 1), column, reason, raw]
        for raw, column, reason in INVALID_0
    ] + [
        ["0", part_1, str(number), "", WRONG_HEADER, raw]
        for number, raw in enumerate(WRONG_HEADER_LINES, start=1)
    ]
    assert [Path(r[1]) for r in rows] == [Path(e[1]) for e in expected]
    assert [r[:1] + r[2:] for r in rows] == [e[:1] + e[2:] for e in expected]
    # Line numbers are physical lines of the file, the header being line 1.
    assert [int(r[2]) for r in rows[: len(INVALID_0)]] == [3, 5, 7, 9, 11, 13, 15, 17]

    # The reference engine rejects exactly the same rows, for the same reasons.
    replay = replay_folder(str(dirty.input), str(dirty.importance), TINY)
    rejected = [(str(c), str(r.line), r.column or "", r.message, r.raw) for c, r in replay.rejected]
    assert sorted(rejected) == sorted((r[0], r[2], r[3], r[4], r[5]) for r in rows)

    # The invalid importance row is quarantined too, and takes no part in any weight.
    header, *bad = read_csv(dirty.quarantine / "importance.csv")
    assert header == ["line", "column", "reason", "raw"]
    assert bad == [[str(len(IMPORTANCE) + 2), "Weight", "not a decimal: 'x'", BAD_IMPORTANCE]]
    assert m1[3] == 3  # weighted customers: C1, C2, C3, not C4


# Values the rules reject, some holding a quote: each engine must give the same column and reason.
AWKWARD_LINES = [
    tx("C1", "M1", "1e3"),
    tx("C1", "M1", "5 "),
    tx("C1", "M1", "\u0663"),  # an Arabic-Indic digit
    tx("C1", "M1", "5", step="\u0661"),
    tx("C1", "M1", "5", gender="f"),
    tx("C1", "M1", "5", age="7"),
    tx("C1", "", "5"),
    tx("C1", "M1", '"5"'),
    tx("C1", "M1", "5", gender="'F"),
    tx("C1", "M1", "1'0"),
    tx("C1", "M1", "5", step="x'1"),
]


def test_the_arrow_rules_reject_each_row_with_the_reference_reason() -> None:
    text = "\n".join([TX_HEADER, *AWKWARD_LINES]) + "\n"
    rows = part_deltas(0, "c", "c/part", text).to_pylist()
    says = [
        (r["line_no"], r["column"], r["reason"], r["line"]) for r in rows if r["kind"] == REJECTED
    ]
    reference_says = [
        (n, *verdict, line)
        for n, line in enumerate(AWKWARD_LINES, start=2)
        if (verdict := check_transaction(split_line(line))) is not None
    ]
    assert says == reference_says
    counted = sum(r["n"] for r in rows if r["kind"] == PAIR)
    assert counted == len(AWKWARD_LINES) - len(reference_says) == 1  # '"5"' is a quoted 5


# Values at the edges of what the rules accept: each must count, with its exact amount.
EDGE_LINES = [
    tx("C1", "M1", "99999999999999999999.999999999999999999"),
    tx("C1", "M1", "0.000000000000000001"),
    tx("C1", "M1", "'7'"),
    tx("C1", "M1", "0", step="999999999999999999"),
    tx("C2", "M1", "1.5", gender="E"),
    tx("C2", "M1", "2", gender="U", age="U"),
]


def test_the_arrow_rules_accept_edge_values_and_sum_them_exactly() -> None:
    text = "\ufeff" + "\r\n".join([TX_HEADER, *EDGE_LINES])
    rows = part_deltas(3, "c", "c/part", text).to_pylist()
    pairs = {(r["merchant"], r["customer"]): r for r in rows if r["kind"] == PAIR}
    assert [r for r in rows if r["kind"] != PAIR] == []
    c1, c2 = pairs["M1", "C1"], pairs["M1", "C2"]
    assert (c1["n"], Decimal(c1["amount"]), c1["has_f"], c1["has_m"]) == (
        4,
        Decimal("100000000000000000007"),  # 21 integer digits: more than DECIMAL(38, 18) holds
        True,
        False,
    )
    assert (c2["n"], Decimal(c2["amount"]), c2["has_f"], c2["has_m"]) == (
        2,
        Decimal("3.5"),
        False,
        False,
    )


@pytest.mark.parametrize(
    ("output", "quarantine"),
    [
        ("/data/x/streaming/output", "/data/x/streaming/quarantine"),
        ("/data/x/streaming/output/", "/data/x/streaming/quarantine"),
        ("s3://bucket/streaming/output", "s3://bucket/streaming/quarantine"),
        ("relative/output", "relative/quarantine"),
        ("output", "./quarantine"),
    ],
)
def test_the_default_quarantine_is_beside_the_output(output: str, quarantine: str) -> None:
    assert quarantine_location(DetectSettings(), output) == quarantine


def test_a_set_quarantine_wins() -> None:
    settings = DetectSettings(quarantine="s3://other/bad-rows")
    assert quarantine_location(settings, "/data/streaming/output") == "s3://other/bad-rows"
