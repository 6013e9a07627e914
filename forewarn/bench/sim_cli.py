"""Arguments of ``forewarn bench sim``; the measurement itself is in ``sim`` (it needs numpy)."""

from __future__ import annotations

import argparse
from typing import Any

from forewarn.argtypes import positive_float, positive_int

HELP = "fridge fleet simulation (10,000 x 30 days at 1 min) against a per-device Python loop"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fridges", type=positive_int, default=10_000, help="fleet size (10000)")
    p.add_argument("--days", type=positive_float, default=30.0, help="simulated days (30)")
    p.add_argument("--dt", type=positive_float, default=60.0, help="sample interval, s (60)")
    p.add_argument(
        "--baseline-fridges", type=positive_int, default=20, help="baseline sample size (20)"
    )
    p.add_argument("--baseline-days", type=positive_float, default=1.0, help="baseline days (1)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from forewarn.bench.sim import run_sim_bench

    return run_sim_bench(
        fridges=args.fridges,
        days=args.days,
        dt_s=args.dt,
        baseline_fridges=args.baseline_fridges,
        baseline_days=args.baseline_days,
        seed=args.seed,
    )
