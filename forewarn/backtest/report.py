"""``--report DIR``: PNG plots of a backtest run and an ``index.html`` showing them with scores.

matplotlib draws with its object API on Agg figures (no pyplot, no global figure state, no
display); jinja2 renders the page with autoescape on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from forewarn.backtest.ledger import TicketRecord
from forewarn.backtest.metrics import (
    DAY_MS,
    BacktestScore,
    FaultMatch,
    family_of,
    match,
)
from forewarn.backtest.runner import BacktestRun, Timeline

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
MAX_PANELS: Final = 6
PANEL_CHANNEL: Final = {
    "refrigerant_leak": "cabinet_c",
    "condenser_fouling": "cabinet_c",
    "compressor_failure": "cabinet_c",
    "cooling_failure": "cabinet_c",
    "jammed_coil": "failed_vends",
    "payment_reader": "failed_vends",
}
COLOURS: Final = {"onset": "#e69f00", "ticket": "#0072b2", "failure": "#d55e00"}


def write_report(run: BacktestRun, scores: BacktestScore, out_dir: Path) -> Path:
    """Write the plots and ``index.html`` into ``out_dir`` (created); return the page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    matches, false = match(run.labels, run.tickets, run.decisions)
    plots = {
        "timelines.png": _timelines(run, matches, out_dir / "timelines.png"),
        "lead_times.png": _lead_times(matches, out_dir / "lead_times.png"),
        "precision_recall.png": _precision_recall(matches, run, out_dir / "precision_recall.png"),
        "threshold.png": _threshold(matches, false, out_dir / "threshold.png"),
        "restock.png": _restock(scores, out_dir / "restock.png"),
    }
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    page = env.get_template("report.html").render(
        scores=scores.as_json(),
        description=run.scenario.description,
        plots=plots,
        false_tickets=[
            {
                "device_id": t.device_id,
                "fault": t.fault,
                "opened_day": round((t.opened_ms - run.scenario.start_ms) / DAY_MS, 2),
                "severity": t.severity,
            }
            for t in false[:50]
        ],
        false_total=len(false),
    )
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _figure(rows: int, cols: int, **kwargs: Any) -> tuple[Figure, Any]:
    fig = Figure(figsize=kwargs.pop("figsize"))
    return fig, fig.subplots(rows, cols, **kwargs)


def _day(ts_ms: float, start_ms: int) -> float:
    return (ts_ms - start_ms) / DAY_MS


def _pick_panels(matches: Sequence[FaultMatch], recorded: dict[str, set[str]]) -> list[FaultMatch]:
    """One recorded device per fault kind, at most ``MAX_PANELS``.

    Failed and detected faults come first, and the product kinds take turns.
    """
    ranked = sorted(
        matches,
        key=lambda m: (m.label.failure_ms is None, not m.detected, m.label.device_id),
    )
    per_kind: dict[str, list[FaultMatch]] = {}
    seen: set[str] = set()
    for m in ranked:
        lb = m.label
        if lb.fault in seen or lb.device_id not in recorded.get(lb.kind, set()):
            continue
        if lb.kind == "tyres" and lb.component not in ("fl", "fr", "rl", "rr"):
            continue  # tread is sampled daily and not kept in the timelines
        seen.add(lb.fault)
        per_kind.setdefault(lb.kind, []).append(m)
    chosen: list[FaultMatch] = []
    queues = [per_kind[k] for k in ("fridge", "tyres", "vending") if k in per_kind]
    while queues and len(chosen) < MAX_PANELS:
        for queue in list(queues):
            if len(chosen) < MAX_PANELS:
                chosen.append(queue.pop(0))
            if not queue:
                queues.remove(queue)
    return chosen


def _timelines(run: BacktestRun, matches: Sequence[FaultMatch], path: Path) -> str:
    recorded = {k: set(t.device_ids) for k, t in run.timelines.items()}
    panels = _pick_panels(matches, recorded)
    start_ms = run.scenario.start_ms
    n = max(1, len(panels))
    fig, axes = _figure(n, 1, figsize=(10, 0.8 + 2.3 * n), squeeze=False, sharex=True)
    if not panels:
        axes[0][0].text(0.5, 0.5, "no injected fault on a recorded device", ha="center")
        axes[0][0].set_axis_off()
    for ax, m in zip(axes[:, 0], panels, strict=False):
        _panel(ax, run.timelines[m.label.kind], m, start_ms)
    axes[-1][0].set_xlabel("day of the run")
    axes[-1][0].set_xlim(0, run.scenario.days)
    handles = [
        Line2D([], [], color="#444444", lw=1, label="signal (left axis)"),
        Line2D([], [], color="#56b4e9", lw=1, label="compressor duty, 24 h mean (right axis)"),
        Patch(color=COLOURS["ticket"], alpha=0.15, label="first 80 % ETA interval"),
        Line2D([], [], color=COLOURS["onset"], ls="--", label="fault onset"),
        Line2D([], [], color=COLOURS["ticket"], ls="-.", lw=1.6, label="ticket opened"),
        Line2D([], [], color=COLOURS["failure"], lw=1.6, label="failure"),
    ]
    fig.legend(handles=handles, loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.55 / (0.8 + 2.3 * n)))
    fig.savefig(path, dpi=110)
    return (
        "Sample devices with an injected fault: when it began, when a ticket opened, when it "
        "failed, and the first 80 % ETA interval (an arrow marks an interval off the chart)"
    )


def _panel(ax: Any, timeline: Timeline, m: FaultMatch, start_ms: int) -> None:
    lb = m.label
    device = timeline.device_ids.index(lb.device_id)
    channel = PANEL_CHANNEL.get(lb.fault, "cabinet_c")
    if lb.kind == "tyres":
        channel = f"{lb.component}.pressure_kpa"
    c = timeline.channels.index(channel)
    days = (timeline.ts_ms - start_ms) / DAY_MS
    ax.plot(days, timeline.values[:, device, c], color="#444444", lw=0.9)
    if "compressor_on" in timeline.channels:
        duty = timeline.values[:, device, timeline.channels.index("compressor_on")]
        width = max(1, round(86_400_000 / max(float(np.median(np.diff(timeline.ts_ms))), 1.0)))
        if duty.shape[0] >= width:
            mean = np.convolve(np.nan_to_num(duty), np.ones(width) / width, mode="valid")
            right = ax.twinx()
            right.plot(days[width - 1 :], mean, color="#56b4e9", lw=1.0)
            right.set_ylim(0, 1.05)
            right.set_ylabel("duty", fontsize=8, color="#56b4e9")
            right.tick_params(labelsize=7, colors="#56b4e9")
    end_day = _day(float(timeline.ts_ms[-1]), start_ms) if timeline.ts_ms.size else 0.0
    eta = m.first_eta
    if eta is not None and eta.eta_lo_ms is not None:
        lo = _day(eta.eta_lo_ms, start_ms)
        hi = _day(eta.eta_hi_ms if eta.eta_hi_ms is not None else eta.eta_lo_ms, start_ms)
        ax.axvspan(lo, max(hi, lo + 0.02), color=COLOURS["ticket"], alpha=0.15)
        if lo > end_day:
            ax.annotate(f"ETA interval from day {lo:.1f} →", xy=(0.98, 0.08),
                        xycoords="axes fraction", ha="right", fontsize=7,
                        color=COLOURS["ticket"])  # fmt: skip
    ax.axvline(_day(lb.onset_ms, start_ms), color=COLOURS["onset"], ls="--")
    if lb.failure_ms is not None:
        ax.axvline(_day(lb.failure_ms, start_ms), color=COLOURS["failure"], lw=1.6)
    if m.ticket is not None:  # drawn last: a ticket at the failure time stays visible
        ax.axvline(_day(m.ticket.opened_ms, start_ms), color=COLOURS["ticket"], ls="-.", lw=1.6)
    where = f" {lb.component}" if lb.component else ""
    if m.ticket is None:
        found = "no ticket"
    elif lb.failure_ms is None:
        found = "ticketed; no failure within the run"
    else:
        found = "ticketed before failure" if m.before_failure else "ticketed after failure"
    ax.set_title(f"{lb.device_id}: {lb.fault}{where} ({found})", fontsize=9, loc="left")
    ax.set_ylabel(channel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _lead_times(matches: Sequence[FaultMatch], path: Path) -> str:
    leads: dict[str, list[float]] = {}
    for m in matches:
        if m.lead_days is not None:
            leads.setdefault(m.label.fault, []).append(m.lead_days)
    fig, ax = _figure(1, 1, figsize=(8, 4))
    if leads:
        top = max(max(v) for v in leads.values())
        bins = np.linspace(0.0, max(top, 1.0), 25).tolist()
        names = sorted(leads)
        palette = colormaps["tab20"]
        colours = [palette(i % palette.N) for i in range(len(names))]
        ax.hist([leads[k] for k in names], bins=bins, stacked=True, label=names, color=colours)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no fault was ticketed before it failed", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlabel("lead time: failure minus ticket (days)")
    ax.set_ylabel("faults")
    ax.set_title("Lead time of faults ticketed before they failed")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return "How long before the failure the ticket opened, per fault kind"


def _precision_recall(matches: Sequence[FaultMatch], run: BacktestRun, path: Path) -> str:
    families = sorted(
        {family_of(m.expected) for m in matches if m.expected}
        | {family_of(t.fault) for t in run.tickets}
    )
    true_tickets = {m.ticket.decision_id for m in matches if m.ticket is not None}
    rows = []
    for fam in families:
        tickets = [t for t in run.tickets if family_of(t.fault) == fam]
        faults = [m for m in matches if m.expected and family_of(m.expected) == fam]
        failed = [m for m in faults if m.label.failure_ms is not None]
        precision = (
            sum(1 for t in tickets if t.decision_id in true_tickets) / len(tickets)
            if tickets
            else np.nan
        )
        recall = sum(1 for m in faults if m.detected) / len(faults) if faults else np.nan
        early = sum(1 for m in failed if m.before_failure) / len(failed) if failed else np.nan
        rows.append((fam, precision, recall, early))
    fig, ax = _figure(1, 1, figsize=(9, 4))
    x = np.arange(len(rows))
    series = (
        ("precision: tickets that answer a fault", "#0072b2"),
        ("recall: injected faults ticketed", "#009e73"),
        ("failed faults ticketed before failure", "#d55e00"),
    )
    for i, (name, colour) in enumerate(series):
        values = [r[i + 1] for r in rows]
        bars = ax.bar(x + (i - 1) * 0.27, np.nan_to_num(values), 0.27, label=name, color=colour)
        ax.bar_label(bars, labels=["n/a" if v != v else f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(x, [r[0] for r in rows], rotation=15, fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("share")
    ax.set_title("Per fault family: tickets that were right, faults that were found", pad=4)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return "Precision and recall of tickets per fault family (no bar: nothing to count)"


def _threshold(matches: Sequence[FaultMatch], false: Sequence[TicketRecord], path: Path) -> str:
    """Precision and recall had tickets needed at least a given score to open (post hoc)."""
    true_scores = np.array([m.ticket.score for m in matches if m.ticket is not None])
    false_scores = np.array([t.score for t in false])
    thresholds = np.linspace(0.0, 1.0, 41)
    kept_true = np.array([(true_scores >= th).sum() for th in thresholds], dtype=np.float64)
    kept_false = np.array([(false_scores >= th).sum() for th in thresholds], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(
            kept_true + kept_false > 0, kept_true / (kept_true + kept_false), np.nan
        )
    recall = kept_true / len(matches) if matches else np.full(thresholds.shape, np.nan)
    fig, ax = _figure(1, 1, figsize=(8, 3.6))
    ax.plot(thresholds, precision, color="#0072b2", label="precision: tickets that answer a fault")
    ax.plot(thresholds, recall, color="#009e73", label="recall: injected faults ticketed")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("least score a ticket's opening decision must have")
    ax.set_ylabel("share")
    ax.set_title("All families: a stricter score threshold, applied after the fact")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return (
        "Precision and recall over all families if tickets had needed a higher score to open, "
        "estimated from the tickets this run opened (a stricter policy would also open later)"
    )


def _restock(scores: BacktestScore, path: Path) -> str:
    fig, axes = _figure(1, 2, figsize=(8, 3.4))
    labels = ("weekly schedule", "restock decisions")
    colours = ("#999999", "#0072b2")
    for ax, title, values in (
        (axes[0], "slot stock-outs", (scores.baseline_stockouts, scores.stockouts)),
        (axes[1], "restock visits", (scores.baseline_restock_visits, scores.restock_visits)),
    ):
        bars = ax.bar(labels, values, color=colours)
        ax.bar_label(bars)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Vending: the same machines under a weekly route and under restock decisions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return "Stock-outs and visits: weekly route against visits ordered by restock decisions"
