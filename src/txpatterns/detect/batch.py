"""One micro-batch in Spark: the chunks' deltas reach the driver in one Arrow collect.

With the Python reader the source has already turned each chunk into deltas on an executor, so
the batch is one job with one task per chunk and no shuffle. With the native reader, Spark's
own text reader reads the part files and the same Arrow function runs in `mapInArrow`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from txpatterns.detect.deltas import ARROW_SCHEMA, PART_FILE, BatchDeltas, part_deltas
from txpatterns.detect.source import SCHEMA
from txpatterns.store import join

_PART_NAME = r"chunk_([0-9]+)\.csv/([^/]+)$"


def collect(rows: DataFrame, *, native: bool = False) -> BatchDeltas:
    """The batch's deltas on the driver."""
    table = rows.toArrow()
    if native:
        table = pa.concat_tables([table, _native(rows, table).toArrow().cast(ARROW_SCHEMA)])
    return BatchDeltas.from_arrow(table.cast(ARROW_SCHEMA))


def _native(rows: DataFrame, listed: pa.Table) -> DataFrame:
    """The deltas of the listed part files, read by Spark's whole-text reader."""
    spark = rows.sparkSession
    found = [r for r in listed.to_pylist() if r["kind"] == PART_FILE]
    paths = {int(r["chunk"]): str(r["path"]) for r in found}
    if not found:
        return spark.createDataFrame([], SCHEMA)
    text = spark.read.text([r["part"] for r in found], wholetext=True).select(
        F.regexp_extract("_metadata.file_path", _PART_NAME, 1).cast("int").alias("chunk"),
        F.regexp_extract("_metadata.file_path", _PART_NAME, 2).alias("name"),
        "value",
    )

    def deltas(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for row in batch.to_pylist():
                chunk = int(row["chunk"])
                part = join(paths[chunk], row["name"])
                yield part_deltas(chunk, paths[chunk], part, row["value"])

    result: DataFrame = text.mapInArrow(deltas, SCHEMA)
    return result
