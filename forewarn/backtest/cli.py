"""``forewarn backtest --scenario FILE [--json] [--report DIR]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HELP = "run a scenario offline through the real core and decision policy, and score it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        required=True,
        metavar="FILE",
        help="scenario TOML file, or the name of a shipped one (quick, realistic-month, stress)",
    )
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--report", type=Path, metavar="DIR", help="write PNG plots and index.html")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cloud.errors import ConfigError
    from forewarn.backtest.metrics import score
    from forewarn.backtest.progress import ProgressBar
    from forewarn.backtest.restock import BacktestError
    from forewarn.backtest.runner import run_backtest
    from simulators.scenario import ScenarioError, load_scenario

    scenario = load_scenario(args.scenario)
    if args.seed is not None:
        if not 0 <= args.seed < 2**63:
            raise ScenarioError(f"--seed must be within [0, 2**63), got {args.seed}")
        scenario = replace(scenario, seed=args.seed)
    if args.report is not None:  # fail before a long run, not after it
        _report_dir(args.report)
    bar = None if args.no_progress else ProgressBar(sys.stderr, f"backtest {scenario.name}")
    t0 = time.monotonic()
    try:
        result = run_backtest(scenario, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    scores = score(result)
    wall_s = time.monotonic() - t0
    if args.report is not None:
        try:
            from forewarn.backtest.report import write_report
        except ImportError as exc:
            raise ConfigError(
                f"--report needs matplotlib: pip install 'forewarn[sim]' ({exc})"
            ) from exc
        try:
            index = write_report(result, scores, args.report)
        except OSError as exc:
            raise BacktestError(f"cannot write the report into {args.report}: {exc}") from exc
        print(f"report: {index}", file=sys.stderr)
    print(f"backtest {scenario.name}: {wall_s:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(scores.as_json()))
    else:
        print(render_text(scores.as_json()))
    return 0


def _report_dir(path: Path) -> None:
    from forewarn.backtest.restock import BacktestError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BacktestError(f"cannot create the report directory {path}: {exc}") from exc


def render_text(scores: dict[str, Any]) -> str:
    """The scores as a fixed-width table for a terminal."""
    lines = [
        f"scenario {scores['scenario']} (seed {scores['seed']}, {scores['days']:g} days, "
        f"dt {scores['dt_s']:g} s, devices {scores['devices']})",
        "",
        f"{'fault':<22}{'injected':>9}{'failed':>8}{'detected':>9}{'before failure':>16}"
        f"{'median lead d':>15}{'p10 lead d':>12}",
    ]
    for name, f in scores["faults"].items():
        pct = f["detected_before_failure_pct"]
        before = f"{f['detected_before_failure']}" + (f" ({pct:g} %)" if pct is not None else "")
        lines.append(
            f"{name:<22}{f['injected']:>9}{f['failed']:>8}{f['detected']:>9}{before:>16}"
            f"{_num(f['median_lead_days']):>15}{_num(f['p10_lead_days']):>12}"
        )
    lines.append("")
    for key in (
        "tickets",
        "false_tickets",
        "false_tickets_on_faulty_devices",
        "false_tickets_per_100_device_years",
        "eta_interval_coverage",
        "eta_intervals_scored",
        "stockouts",
        "baseline_stockouts",
        "stockouts_prevented_pct",
        "stockout_slot_hours",
        "baseline_stockout_slot_hours",
        "restock_visits",
        "baseline_restock_visits",
        "emails",
        "emails_per_customer_month",
    ):
        lines.append(f"{key:>36}: {_num(scores[key])}")
    return "\n".join(lines)


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
