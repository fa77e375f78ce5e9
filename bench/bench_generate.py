"""Time txpatterns.generate on the default BankSim size and record the figures as JSON.

Usage: python bench/bench_generate.py [--rows N] [--seed S] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from txpatterns.generate import DEFAULT_ROWS, generate

RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def git_revision() -> str:
    """Return the checked-out commit, or "unknown" outside a git work tree."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def run_once(rows: int, seed: int, folder: Path) -> tuple[float, int]:
    """Generate both files into folder and return the seconds taken and bytes written."""
    tx_path = folder / "transactions.csv"
    imp_path = folder / "CustomerImportance.csv"
    start = time.perf_counter()
    with (
        tx_path.open("w", encoding="utf-8", newline="") as tx_file,
        imp_path.open("w", encoding="utf-8", newline="") as imp_file,
    ):
        generate(tx_file, imp_file, rows=rows, seed=seed)
    seconds = time.perf_counter() - start
    return seconds, tx_path.stat().st_size + imp_path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    args = parser.parse_args()

    timings: list[float] = []
    size = 0
    with tempfile.TemporaryDirectory(prefix="txp-bench-") as tmp:
        for _ in range(max(1, args.repeat)):
            seconds, size = run_once(args.rows, args.seed, Path(tmp))
            timings.append(seconds)
    best = min(timings)

    print(f"{'rows':>10}  {'seconds':>8}  {'rows/s':>10}  {'MB':>7}")
    print(f"{args.rows:>10,}  {best:>8.3f}  {args.rows / best:>10,.0f}  {size / 1e6:>7.1f}")

    result = {
        "benchmark": "generate",
        "rows": args.rows,
        "seed": args.seed,
        "seconds_best": round(best, 4),
        "seconds_all": [round(t, 4) for t in timings],
        "rows_per_second": round(args.rows / best),
        "bytes_written": size,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_revision": git_revision(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
