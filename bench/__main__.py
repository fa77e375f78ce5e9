"""The txpatterns benchmark suite (issue 5). Run from the repository root:

    python -m bench catchup            # cold-start catch-up over 60 chunks vs the Spark floor
    python -m bench live               # publisher at 1 chunk/s beside a running detector
    python -m bench growth             # 6,000,000 rows (600 chunks): per-chunk cost early vs late
    python -m bench reference          # the reference engine's replay of the 60 chunks
    python -m bench generate           # bench/bench_generate.py (the generator alone)
    python -m bench plot               # redraw the PNGs from bench/results/*.json
    python -m bench all                # catchup, reference, live, growth (growth is long)

Each benchmark prints a table and PASS/MISS against its targets (a miss never fails the run)
and writes bench/results/<name>.json. Generated data is cached under bench/data/.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from bench import catchup, growth, live, plot, replay
from bench.common import BENCH, FULL_ROWS


def main(argv: list[str] | None = None) -> None:
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="benchmark", required=True)
    catchup.add_arguments(commands.add_parser("catchup", help="cold-start catch-up"))
    live.add_arguments(commands.add_parser("live", help="latency beside the publisher"))
    growth.add_arguments(commands.add_parser("growth", help="per-chunk cost as state grows"))
    replay.add_arguments(commands.add_parser("reference", help="reference engine replay"))
    commands.add_parser("generate", help="time the generator (bench/bench_generate.py)")
    commands.add_parser("plot", help="redraw the PNGs from the JSON results")
    every = commands.add_parser("all", help="catchup, reference, live and growth")
    every.add_argument("--growth-rows", type=int, default=growth.FULL_GROWTH_ROWS)
    every.add_argument("--seed", type=int, default=0)
    args, rest = parser.parse_known_args(argv)

    if args.benchmark == "generate":
        sys.argv = [str(BENCH / "bench_generate.py"), *rest]
        runpy.run_path(str(BENCH / "bench_generate.py"), run_name="__main__")
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.benchmark == "catchup":
        catchup.run(args)
    elif args.benchmark == "live":
        live.run(args)
    elif args.benchmark == "growth":
        growth.run(args)
    elif args.benchmark == "reference":
        replay.run(args)
    elif args.benchmark == "plot":
        plot.draw_all()
    else:
        seed = ["--seed", str(args.seed)]
        for module, name, extra in (
            (catchup, "catchup", ["--rows", str(FULL_ROWS)]),
            (replay, "reference", ["--rows", str(FULL_ROWS)]),
            (live, "live", ["--rows", str(FULL_ROWS)]),
            (growth, "growth", ["--rows", str(args.growth_rows)]),
        ):
            sub = argparse.ArgumentParser(prog=f"python -m bench {name}")
            module.add_arguments(sub)
            module.run(sub.parse_args([*extra, *seed]))


if __name__ == "__main__":
    main()
