"""``forewarn bench core``: the fridge model over a large fleet against a per-device Python loop.

Each step every fridge reports one reading of its 8 channels; the timed work is the core's
``fridge.step`` (update of every device's state and the verdict with score, ETA, interval and
contributions for each). The baseline runs the same maths one device at a time in pure Python
(:mod:`forewarn.bench.core_loop`) on a sample of the same data, in the same run, and the two
are checked to agree.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from forewarn.argtypes import positive_int

HELP = "the predictive core: update + score of 100,000 fridges × 8 channels per step"
STEP_MS = 300_000  # five-minute samples
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=positive_int, default=100_000, help="fridges (100000)")
    p.add_argument("--steps", type=positive_int, default=30, help="timed steps (30)")
    p.add_argument(
        "--baseline-devices",
        type=positive_int,
        default=500,
        help="fridges in the per-device Python loop's sample (500)",
    )
    p.add_argument("--seed", type=int, default=1, help="data seed (1)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_core_bench(args.devices, args.steps, args.baseline_devices, args.seed)


class _Readings:
    """Synthetic fridge readings, one step at a time: healthy cycling, defrosts, door
    openings, a few power cuts and a few fridges losing capacity."""

    def __init__(self, n: int, seed: int) -> None:
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.n = n
        self.duty0 = self.rng.uniform(0.25, 0.5, n)
        self.amps0 = self.rng.uniform(0.7, 1.2, n)
        self.room = self.rng.normal(21.0, 1.5, n)
        self.phase = self.rng.integers(0, 96, n)
        self.leak_per_step = np.where(self.rng.random(n) < 0.02, 2e-3, 0.0)

    def at(self, k: int) -> Any:
        np, rng, n = self.np, self.rng, self.n
        daily = np.sin(2 * np.pi * k / 288.0)
        duty = np.clip(self.duty0 + self.leak_per_step * k + rng.normal(0, 0.08, n), 0, 1)
        defrost = ((k + self.phase) % 96 < 5).astype(float)
        mains = (rng.random(n) > 0.001).astype(float)
        duty = np.where((defrost > 0) | (mains < 1), 0.0, duty)
        cab = 4.0 + rng.uniform(-0.5, 0.5, n) + 2.0 * defrost
        values = np.empty((n, 8), dtype=np.float32)
        values[:, 0] = cab
        values[:, 1] = cab - 14.0 * duty
        values[:, 2] = self.room + daily
        values[:, 3] = duty
        values[:, 4] = np.where(duty > 0, self.amps0, 0.0)
        values[:, 5] = np.round(rng.gamma(rng.poisson(0.5, n), 10.0), 1)
        values[:, 6] = defrost
        values[:, 7] = mains
        return values


def run_core_bench(devices: int, steps: int, baseline_devices: int, seed: int) -> dict[str, Any]:
    import numpy as np

    from cloud.batch import TelemetryBatch
    from cloud.core import fridge
    from forewarn.bench.core_loop import LoopFridge

    data = _Readings(devices, seed)
    ids = tuple(f"fr-{i:06d}" for i in range(devices))
    first = data.at(0)
    batch = TelemetryBatch(
        kind="fridge",
        device_ids=ids,
        channels=fridge.CHANNELS,
        row_device=np.arange(devices, dtype=np.int64),
        row_seq=np.zeros(devices, dtype=np.int64),
        ts_ms=np.full(devices, T0_MS, dtype=np.int64),
        values=first.astype(np.float64),
    )
    state, _ = fridge.update(fridge.FridgeState.empty(), batch)  # registers the fleet, untimed
    sample = min(baseline_devices, devices)
    sp, lim, lim_min = fridge.VARIANTS["household"]
    loops = [LoopFridge(sp, lim, lim_min * 60_000.0) for _ in range(sample)]
    rows = first[:sample].astype(np.float64).tolist()
    for loop, row in zip(loops, rows, strict=True):
        loop.fold(T0_MS, row)

    vector_s = 0.0
    loop_s = 0.0
    step_times: list[float] = []
    cond = None
    loop_out: list[Any] = []
    for k in range(1, steps + 1):
        values = data.at(k)
        ts = T0_MS + k * STEP_MS
        t0 = time.perf_counter()
        state, cond = fridge.step(state, ts, values)
        dt = time.perf_counter() - t0
        vector_s += dt
        step_times.append(dt)
        rows = values[:sample].astype(np.float64).tolist()
        t0 = time.perf_counter()
        loop_out = []
        for loop, row in zip(loops, rows, strict=True):
            loop.fold(ts, row)
            loop_out.append(loop.assess())
        loop_s += time.perf_counter() - t0

    if cond is None:
        raise RuntimeError("no step was run")
    loop_score = np.array([o[1] for o in loop_out])
    loop_active = np.array([o[0] for o in loop_out])
    readings = devices * len(fridge.CHANNELS) * steps
    baseline_readings = sample * len(fridge.CHANNELS) * steps
    per_s = readings / vector_s
    baseline_per_s = baseline_readings / loop_s
    step_times.sort()
    return {
        "devices": devices,
        "channels": len(fridge.CHANNELS),
        "steps": steps,
        "readings_per_s": round(per_s),
        "median_step_ms": round(1000 * step_times[len(step_times) // 2], 2),
        "state_bytes_per_device": round(state.state_bytes / devices, 1),
        "baseline": "per-device pure-Python loop of the same model (forewarn.bench.core_loop)",
        "baseline_devices": sample,
        "baseline_readings_per_s": round(baseline_per_s),
        "speedup": round(per_s / baseline_per_s, 1),
        "baseline_max_score_diff": float(np.max(np.abs(loop_score - cond.score[:sample]))),
        "baseline_same_verdicts": bool(np.array_equal(loop_active, cond.active[:sample])),
        "active_devices": int(cond.active.sum()),
    }
