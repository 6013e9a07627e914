"""``forewarn bench sim``: its figures, and that its baseline runs the same fridge model."""

from __future__ import annotations

import numpy as np
import pytest

from forewarn.bench.sim import START_MS, ScalarFridges, run_sim_bench
from simulators.fridge import CHANNELS, FridgeFleet

DAY_MS = 86_400_000


def test_bench_reports_its_figures_against_a_baseline() -> None:
    result = run_sim_bench(
        fridges=50, days=0.05, dt_s=60.0, baseline_fridges=3, baseline_days=0.02, seed=1
    )
    assert result["steps"] == 72
    assert result["device_samples"] == 50 * 72
    for key in ("device_days_per_s", "baseline_device_days_per_s", "speedup", "wall_s"):
        assert result[key] > 0, key
    assert result["peak_rss_delta_mb"] >= 0
    assert -30.0 < result["mean_cabinet_c"] < 10.0


def test_scalar_baseline_behaves_like_the_vectorized_fleet() -> None:
    def fleet() -> FridgeFleet:
        return FridgeFleet(30, START_MS, np.random.default_rng(4), 0.0, 30 * DAY_MS)

    vector, scalar_fleet = fleet(), fleet()
    scalar = ScalarFridges(scalar_fleet, seed=4)
    rows_v, rows_s = [], []
    for k in range(1, 1440 + 1):
        ts = START_MS + k * 60_000
        rows_v.append(vector.step(ts, 60.0).values.copy())
        rows_s.append(np.array(scalar.step(ts, 60.0)))
    v, s = np.stack(rows_v), np.stack(rows_s)
    for name, tolerance in (("cabinet_c", 0.15), ("compressor_on", 0.03), ("evap_c", 0.5)):
        c = CHANNELS.index(name)
        assert s[:, :, c].mean() == pytest.approx(v[:, :, c].mean(), abs=tolerance), name
    defrost = CHANNELS.index("defrost_on")
    assert np.allclose(s[:, :, defrost], v[:, :, defrost], atol=1e-6)
    door = CHANNELS.index("door_open_s")
    assert (s[:, :, door] > 0).mean() == pytest.approx((v[:, :, door] > 0).mean(), rel=0.15)
