"""The suite's plots (matplotlib, Agg): per-chunk latency over the live run and per-chunk cost
over the growth run, saved under bench/results/ and copied to docs/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.common import DOCS, RESULTS, ROOT, read_result


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, name: str, to_docs: bool = True) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    figure.savefig(path, dpi=110)
    if to_docs:
        shutil.copyfile(path, DOCS / f"perf-{name}.png")
        print(f"wrote {path.relative_to(ROOT)} and docs/perf-{name}.png")
    else:
        print(f"wrote {path.relative_to(ROOT)}")
    return path


def draw_live(result: dict[str, Any], name: str = "live", to_docs: bool = True) -> Path:
    plt = _pyplot()
    records = result["figures"]["per_chunk"]
    settings = result["settings"]
    chunks = [r["chunk"] for r in records]
    exact = result["figures"]["committed_is_exact_commit_time"]
    committed = [r["committed_after"] if exact else r["applied_after"] for r in records]
    delivered = [(r["chunk"], r["delivered_after"]) for r in records if r["delivered_after"]]
    planned = [(r["chunk"], r["batch_planned_after"]) for r in records if r["batch_planned_after"]]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    if planned:
        axes.plot(*zip(*planned, strict=True), ".", color="0.6", label="batch planned")
    axes.plot(chunks, committed, "o-", ms=3, label="committed in PostgreSQL")
    if delivered:
        axes.plot(*zip(*delivered, strict=True), "s", ms=4, label="in a complete output file")
    axes.axhline(1.0, color="green", ls="--", lw=0.8, label="p50 target (1 s)")
    axes.axhline(2.0, color="red", ls="--", lw=0.8, label="p95 target (2 s)")
    axes.set_xlabel("chunk index")
    axes.set_ylabel("seconds after the chunk's _SUCCESS")
    revision = result["machine"]["git_revision"][:8]
    axes.set_title(
        f"live: {settings['chunks']} chunks of {settings['chunk_rows']:,} rows, one per "
        f"{settings['interval']}, {settings['master']}, trigger "
        f"{settings.get('trigger', 'default').split(' ')[0]} (rev {revision})"
    )
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    path = _save(figure, name, to_docs)
    plt.close(figure)
    return path


def draw_growth(result: dict[str, Any], to_docs: bool = True) -> Path:
    plt = _pyplot()
    records = result["figures"]["per_chunk"]
    settings = result["settings"]
    chunks = [r["chunk"] for r in records]
    apply_eval = [r["apply_evaluate_seconds"] for r in records]
    ledger = [r["ledger_seconds"] for r in records]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    label = "ledger seconds (its share of the batch's Spark time)"
    axes.plot(chunks, ledger, color="0.6", lw=0.8, label=label)
    if any(v is not None for v in apply_eval):
        axes.plot(chunks, apply_eval, ".", ms=3, label="apply + evaluate (transaction)")
    costs = result["figures"]["per_chunk_cost"]["apply_evaluate_seconds"]
    for key, colour in (("early", "green"), ("late", "red")):
        span = settings[f"{key}_chunks"]
        if span == "-":
            continue
        first, last = (int(x) for x in span.split("-"))
        axes.axvspan(first, last, color=colour, alpha=0.08)
        mean = costs[key]["mean"]
        if mean == mean:
            axes.hlines(mean, first, last, colors=colour, lw=2, label=f"mean {span}: {mean:.3f} s")
    axes.set_xlabel("chunk index")
    axes.set_ylabel("seconds per chunk")
    cap = settings["max_chunks_per_batch"] or "no"
    axes.set_title(
        f"growth: {settings['rows']:,} rows in {settings['chunks']} chunks, {cap} chunk cap "
        f"per batch (rev {result['machine']['git_revision'][:8]})"
    )
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    path = _save(figure, "growth", to_docs)
    plt.close(figure)
    return path


def draw_all() -> None:
    live = read_result("live")
    growth = read_result("growth")
    if live:
        draw_live(live)
    if growth:
        draw_growth(growth)
    if not (live or growth):
        print("no live or growth results under bench/results/ yet")
