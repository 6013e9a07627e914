"""Tyre fleet: trips, tyre heat, the ideal gas law, leaks, punctures and tread wear."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulators.tyres import (
    ATMOSPHERE_KPA,
    CHANNELS,
    KELVIN,
    LEGAL_TREAD_MM,
    POSITIONS,
    REFERENCE_K,
    TyreFleet,
)

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
DAY_MS = 86_400_000
DT_S = 600.0

Event = tuple[int, int, dict[str, Any]]  # (step, device, event)
Run = tuple[TyreFleet, np.ndarray, np.ndarray, list[Event]]
HealthyRun = tuple[TyreFleet, np.ndarray, np.ndarray]


def run(fleet: TyreFleet, days: float) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    steps = round(days * 86_400 / DT_S)
    ts = START_MS + np.arange(1, steps + 1) * round(DT_S * 1000)
    values: list[np.ndarray] = []
    events: list[Event] = []
    for t, ts_ms in enumerate(ts):
        out = fleet.step(int(ts_ms), DT_S)
        values.append(out.values)
        events.extend((t, i, e) for i, e in out.events)
    return np.stack(values), ts, events


def per_tyre(values: np.ndarray, name: str) -> np.ndarray:
    """values[t, device, position] of one per-tyre channel."""
    return values[:, :, [CHANNELS.index(f"{pos}.{name}") for pos in POSITIONS]]


def cold_kpa(values: np.ndarray) -> np.ndarray:
    """Gauge pressure compensated to 20 °C with the gas law on absolute pressure."""
    p_abs = per_tyre(values, "pressure_kpa") + ATMOSPHERE_KPA
    t_k = per_tyre(values, "temp_c") + KELVIN
    return p_abs * REFERENCE_K / t_k - ATMOSPHERE_KPA


@pytest.fixture(scope="module")
def healthy() -> HealthyRun:
    fleet = TyreFleet(150, START_MS, np.random.default_rng(9), 0.0, 30 * DAY_MS)
    values, ts, _ = run(fleet, 6)
    return fleet, values, ts


@pytest.fixture(scope="module")
def faulty() -> Run:
    fleet = TyreFleet(150, START_MS, np.random.default_rng(10), 1.0, 30 * DAY_MS)
    values, ts, events = run(fleet, 24)
    return fleet, values, ts, events


def test_pressure_over_temperature_is_constant_in_a_sound_tyre(healthy: HealthyRun) -> None:
    fleet, values, ts = healthy
    pressure = per_tyre(values, "pressure_kpa")
    temp_k = per_tyre(values, "temp_c") + KELVIN
    ratio = (pressure + ATMOSPHERE_KPA) / temp_k
    elapsed_ms = (ts - ts[0])[:, None, None]
    # Undo the (tiny) diffusion loss before comparing.
    leak_free = ratio * np.exp(fleet.diffusion_per_ms[None, :, None] * elapsed_ms * 0.75)
    spread = leak_free.std(axis=0) / leak_free.mean(axis=0)
    assert spread.max() < 0.003
    # ... while the raw pressure swings visibly with tyre temperature.
    swing = pressure.max(axis=0) - pressure.min(axis=0)
    assert np.median(swing) > 10.0
    assert fleet.labels() == []


def test_tyres_heat_up_while_driving_and_cool_to_ambient_when_parked(healthy: HealthyRun) -> None:
    _, values, _ = healthy
    speed = values[:, :, CHANNELS.index("speed_kmh")]
    ambient = values[:, :, CHANNELS.index("ambient_c")]
    temp = per_tyre(values, "temp_c").mean(axis=2)
    moving = speed > 30
    parked_long = np.zeros_like(moving)
    parked_long[12:] = np.lib.stride_tricks.sliding_window_view(speed == 0, 13, axis=0).all(axis=2)
    assert (temp - ambient)[moving].mean() > 8.0
    assert np.abs(temp - ambient)[parked_long].mean() < 1.5


def test_a_cold_morning_lowers_pressure_but_not_the_cold_equivalent(healthy: HealthyRun) -> None:
    fleet, values, _ = healthy
    pressure = per_tyre(values, "pressure_kpa")
    cold = cold_kpa(values)
    placard = fleet.placard_kpa[None, :, None]
    assert np.all(cold > 0.9 * placard)
    low_raw = pressure.min(axis=0) - cold.mean(axis=0)
    assert np.all(np.abs(cold - cold.mean(axis=0)) < 3.0)
    assert (low_raw < -5.0).any()


def test_trips_follow_a_daily_rhythm(healthy: HealthyRun) -> None:
    fleet, values, ts = healthy
    speed = values[:, :, CHANNELS.index("speed_kmh")]
    odometer = values[:, :, CHANNELS.index("odometer_km")]
    assert np.all(np.diff(odometer, axis=0) >= 0)
    km_per_day = (odometer[-1] - odometer[0]) / 6
    assert 20 < np.median(km_per_day) < 200
    starts = ((speed[1:] > 0) & (speed[:-1] == 0)).sum(axis=0) / 6
    assert 0.8 < np.median(starts) < 3.5
    local_h = np.mod(ts[:, None] / 3_600_000 + fleet._offset_h[None, :], 24)
    night = (local_h >= 1) & (local_h < 5)
    assert np.all(speed[night] == 0)


def test_tread_is_reported_once_per_local_day(healthy: HealthyRun) -> None:
    _, values, _ = healthy
    tread = per_tyre(values, "tread_mm")
    reported = np.isfinite(tread).all(axis=2)
    assert np.all(reported == np.isfinite(tread).any(axis=2))
    per_day = reported.sum(axis=0)
    assert np.all((per_day >= 5) & (per_day <= 7))
    assert np.nanmin(tread) > 3.0


def test_slow_leak_decays_at_its_parameter(faulty: Run) -> None:
    fleet, values, ts, _ = faulty
    cold = cold_kpa(values)
    slow = np.flatnonzero(fleet.book.has("slow_leak") & (fleet.book.onset_ms < ts[-1] - 3 * DAY_MS))
    assert slow.size >= 5
    for i in slow:
        pos = fleet.tyre[i]
        window = ts > fleet.book.onset_ms[i]
        rate_per_ms = -np.polyfit(ts[window] - ts[0], np.log(cold[window, i, pos]), 1)[0]
        expected = fleet.leak_per_ms[i] + fleet.diffusion_per_ms[i]
        assert rate_per_ms == pytest.approx(expected, rel=0.05)
        # The other three tyres only diffuse.
        others = [p for p in range(4) if p != pos]
        assert np.all(cold[-1, i, others] > 0.9 * fleet.placard_kpa[i])


def test_leak_labels_fail_at_25_percent_under_placard(faulty: Run) -> None:
    fleet, values, ts, events = faulty
    cold = cold_kpa(values)
    ids = [d.device_id for d in fleet.devices]
    leaks = [lab for lab in fleet.labels() if lab.fault in ("slow_leak", "puncture")]
    failed = [lab for lab in leaks if lab.failure_ms is not None]
    assert len(failed) >= 5
    for label in failed:
        i = ids.index(label.device_id)
        pos = POSITIONS.index(label.component)
        t = int(np.flatnonzero(ts == label.failure_ms)[0])
        threshold = 0.75 * fleet.placard_kpa[i]
        assert cold[t, i, pos] < threshold + 1.0
        assert cold[t - 1, i, pos] > threshold - 1.0
        assert label.failure_ms is not None
        delay_days = (label.failure_ms - label.onset_ms) / DAY_MS
        if label.fault == "slow_leak":
            assert 3 <= delay_days <= 20.01
        alarms = [e for _, d, e in events if d == i and e["type"] == "fault"]
        assert [e["ts_ms"] for e in alarms] == [label.failure_ms]


def test_puncture_fails_within_an_hour(faulty: Run) -> None:
    fleet, _, ts, _ = faulty
    punctures = [lab for lab in fleet.labels() if lab.fault == "puncture"]
    assert len(punctures) >= 3
    for label in punctures:
        if label.onset_ms < ts[-1] - 3_600_000:
            assert label.failure_ms is not None
            assert label.failure_ms - label.onset_ms <= 3_600_000


def test_worn_tread_crosses_the_legal_limit(faulty: Run) -> None:
    fleet, values, ts, _ = faulty
    tread = per_tyre(values, "tread_mm")
    ids = [d.device_id for d in fleet.devices]
    worn = [lab for lab in fleet.labels() if lab.fault == "tread_wear"]
    assert all(lab.onset_ms == START_MS for lab in worn)
    crossed = [lab for lab in worn if lab.failure_ms is not None]
    assert 3 <= len(crossed) < len(worn)
    for label in worn:
        i = ids.index(label.device_id)
        daily = tread[:, i][np.isfinite(tread[:, i, 0])]
        assert 1.5 < daily[0].min() < 3.6
        assert np.all(np.diff(daily.min(axis=1)) <= 0.2)  # sensor noise 0.03 mm
        assert daily[-1].mean() < daily[0].mean()
        if label.failure_ms is not None:
            before = ts < label.failure_ms
            seen = np.isfinite(tread[:, i, 0])
            assert np.nanmin(tread[before & seen, i]) > LEGAL_TREAD_MM - 0.1
            assert np.nanmin(tread[~before & seen, i], initial=0.0) < LEGAL_TREAD_MM + 0.1
