"""reference: the reference engine's replay of the published chunks (in this process)."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import psutil

from bench.common import (
    CHUNK_ROWS,
    FULL_ROWS,
    GIB,
    PRESET,
    Dataset,
    machine,
    print_table,
    read_result,
    write_result,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=FULL_ROWS, help="dataset rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from txpatterns import reference
    from txpatterns.patterns import ACTION_TYPES, PRESETS
    from txpatterns.store import LOCAL

    data = Dataset(args.rows, args.seed)
    input_dir = data.published(args.chunk_rows)
    info = machine()
    chunks = LOCAL.list_chunks(str(input_dir))
    print(f"reference replay of {len(chunks)} chunks ...")

    me = psutil.Process()
    peak = [me.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], me.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = me.cpu_times()
    started = time.perf_counter()
    replay = reference.replay(chunks, str(data.importance), PRESETS[PRESET])
    seconds = time.perf_counter() - started
    cpu1 = me.cpu_times()
    stop.set()
    sampler.join()

    valid = sum(c.valid for c in replay.chunks)
    counts = {p: 0 for p in ACTION_TYPES}
    for d in replay.detections:
        counts[d.pattern_id] += 1
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    catchup = read_result("catchup")
    agrees = None
    if catchup and catchup["settings"]["rows"] == args.rows:
        agrees = catchup["figures"]["detections"] == {k: v for k, v in counts.items() if v}
    rows = [
        ("chunks / valid rows", f"{len(replay.chunks)} / {valid:,}"),
        ("replay time", f"{seconds:8.2f} s"),
        ("rows/s", f"{valid / seconds:10,.0f}"),
        ("CPU time", f"{cpu:8.2f} s"),
        ("peak RSS", f"{peak[0] / GIB:8.3f} GiB"),
        ("detections", ", ".join(f"{k} {v:,}" for k, v in counts.items())),
    ]
    if agrees is not None:
        rows.append(("counts equal catchup's", "yes" if agrees else "NO"))
    print_table(f"reference: {args.rows:,} rows, {len(chunks)} chunks", rows)
    result = {
        "benchmark": "reference",
        "settings": {
            "rows": args.rows,
            "seed": args.seed,
            "chunk_rows": args.chunk_rows,
            "chunks": len(chunks),
            "preset": PRESET,
        },
        "machine": info,
        "figures": {
            "seconds": seconds,
            "rows_per_second": valid / seconds,
            "cpu_seconds": cpu,
            "valid_rows": valid,
            "peak_rss_bytes": peak[0],
            "detections": counts,
            "detection_counts_equal_catchup": agrees,
        },
    }
    write_result("reference", result)
    return result
