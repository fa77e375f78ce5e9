"""live: the publisher at one chunk per interval beside a running detector (continuous mode).

The detector starts first on a fresh working folder; once its stream query runs (the Spark
checkpoint has its metadata), the publisher starts. Per chunk, latency runs from its _SUCCESS
marker's modification time to (a) its commit in the ledger (the commit timestamp of its
`chunks` row; the embedded database is created ahead with track_commit_timestamp on) and (b)
the completion of the last output file holding its detections. The detector is stopped with
SIGINT once every chunk is applied and every detection is in a complete file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHUNK_ROWS,
    FULL_ROWS,
    GIB,
    MASTER,
    Dataset,
    Sampler,
    Target,
    checkpoint_marks,
    cli_path,
    detect_args,
    detection_counts,
    embedded_state,
    interrupt,
    launch,
    machine,
    percentile,
    prepare_embedded,
    print_table,
    print_targets,
    read_ledger,
    release,
    run_settings,
    scratch,
    slope,
    wait_for,
    wait_until_idle,
    write_result,
)

WARMUP = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help="dataset rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    parser.add_argument("--chunks", type=int, default=60, help="chunks to publish")
    parser.add_argument("--interval", default="1s", help="publisher interval")
    parser.add_argument("--master", default=MASTER)
    parser.add_argument(
        "--trigger", help="detector micro-batch interval (default: the setting, 0.25s)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working folder")


def seconds_of(text: str) -> float:
    text = text.strip()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    return float(text.removesuffix("s"))


def summarise(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def per_chunk(ledger: Any, marks: dict[str, dict[int, float]], input_dir: Path) -> list[dict]:
    """One record per applied chunk: its marker time and the moments it went through."""
    records = []
    for c in ledger.chunks:
        index = c["chunk"]
        published = (input_dir / f"chunk_{index}.csv" / "_SUCCESS").stat().st_mtime
        committed = c["committed_at"]
        detections, delivered, completed = ledger.detections.get(index, (0, 0, None))
        planned = marks["offsets"].get(c["batch_id"])
        records.append(
            {
                "chunk": index,
                "batch_id": c["batch_id"],
                "published": published,
                "batch_planned_after": None if planned is None else planned - published,
                "applied_after": c["applied_at"] - published,
                "ledger_seconds": c["seconds"],
                "committed_after": None if committed is None else committed - published,
                "detections": detections,
                "delivered_after": (
                    completed - published
                    if detections and delivered == detections and completed
                    else None
                ),
            }
        )
    return records


def per_batch(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per Spark micro-batch: its chunks, and how long its Spark part (planned -> first chunk
    applied, which includes collecting and staging) and its database part (first chunk applied
    -> last chunk committed) took."""
    batches: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        batches.setdefault(r["batch_id"], []).append(r)
    out = []
    for batch_id, rs in sorted(batches.items()):
        applied = min(r["published"] + r["applied_after"] for r in rs)
        commits = [r["published"] + r["committed_after"] for r in rs if r["committed_after"]]
        planned = rs[0]["batch_planned_after"]
        out.append(
            {
                "batch_id": batch_id,
                "chunks": len(rs),
                "spark_seconds": (
                    None if planned is None else applied - (rs[0]["published"] + planned)
                ),
                "database_seconds": max(commits) - applied if commits else None,
                # What the detector itself timed as Spark (the ledger spreads it over the
                # batch's chunks): from foreachBatch's start to the aggregates on the driver.
                "detector_spark_seconds": sum(r["ledger_seconds"] for r in rs),
            }
        )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Dataset(args.rows, args.seed).ensure()
    chunks = min(args.chunks, data.chunks(args.chunk_rows))
    info = machine()
    work = scratch("live")
    input_dir = work / "input"
    input_dir.mkdir()
    pgdata = work / "postgres"
    prepare_embedded(pgdata)

    extra = ["--trigger", args.trigger] if args.trigger else []
    command = detect_args(
        input_dir, data.importance, work, master=args.master, until_idle=False, extra=extra
    )
    detector = launch(command, work / "detect.log", work)
    print("detector started (continuous mode); waiting for its stream query ...")
    with Sampler(detector.process.pid, pgdata=pgdata) as sampler:
        wait_for(
            lambda: (
                (work / "checkpoint" / "metadata").exists() or detector.process.poll() is not None
            ),
            timeout=600,
        )
        if detector.process.poll() is not None:
            sys.exit(f"the detector stopped early; log {detector.log}:\n{detector.tail()}")
        # On an empty input a fresh query still runs one empty batch (seconds on a cold JVM):
        # wait for it to be committed, then for the detector to be idle.
        wait_for(
            lambda: (
                (work / "checkpoint" / "commits" / "0").exists()
                or detector.process.poll() is not None
            ),
            timeout=120,
            what="the first (empty) batch",
        )
        wait_until_idle(detector.process.pid, timeout=120)
        ready = time.time() - detector.started
        print(f"publishing {chunks} chunks, one per {args.interval} ...")
        publisher = launch(
            [
                cli_path(),
                "publish",
                "--source",
                str(data.transactions),
                "--to",
                str(input_dir),
                "--chunk-rows",
                str(args.chunk_rows),
                "--interval",
                args.interval,
                "--max-chunks",
                str(chunks),
            ],
            work / "publish.log",
            work,
        )
        if publisher.process.wait() != 0:
            interrupt(detector)
            sys.exit(f"the publisher failed; log {publisher.log}:\n{publisher.tail()}")
        published = time.time()
        with embedded_state(pgdata) as conn:

            def done() -> bool:
                applied = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
                return int(applied) >= chunks and read_ledger(conn).pending == 0

            wait_for(done, timeout=300, interval=0.5, what="the detector to finish")
            drained = time.time() - published
            code = interrupt(detector)
            ledger = read_ledger(conn)
            counts = detection_counts(conn)
    if code not in (0, 130):
        print(f"warning: the detector exited with {code} after SIGINT; log {detector.log}")
    marks = checkpoint_marks(work / "checkpoint")
    records = per_chunk(ledger, marks, input_dir)

    exact = ledger.commit_timestamps
    committed = [r["committed_after"] if exact else r["applied_after"] for r in records]
    delivered = [r["delivered_after"] for r in records if r["delivered_after"] is not None]
    batches: dict[int, int] = {}
    for r in records:
        batches[r["batch_id"]] = batches.get(r["batch_id"], 0) + 1
    batch_records = per_batch(records)
    spark_batch = summarise([b["spark_seconds"] for b in batch_records if b["spark_seconds"]])
    db_batch = summarise([b["database_seconds"] for b in batch_records if b["database_seconds"]])
    own_spark = summarise([b["detector_spark_seconds"] for b in batch_records])
    # The first chunks meet a cold JVM (the first batches compile and start Python workers):
    # whether the detector falls behind is judged after them.
    warm = WARMUP if len(committed) >= 3 * WARMUP else 0
    steady = committed[warm:]
    window = min(10, len(steady) // 2)
    early = statistics.fmean(steady[:window]) if window else float("nan")
    late = statistics.fmean(steady[-window:]) if window else float("nan")
    trend = slope([r["chunk"] for r in records[warm:]], steady)
    interval = seconds_of(args.interval)
    fell_behind = (late - early) > interval or len(records) < chunks
    stats_steady = summarise(steady)
    memory = sampler.summary()
    stats_commit = summarise(committed)
    stats_applied = summarise([r["applied_after"] for r in records])
    stats_delivered = summarise(delivered)
    pickup = summarise([r["batch_planned_after"] for r in records if r["batch_planned_after"]])

    def line(s: dict[str, float]) -> str:
        return f"p50 {s['p50']:6.2f} s   p95 {s['p95']:6.2f} s   max {s['max']:6.2f} s"

    rows = [
        ("chunks applied", f"{len(records)} of {chunks} in {len(batches)} Spark batches"),
        ("chunks per batch (max)", f"{max(batches.values(), default=0)}"),
        ("detector ready after", f"{ready:6.1f} s (before the publisher started)"),
        ("to batch planned", line(pickup)),
        ("batch: Spark part", line(spark_batch)),
        ("  of it timed by detector", line(own_spark)),
        ("batch: database part", line(db_batch)),
        ("to applied (began)", line(stats_applied)),
        ("to committed" + ("" if exact else " (~applied)"), line(stats_commit)),
        (f"  the same, chunks >= {warm}", line(stats_steady)),
        (
            f"to complete file ({len(delivered)} ch.)",
            line(stats_delivered),
        ),
        (
            f"lag, first/last {window} from {warm}",
            f"{early:.2f} s -> {late:.2f} s, slope {trend * 1000:+.1f} ms/chunk",
        ),
        ("fell behind", "yes" if fell_behind else "no"),
        ("drained after publisher", f"{drained:6.1f} s"),
        ("peak memory (tree RSS)", f"{memory['peak_rss_gib']:6.3f} GiB"),
        ("peak memory (tree PSS)", f"{memory['peak_tree_pss_bytes'] / GIB:6.3f} GiB"),
        ("other load on machine", f"{memory['other_cpu_share']:6.0%} of CPU time"),
        ("detections", ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))),
    ]
    print_table(f"live: {chunks} chunks of {args.chunk_rows:,} rows, one per {args.interval}", rows)
    targets = [
        Target("p50 chunk -> committed detections", stats_commit["p50"], 1.0, " s"),
        Target("p95 chunk -> committed detections", stats_commit["p95"], 2.0, " s"),
        Target(f"lag growth, last {window} - first {window} chunks", late - early, interval, " s"),
        Target("peak memory (detector tree RSS)", memory["peak_rss_bytes"] / GIB, 2.0, " GiB"),
    ]
    print_targets(targets)

    result = {
        "benchmark": "live",
        "settings": run_settings(
            args,
            chunks,
            command,
            interval=args.interval,
            trigger=args.trigger or "default (detect.trigger, 0.25s)",
            track_commit_timestamp=exact,
        ),
        "machine": {**info, "postgres": ledger.postgres_version},
        "figures": {
            "latency_to_batch_planned_seconds": pickup,
            "latency_to_applied_seconds": stats_applied,
            "latency_to_committed_seconds": stats_commit,
            "latency_to_complete_file_seconds": stats_delivered,
            "committed_is_exact_commit_time": exact,
            "batches": len(batches),
            "max_chunks_per_batch": max(batches.values(), default=0),
            "batch_spark_seconds": spark_batch,
            "batch_database_seconds": db_batch,
            "batch_spark_seconds_timed_by_detector": own_spark,
            "per_batch": batch_records,
            "latency_to_committed_after_warmup_seconds": stats_steady,
            "warmup_chunks": warm,
            "lag_window_chunks": window,
            "lag_early_mean_seconds": early,
            "lag_late_mean_seconds": late,
            "lag_slope_seconds_per_chunk": trend,
            "fell_behind": fell_behind,
            "detector_ready_seconds": ready,
            "drained_after_publisher_seconds": drained,
            "memory": memory,
            "detections": counts,
            "output_files": len(ledger.files),
            "per_chunk": records,
        },
        "targets": [t.record() for t in targets],
    }
    # A run with a non-default trigger is an experiment: it does not replace the live figures.
    name = f"live-trigger-{args.trigger}" if args.trigger else "live"
    write_result(name, result)
    from bench import plot

    # Only a full-size run at the default trigger replaces the plot in docs/.
    plot.draw_live(result, name=name, to_docs=not args.trigger and args.rows == FULL_ROWS)
    release(work, args.keep)
    return result
