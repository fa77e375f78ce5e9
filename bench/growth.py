"""growth: does a chunk cost more once the state is large? A long catch-up (600 chunks by
default), comparing the per-chunk cost of chunks 10-69 with that of the last 60.

Per chunk, apply-and-evaluate time is the duration of its PostgreSQL transaction: the commit
timestamp of its ledger row (the embedded database is created ahead with
track_commit_timestamp on) minus its applied_at (the transaction's first statement). The
ledger's own `seconds` column is reported beside it.

Micro-batches are capped (--max-chunks-per-batch, 10 by default): a batch's deltas are staged
in one temporary table that every chunk of the batch scans, so uncapped, a chunk's cost would
reflect the size of its batch as much as the size of the state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from bench.common import (
    CHUNK_ROWS,
    GIB,
    MASTER,
    Dataset,
    Sampler,
    Target,
    detect_args,
    detection_counts,
    embedded_state,
    launch,
    machine,
    prepare_embedded,
    print_table,
    print_targets,
    read_ledger,
    release,
    run_settings,
    scratch,
    write_result,
)

FULL_GROWTH_ROWS = 6_000_000
EARLY_START = 10
WINDOW = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=FULL_GROWTH_ROWS, help="dataset rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)
    parser.add_argument(
        "--max-chunks-per-batch", type=int, default=10, help="detector micro-batch cap (0: none)"
    )
    parser.add_argument("--window", type=int, default=WINDOW, help="chunks compared at each end")
    parser.add_argument("--master", default=MASTER)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")


def window_stats(records: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [r[key] for r in records if r[key] is not None]
    if not values:
        return {"mean": float("nan"), "median": float("nan"), "count": 0}
    return {
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "count": len(values),
    }


def mean_median(stats: dict[str, float]) -> str:
    return f"mean {stats['mean']:.3f} s, median {stats['median']:.3f} s"


def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Dataset(args.rows, args.seed)
    input_dir = data.published(args.chunk_rows)
    chunks = data.chunks(args.chunk_rows)
    window = min(args.window, max(1, chunks // 2 - EARLY_START))
    info = machine()
    work = scratch("growth")
    pgdata = work / "postgres"
    prepare_embedded(pgdata)
    extra = ["--max-chunks-per-batch", str(args.max_chunks_per_batch)]
    command = detect_args(
        input_dir, data.importance, work, master=args.master, until_idle=True, extra=extra
    )
    print(f"detect --until-idle over {chunks} chunks ({args.rows:,} rows) ...")
    detector = launch(command, work / "detect.log", work)
    with Sampler(detector.process.pid, pgdata=pgdata) as sampler:
        code = detector.process.wait()
    wall = time.time() - detector.started
    if code != 0:
        sys.exit(f"the detector failed ({code}); log {detector.log}:\n{detector.tail()}")
    with embedded_state(pgdata) as conn:
        ledger = read_ledger(conn)
        counts = detection_counts(conn)

    records = []
    for c in ledger.chunks:
        committed = c["committed_at"]
        records.append(
            {
                "chunk": c["chunk"],
                "batch_id": c["batch_id"],
                "valid_rows": c["valid_rows"],
                "apply_evaluate_seconds": None
                if committed is None
                else committed - c["applied_at"],
                "ledger_seconds": c["seconds"],
            }
        )
    early = records[EARLY_START : EARLY_START + window]
    late = records[-window:]
    measures = ("apply_evaluate_seconds", "ledger_seconds")
    figures = {
        key: {"early": window_stats(early, key), "late": window_stats(late, key)}
        for key in measures
    }
    for key in measures:
        e, la = figures[key]["early"], figures[key]["late"]
        figures[key]["ratio_of_means"] = la["mean"] / e["mean"] if e["mean"] else float("nan")
        figures[key]["ratio_of_medians"] = (
            la["median"] / e["median"] if e["median"] else float("nan")
        )
    apply_eval = figures["apply_evaluate_seconds"]
    ledger_s = figures["ledger_seconds"]
    memory = sampler.summary()
    span_early = f"{early[0]['chunk']}-{early[-1]['chunk']}" if early else "-"
    span_late = f"{late[0]['chunk']}-{late[-1]['chunk']}" if late else "-"
    valid = sum(c["valid_rows"] for c in ledger.chunks)
    rows = [
        ("chunks applied / rows", f"{len(records)} / {valid:,} valid"),
        ("micro-batch cap", f"{args.max_chunks_per_batch or 'none'} chunks"),
        ("Spark batches", f"{len({r['batch_id'] for r in records})}"),
        ("total wall time", f"{wall:8.1f} s"),
        (f"apply+evaluate, chunks {span_early}", mean_median(apply_eval["early"])),
        (f"apply+evaluate, chunks {span_late}", mean_median(apply_eval["late"])),
        (
            "late / early",
            f"{apply_eval['ratio_of_means']:.2f}x (means), "
            f"{apply_eval['ratio_of_medians']:.2f}x (medians)",
        ),
        (
            "ledger seconds late / early",
            f"{ledger_s['ratio_of_means']:.2f}x ({ledger_s['early']['mean']:.3f} s -> "
            f"{ledger_s['late']['mean']:.3f} s)",
        ),
        ("peak memory (tree RSS)", f"{memory['peak_rss_gib']:8.3f} GiB"),
        ("peak memory (tree PSS)", f"{memory['peak_tree_pss_bytes'] / GIB:8.3f} GiB"),
        ("other load on machine", f"{memory['other_cpu_share']:8.0%} of CPU time"),
        ("detections", ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))),
    ]
    print_table(f"growth: {args.rows:,} rows, {chunks} chunks, {args.master}", rows)
    targets = [
        Target(
            f"apply+evaluate, chunks {span_late} / {span_early} (means)",
            apply_eval["ratio_of_means"],
            1.25,
            "x",
        ),
        Target("peak memory (detector tree RSS)", memory["peak_rss_bytes"] / GIB, 2.0, " GiB"),
    ]
    print_targets(targets)
    if not ledger.commit_timestamps:
        print("warning: commit timestamps were off; apply+evaluate could not be measured")

    result = {
        "benchmark": "growth",
        "settings": run_settings(
            args,
            chunks,
            command,
            max_chunks_per_batch=args.max_chunks_per_batch,
            early_chunks=span_early,
            late_chunks=span_late,
        ),
        "machine": {**info, "postgres": ledger.postgres_version},
        "figures": {
            "wall_seconds": wall,
            "valid_rows": valid,
            "batches": len({r["batch_id"] for r in records}),
            "per_chunk_cost": figures,
            "memory": memory,
            "detections": counts,
            "output_files": len(ledger.files),
            "per_chunk": records,
        },
        "targets": [t.record() for t in targets],
    }
    write_result("growth", result)
    from bench import plot

    # Only a full-size run replaces the plot in docs/.
    plot.draw_growth(result, to_docs=args.rows == FULL_GROWTH_ROWS)
    release(work, args.keep)
    return result
