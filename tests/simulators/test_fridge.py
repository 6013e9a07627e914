"""Fridge fleet: thermal behaviour, faults and their labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulators.fridge import CHANNELS, FAULTS, FridgeFleet
from simulators.types import FaultLabel
from tests.simulators.excursion import first_long_excursion_ms

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z
DAY_MS = 86_400_000
DT_S = 600.0

Event = tuple[int, int, dict[str, Any]]  # (step, device, event)
Run = tuple[FridgeFleet, np.ndarray, np.ndarray, list[Event]]
TRUE_CABINET: dict[int, np.ndarray] = {}  # id(fleet) -> true cabinet temperature [t, device]


def run(
    fleet: FridgeFleet, days: float, dt_s: float = DT_S
) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """Values[t, device, channel], ts_ms[t] and all events as (t, device, event)."""
    steps = round(days * 86_400 / dt_s)
    ts = START_MS + np.arange(1, steps + 1) * round(dt_s * 1000)
    values: list[np.ndarray] = []
    cabinet: list[np.ndarray] = []
    events: list[Event] = []
    for t, ts_ms in enumerate(ts):
        out = fleet.step(int(ts_ms), dt_s)
        values.append(out.values.copy())
        cabinet.append(fleet.cabinet_c.copy())
        events.extend((t, i, e) for i, e in out.events)
    TRUE_CABINET[id(fleet)] = np.stack(cabinet)
    return np.stack(values), ts, events


@pytest.fixture(scope="module")
def faulty_run() -> Run:
    fleet = FridgeFleet(160, START_MS, np.random.default_rng(11), 1.0, 30 * DAY_MS, "fr")
    values, ts, events = run(fleet, 30)
    return fleet, values, ts, events


def col(name: str) -> int:
    return CHANNELS.index(name)


def test_healthy_fridges_hold_their_setpoint_and_never_fail() -> None:
    fleet = FridgeFleet(200, START_MS, np.random.default_rng(5), 0.0, 30 * DAY_MS)
    values, _ts, events = run(fleet, 5)
    assert fleet.labels() == []
    cabinet = values[:, :, col("cabinet_c")]
    assert np.all(np.abs(np.median(cabinet, axis=0) - fleet.setpoint_c) < 0.5)
    duty = values[:, :, col("compressor_on")]
    assert 0.1 < duty.mean() < 0.6
    # Defrost cycles run roughly every 6-8 h and the compressor rests meanwhile.
    defrost = values[:, :, col("defrost_on")]
    starts = (defrost[1:] > 0) & (defrost[:-1] == 0)
    cycles_per_day = starts.sum(axis=0) / 5
    assert np.all((cycles_per_day >= 2.5) & (cycles_per_day <= 4.5))
    assert np.all(duty + defrost <= 1.0 + 1e-9)
    assert np.all(values[:, :, col("mains_ok")] == 1.0)
    assert not [e for _, _, e in events if e["type"] == "power"]


def test_door_openings_follow_the_household_rhythm() -> None:
    fleet = FridgeFleet(300, START_MS, np.random.default_rng(6), 0.0, 30 * DAY_MS)
    values, ts, _ = run(fleet, 4)
    household = fleet.variant == 0
    hour = ((ts // 3_600_000)[:, None] + fleet._offset_h[None, :]) % 24
    door = values[:, :, col("door_open_s")]
    evening = door[(hour >= 17) & (hour < 21) & household[None, :]].mean()
    night = door[(hour >= 1) & (hour < 5) & household[None, :]].mean()
    assert evening > 5 * night


def test_duty_follows_ambient_temperature() -> None:
    # The same fridges in rooms 5 K warmer: load UA·(ambient − cabinet) grows by about 5/16 for
    # a household fridge and the condenser loses 6 % capacity, so duty rises by 30–50 %.
    cold = FridgeFleet(300, START_MS, np.random.default_rng(8), 0.0, 30 * DAY_MS)
    warm = FridgeFleet(300, START_MS, np.random.default_rng(8), 0.0, 30 * DAY_MS)
    warm._room_c = warm._room_c + 5.0
    household = cold.variant == 0
    duty = []
    for fleet in (cold, warm):
        values, _, _ = run(fleet, 3)
        duty.append(values[:, household, col("compressor_on")].mean())
        assert np.all(np.median(values[:, :, col("cabinet_c")], axis=0) - fleet.setpoint_c < 0.6)
    assert 1.25 < duty[1] / duty[0] < 1.6


def test_refrigerant_leak_raises_duty_before_the_cabinet_warms(faulty_run: Run) -> None:
    fleet, values, _ts, _ = faulty_run
    leaks = [lab for lab in fleet.labels() if lab.fault == "refrigerant_leak" and lab.failure_ms]
    assert len(leaks) >= 3
    for label in leaks:
        i = fleet.devices.index(next(d for d in fleet.devices if d.device_id == label.device_id))
        daily_duty = values[:, i, col("compressor_on")].reshape(30, -1).mean(axis=1)
        baseline = daily_duty[: max(1, (label.onset_ms - START_MS) // DAY_MS)].mean()
        daily_cabinet = values[:, i, col("cabinet_c")].reshape(30, -1).mean(axis=1)
        high_duty = np.flatnonzero(daily_duty > baseline + 0.15)
        warm = np.flatnonzero(daily_cabinet > fleet.setpoint_c[i] + 0.5)
        assert high_duty.size > 0
        assert warm.size > 0
        assert warm[0] - high_duty[0] >= 1  # at least a day of warning
        assert label.onset_ms < START_MS + int(high_duty[0]) * DAY_MS
        assert label.failure_ms is not None
        assert label.failure_ms - (START_MS + int(high_duty[0]) * DAY_MS) >= DAY_MS


def test_failure_label_matches_first_long_excursion(faulty_run: Run) -> None:
    fleet, _values, ts, _ = faulty_run
    labels = {lab.device_id: lab for lab in fleet.labels()}
    checked = 0
    for i, spec in enumerate(fleet.devices):
        label = labels.get(spec.device_id)
        if label is None:
            assert int(fleet.book.onset_ms[i]) > ts[-1]
            continue
        cabinet = TRUE_CABINET[id(fleet)][:, i]
        after = ts >= label.onset_ms
        expected = first_long_excursion_ms(
            cabinet[after], ts[after], fleet.limit_c[i], int(fleet.limit_ms[i])
        )
        assert label.failure_ms == expected, spec.device_id
        checked += expected is not None
    assert checked >= 20


def test_slow_faults_reach_failure_days_after_onset() -> None:
    fleet = FridgeFleet(400, START_MS, np.random.default_rng(21), 0.15, 30 * DAY_MS)
    run(fleet, 30, dt_s=1800.0)
    delays_days = [
        (failure_ms - lab.onset_ms) / DAY_MS
        for lab in fleet.labels()
        if lab.fault in ("refrigerant_leak", "condenser_fouling")
        and (failure_ms := lab.failure_ms) is not None
    ]
    assert len(delays_days) >= 3
    assert all(3 <= d <= 20 for d in delays_days), delays_days


def test_compressor_failure_draws_no_current_with_mains_on(faulty_run: Run) -> None:
    fleet, values, ts, events = faulty_run
    dead = np.flatnonzero(
        fleet.book.has("compressor_failure") & (fleet.compressor_stop_ms < ts[-1] - DAY_MS)
    )
    assert dead.size >= 3
    for i in dead:
        after = ts > fleet.compressor_stop_ms[i]
        before = (ts < fleet.book.onset_ms[i]) & (values[:, i, col("compressor_on")] > 0)
        assert np.all(values[after, i, col("compressor_a")] == 0.0)
        assert np.all(values[after, i, col("mains_ok")] == 1.0)
        assert values[after, i, col("compressor_on")].mean() > 0.8
        assert values[before, i, col("compressor_a")].min() > 0.0
        codes = [e.get("code") for _, d, e in events if d == i and e["type"] == "fault"]
        assert "E07" in codes


def test_power_cut_switches_everything_off_and_recovers(faulty_run: Run) -> None:
    fleet, values, ts, events = faulty_run
    cuts = np.flatnonzero(fleet.book.has("power_cut") & (fleet.cut_end_ms < ts[-1] - DAY_MS))
    assert cuts.size >= 3
    for i in cuts:
        inside = (ts > fleet.cut_start_ms[i] + 600_000) & (ts <= fleet.cut_end_ms[i])
        assert np.all(values[inside, i, col("mains_ok")] == 0.0)
        assert np.all(values[inside, i, col("compressor_on")] == 0.0)
        power = [e for _, d, e in events if d == i and e["type"] == "power"]
        assert [e["on"] for e in power] == [False, True]
        assert [e["ts_ms"] for e in power] == [fleet.cut_start_ms[i], fleet.cut_end_ms[i]]
        # A day after the cut the fridge is back at its setpoint.
        later = ts > fleet.cut_end_ms[i] + DAY_MS
        assert abs(np.median(values[later, i, col("cabinet_c")]) - fleet.setpoint_c[i]) < 0.5
    durations_h = (fleet.cut_end_ms[cuts] - fleet.cut_start_ms[cuts]) / 3_600_000
    labels = {lab.device_id: lab for lab in fleet.labels()}
    failed = np.array([labels[fleet.devices[i].device_id].failure_ms is not None for i in cuts])
    # Short cuts are harmless, long ones spoil food.
    assert failed.any()
    assert not failed.all()
    assert durations_h[failed].min() > durations_h[~failed].min()


def test_labels_reveal_only_started_faults() -> None:
    fleet = FridgeFleet(100, START_MS, np.random.default_rng(3), 1.0, 30 * DAY_MS)
    assert fleet.labels() == []
    fleet.step(START_MS + 600_000, DT_S)
    early = fleet.labels()
    assert all(isinstance(lab, FaultLabel) and lab.onset_ms <= START_MS + 600_000 for lab in early)
    run_ts = START_MS + 20 * DAY_MS
    fleet.step(run_ts, DT_S)
    assert len(fleet.labels()) == int((fleet.book.onset_ms <= run_ts).sum())
    assert {lab.fault for lab in fleet.labels()} <= set(FAULTS)


def test_fault_share_out_of_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="fault_share"):
        FridgeFleet(10, START_MS, np.random.default_rng(0), 1.5, DAY_MS)
