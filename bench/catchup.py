"""catchup: `detect --until-idle` from a cold start over the published dataset, against the
Spark floor (bench/floor.py) run in the same invocation."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bench.common import (
    BENCH,
    CHUNK_ROWS,
    FULL_ROWS,
    GIB,
    MASTER,
    Dataset,
    Sampler,
    Target,
    checkpoint_marks,
    detect_args,
    detection_counts,
    embedded_state,
    launch,
    machine,
    print_table,
    print_targets,
    read_ledger,
    release,
    remove,
    run_settings,
    scratch,
    stats_file,
    write_result,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help="dataset rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    parser.add_argument("--master", default=MASTER)
    parser.add_argument("--no-floor", action="store_true", help="skip the Spark floor")
    parser.add_argument("--keep", action="store_true", help="keep the working folders")
    parser.add_argument(
        "--reader",
        choices=("python", "native"),
        default="python",
        help="the detector's chunk reader (compare the two with --no-floor runs)",
    )
    parser.add_argument(
        "--max-chunks-per-batch",
        type=int,
        default=None,
        help="cap on chunks per micro-batch (default: the detector's setting)",
    )


def run_floor(input_dir: Any, master: str, keep: bool) -> dict[str, Any]:
    work = scratch("floor")
    args = [sys.executable, str(BENCH / "floor.py"), "--input", str(input_dir)]
    floor = launch([*args, "--master", master], work / "floor.log", work)
    with Sampler(floor.process.pid) as sampler:
        code = floor.process.wait()
    wall = time.time() - floor.started
    if code != 0:
        sys.exit(f"bench/floor.py failed ({code}):\n{floor.tail()}")
    lines = [line for line in floor.log.read_text().splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(lines[-1])
    result["wall_seconds"] = wall
    result["memory"] = sampler.summary()
    if not keep:
        remove(work)
    return result


def batch_split(
    ledger: Any, marks: dict[str, dict[int, float]], work_end: float
) -> dict[str, float]:
    """Where the detector's time went, from outside: per Spark batch, the offset log is written
    when the batch is planned, the ledger's applied_at when each chunk's transaction begins,
    output_files.created_at when a file is recorded, the commit log when the batch returns.

    spark: batch planned -> first chunk applied (reading, parsing, aggregating, collecting
    through Arrow, and the COPY into the staging table); database: first chunk applied -> first
    file recorded after the last chunk (or the batch's commit); output: the rest of the batch,
    plus the final flush after the last batch.
    """
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for c in ledger.chunks:
        by_batch.setdefault(c["batch_id"], []).append(c)
    split = {"spark": 0.0, "database": 0.0, "output": 0.0}
    for batch_id, chunks in by_batch.items():
        planned = marks["offsets"].get(batch_id)
        committed = marks["commits"].get(batch_id)
        if planned is None or committed is None:
            continue
        first = min(c["applied_at"] for c in chunks)
        last = max(c["applied_at"] for c in chunks)
        created = [f["created_at"] for f in ledger.files if last <= f["created_at"] <= committed]
        applied_end = min(created) if created else committed
        split["spark"] += first - planned
        split["database"] += applied_end - first
        split["output"] += committed - applied_end
    last_commit = max(marks["commits"].values(), default=work_end)
    split["output"] += max(0.0, work_end - last_commit)
    return split


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Dataset(args.rows, args.seed)
    input_dir = data.published(args.chunk_rows)
    chunks = data.chunks(args.chunk_rows)
    info = machine()

    floor = None
    if not args.no_floor:
        print(f"Spark floor over {chunks} chunks ...")
        floor = run_floor(input_dir, args.master, args.keep)

    print(f"detect --until-idle over {chunks} chunks, cold start ...")
    work = scratch("catchup")
    command = detect_args(
        input_dir, data.importance, work, master=args.master, until_idle=True,
        extra=("--reader", args.reader, *(
            ("--max-chunks-per-batch", str(args.max_chunks_per_batch))
            if args.max_chunks_per_batch is not None else ()
        )),
    )  # fmt: skip
    detector = launch(command, work / "detect.log", work)
    with Sampler(detector.process.pid, pgdata=work / "postgres") as sampler:
        code = detector.process.wait()
    exited = time.time()
    if code != 0:
        sys.exit(f"the detector failed ({code}); log {detector.log}:\n{detector.tail()}")
    t0 = detector.started
    marks = checkpoint_marks(work / "checkpoint")
    with embedded_state(work / "postgres") as conn:
        ledger = read_ledger(conn)
        counts = detection_counts(conn)
    stats = stats_file(work)
    summary = [line for line in detector.log.read_text().splitlines() if line.startswith("Applied")]

    valid = sum(c["valid_rows"] for c in ledger.chunks)
    first_applied = min(c["applied_at"] for c in ledger.chunks)
    first_planned = min(marks["offsets"].values())
    last_completed = max((f["completed_at"] or 0.0 for f in ledger.files), default=0.0)
    work_end = max(max(marks["commits"].values()), last_completed)
    processing = work_end - first_planned
    phases = {
        "postgres_initialised": (work / "postgres" / "PG_VERSION").stat().st_mtime - t0,
        "jvm_started": (sampler.java_started or float("nan")) - t0,
        "stream_query_started": (work / "checkpoint" / "metadata").stat().st_mtime - t0,
        "first_batch_planned": first_planned - t0,
        "first_chunk_applied": first_applied - t0,
        "last_chunk_applied": max(c["applied_at"] for c in ledger.chunks) - t0,
        "last_batch_committed": max(marks["commits"].values()) - t0,
        "last_file_completed": last_completed - t0 if last_completed else None,
        "process_exited": exited - t0,
    }
    if stats is not None:
        split = {
            "spark": stats["spark_seconds"],
            "database": stats["database_seconds"],
            "output": stats["output_seconds"],
        }
        split_source = "detector --stats (Progress)"
    else:
        split = batch_split(ledger, marks, work_end)
        split_source = "ledger and checkpoint times (approximation; see bench/catchup.py)"
    memory = sampler.summary()
    floor_seconds = floor["job_seconds"] if floor else float("nan")
    ratio = processing / floor_seconds if floor else float("nan")
    rate = valid / processing
    # The definition: start-up ends when the first chunk is applied, and the rate is
    # over the chunks applied after it.
    after_first = sorted(ledger.chunks, key=lambda c: c["applied_at"])[1:]
    rate_after_first = sum(c["valid_rows"] for c in after_first) / (work_end - first_applied)

    rows = [
        ("chunks applied / rows", f"{len(ledger.chunks)} / {valid:,} valid"),
        ("Spark batches", f"{len({c['batch_id'] for c in ledger.chunks})}"),
        ("total wall time", f"{exited - t0:8.2f} s"),
        ("start-up to first batch", f"{phases['first_batch_planned']:8.2f} s"),
        ("start-up to first applied", f"{phases['first_chunk_applied']:8.2f} s (ledger)"),
        ("processing after start-up", f"{processing:8.2f} s"),
        ("shutdown", f"{exited - work_end:8.2f} s"),
        ("rows/s after start-up", f"{rate:10,.0f}"),
        ("rows/s after first applied", f"{rate_after_first:10,.0f} (the issue's start-up)"),
        ("  spark (+collect, COPY)", f"{split['spark']:8.2f} s"),
        ("  database (apply+eval)", f"{split['database']:8.2f} s"),
        ("  output files", f"{split['output']:8.2f} s"),
        ("peak memory (tree RSS)", f"{memory['peak_rss_gib']:8.3f} GiB"),
        ("peak memory (tree PSS)", f"{memory['peak_tree_pss_bytes'] / GIB:8.3f} GiB"),
        ("peak PostgreSQL PSS", f"{memory['peak_postgres_pss_bytes'] / GIB:8.3f} GiB"),
        ("other load on machine", f"{memory['other_cpu_share']:8.0%} of CPU time"),
        ("detections", ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))),
    ]
    if floor:
        rows += [
            ("Spark floor: session", f"{floor['session_seconds']:8.2f} s"),
            ("Spark floor: job", f"{floor_seconds:8.2f} s ({floor['rows']:,} rows)"),
            ("Spark floor: peak RSS", f"{floor['memory']['peak_rss_gib']:8.3f} GiB"),
            ("processing / floor job", f"{ratio:8.2f}x"),
        ]
    print_table(f"catchup: {args.rows:,} rows, {chunks} chunks, {args.master}", rows)
    targets = [
        Target("catch-up excluding start-up / Spark floor", ratio, 1.5, "x"),
        Target("rows/s after start-up", rate, 100_000, "", higher_is_better=True),
        Target(
            "rows/s after the first applied chunk",
            rate_after_first,
            100_000,
            "",
            higher_is_better=True,
        ),
        Target("peak memory (detector tree RSS)", memory["peak_rss_bytes"] / GIB, 2.0, " GiB"),
    ]
    print_targets(targets)
    if summary:
        print(f"\ndetector: {summary[-1]}")

    result = {
        "benchmark": "catchup",
        "settings": run_settings(
            args,
            chunks,
            command,
            reader=args.reader,
        ),
        "machine": {**info, "postgres": ledger.postgres_version},
        "figures": {
            "wall_seconds": exited - t0,
            "startup_to_first_batch_seconds": phases["first_batch_planned"],
            "startup_to_first_applied_seconds": phases["first_chunk_applied"],
            "processing_seconds": processing,
            "rows_per_second_after_startup": rate,
            "rows_per_second_after_first_applied": rate_after_first,
            "valid_rows": valid,
            "batches": len({c["batch_id"] for c in ledger.chunks}),
            "phases_from_start_seconds": phases,
            "time_split_seconds": split,
            "time_split_source": split_source,
            "ledger_seconds_sum": sum(c["seconds"] for c in ledger.chunks),
            "detector_stats": stats,
            "memory": memory,
            "detections": counts,
            "output_files": len(ledger.files),
            "floor": floor,
            "processing_over_floor": ratio,
        },
        "targets": [t.record() for t in targets],
        "detector_summary": summary[-1] if summary else None,
    }
    write_result("catchup" if args.reader == "python" else f"catchup-{args.reader}", result)
    release(work, args.keep)
    return result
