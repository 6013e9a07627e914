"""Statistical checks that the models do what they claim: gas law, leaks, hysteresis, demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators import MixedFleet
from simulators.calibration import CALIBRATION_FILE, fit, load_calibration, read_sales
from simulators.climate import local_day, weekday
from simulators.cooling import thermostat
from simulators.fridge import FridgeFleet
from simulators.tyres import ATMOSPHERE_KPA, CHANNELS, KELVIN, POSITIONS, TyreFleet
from simulators.vending import CHANNELS as VENDING_CHANNELS
from simulators.vending import LOCATIONS, SLOTS, WEEKDAY_PROFILE, VendingFleet

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
DAY_MS = 86_400_000
REPO = Path(__file__).resolve().parents[2]
SALES_CSV = REPO.parent / "shared" / "data" / "vending" / "vending_machine_sales.csv"
WEEKDAY_TOLERANCE = 0.12  # absolute, on profiles normalised to a weekly mean of 1


def one(n: int, value: float) -> np.ndarray:
    return np.full(n, value)


def test_thermostat_holds_its_band_and_cycles_as_the_energy_balance_says() -> None:
    # One cabinet, constant 20 W load, 80 W compressor, C = 1e5 J/K, band 3.5..4.5 °C.
    n, dt_s = 1, 60.0
    temp, on = one(n, 4.0), np.zeros(n, dtype=bool)
    args = (one(n, 4.5), one(n, 3.5), one(n, 20.0), one(n, 80.0), one(n, 1e5), one(n, 1.0))
    temps, relay, calls = [], [], []
    for _ in range(24 * 60):
        step = thermostat(temp, on, *args, dt_s)
        temp, on = step.cabinet_c, step.on
        temps.append(float(temp[0]))
        relay.append(bool(on[0]))
        calls.append(float(step.calls[0]))
    t = np.array(temps)
    assert t.min() >= 3.5 - 1e-9
    assert t.max() <= 4.5 + 1e-9
    # Duty = load / capacity; period = band·C·(1/(cap − load) + 1/load) = 1e5·(1/60 + 1/20) s.
    assert np.mean(calls) == pytest.approx(20.0 / 80.0, abs=0.01)
    switches_on = np.flatnonzero(np.diff(np.array(relay, dtype=int)) == 1)
    period_s = np.diff(switches_on).mean() * dt_s
    assert period_s == pytest.approx(1e5 * (1 / 60 + 1 / 20), rel=0.02)
    # The relay only switches on at the top of the band and off at the bottom.
    for k in np.flatnonzero(np.diff(np.array(relay, dtype=int)) != 0):
        assert 3.5 - 1e-9 <= t[k + 1] <= 4.5 + 1e-9


def test_thermostat_is_exact_whatever_the_sample_length() -> None:
    # With constant inputs, one hour in one sample equals sixty one-minute samples: the
    # kernel solves the on/off cycles inside a sample instead of stepping through them.
    rng = np.random.default_rng(3)
    n = 200
    temp0 = rng.uniform(3.0, 6.0, n)
    on0 = rng.random(n) < 0.5
    args = (
        one(n, 4.5), one(n, 3.5), rng.uniform(5, 40, n), rng.uniform(30, 120, n),
        rng.uniform(5e4, 2e5, n), one(n, 1.0),
    )  # fmt: skip
    full = thermostat(temp0, on0, *args, 3600.0)
    temp, on, called = temp0, on0, np.zeros(n)
    for _ in range(60):
        step = thermostat(temp, on, *args, 60.0)
        temp, on, called = step.cabinet_c, step.on, called + step.calls / 60.0
    assert np.allclose(temp, full.cabinet_c, atol=1e-6)
    assert np.allclose(called, full.calls, atol=1e-6)
    assert np.array_equal(on, full.on)
    # Some cabinets cannot keep up (capacity below load) and warm all hour, relay on.
    weak = args[3] < args[2]
    assert weak.any()
    assert np.all(full.on[weak & (temp0 > 4.5)])
    assert np.all(full.cabinet_c[weak] > temp0[weak])


def test_healthy_fridges_stay_inside_their_thermostat_band() -> None:
    fleet = FridgeFleet(300, START_MS, np.random.default_rng(2), 0.0, 30 * DAY_MS)
    inside = []
    for k in range(1, 2 * 1440 + 1):
        fleet.step(START_MS + k * 60_000, 60.0)
        params = fleet.parameters()
        band = (fleet.cabinet_c >= params["cut_out_c"] - 1e-6) & (
            fleet.cabinet_c <= params["cut_in_c"] + 0.3
        )
        inside.append(band)
    # Door openings and defrosts push a cabinet above cut-in for a few minutes at most.
    assert np.mean(inside) > 0.97
    assert np.all(fleet.cabinet_c < fleet.limit_c)


def tyre_run(fleet: TyreFleet, days: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    steps = round(days * 86_400 / dt_s)
    ts = START_MS + np.arange(1, steps + 1) * round(dt_s * 1000)
    return np.stack([fleet.step(int(t), dt_s).values for t in ts]), ts


def test_tyre_pressure_follows_the_ideal_gas_law() -> None:
    fleet = TyreFleet(40, START_MS, np.random.default_rng(5), 0.0, 30 * DAY_MS)
    values, _ = tyre_run(fleet, 2, 300.0)
    slopes, spreads = [], []
    for pos in POSITIONS:
        p = values[:, :, CHANNELS.index(f"{pos}.pressure_kpa")]
        t = values[:, :, CHANNELS.index(f"{pos}.temp_c")]
        for i in range(p.shape[1]):
            # Absolute pressure over absolute temperature is the amount of air: constant
            # within the slow diffusion, whether parked in the cold or hot from driving.
            ratio = (p[:, i] + ATMOSPHERE_KPA) / (t[:, i] + KELVIN)
            spreads.append(ratio.std() / ratio.mean())
            if t[:, i].std() > 2.0:
                slope = np.polyfit(t[:, i], p[:, i], 1)[0]
                slopes.append(slope / (ratio.mean()))  # dP/dT ÷ (P/T) = 1 for an ideal gas
    assert np.median(spreads) < 0.002
    assert len(slopes) > 20
    assert np.median(slopes) == pytest.approx(1.0, abs=0.03)


def test_a_slow_leak_loses_air_at_its_planned_rate() -> None:
    fleet = TyreFleet(
        60, START_MS, np.random.default_rng(9), 1.0, 30 * DAY_MS, fault_weights={"slow_leak": 1}
    )
    values, ts = tyre_run(fleet, 12, 1800.0)
    checked = 0
    for i in range(60):
        pos = POSITIONS[fleet.tyre[i]]
        p = values[:, i, CHANNELS.index(f"{pos}.pressure_kpa")]
        t = values[:, i, CHANNELS.index(f"{pos}.temp_c")]
        after = (ts > fleet.book.onset_ms[i] + DAY_MS) & (p > 0.76 * fleet.placard_kpa[i])
        if after.sum() < 48:
            continue
        # Compensate to 20 °C with the gas law, then fit the exponential loss rate.
        cold = (p + ATMOSPHERE_KPA) * (20.0 + KELVIN) / (t + KELVIN) - ATMOSPHERE_KPA
        rate_per_ms = -np.polyfit(ts[after], np.log(cold[after]), 1)[0]
        planned = fleet.leak_per_ms[i] + fleet.diffusion_per_ms[i]
        assert rate_per_ms == pytest.approx(planned, rel=0.1), fleet.devices[i].device_id
        checked += 1
    assert checked >= 20


def test_vending_weekday_profile_matches_the_real_sales() -> None:
    fleet = VendingFleet(400, START_MS, np.random.default_rng(12), 0.0, 28 * DAY_MS)
    dt_s = 3600.0
    vend_cols = [VENDING_CHANNELS.index(f"slot.{s}.vends") for s in SLOTS]
    sold = np.zeros((len(LOCATIONS), 7))
    days_seen = np.zeros((len(LOCATIONS), 7))
    for k in range(1, 28 * 24 + 1):
        ts = START_MS + k * 3_600_000
        out = fleet.step(ts, dt_s)
        vends = np.nansum(out.values[:, vend_cols], axis=1)
        day = weekday(local_day(ts - 1, fleet._offset_h))
        np.add.at(sold, (fleet.location, day), vends)
        np.add.at(days_seen, (fleet.location, day), 1.0 / 24)
    profile = sold / days_seen
    profile /= profile.mean(axis=1, keepdims=True)
    assert np.abs(profile - WEEKDAY_PROFILE).max() < WEEKDAY_TOLERANCE, profile.round(2)


def test_vending_slot_demand_is_intermittent_like_the_real_slots() -> None:
    fleet = VendingFleet(150, START_MS, np.random.default_rng(13), 0.0, 60 * DAY_MS)
    vend_cols = [VENDING_CHANNELS.index(f"slot.{s}.vends") for s in SLOTS]
    daily = np.zeros((28, 150, len(SLOTS)))
    for k in range(1, 28 * 24 + 1):
        out = fleet.step(START_MS + k * 3_600_000, 3600.0)
        daily[(k - 1) // 24] += np.nan_to_num(out.values[:, vend_cols])
    present = fleet.has_slot
    rate = daily.mean(axis=0)[present]
    zero_share = (daily == 0).mean(axis=0)[present]
    figures = load_calibration()
    # Stock-outs clip a few of the busiest slots; the bulk follows the fitted distribution.
    assert np.median(rate) == pytest.approx(
        figures["slot_rate_per_day"]["quantiles"]["p50"], rel=0.2
    )
    assert zero_share.mean() == pytest.approx(figures["zero_day_share"]["mean"], abs=0.04)


def test_shipped_calibration_is_the_fit_of_the_real_sales() -> None:
    if not SALES_CSV.exists():
        pytest.skip(f"the real vending sales are not here ({SALES_CSV.name})")
    assert fit(read_sales(SALES_CSV)) == load_calibration(CALIBRATION_FILE)


def test_seeded_runs_are_identical_and_seeds_differ() -> None:
    def trace(seed: int) -> tuple[list[np.ndarray], list[object], list[object]]:
        values: list[np.ndarray] = []
        events: list[object] = []
        fleet = MixedFleet(
            45, START_MS, seed, fault_share=1.0, horizon_days=4, vending_demand_scale=5.0
        )
        for k in range(1, 4 * 24 + 1):
            for out in fleet.step(START_MS + k * 3_600_000, 3600.0):
                values.append(out.values)
                events.append(out.events)
        return values, events, list(fleet.labels())

    a, b, c = trace(21), trace(21), trace(22)
    assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[0], b[0], strict=True))
    assert a[1:] == b[1:]
    assert a[2] != c[2]
