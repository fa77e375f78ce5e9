"""The Spark floor: the least Spark work a catch-up over the same chunks can cost.

Reads every complete chunk under --input with Spark's native CSV reader on the detector's own
session settings (txpatterns.detect.spark.session), computes the per-(chunk, merchant,
customer) aggregates the detector needs (count, amount sum, has F, has M) and brings them to
the driver through Arrow, as the detector does. No database, no patterns, no output.

Usage: python bench/floor.py --input DIR [--master local[2]]
Prints one JSON object on the last line of standard output.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

SCHEMA = (
    "step int, customer string, age string, gender string, zipcodeOri string, "
    "merchant string, zipMerchant string, category string, amount decimal(38,18), fraud int"
)


def chunk_parts(input_dir: Path) -> list[str]:
    """The part files of the chunks holding a _SUCCESS marker, in index order."""
    folders = [f for f in input_dir.glob("chunk_*.csv") if (f / "_SUCCESS").exists()]
    folders.sort(key=lambda f: int(f.name.removeprefix("chunk_").removesuffix(".csv")))
    return [str(part) for f in folders for part in sorted(f.glob("part-*.csv"))]


def run(input_dir: Path, master: str) -> dict[str, object]:
    started = time.perf_counter()
    from pyspark.sql import functions as F

    from txpatterns.detect.spark import session

    spark = session(master, app_name="txpatterns-floor")
    ready = time.perf_counter()
    parts = chunk_parts(input_dir)
    rows = (
        spark.read.schema(SCHEMA)
        .option("header", True)
        .option("quote", "'")
        .option("mode", "PERMISSIVE")
        .csv(parts)
        .withColumn(
            "chunk",
            F.regexp_extract(F.input_file_name(), r"chunk_(\d+)\.csv", 1).cast("int"),
        )
    )
    aggregates = rows.groupBy("chunk", "merchant", "customer").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum("amount").alias("amount"),
        F.max(F.col("gender") == "F").alias("has_f"),
        F.max(F.col("gender") == "M").alias("has_m"),
    )
    table = aggregates.toArrow()
    done = time.perf_counter()
    total_rows = int(sum(table.column("n").to_pylist()))
    chunks = len(set(table.column("chunk").to_pylist()))
    spark.stop()
    return {
        "chunks": chunks,
        "rows": total_rows,
        "groups": table.num_rows,
        "session_seconds": round(ready - started, 3),
        "job_seconds": round(done - ready, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    print(json.dumps(run(args.input, args.master)))


if __name__ == "__main__":
    main()
