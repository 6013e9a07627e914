"""Vending fleet: demand, stock, restock routes, jams, cooling and stock-out labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulators.climate import local_day, weekday
from simulators.vending import CHANNELS, LIMIT_C, LIMIT_MS, SLOTS, VendingFleet
from tests.simulators.excursion import first_long_excursion_ms

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, a Thursday
DAY_MS = 86_400_000
DT_S = 600.0

Event = tuple[int, int, dict[str, Any]]  # (step, device, event)
Run = tuple[VendingFleet, np.ndarray, np.ndarray, list[Event]]


TRUE_CABINET: dict[int, np.ndarray] = {}  # id(fleet) -> true cabinet temperature [t, device]


def run(fleet: VendingFleet, days: float) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    steps = round(days * 86_400 / DT_S)
    ts = START_MS + np.arange(1, steps + 1) * round(DT_S * 1000)
    values: list[np.ndarray] = []
    cabinet: list[np.ndarray] = []
    events: list[Event] = []
    for t, ts_ms in enumerate(ts):
        out = fleet.step(int(ts_ms), DT_S)
        values.append(out.values)
        cabinet.append(fleet.cabinet_c.copy())
        events.extend((t, i, e) for i, e in out.events)
    TRUE_CABINET[id(fleet)] = np.stack(cabinet)
    return np.stack(values), ts, events


def slot_cols(what: str) -> list[int]:
    return [CHANNELS.index(f"slot.{s}.{what}") for s in SLOTS]


@pytest.fixture(scope="module")
def month() -> Run:
    fleet = VendingFleet(120, START_MS, np.random.default_rng(4), 0.3, 30 * DAY_MS, "vm")
    values, ts, events = run(fleet, 22)
    return fleet, values, ts, events


def test_stock_is_never_negative_and_falls_only_by_vends(month: Run) -> None:
    fleet, values, _, events = month
    stock = values[:, :, slot_cols("stock")]
    vends = values[:, :, slot_cols("vends")]
    present = fleet.has_slot[None, :, :]
    assert np.all(np.isnan(stock[:, ~fleet.has_slot]))
    assert np.nanmin(stock) >= 0
    assert np.all(stock[:, fleet.has_slot] <= fleet.capacity[fleet.has_slot])
    drop = stock[:-1] - stock[1:]
    restocked = np.zeros_like(drop, dtype=bool)
    for t, i, e in events:
        if e["type"] == "restock":
            restocked[t - 1, i, SLOTS.index(e["slot"])] = True
    falling = present & ~restocked
    assert np.array_equal(drop[falling], vends[1:][falling])


def test_slots_differ_between_machines_within_ten_to_thirty(month: Run) -> None:
    fleet = month[0]
    per_machine = fleet.has_slot.sum(axis=1)
    assert per_machine.min() >= 10
    assert per_machine.max() <= 30
    assert len(set(per_machine.tolist())) > 2
    for spec, slots in zip(fleet.devices, fleet.has_slot, strict=True):
        planogram: list[dict[str, Any]] = spec.attributes["slots"]  # type: ignore[assignment]
        assert [s["slot"] for s in planogram] == [SLOTS[k] for k in np.flatnonzero(slots)]


def test_weekly_restock_on_the_route_day(month: Run) -> None:
    fleet, values, _ts, events = month
    visits: dict[int, set[int]] = {}
    for _, i, e in events:
        if e["type"] == "restock":
            visits.setdefault(i, set()).add(e["ts_ms"])
            assert e["level"] == fleet.capacity[i, SLOTS.index(e["slot"])]
    assert len(visits) == len(fleet.devices)
    for i, times in visits.items():
        days = sorted(times)
        assert len(days) in (3, 4)
        assert np.all(np.diff(days) == 7 * DAY_MS)
        day = local_day(days[0], fleet._offset_h[i : i + 1])
        assert int(weekday(day)[0]) == fleet.route_day[i]
        assert fleet.devices[i].attributes["route"] == f"r{fleet.route_day[i] + 1}"
    door = values[:, :, CHANNELS.index("door_open_s")]
    assert (door > 0).sum() == sum(len(v) for v in visits.values())


def test_planned_visits_name_the_route_day_and_hour_the_visits_come(month: Run) -> None:
    fleet, _values, _ts, events = month
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    for _, i, e in events:
        if e["type"] != "restock":
            continue
        planned = fleet.planned_visits(i)
        assert planned is not None
        assert planned["tz"] == fleet.devices[i].tz
        local_ms = e["ts_ms"] + int(fleet._offset_h[i] * 3_600_000)  # the site's standard time
        assert planned["days"] == [names[(local_ms // DAY_MS + 3) % 7]]  # 1970-01-01: Thursday
        assert planned["hour"] == (local_ms % DAY_MS) // 3_600_000
    on_demand = VendingFleet(3, START_MS, np.random.default_rng(5), 0.0, DAY_MS, route="none")
    assert on_demand.planned_visits(0) is None


def test_jammed_slot_fails_while_its_stock_stays(month: Run) -> None:
    fleet, values, ts, events = month
    labels = [lab for lab in fleet.labels() if lab.fault == "jammed_coil"]
    assert len(labels) >= 5
    ids = [d.device_id for d in fleet.devices]
    failed = 0
    for label in labels:
        i, s = ids.index(label.device_id), SLOTS.index(label.component)
        stock = values[:, i, CHANNELS.index(f"slot.{label.component}.stock")]
        fails = values[:, i, CHANNELS.index(f"slot.{label.component}.fails")]
        vends = values[:, i, CHANNELS.index(f"slot.{label.component}.vends")]
        after = ts >= label.onset_ms
        assert np.all(fails[~after] == 0)
        assert np.all(vends[after] == 0)
        after_fill = after & (np.cumsum(np.diff(np.r_[stock[0], stock]) > 0) >= 0)
        assert np.all(np.diff(stock[after_fill]) >= 0)
        if label.failure_ms is not None:
            failed += 1
            assert label.failure_ms == ts[np.argmax(fails > 0)]
            bad = [e for _, d, e in events if d == i and e["type"] == "vend" and not e["ok"]]
            assert {e["slot"] for e in bad} == {SLOTS[s]}
            assert sum(e["qty"] for e in bad) == fails.sum()
    assert failed >= 3


def test_cooling_failure_warms_the_cabinet_past_its_limit(month: Run) -> None:
    fleet, values, ts, _ = month
    cabinet = values[:, :, CHANNELS.index("cabinet_c")]
    healthy = fleet.book.fault == -1
    assert np.all(cabinet[:, healthy] < LIMIT_C)
    labels = [lab for lab in fleet.labels() if lab.fault == "cooling_failure"]
    assert len(labels) >= 3
    assert sum(lab.failure_ms is not None for lab in labels) >= 2
    ids = [d.device_id for d in fleet.devices]
    for label in labels:
        i = ids.index(label.device_id)
        after = ts >= label.onset_ms
        true_c = TRUE_CABINET[id(fleet)][:, i]
        expected = first_long_excursion_ms(true_c[after], ts[after], LIMIT_C, LIMIT_MS)
        assert label.failure_ms == expected
        if expected is not None:
            # The compressor still runs flat out; it just no longer cools.
            at_failure = ts == expected
            assert values[at_failure, i, CHANNELS.index("compressor_on")][0] == 1.0


def test_stockouts_are_labelled_when_stock_hits_zero(month: Run) -> None:
    fleet, values, ts, _ = month
    stock = values[:, :, slot_cols("stock")]
    hit_zero = (stock[1:] == 0) & (stock[:-1] > 0)
    ids = [d.device_id for d in fleet.devices]
    expected = {
        (ids[i], SLOTS[s], int(ts[t + 1])) for t, i, s in zip(*np.nonzero(hit_zero), strict=True)
    }
    stockouts = [lab for lab in fleet.labels() if lab.fault == "stockout"]
    got = {(lab.device_id, lab.component, lab.onset_ms) for lab in stockouts}
    assert all(lab.failure_ms == lab.onset_ms for lab in stockouts)
    # A stock-out whose slot is refilled in the same sample never shows 0 in the channel.
    assert expected <= got
    assert len(got - expected) <= 0.05 * len(got)
    assert 50 < len(stockouts) < 0.5 * fleet.has_slot.sum() * 3


def test_offices_sell_in_office_hours_and_little_at_weekends(month: Run) -> None:
    fleet, values, ts, _ = month
    vends = np.nansum(values[:, :, slot_cols("vends")], axis=2)
    local_h = ts[:, None] / 3_600_000 + fleet._offset_h[None, :]
    weekend = weekday(np.floor(local_h / 24).astype(np.int64)) >= 5
    hour = np.mod(local_h, 24)
    office = np.broadcast_to(fleet.location == 0, vends.shape)
    assert vends[office & weekend].mean() < 0.4 * vends[office & ~weekend].mean()
    daytime = (hour >= 9) & (hour < 17)
    assert vends[office & daytime].mean() > 5 * vends[office & ~daytime].mean()
