"""A chunk's lines turned into pair deltas and rejected rows, with Arrow compute, where it is read.

Validity is docs/patterns.md's data contract written as vectorised Arrow compute from the same
constants as schema.py but not with its code, so that `verify` checks one against the other.
The few rejected rows then take their column and reason from `schema.check_transaction`, so
that every engine words them alike; a row that the two judge differently stops the detector.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from txpatterns.detect.source import SCHEMA
from txpatterns.errors import TxpError
from txpatterns.schema import (
    AGES,
    AMOUNT_PATTERN,
    GENDERS,
    STEP_PATTERN,
    TRANSACTION_COLUMNS,
    WRONG_HEADER,
    check_transaction,
    header_fields,
    numbered_lines,
    split_line,
)
from txpatterns.state.store import STAGE_COLUMNS, ChunkTotals
from txpatterns.store import PART, SUCCESS, Store, chunk_folder, join

CHUNK, PART_FILE, PAIR, REJECTED = "chunk", "part", "pair", "rejected"
_ARROW_TYPES: Final = {"int": pa.int32(), "long": pa.int64(), "string": pa.string(),
                       "boolean": pa.bool_()}  # fmt: skip
# The source's schema (source.SCHEMA, the kinds of row are explained there) in Arrow terms.
ARROW_SCHEMA: Final = pa.schema(
    [(name, _ARROW_TYPES[kind]) for name, kind in (f.split() for f in SCHEMA.split(","))]
)
QUARANTINE_COLUMNS: Final = ("chunk", "file", "line", "column", "reason", "raw")
_FIELDS: Final = len(TRANSACTION_COLUMNS)
_USED: Final = ("step", "customer", "age", "gender", "merchant", "amount")
# Sums of up to 10^56 rows of DECIMAL(38, 18) amounts fit, so no chunk can overflow them.
_SUM_TYPE: Final = pa.decimal256(76, 18)


class DeltaError(TxpError):
    """The vectorised rules and the data contract's own function disagree about a row."""


def _rows(chunk: int, path: str, kind: str, count: int, **columns: Any) -> pa.RecordBatch:
    """A batch of `count` rows of one kind; columns not given are null."""
    arrays = []
    for field in ARROW_SCHEMA:
        if field.name == "chunk":
            arrays.append(pa.array([chunk] * count, pa.int32()))
        elif field.name == "path":
            arrays.append(pa.array([path] * count, pa.string()))
        elif field.name == "kind":
            arrays.append(pa.array([kind] * count, pa.string()))
        elif field.name in columns:
            value = columns[field.name]
            if isinstance(value, pa.ChunkedArray):
                value = value.combine_chunks()
            if isinstance(value, pa.Array):
                arrays.append(pc.cast(value, field.type))
            elif isinstance(value, list):
                arrays.append(pa.array(value, field.type))
            else:
                arrays.append(pa.array([value] * count, field.type))
        else:
            arrays.append(pa.nulls(count, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA)


def chunk_row(chunk: int, path: str) -> pa.RecordBatch:
    """The one row that stands for a chunk, whatever it holds."""
    return _rows(chunk, path, CHUNK, 1)


def part_row(chunk: int, path: str, part: str) -> pa.RecordBatch:
    """The row that names one part file of a chunk (the native reader reads it by name)."""
    return _rows(chunk, path, PART_FILE, 1, part=part)


def split_lines(text: str) -> list[str]:
    """The lines of a file's text without their endings, as `schema.numbered_lines` cuts them."""
    if "\r" in text:
        return [line for _, line in numbered_lines(io.StringIO(text, newline=""))]
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _unquote(values: pa.Array) -> pa.Array:
    first = pc.utf8_slice_codeunits(values, 0, 1)
    quoted = pc.and_(
        pc.and_(
            pc.greater_equal(pc.utf8_length(values), 2),
            pc.equal(first, pc.utf8_slice_codeunits(values, -1)),
        ),
        pc.is_in(first, pa.array(["'", '"'])),
    )
    return pc.if_else(quoted, pc.utf8_slice_codeunits(values, 1, -1), values)


def _matches(values: pa.Array, pattern: str) -> pa.Array:
    # RE2's `$` matches only at the very end, as \z does; lines hold no line breaks anyway.
    return pc.match_substring_regex(values, pattern.removesuffix("$") + r"\z")


def _valid_mask(lines: pa.Array) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Which lines are valid rows, and the unquoted fields that the statistics use."""
    fields = pc.split_pattern(lines, ",")
    well_split = pc.equal(pc.list_value_length(fields), _FIELDS)
    # Fields of a line with the wrong count never matter: that rule fails first.
    padded = pc.if_else(well_split, fields, pa.scalar([""] * _FIELDS, fields.type))
    f = {name: _unquote(pc.list_element(padded, TRANSACTION_COLUMNS.index(name))) for name in _USED}
    rules = [
        well_split,
        _matches(f["step"], STEP_PATTERN),
        pc.not_equal(f["customer"], ""),
        pc.is_in(f["age"], pa.array(AGES)),
        pc.is_in(f["gender"], pa.array(GENDERS)),
        pc.not_equal(f["merchant"], ""),
        _matches(f["amount"], AMOUNT_PATTERN),
    ]
    valid = rules[0]
    for rule in rules[1:]:
        valid = pc.and_(valid, rule)
    return valid, f


def part_deltas(chunk: int, path: str, part: str, text: str) -> pa.RecordBatch:
    """One part file's pair deltas and rejected rows (its `part` row is not included)."""
    lines = split_lines(text)
    if not lines:
        return _rows(chunk, path, PAIR, 0)
    if tuple(header_fields(lines[0])) != TRANSACTION_COLUMNS:
        return _rows(
            chunk,
            path,
            REJECTED,
            len(lines),
            part=part,
            line_no=list(range(1, len(lines) + 1)),
            reason=WRONG_HEADER,
            line=lines,
        )
    data = pa.array(lines[1:], pa.string())
    valid, f = _valid_mask(data)
    rejected = _rejected(chunk, path, part, data, valid)
    kept = pa.table(
        {
            "merchant": f["merchant"].filter(valid),
            "customer": f["customer"].filter(valid),
            "amount": pc.cast(pc.cast(f["amount"].filter(valid), pa.decimal128(38, 18)), _SUM_TYPE),
            "is_f": pc.equal(f["gender"].filter(valid), "F"),
            "is_m": pc.equal(f["gender"].filter(valid), "M"),
        }
    )
    sums = kept.group_by(["merchant", "customer"], use_threads=False).aggregate(
        [("amount", "sum"), ("amount", "count"), ("is_f", "any"), ("is_m", "any")]
    )
    pairs = _rows(
        chunk,
        path,
        PAIR,
        sums.num_rows,
        merchant=sums["merchant"],
        customer=sums["customer"],
        n=sums["amount_count"],
        amount=sums["amount_sum"],
        has_f=sums["is_f_any"],
        has_m=sums["is_m_any"],
    )
    return pa.concat_batches([pairs, rejected]) if rejected.num_rows else pairs


def _rejected(chunk: int, path: str, part: str, data: pa.Array, valid: pa.Array) -> pa.RecordBatch:
    invalid = pc.indices_nonzero(pc.invert(valid)).to_pylist()
    columns: list[str | None] = []
    reasons: list[str] = []
    raws: list[str] = []
    for index in invalid:
        raw = data[index].as_py()
        verdict = check_transaction(split_line(raw))
        if verdict is None:
            raise DeltaError(
                f"{part} line {index + 2}: the Arrow rules reject a row that the data contract "
                f"accepts ({raw!r}); this is a txpatterns bug, please report it"
            )
        columns.append(verdict[0])
        reasons.append(verdict[1])
        raws.append(raw)
    return _rows(
        chunk,
        path,
        REJECTED,
        len(invalid),
        part=part,
        line_no=[index + 2 for index in invalid],
        column=columns,
        reason=reasons,
        line=raws,
    )


@dataclass
class BatchDeltas:
    """What the driver holds for a micro-batch: per-chunk totals, pair deltas, rejected rows."""

    chunks: list[ChunkTotals]
    pairs: pa.Table
    rejected: pa.Table

    @classmethod
    def from_arrow(cls, table: pa.Table) -> BatchDeltas:
        """Total a batch's rows per chunk."""
        kind = table["kind"]
        pairs = table.filter(pc.equal(kind, PAIR))
        parts = table.filter(pc.equal(kind, PART_FILE))["chunk"]
        if len(pc.unique(parts)) < len(parts):
            pairs = _combine_parts(pairs)
        rejected = table.filter(pc.equal(kind, REJECTED))
        valid = {
            r["chunk"]: r["n_sum"]
            for r in pairs.group_by("chunk").aggregate([("n", "sum")]).to_pylist()
        }
        invalid = {
            r["chunk"]: r["count_all"]
            for r in rejected.group_by("chunk").aggregate([([], "count_all")]).to_pylist()
        }
        chunks = table.filter(pc.equal(kind, CHUNK)).select(["chunk", "path"]).to_pylist()
        totals = sorted(
            ChunkTotals(c["chunk"], c["path"], valid.get(c["chunk"], 0), invalid.get(c["chunk"], 0))
            for c in chunks
        )
        return cls(totals, pairs, rejected)

    def stage_csv(self) -> Iterator[bytes]:
        """The pair deltas as header-less CSV in STAGE_COLUMNS order, for COPY."""
        buffer = io.BytesIO()
        # Sums carry 18 decimal places; without the trailing zeros PostgreSQL parses, stores
        # and adds shorter numerics (the value is the same).
        pairs = self.pairs.select(list(STAGE_COLUMNS))
        amount = pairs.schema.get_field_index("amount")
        pairs = pairs.set_column(
            amount, "amount", pc.replace_substring_regex(pairs["amount"], r"\.?0+$", "")
        )
        pacsv.write_csv(
            pairs,
            buffer,
            write_options=pacsv.WriteOptions(include_header=False),
        )
        yield buffer.getvalue()

    def write_quarantine(self, store: Store, quarantine: str) -> None:
        """Write each chunk's rejected rows as one CSV file, in file and line order."""
        rows = self.rejected.sort_by(
            [("chunk", "ascending"), ("part", "ascending"), ("line_no", "ascending")]
        ).to_pylist()
        by_chunk: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_chunk.setdefault(row["chunk"], []).append(row)
        for index, chunk_rows in by_chunk.items():
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(QUARANTINE_COLUMNS)
            for r in chunk_rows:
                writer.writerow(
                    [index, r["part"], r["line_no"], r["column"] or "", r["reason"], r["line"]]
                )
            folder = join(quarantine, chunk_folder(index))
            store.write_bytes(join(folder, PART), text.getvalue().encode("utf-8"))
            store.write_bytes(join(folder, SUCCESS), b"")


def _combine_parts(pairs: pa.Table) -> pa.Table:
    """One row per (chunk, merchant, customer): chunks of several part files add up."""
    keys = ["chunk", "merchant", "customer"]
    sums = (
        pairs.set_column(
            pairs.schema.get_field_index("amount"), "amount", pc.cast(pairs["amount"], _SUM_TYPE)
        )
        .group_by(keys, use_threads=False)
        .aggregate([("n", "sum"), ("amount", "sum"), ("has_f", "any"), ("has_m", "any")])
    )
    return pa.table(
        {
            "chunk": sums["chunk"],
            "merchant": sums["merchant"],
            "customer": sums["customer"],
            "n": sums["n_sum"],
            "amount": pc.cast(sums["amount_sum"], pa.string()),
            "has_f": sums["has_f_any"],
            "has_m": sums["has_m_any"],
        }
    )
