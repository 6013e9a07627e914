"""``forewarn backtest --scenario FILE [--json] [--report DIR]``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from cloud.errors import ConfigError

HELP = "run a scenario offline through the real core and decision policy, and score it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--scenario",
        required=True,
        metavar="FILE",
        help="scenario TOML file, or the name of a shipped one (quick, realistic-month, stress)",
    )
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="override the scenario's seed")
    seed.add_argument(
        "--seeds",
        type=_seed_list,
        metavar="A,B,...",
        help="run the scenario once per seed and score the runs each and pooled",
    )
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument("--report", type=Path, metavar="DIR", help="write PNG plots and index.html")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from forewarn.backtest.metrics import score
    from forewarn.backtest.restock import BacktestError
    from simulators.scenario import ScenarioError, load_scenario

    scenario = load_scenario(args.scenario)
    seeds: list[int] = args.seeds or ([args.seed] if args.seed is not None else [scenario.seed])
    for seed in seeds:
        if not 0 <= seed < 2**63:
            raise ScenarioError(f"seeds must be within [0, 2**63), got {seed}")
    if args.seeds is not None:
        return _run_seeds(args, scenario, seeds)
    scenario = replace(scenario, seed=seeds[0])
    if args.report is not None:  # fail before a long run, not after it
        _report_dir(args.report)
    t0 = time.monotonic()
    result = _run_one(scenario, args.no_progress)
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


def _run_one(scenario: Any, no_progress: bool) -> Any:
    from forewarn.backtest.progress import ProgressBar
    from forewarn.backtest.runner import run_backtest

    label = f"backtest {scenario.name} (seed {scenario.seed})"
    bar = None if no_progress else ProgressBar(sys.stderr, label)
    try:
        return run_backtest(scenario, progress=bar)
    finally:
        if bar is not None:
            bar.close()


def _run_seeds(args: argparse.Namespace, scenario: Any, seeds: list[int]) -> int:
    """One run per seed; each scored on its own, then all of them pooled."""
    from dataclasses import replace

    from forewarn.backtest.metrics import pooled_score, score

    if args.report is not None:
        raise ConfigError("--report draws one run: give --seed, not --seeds")
    t0 = time.monotonic()
    runs = [_run_one(replace(scenario, seed=seed), args.no_progress) for seed in seeds]
    each = [score(r).as_json() for r in runs]
    pooled = pooled_score(runs).as_json()
    wall_s = time.monotonic() - t0
    print(f"backtest {scenario.name}: {len(runs)} seeds, {wall_s:.1f} s", file=sys.stderr)
    if args.json:
        print(json.dumps({"runs": each, "pooled": pooled}))
    else:
        print(render_seeds(each, pooled))
    return 0


def _seed_list(text: str) -> list[int]:
    """``--seeds 20260105,1,2``: distinct integers, at least two."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds are integers separated by commas, got {text!r}"
        ) from None
    if len(seeds) < 2:
        raise argparse.ArgumentTypeError(f"give two seeds or more (or --seed), got {text!r}")
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"each seed once, got {text!r}")
    return seeds


def _report_dir(path: Path) -> None:
    from forewarn.backtest.restock import BacktestError

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BacktestError(f"cannot create the report directory {path}: {exc}") from exc


SEED_FIGURES: tuple[str, ...] = (
    "false_tickets",
    "eta_interval_coverage",
    "stockouts",
    "baseline_stockouts",
    "stockouts_prevented_pct",
    "restock_visits",
    "baseline_restock_visits",
)


def render_seeds(each: list[dict[str, Any]], pooled: dict[str, Any]) -> str:
    """A line of key figures per seed, then the pooled scores' table."""
    head = f"{'seed':>20}" + "".join(f"{k:>{max(len(k), 8) + 2}}" for k in SEED_FIGURES)
    lines = [head]
    for s in each:
        row = f"{s['seed']:>20}"
        row += "".join(f"{_num(s[k]):>{max(len(k), 8) + 2}}" for k in SEED_FIGURES)
        lines.append(row)
    return "\n".join(lines) + "\n\npooled over the seeds\n" + render_text(pooled)


def render_text(scores: dict[str, Any]) -> str:
    """The scores as a fixed-width table for a terminal."""
    seed = (
        f"seed {scores['seed']}"
        if "seed" in scores
        else "seeds " + ", ".join(str(s) for s in scores["seeds"])
    )
    lines = [
        f"scenario {scores['scenario']} ({seed}, {scores['days']:g} days, "
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
