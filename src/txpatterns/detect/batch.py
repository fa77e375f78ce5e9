"""One micro-batch in Spark: the chunks' deltas reach the driver in one Arrow collect.

With the Python reader the source has already turned each chunk into deltas on an executor, so
the batch is one job with one task per core and no shuffle. With the native reader, Spark's
own text reader reads the part files and the same Arrow function runs in `mapInArrow`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from txpatterns.detect.deltas import ARROW_SCHEMA, PART_FILE, BatchDeltas, part_deltas
from txpatterns.detect.source import SCHEMA
from txpatterns.schema import TRANSACTION_COLUMNS
from txpatterns.store import join

_PART_NAME = r"chunk_([0-9]+)\.csv/([^/]+)$"
_WARM_UP_TEXT = (
    ",".join(TRANSACTION_COLUMNS) + "\n0,'C1','2','F','28007','M1','28007','es_food',1.5,0\n"
)


def warm_up(spark: SparkSession) -> int:
    """Run the delta code once per core through Arrow, before the stream starts.

    Spark starts its Python workers and compiles its Arrow paths on first use. Paid inside the
    stream, that cost made the first micro-batch about 4 s slower; paid here, the whole
    catch-up finished about 3 s sooner (docs/performance.md). Returns the rows it produced.
    """
    tasks = spark.sparkContext.defaultParallelism

    def deltas(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for _ in batches:
            yield part_deltas(0, "warm-up", "warm-up", _WARM_UP_TEXT)

    rows = spark.range(0, tasks, 1, tasks).mapInArrow(deltas, SCHEMA).toArrow()
    return int(rows.num_rows)


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
