"""One micro-batch in Spark: parse and validate lines, aggregate per chunk, quarantine the rest.

The rules are docs/patterns.md's data contract written as Spark SQL, from the same constants as
schema.py but not the same code, so that `verify` checks one against the other. Only
aggregates reach the driver; invalid rows are written to the quarantine by the executors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from txpatterns.schema import (
    AGES,
    AMOUNT_PATTERN,
    GENDERS,
    STEP_PATTERN,
    TRANSACTION_COLUMNS,
    WRONG_HEADER,
)
from txpatterns.state.store import STAGE_COLUMNS, ChunkTotals
from txpatterns.store import PART, SUCCESS, Store, chunk_folder, join

QUARANTINE_COLUMNS: Final = ("chunk", "file", "line", "column", "reason", "raw")
_FIELDS: Final = len(TRANSACTION_COLUMNS)


def _java_regex(pattern: str) -> str:
    # Python's `$` and Java's `$` both accept a trailing line break; \z does not.
    return pattern.removesuffix("$") + r"\z"


def _unquote(value: Column) -> Column:
    first = F.substring(value, 1, 1)
    quoted = (F.length(value) >= 2) & (first == F.substring(value, -1, 1)) & first.isin("'", '"')
    return F.when(quoted, value.substr(F.lit(2), F.length(value) - 2)).otherwise(value)


def _quoted(value: Column) -> Column:
    return F.concat(F.lit("'"), value, F.lit("'"))


_USED = ("step", "customer", "age", "gender", "merchant", "amount")


def native_lines(markers: DataFrame) -> DataFrame:
    """The lines of the batch's chunks read by Spark's own text reader (e.g. over s3a://).

    `markers` holds the source's one row per part; the result has the source's full schema.
    Lines end at "\n" (a trailing "\r" is dropped), where the Python reader also ends them at
    a lone "\r".
    """
    from pyspark.sql import Window

    spark = markers.sparkSession
    parts = [r["part"] for r in markers.where(F.col("part") != "").select("part").collect()]
    if not parts:
        return markers
    paths = markers.select("chunk", "path").distinct()
    text = spark.read.text(parts, wholetext=True).select(
        F.regexp_extract("_metadata.file_path", r"chunk_([0-9]+)\.csv/([^/]+)$", 1)
        .cast("int")
        .alias("chunk"),
        F.regexp_extract("_metadata.file_path", r"chunk_([0-9]+)\.csv/([^/]+)$", 2).alias("name"),
        "value",
    )
    # One trailing line break ends the last line rather than starting an empty one; an empty
    # file has no lines. (Computing a line count per exploded row instead is quadratic.)
    lines = (
        text.where(F.col("value") != "")
        .select(
            "chunk",
            "name",
            F.posexplode(F.split(F.regexp_replace("value", "\n\\z", ""), "\n", -1)).alias(
                "pos", "raw"
            ),
        )
        .select(
            "chunk",
            "name",
            (F.col("pos") + 1).cast("int").alias("line_no"),
            F.regexp_replace("raw", "\r\\z", "").alias("line"),
        )
    )
    header = F.transform(
        F.split(F.regexp_replace("line", "^\ufeff", ""), ",", -1), lambda v: _unquote(v)
    ) == F.array(*(F.lit(c) for c in TRANSACTION_COLUMNS))
    by_part = Window.partitionBy("chunk", "name")
    flagged = lines.withColumn(
        "header_ok",
        F.coalesce(F.max(F.when(F.col("line_no") == 1, header)).over(by_part), F.lit(False)),
    )
    data = (
        flagged.where(~(F.col("header_ok") & (F.col("line_no") == 1)))
        .join(paths, "chunk")
        .select(
            "chunk",
            "path",
            F.concat_ws("/", "path", "name").alias("part"),
            "line_no",
            "line",
            "header_ok",
            F.lit(False).alias("marker"),
        )
    )
    return markers.unionByName(data)


def parse(lines: DataFrame) -> DataFrame:
    """Add the unquoted fields, the first failing column and the reason (null when valid).

    Each stage is its own projection so that Spark computes a field once, not once per use.
    """
    fields = F.split(F.col("line"), ",", -1)
    split = lines.select(
        "*",
        F.size(fields).alias("field_count"),
        *(
            _unquote(F.try_element_at(fields, F.lit(TRANSACTION_COLUMNS.index(name) + 1))).alias(
                f"f_{name}"
            )
            for name in _USED
        ),
    )
    f = {name: F.col(f"f_{name}") for name in _USED}
    checks: list[tuple[Column, str | None, Column]] = [
        (~F.col("header_ok"), None, F.lit(WRONG_HEADER)),
        (
            F.col("field_count") != _FIELDS,
            None,
            F.concat(
                F.lit(f"expected {_FIELDS} fields, found "), F.col("field_count").cast("string")
            ),
        ),
        (
            ~f["step"].rlike(_java_regex(STEP_PATTERN)),
            "step",
            F.concat(F.lit("not a non-negative integer: "), _quoted(f["step"])),
        ),
        (f["customer"] == "", "customer", F.lit("empty")),
        (
            ~f["age"].isin(*AGES),
            "age",
            F.concat(F.lit(f"not one of {', '.join(AGES)}: "), _quoted(f["age"])),
        ),
        (
            ~f["gender"].isin(*GENDERS),
            "gender",
            F.concat(F.lit(f"not one of {', '.join(GENDERS)}: "), _quoted(f["gender"])),
        ),
        (f["merchant"] == "", "merchant", F.lit("empty")),
        (
            ~f["amount"].rlike(_java_regex(AMOUNT_PATTERN)),
            "amount",
            F.concat(F.lit("not a non-negative decimal: "), _quoted(f["amount"])),
        ),
    ]
    failed: Any = F
    for number, (condition, _, _) in enumerate(checks, start=1):
        failed = failed.when(condition, F.lit(number))
    checked = split.select("*", F.when(~F.col("marker"), failed).alias("failed"))
    reason: Any = F
    column: Any = F
    for number, (_, name, message) in enumerate(checks, start=1):
        reason = reason.when(F.col("failed") == number, message)
        column = column.when(F.col("failed") == number, F.lit(name))
    valid = F.col("failed").isNull() & ~F.col("marker")
    return checked.select(
        "chunk",
        "path",
        "part",
        "line_no",
        "line",
        "marker",
        reason.alias("reason"),
        column.alias("column"),
        valid.alias("valid"),
        F.when(valid, f["customer"]).alias("customer"),
        F.when(valid, f["merchant"]).alias("merchant"),
        F.when(valid, f["gender"]).alias("gender"),
        F.when(valid, f["amount"].cast("decimal(38,18)")).alias("amount"),
    )


def aggregate(parsed: DataFrame) -> DataFrame:
    """One pass: deltas per (chunk, merchant, customer); invalid and marker rows fall into a
    (chunk, null, null) group that carries the chunk's invalid count and path."""
    valid = F.col("valid")
    return parsed.groupBy("chunk", "merchant", "customer").agg(
        F.sum(F.when(valid, 1).otherwise(0)).cast("long").alias("n"),
        F.sum("amount").alias("amount"),
        F.max(valid & (F.col("gender") == "F")).alias("has_f"),
        F.max(valid & (F.col("gender") == "M")).alias("has_m"),
        F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).cast("long").alias("invalid"),
        F.min(F.when(F.col("marker"), F.col("path"))).alias("path"),
    )


@dataclass
class BatchAggregates:
    """What the driver receives for a batch: per-chunk totals and the pair deltas."""

    chunks: list[ChunkTotals]
    pairs: pa.Table

    def stage_csv(self) -> Iterator[bytes]:
        """The pair deltas as header-less CSV in STAGE_COLUMNS order, for COPY."""
        buffer = io.BytesIO()
        pacsv.write_csv(
            self.pairs.select(list(STAGE_COLUMNS)),
            buffer,
            write_options=pacsv.WriteOptions(include_header=False),
        )
        yield buffer.getvalue()


def collect(aggregated: DataFrame) -> BatchAggregates:
    """Bring the aggregates to the driver through Arrow and total them per chunk."""
    table = aggregated.toArrow()
    totals = table.group_by("chunk").aggregate([("n", "sum"), ("invalid", "sum"), ("path", "min")])
    chunks = sorted(
        ChunkTotals(int(r["chunk"]), str(r["path_min"]), int(r["n_sum"]), int(r["invalid_sum"]))
        for r in totals.to_pylist()
    )
    pairs = table.filter(pc.greater(table["n"], 0))
    return BatchAggregates(chunks, pairs)


def quarantine_writer(store: Store, quarantine: str) -> Any:
    """A function for foreachPartition that writes each chunk's invalid rows as one CSV file."""

    def write(rows: Iterable[Any]) -> None:
        by_chunk: dict[int, list[Any]] = {}
        for row in rows:
            by_chunk.setdefault(row["chunk"], []).append(row)
        for index, chunk_rows in by_chunk.items():
            chunk_rows.sort(key=lambda r: (r["part"], r["line_no"]))
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

    return write


def write_quarantine(parsed: DataFrame, store: Store, quarantine: str) -> None:
    """Write the invalid rows of every chunk in the batch, from the executors."""
    invalid = parsed.where(F.col("reason").isNotNull()).select(
        "chunk", "part", "line_no", "column", "reason", "line"
    )
    invalid.repartition("chunk").foreachPartition(quarantine_writer(store, quarantine))
