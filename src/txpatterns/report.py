"""`txpatterns report`: one self-contained HTML page with plots of a namespace's run.

The plots are inline SVG drawn here, so the page needs no network and no plotting library.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from txpatterns.patterns import ACTION_TYPES, PATTERN_IDS

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
WIDTH, HEIGHT, PAD = 640, 260, 48


@dataclass(frozen=True)
class ReportData:
    """What the page shows, read from the state in one go."""

    chunks: list[tuple[int, int, float, float | None]]  # index, invalid, seconds, lag
    cumulative: dict[str, list[tuple[int, int]]]  # pattern -> (chunk, detections so far)
    top_merchants: list[tuple[str, int]]


def collect(conn: psycopg.Connection[Any]) -> ReportData:
    """Read the figures of the namespace the connection points at."""
    chunks = [
        (int(i), int(bad), float(sec), None if lag is None else float(lag))
        for i, bad, sec, lag in conn.execute(
            "SELECT chunk_index, invalid_rows, seconds, "
            "extract(epoch FROM applied_at - published_at) FROM chunks ORDER BY chunk_index"
        ).fetchall()
    ]
    per_chunk = conn.execute(
        "SELECT pattern_id, chunk_index, count(*) FROM detections GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    cumulative: dict[str, list[tuple[int, int]]] = {p: [] for p in PATTERN_IDS}
    for pattern, chunk, count in per_chunk:
        series = cumulative.setdefault(str(pattern), [])
        series.append((int(chunk), (series[-1][1] if series else 0) + int(count)))
    top = [
        (str(m), int(n))
        for m, n in conn.execute(
            "SELECT merchant, count(*) FROM detections GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        ).fetchall()
    ]
    conn.commit()
    return ReportData(chunks, cumulative, top)


def _scale(value: float, low: float, high: float, start: float, end: float) -> float:
    return start if high == low else start + (value - low) * (end - start) / (high - low)


def line_chart(
    title: str, series: Mapping[str, Sequence[tuple[float, float]]], y_label: str
) -> str:
    """An SVG line chart of (x, y) series, with axes, ticks and a legend."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f"<h2>{html.escape(title)}</h2><p>No data yet.</p>"
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = 0.0, max(max(p[1] for p in points), 1.0)
    parts = [
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{html.escape(title)}">'
    ]
    parts.append(
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 10}" y2="{HEIGHT - PAD}" '
        'stroke="#333"/>'
        f'<line x1="{PAD}" y1="10" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#333"/>'
    )
    for fraction in (0, 0.5, 1):
        y_value = y_lo + fraction * (y_hi - y_lo)
        y = _scale(y_value, y_lo, y_hi, HEIGHT - PAD, 10)
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">'
                     f"{y_value:,.3g}</text>")  # fmt: skip
        x_value = x_lo + fraction * (x_hi - x_lo)
        x = _scale(x_value, x_lo, x_hi, PAD, WIDTH - 10)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD + 14}" text-anchor="middle" '
                     f'font-size="10">{x_value:,.0f}</text>')  # fmt: skip
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11">'
                 "chunk</text>")  # fmt: skip
    parts.append(f'<text x="12" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 12 '
                 f'{HEIGHT / 2})" text-anchor="middle">{html.escape(y_label)}</text>')  # fmt: skip
    for n, (name, data) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        coordinates = " ".join(
            f"{_scale(x, x_lo, x_hi, PAD, WIDTH - 10):.1f},"
            f"{_scale(y, y_lo, y_hi, HEIGHT - PAD, 10):.1f}"
            for x, y in data
        )
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{coordinates}"/>')  # fmt: skip
        parts.append(f'<text x="{PAD + 10}" y="{22 + 14 * n}" font-size="11" fill="{colour}">'
                     f"{html.escape(name)}</text>")  # fmt: skip
    parts.append("</svg>")
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


def bar_chart(title: str, items: Sequence[tuple[str, int]]) -> str:
    """A horizontal SVG bar chart."""
    if not items:
        return f"<h2>{html.escape(title)}</h2><p>No data yet.</p>"
    top = max(n for _, n in items) or 1
    row = 22
    parts = [f'<svg width="{WIDTH}" height="{row * len(items) + 10}" role="img">']
    for i, (label, n) in enumerate(items):
        width = (WIDTH - 220) * n / top
        y = 5 + i * row
        parts.append(f'<text x="150" y="{y + 14}" text-anchor="end" font-size="11">'
                     f"{html.escape(label)}</text>"
                     f'<rect x="155" y="{y}" width="{width:.1f}" height="{row - 6}" '
                     f'fill="{COLOURS[0]}"/><text x="{160 + width:.1f}" y="{y + 14}" '
                     f'font-size="11">{n:,}</text>')  # fmt: skip
    parts.append("</svg>")
    return f"<h2>{html.escape(title)}</h2>" + "".join(parts)


def _cell(value: object) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def render(data: ReportData, status: Mapping[str, Any]) -> str:
    """The whole page."""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_cell(v))}</td></tr>"
        for k, v in status.items()
    )
    cumulative = {
        f"{p} {ACTION_TYPES[p]}": [(float(c), float(n)) for c, n in s]
        for p, s in data.cumulative.items()
    }
    seconds = {"seconds per chunk": [(float(i), sec) for i, _, sec, _ in data.chunks]}
    lag = {"lag, marker to applied (s)": [(float(i), lag) for i, _, _, lag in data.chunks
                                          if lag is not None]}  # fmt: skip
    invalid = {"invalid rows": [(float(i), float(bad)) for i, bad, _, _ in data.chunks]}
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>txpatterns report</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:720px}"
        "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}</style></head><body><h1>txpatterns report</h1>"
        f"<h2>Summary</h2><table>{rows}</table>"
        + line_chart("Detections per pattern (cumulative)", cumulative, "detections")
        + bar_chart("Top merchants by detections", data.top_merchants)
        + line_chart("Processing time per chunk", seconds, "seconds")
        + line_chart("Lag per chunk", lag, "seconds")
        + line_chart("Invalid rows per chunk", invalid, "rows")
        + "</body></html>\n"
    )
