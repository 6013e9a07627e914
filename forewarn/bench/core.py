"""``forewarn bench core``: the fridge model over a large fleet against two baselines.

Each step every fridge reports one reading of its 8 channels; the timed work is the core's
``fridge.step`` (update of every device's state and the verdict with score, ETA, interval and
contributions for each). Two baselines run in the same run on a sample of the same data:

* ``river``: river's ``anomaly.HalfSpaceTrees``, one model per sampled fridge, fed each reading
  as one dict of the 8 channels scaled to [0, 1] by the fridge profile's channel ranges
  (``score_one`` then ``learn_one``);
* ``loop``: the same maths as the core, one device at a time in pure Python
  (:mod:`forewarn.bench.core_loop`), checked to agree with the vectorised model.

``baseline``, ``baseline_readings_per_s`` and ``speedup`` name the river baseline when it ran
(the one issue 4 names first) and the loop otherwise; the loop's own figures are always under
``loop_baseline_*`` and river's under ``river_baseline_*`` / ``speedup_vs_river``.
"""

from __future__ import annotations

import argparse
import copy
import time
import tracemalloc
from typing import Any

from forewarn.argtypes import positive_int

HELP = "the predictive core: update + score of 100,000 fridges × 8 channels per step"
STEP_MS = 300_000  # five-minute samples
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
BASELINES = ("loop", "river", "both")
RIVER_MODEL = "river.anomaly.HalfSpaceTrees"
# river's defaults; before timing each model learns one window of its fridge's history, because
# HalfSpaceTrees returns 0 without walking its trees until its first window is full.
RIVER_TREES = 10
RIVER_HEIGHT = 8
RIVER_WINDOW = 250


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--devices", type=positive_int, default=100_000, help="fridges (100000)")
    p.add_argument("--steps", type=positive_int, default=30, help="timed steps (30)")
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        default="both",
        help="baselines to run: river's HalfSpaceTrees, the per-device Python loop, or both "
        "(both; river comes with the dev extra)",
    )
    p.add_argument(
        "--baseline-devices",
        type=positive_int,
        default=500,
        help="fridges in the per-device Python loop's sample (500)",
    )
    p.add_argument(
        "--river-devices",
        type=positive_int,
        default=50,
        help="fridges in the river baseline's sample, one HalfSpaceTrees each (50)",
    )
    p.add_argument("--seed", type=int, default=1, help="data seed (1)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    return run_core_bench(
        args.devices,
        args.steps,
        args.baseline_devices,
        args.seed,
        baseline=args.baseline,
        river_devices=args.river_devices,
    )


class _Readings:
    """Synthetic fridge readings, one step at a time: healthy cycling, defrosts, door
    openings, a few power cuts and a few fridges losing capacity from step 0 on."""

    def __init__(self, rng: Any, duty0: Any, amps0: Any, room: Any, phase: Any, leak: Any) -> None:
        import numpy as np

        self.np = np
        self.rng = rng
        self.n = len(duty0)
        self.duty0, self.amps0, self.room, self.phase = duty0, amps0, room, phase
        self.leak_per_step = leak

    @classmethod
    def fleet(cls, n: int, seed: int) -> _Readings:
        import numpy as np

        rng = np.random.default_rng(seed)
        return cls(
            rng,
            rng.uniform(0.25, 0.5, n),
            rng.uniform(0.7, 1.2, n),
            rng.normal(21.0, 1.5, n),
            rng.integers(0, 96, n),
            np.where(rng.random(n) < 0.02, 2e-3, 0.0),
        )

    def head(self, rows: int, seed: int) -> _Readings:
        """The first ``rows`` fridges with their own parameters and a random stream of their
        own: their history before step 0, without drawing the whole fleet's."""
        sl = slice(0, rows)
        return _Readings(
            self.np.random.default_rng(seed),
            self.duty0[sl],
            self.amps0[sl],
            self.room[sl],
            self.phase[sl],
            self.leak_per_step[sl],
        )

    def at(self, k: int) -> Any:
        np, rng, n = self.np, self.rng, self.n
        daily = np.sin(2 * np.pi * k / 288.0)
        leak = self.leak_per_step * max(k, 0)
        duty = np.clip(self.duty0 + leak + rng.normal(0, 0.08, n), 0, 1)
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


class _RiverBaseline:
    """One river HalfSpaceTrees per sampled fridge; readings become dicts scaled to [0, 1] by
    the fridge profile's channel ranges (untimed), and ``score_one`` + ``learn_one`` are timed."""

    def __init__(self, anomaly: Any, sample: int, seed: int) -> None:
        import numpy as np

        from cloud.core import fridge
        from firmware_specs import load_profile

        ranges = {c["name"]: (c["min"], c["max"]) for c in load_profile("fridge")["channels"]}
        self.np = np
        self.names = fridge.CHANNELS
        self.low = np.array([ranges[c][0] for c in self.names], dtype=np.float64)
        self.span = np.array([ranges[c][1] - ranges[c][0] for c in self.names], dtype=np.float64)
        self.models = [
            anomaly.HalfSpaceTrees(
                n_trees=RIVER_TREES, height=RIVER_HEIGHT, window_size=RIVER_WINDOW, seed=seed + i
            )
            for i in range(sample)
        ]
        self.sample = sample
        self.seconds = 0.0
        self.scored = 0
        self.score_sum = 0.0
        self.max_score = 0.0

    def dicts(self, values: Any) -> list[dict[str, float]]:
        np = self.np
        scaled = np.clip((values[: self.sample] - self.low) / self.span, 0.0, 1.0)
        return [dict(zip(self.names, row, strict=True)) for row in scaled.tolist()]

    def warm_up(self, history: _Readings, first: Any) -> None:
        """Learn a window of each fridge's history, then the registration reading."""
        readings = [history.at(k) for k in range(-RIVER_WINDOW, 0)] + [first]
        for values in readings:
            for model, x in zip(self.models, self.dicts(values), strict=True):
                model.learn_one(x)

    def state_bytes(self) -> int:
        """Memory one warmed-up model holds: what a deep copy of it allocates."""
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            clone = copy.deepcopy(self.models[0])
            size = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        del clone
        return int(size)

    def step(self, values: Any) -> None:
        xs = self.dicts(values)
        scores: list[float] = []
        t0 = time.perf_counter()
        for model, x in zip(self.models, xs, strict=True):
            scores.append(model.score_one(x))
            model.learn_one(x)
        self.seconds += time.perf_counter() - t0
        for s in scores:
            if 0.0 <= s <= 1.0:  # NaN or out-of-range scores are not counted as scored
                self.scored += 1
                self.score_sum += s
                self.max_score = max(self.max_score, s)


def _import_river(baseline: str) -> Any:
    """river's ``anomaly`` module, or None when ``both`` was asked for and river is absent."""
    try:
        from river import anomaly
    except ImportError as exc:
        if baseline == "both":
            return None
        from cloud.errors import ConfigError

        raise ConfigError(
            "the river baseline needs river (pip install 'forewarn[dev]' or 'river'); "
            "or run with --baseline loop"
        ) from exc
    return anomaly


def run_core_bench(
    devices: int,
    steps: int,
    baseline_devices: int,
    seed: int,
    *,
    baseline: str = "both",
    river_devices: int = 50,
) -> dict[str, Any]:
    """Time ``fridge.step`` over ``devices`` fridges for ``steps`` steps against the baselines
    named by ``baseline`` (``loop``, ``river`` or ``both``) on samples of the same readings."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
    import numpy as np

    from cloud.batch import TelemetryBatch
    from cloud.core import fridge
    from forewarn.bench.core_loop import LoopFridge

    anomaly = _import_river(baseline) if baseline in ("river", "both") else None
    data = _Readings.fleet(devices, seed)
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
    run_loop = baseline in ("loop", "both")
    sample = min(baseline_devices, devices) if run_loop else 0
    sp, lim, lim_min = fridge.VARIANTS["household"]
    loops = [LoopFridge(sp, lim, lim_min * 60_000.0) for _ in range(sample)]
    rows = first[:sample].astype(np.float64).tolist()
    for loop, row in zip(loops, rows, strict=True):
        loop.fold(T0_MS, row)
    river = None
    if anomaly is not None:
        river = _RiverBaseline(anomaly, min(river_devices, devices), seed)
        river.warm_up(data.head(river.sample, seed + 1), first)

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
        if river is not None:
            river.step(values)
        rows = values[:sample].astype(np.float64).tolist()
        t0 = time.perf_counter()
        loop_out = []
        for loop, row in zip(loops, rows, strict=True):
            loop.fold(ts, row)
            loop_out.append(loop.assess())
        loop_s += time.perf_counter() - t0

    if cond is None:
        raise RuntimeError("no step was run")
    channels = len(fridge.CHANNELS)
    per_s = devices * channels * steps / vector_s
    step_times.sort()
    result: dict[str, Any] = {
        "devices": devices,
        "channels": channels,
        "steps": steps,
        "readings_per_s": round(per_s),
        "median_step_ms": round(1000 * step_times[len(step_times) // 2], 2),
        "state_bytes_per_device": round(state.state_bytes / devices, 1),
        "active_devices": int(cond.active.sum()),
    }
    if river is not None:
        from importlib.metadata import version

        river_per_s = river.sample * channels * steps / river.seconds
        result.update(
            baseline=RIVER_MODEL,
            baseline_devices=river.sample,
            baseline_readings_per_s=round(river_per_s),
            speedup=round(per_s / river_per_s, 1),
            river_baseline=f"{RIVER_MODEL} (river {version('river')}), one per fridge: "
            f"{RIVER_TREES} trees, height {RIVER_HEIGHT}, window {RIVER_WINDOW}, warmed up "
            "untimed; inputs scaled to [0, 1] by the profile's channel ranges",
            river_baseline_devices=river.sample,
            river_baseline_readings_per_s=round(river_per_s),
            speedup_vs_river=round(per_s / river_per_s, 1),
            river_scored_rows=river.scored,
            river_mean_score=round(river.score_sum / max(river.scored, 1), 4),
            river_max_score=round(river.max_score, 4),
            river_state_bytes_per_device=river.state_bytes(),
        )
    elif baseline == "both":
        result["river_baseline_skipped"] = "river is not installed (pip install river)"
    if run_loop:
        loop_score = np.array([o[1] for o in loop_out])
        loop_active = np.array([o[0] for o in loop_out], dtype=bool)
        loop_per_s = sample * channels * steps / loop_s
        loop_figures = {
            "loop_baseline": "per-device pure-Python loop of the same model "
            "(forewarn.bench.core_loop)",
            "loop_baseline_devices": sample,
            "loop_baseline_readings_per_s": round(loop_per_s),
            "loop_baseline_speedup": round(per_s / loop_per_s, 1),
            "loop_baseline_max_score_diff": float(np.max(np.abs(loop_score - cond.score[:sample]))),
            "loop_baseline_same_verdicts": bool(np.array_equal(loop_active, cond.active[:sample])),
        }
        result.update(loop_figures)
        if river is None:
            result.update(
                baseline=loop_figures["loop_baseline"],
                baseline_devices=sample,
                baseline_readings_per_s=loop_figures["loop_baseline_readings_per_s"],
                speedup=loop_figures["loop_baseline_speedup"],
            )
    return result
