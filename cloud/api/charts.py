"""Server-rendered SVG line charts of one channel: mean line, min–max band, fault onset, ETA band.

Rendered as text with every label escaped, so pages need no chart library and no script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 200
PAD_L: Final = 48
PAD_R: Final = 12
PAD_T: Final = 12
PAD_B: Final = 24


@dataclass(frozen=True, slots=True)
class ChartSeries:
    channel: str
    ts_ms: list[int]
    mean: list[float | None]
    min: list[float | None]
    max: list[float | None]


@dataclass(frozen=True, slots=True)
class Marks:
    """Times to draw over the data: when a fault began and when it is predicted to bite."""

    onset_ms: int | None = None
    eta_ms: int | None = None
    eta_lo_ms: int | None = None
    eta_hi_ms: int | None = None


def _fmt_day(ts_ms: float) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%d %b %H:%M")


def _fmt_value(v: float) -> str:
    return f"{v:.4g}"


def render_chart(series: ChartSeries, marks: Marks = Marks()) -> str:
    """An ``<svg>`` element; a series without finite readings says so instead of a line."""
    points = [
        (t, m, lo if lo is not None else m, hi if hi is not None else m)
        for t, m, lo, hi in zip(series.ts_ms, series.mean, series.min, series.max, strict=True)
        if m is not None and math.isfinite(m)
    ]
    label = escape(series.channel)
    head = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{label}" data-channel="{label}" data-points="{len(points)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    )
    if not points:
        return (
            f'{head}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
            f'class="empty">no readings of {label}</text></svg>'
        )
    t0 = points[0][0]
    t1 = points[-1][0]
    for extra in (marks.onset_ms, marks.eta_ms, marks.eta_hi_ms):
        if extra is not None:
            # Show the predicted future, but not so far that the data shrinks to a sliver.
            t1 = max(t1, min(extra, t1 + 2 * max(t1 - t0, 1)))
            t0 = min(t0, extra)
    t1 = max(t1, t0 + 1)
    v0 = min(p[2] for p in points)
    v1 = max(p[3] for p in points)
    if v1 - v0 < 1e-9:
        v0, v1 = v0 - 1, v1 + 1
    span_v = v1 - v0
    v0, v1 = v0 - 0.05 * span_v, v1 + 0.05 * span_v

    def x(t: float) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * (WIDTH - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (v1 - v) / (v1 - v0) * (HEIGHT - PAD_T - PAD_B)

    parts = [head]
    bottom, top = HEIGHT - PAD_B, PAD_T
    if marks.eta_lo_ms is not None and marks.eta_hi_ms is not None:
        lo_x = max(PAD_L, x(marks.eta_lo_ms))
        hi_x = min(WIDTH - PAD_R, x(marks.eta_hi_ms))
        if hi_x > lo_x:
            parts.append(
                f'<rect class="eta-band" x="{lo_x:.1f}" y="{top}" width="{hi_x - lo_x:.1f}" '
                f'height="{bottom - top}"><title>ETA interval {_fmt_day(marks.eta_lo_ms)} – '
                f"{_fmt_day(marks.eta_hi_ms)}</title></rect>"
            )
    band = " ".join(f"{x(t):.1f},{y(hi):.1f}" for t, _m, _lo, hi in points)
    band += " " + " ".join(f"{x(t):.1f},{y(lo):.1f}" for t, _m, lo, _hi in reversed(points))
    parts.append(f'<polygon class="range" points="{band}"/>')
    line = " ".join(f"{x(t):.1f},{y(m):.1f}" for t, m, _lo, _hi in points)
    parts.append(f'<polyline class="line" points="{line}"/>')
    for cls, ts, text in (
        ("onset", marks.onset_ms, "fault onset"),
        ("eta", marks.eta_ms, "predicted"),
    ):
        if ts is not None and t0 <= ts <= t1:
            parts.append(
                f'<line class="{cls}" x1="{x(ts):.1f}" x2="{x(ts):.1f}" y1="{top}" y2="{bottom}">'
                f"<title>{text} {_fmt_day(ts)}</title></line>"
            )
    for v in (v0 + 0.05 * (v1 - v0), (v0 + v1) / 2, v1 - 0.05 * (v1 - v0)):
        parts.append(
            f'<text class="tick" x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{_fmt_value(v)}</text>"
        )
    for t, anchor in ((t0, "start"), (t1, "end")):
        parts.append(
            f'<text class="tick" x="{x(t):.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
            f"{_fmt_day(t)}</text>"
        )
    parts.append(
        f'<rect class="frame" x="{PAD_L}" y="{top}" width="{WIDTH - PAD_L - PAD_R}" '
        f'height="{bottom - top}"/></svg>'
    )
    return "".join(parts)
