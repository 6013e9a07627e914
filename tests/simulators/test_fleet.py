"""Mixed fleet: seeding, ids, profile ranges, customers and whole-fleet vectorization."""

from __future__ import annotations

import re
import sys
import zoneinfo
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

import firmware_specs
import simulators.fleet
from simulators import MixedFleet, StepOutput
from simulators.fleet import split_counts

START_MS = 1_767_225_600_000
DAY_MS = 86_400_000
SIM_DIR = str(Path(simulators.fleet.__file__).resolve().parent)


def profile_bounds(kind: str, channels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ranges read straight from the product profile, independently of the simulator."""
    profile = firmware_specs.load_profile(kind)
    exact = {c["name"]: (c["min"], c["max"]) for c in profile["channels"]}
    patterns = [(re.compile(p["pattern"]), p["min"], p["max"]) for p in profile["channel_patterns"]]
    low, high = [], []
    for name in channels:
        if name in exact:
            lo, hi = exact[name]
        else:
            (lo, hi), *_ = [(a, b) for rx, a, b in patterns if rx.match(name)]
        low.append(lo)
        high.append(hi)
    return np.array(low, dtype=float), np.array(high, dtype=float)


def run(fleet: MixedFleet, days: float, dt_s: float) -> list[list[StepOutput]]:
    steps = round(days * 86_400 / dt_s)
    return [fleet.step(START_MS + k * round(dt_s * 1000), dt_s) for k in range(1, steps + 1)]


def test_counts_ids_and_attributes() -> None:
    fleet = MixedFleet(100, START_MS, seed=1)
    devices = fleet.devices()
    kinds = [d.kind for d in devices]
    assert (kinds.count("fridge"), kinds.count("vending"), kinds.count("tyres")) == (40, 30, 30)
    assert len({d.device_id for d in devices}) == 100
    assert all(firmware_specs.DEVICE_ID_RE.match(d.device_id) for d in devices)
    assert devices[0].device_id == "fr-000001"
    assert {d.device_id[:3] for d in devices} == {"fr-", "vm-", "ty-"}
    for d in devices:
        zoneinfo.ZoneInfo(d.tz)
        assert d.model


def test_split_counts_and_bad_mixes() -> None:
    assert split_counts(10, (1, 0, 0)) == (10, 0, 0)
    assert split_counts(7, (0.4, 0.3, 0.3)) == (3, 2, 2)
    assert sum(split_counts(1001, (0.2, 0.5, 0.3))) == 1001
    for mix in ((0, 0, 0), (1, -1, 1), (1, 1), (float("nan"), 1, 1)):
        with pytest.raises(ValueError, match="mix"):
            split_counts(10, mix)
    with pytest.raises(ValueError, match="n_devices"):
        MixedFleet(-1, START_MS, seed=1)
    with pytest.raises(ValueError, match="horizon_days"):
        MixedFleet(10, START_MS, seed=1, horizon_days=0)


def test_empty_kinds_are_left_out() -> None:
    fleet = MixedFleet(20, START_MS, seed=2, mix=(0, 1, 0))
    outputs = fleet.step(START_MS + 600_000, 600.0)
    assert [o.kind for o in outputs] == ["vending"]
    assert outputs[0].values.shape[0] == 20


def test_same_seed_same_telemetry_labels_and_customers() -> None:
    def record(seed: int) -> tuple[list[Any], list[Any], list[Any]]:
        fleet = MixedFleet(90, START_MS, seed=seed, fault_share=0.5, horizon_days=4)
        steps = run(fleet, 4, 1800.0)
        values = [o.values for step in steps for o in step]
        events = [o.events for step in steps for o in step]
        return values, events, [fleet.labels(), fleet.customers(), fleet.devices()]

    a_values, a_events, a_rest = record(42)
    b_values, b_events, b_rest = record(42)
    c_values, _, _ = record(43)
    assert all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(a_values, b_values, strict=True)
    )
    assert a_events == b_events
    assert a_rest == b_rest
    assert len(a_rest[0]) > 0
    assert not all(
        np.array_equal(x, y, equal_nan=True) for x, y in zip(a_values, c_values, strict=True)
    )


def test_values_stay_inside_the_profile_ranges() -> None:
    fleet = MixedFleet(300, START_MS, seed=5, fault_share=0.6, horizon_days=15)
    seen: dict[str, int] = {}
    for step in run(fleet, 15, 1800.0):
        for out in step:
            low, high = profile_bounds(out.kind, out.channels)
            finite = np.isfinite(out.values)
            assert np.all((out.values >= low) | ~finite)
            assert np.all((out.values <= high) | ~finite)
            # Only tread (daily), absent vending slots and tyre sensors whose cell died are
            # ever missing.
            missing = ~finite.all(axis=0)
            dead = {
                pos
                for pos, volts in zip(
                    ("fl", "fr", "rl", "rr"), fleet.tyres.battery_v.T, strict=True
                )
                if volts.min() < 2.4
            }
            assert all(
                ".tread_mm" in c or c.startswith("slot.") or c.split(".")[0] in dead
                for c in np.array(out.channels)[missing]
            )
            seen[out.kind] = seen.get(out.kind, 0) + 1
            for _, event in out.events:
                event_ms = event["ts_ms"]
                assert isinstance(event_ms, int)
                assert out.ts_ms - 1_800_000 < event_ms <= out.ts_ms
    assert seen == {"fridge": 720, "vending": 720, "tyres": 720}


def test_customers_own_every_device_once() -> None:
    fleet = MixedFleet(200, START_MS, seed=3)
    customers = fleet.customers()
    owned = [d.device_id for c in customers for d in c.devices]
    assert sorted(owned) == sorted(d.device_id for d in fleet.devices())
    assert len({c.customer_id for c in customers}) == len(customers)
    assert len({c.email for c in customers}) == len(customers)
    tz_of = {d.device_id: d.tz for d in fleet.devices()}
    for c in customers:
        assert c.email.endswith("@example.com")
        assert re.fullmatch(r"[a-z0-9.]+@example\.com", c.email)
        assert c.locale == "en"
        zoneinfo.ZoneInfo(c.tz)
        assert all(tz_of[d.device_id] == c.tz for d in c.devices)
        assert all(d.nickname for d in c.devices)
        kinds = {d.device_id[:2] for d in c.devices}
        assert len(kinds) == 1
        assert len(c.devices) == 1 or kinds == {"vm"}
    operators = [c for c in customers if c.devices[0].device_id.startswith("vm-")]
    assert len(operators) < 60
    nicknames = {d.nickname for c in customers for d in c.devices}
    assert "Kitchen fridge" in nicknames


def test_a_five_thousand_device_fleet_steps() -> None:
    fleet = MixedFleet(5000, START_MS, seed=8)
    for k in (1, 2):
        outputs = fleet.step(START_MS + k * 600_000, 600.0)
        assert sum(o.values.shape[0] for o in outputs) == 5000


# Code that runs once per emitted event or label, not once per device.
_PER_EVENT_CODE = {
    "_events", "_track_failures", "_label_stockouts", "add_episode", "_vend_events",
    "_refill_visited", "_refill", "_close_stockout", "_notice_outside_refills",
}  # fmt: skip


def _per_event(frame: FrameType) -> bool:
    name = frame.f_code.co_name
    if name.startswith("<") and frame.f_back is not None:  # a comprehension inside its caller
        name = frame.f_back.f_code.co_name
    return name in _PER_EVENT_CODE


def lines_run_in_step(n_devices: int) -> int:
    """Python lines the simulators execute in one step of an ``n_devices`` fleet."""
    fleet = MixedFleet(n_devices, START_MS, seed=4, fault_share=0.0)
    fleet.step(START_MS + 600_000, 600.0)
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        code = frame.f_code
        if not code.co_filename.startswith(SIM_DIR) or _per_event(frame):
            return None
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        fleet.step(START_MS + 1_200_000, 600.0)
    finally:
        sys.settrace(None)
    return count


def test_step_cost_in_python_does_not_grow_with_the_fleet() -> None:
    small, large = lines_run_in_step(30), lines_run_in_step(3000)
    assert small > 50
    assert large < 1.2 * small


def test_steps_must_move_forward() -> None:
    fleet = MixedFleet(9, START_MS, seed=1)
    fleet.step(START_MS + 600_000, 600.0)
    with pytest.raises(ValueError, match="not after"):
        fleet.step(START_MS + 600_000, 600.0)
    with pytest.raises(ValueError, match="dt_s"):
        fleet.step(START_MS + 1_200_000, 0.0)
    with pytest.raises(ValueError, match="dt_s"):
        fleet.step(START_MS + 1_200_000, 2 * 86_400.0)
