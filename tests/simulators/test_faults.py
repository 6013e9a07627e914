"""The faults added to each kind: what they do to which channel, and when they fail."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulators import MixedFleet
from simulators.fridge import CHANNELS as FRIDGE_CHANNELS
from simulators.fridge import FridgeFleet
from simulators.tyres import CHANNELS as TYRE_CHANNELS
from simulators.tyres import DEAD_BATTERY_V, LOW_BATTERY_V, POSITIONS, TyreFleet
from simulators.vending import CARD_SHARE, SLOTS, VendingFleet
from simulators.vending import CHANNELS as VENDING_CHANNELS

START_MS = 1_767_225_600_000
DAY_MS = 86_400_000


def fridge_run(
    weights: dict[str, float], n: int, days: float, seed: int, dt_s: float = 600.0
) -> tuple[FridgeFleet, np.ndarray, np.ndarray, np.ndarray]:
    """Fleet, reported values[t, device, channel], true cabinet[t, device], ts_ms[t]."""
    fleet = FridgeFleet(
        n, START_MS, np.random.default_rng(seed), 1.0, 20 * DAY_MS, fault_weights=weights
    )
    steps = round(days * 86_400 / dt_s)
    ts = START_MS + np.arange(1, steps + 1) * round(dt_s * 1000)
    values, true_c = [], []
    for t in ts:
        values.append(fleet.step(int(t), dt_s).values.copy())
        true_c.append(fleet.cabinet_c.copy())
    return fleet, np.stack(values), np.stack(true_c), ts


def col(name: str) -> int:
    return FRIDGE_CHANNELS.index(name)


def test_door_gasket_leak_raises_duty_without_more_door_openings() -> None:
    fleet, values, _, ts = fridge_run({"door_gasket_leak": 1}, 40, 20, seed=31)
    rose = 0
    for i in range(40):
        onset = fleet.book.onset_ms[i]
        before = ts < onset
        late = ts > onset + 6 * DAY_MS
        if before.sum() < 144 or late.sum() < 144:
            continue
        duty = values[:, i, col("compressor_on")]
        door = values[:, i, col("door_open_s")]
        assert door[late].mean() < 3 * door[before].mean() + 1.0
        rose += duty[late].mean() > duty[before].mean() + 0.1
    assert rose >= 10


def test_defrost_heater_failure_keeps_the_coil_frozen_and_ices_it_up() -> None:
    fleet, values, true_c, ts = fridge_run({"defrost_heater_failure": 1}, 30, 20, seed=32)
    evap = values[:, :, col("evap_c")]
    defrost = values[:, :, col("defrost_on")]
    checked = 0
    for i in range(30):
        onset = fleet.book.onset_ms[i]
        in_defrost = defrost[:, i] > 0.99  # samples spent wholly in a defrost cycle
        before = in_defrost & (ts < onset)
        # ... as long as the cabinet is still cold (an iced coil lets it warm in the end).
        after = in_defrost & (ts > onset + 3_600_000) & (true_c[:, i] < fleet.limit_c[i])
        if before.sum() < 3 or after.sum() < 3:
            continue
        # A working heater warms the coil above melting; a dead one leaves it far below.
        assert evap[before, i].mean() > 0.0
        assert evap[after, i].max() < 0.0
        checked += 1
    assert checked >= 10
    failed = [lab for lab in fleet.labels() if lab.failure_ms is not None]
    assert len(failed) >= 3  # the iced coil no longer cools: the cabinet warms for good
    for label in failed:
        assert label.failure_ms is not None
        assert label.failure_ms - label.onset_ms > DAY_MS


def test_stuck_sensor_reports_one_frozen_value_while_the_cabinet_moves_on() -> None:
    fleet, values, true_c, ts = fridge_run({"sensor_stuck": 1}, 30, 12, seed=33)
    reading = values[:, :, col("cabinet_c")]
    frozen = 0
    for i in range(30):
        after = ts > fleet.book.onset_ms[i]
        if after.sum() < 10:
            continue
        assert np.unique(reading[after, i]).size == 1
        assert true_c[after, i].std() > 0.0
        frozen += 1
    assert frozen >= 15
    # A frozen reading below cut-out never calls for cooling: those cabinets warm and fail.
    labels = {lab.device_id: lab for lab in fleet.labels()}
    warm = [d for d in labels.values() if d.failure_ms is not None]
    assert warm


def test_drifting_sensor_reads_cold_while_the_cabinet_warms_past_its_limit() -> None:
    fleet, values, true_c, ts = fridge_run({"sensor_drift": 1}, 30, 20, seed=34)
    reading = values[:, :, col("cabinet_c")]
    failed = 0
    for label in fleet.labels():
        i = [d.device_id for d in fleet.devices].index(label.device_id)
        late = ts > label.onset_ms + 5 * DAY_MS
        if late.sum() < 10:
            continue
        # The thermostat holds the (wrong) reading at its setpoint; the truth drifts warm.
        offset = np.median(true_c[late, i] - reading[late, i])
        rate_k_per_day = -fleet.plan.drift_k_per_ms[i] * DAY_MS
        assert offset > 0.5 * rate_k_per_day * 5
        assert abs(np.median(reading[late, i]) - fleet.setpoint_c[i]) < 1.0
        if label.failure_ms is not None:
            failed += 1
            at = ts == label.failure_ms
            assert reading[at, i][0] < fleet.limit_c[i]  # the controller saw nothing wrong
    assert failed >= 5


def vending_run(
    fleet: VendingFleet, days: float, dt_s: float = 3600.0
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, dict[str, Any]]]]:
    steps = round(days * 86_400 / dt_s)
    ts = START_MS + np.arange(1, steps + 1) * round(dt_s * 1000)
    values: list[np.ndarray] = []
    events: list[tuple[int, int, dict[str, Any]]] = []
    for t, ts_ms in enumerate(ts):
        out = fleet.step(int(ts_ms), dt_s)
        values.append(out.values)
        events.extend((t, i, e) for i, e in out.events)
    return np.stack(values), ts, events


def test_payment_reader_declines_more_and_more_cards_until_it_dies() -> None:
    fleet = VendingFleet(
        80, START_MS, np.random.default_rng(35), 1.0, 20 * DAY_MS,
        fault_weights={"payment_reader": 1}, demand_scale=8.0,
    )  # fmt: skip
    values, ts, events = vending_run(fleet, 20)
    fails = values[:, :, [VENDING_CHANNELS.index(f"slot.{s}.fails") for s in SLOTS]]
    vends = np.nansum(values[:, :, [VENDING_CHANNELS.index(f"slot.{s}.vends") for s in SLOTS]], 2)
    auths = values[:, :, VENDING_CHANNELS.index("card_auths")]
    declines = values[:, :, VENDING_CHANNELS.index("card_declines")]
    # A declined card is not a vend the machine attempted: no slot ever fails.
    assert np.nansum(fails) == 0
    assert (declines <= auths).all()
    dead_labels = [
        lab for lab in fleet.labels() if lab.fault == "payment_reader" and lab.failure_ms
    ]
    assert len(dead_labels) >= 20
    ids = [d.device_id for d in fleet.devices]
    healthy, dead_counts = np.zeros(2), np.zeros(3)
    for label in dead_labels:
        i = ids.index(label.device_id)
        assert label.component == "payment"
        before, dead = ts < label.onset_ms, ts >= label.failure_ms
        healthy += auths[before, i].sum(), declines[before, i].sum()
        # Dead, the reader declines every card.
        assert (declines[dead, i] == auths[dead, i]).all()
        dead_counts += declines[dead, i].sum(), vends[dead, i].sum(), auths[dead, i].sum()
        codes = [e.get("code") for _, d, e in events if d == i and e["type"] == "fault"]
        assert codes == ["P21"]
    # A working reader declines 1-5 % of cards (3 % on average over machines).
    assert 0.01 <= healthy[1] / healthy[0] <= 0.05
    # With the reader dead, 30 % of card customers pay cash and the rest walk away: card
    # customers are still a third of all customers (those who bought plus those who left).
    declined, sold, _ = dead_counts
    assert declined / (sold + 0.7 * declined) == pytest.approx(CARD_SHARE, abs=0.03)


def test_stockouts_carry_their_interval_until_the_refill() -> None:
    fleet = VendingFleet(
        60, START_MS, np.random.default_rng(36), 0.0, 14 * DAY_MS, demand_scale=10.0
    )
    values, ts, events = vending_run(fleet, 14)
    stockouts = [lab for lab in fleet.labels() if lab.fault == "stockout"]
    assert len(stockouts) > 50
    restocks = {(d, e["slot"], e["ts_ms"]) for _, d, e in events if e["type"] == "restock"}
    ids = [d.device_id for d in fleet.devices]
    closed = [lab for lab in stockouts if lab.end_ms is not None]
    assert len(closed) > 0.5 * len(stockouts)
    for label in closed:
        i = ids.index(label.device_id)
        assert label.end_ms is not None
        assert label.end_ms >= label.onset_ms
        assert (i, label.component, label.end_ms) in restocks or label.end_ms == label.onset_ms
        stock = values[:, i, VENDING_CHANNELS.index(f"slot.{label.component}.stock")]
        empty = (ts >= label.onset_ms) & (ts < label.end_ms)
        assert np.all(stock[empty] == 0)


def test_restock_on_request_refills_and_closes_the_stockouts() -> None:
    fleet = VendingFleet(
        30, START_MS, np.random.default_rng(37), 0.0, 10 * DAY_MS, demand_scale=20.0,
        route="none",
    )  # fmt: skip
    assert all(d.attributes["route"] == "on-demand" for d in fleet.devices)
    _values, ts, events = vending_run(fleet, 3)
    assert not [e for _, _, e in events if e["type"] == "restock"]
    open_before = [lab for lab in fleet.labels() if lab.fault == "stockout" and lab.end_ms is None]
    assert open_before
    visit_ms = int(ts[-1]) + 1_800_000
    fleet.restock([0, 1, 2], visit_ms)
    with pytest.raises(ValueError, match="after the last sample"):
        fleet.restock([3], int(ts[-1]))
    out = fleet.step(int(ts[-1]) + 3_600_000, 3600.0)
    refills = [(d, e) for d, e in out.events if e["type"] == "restock"]
    assert {d for d, _ in refills} == {0, 1, 2}
    assert all(e["ts_ms"] == visit_ms for _, e in refills)
    assert fleet.visits[-3:] == [(0, visit_ms), (1, visit_ms), (2, visit_ms)]
    for label in fleet.labels():
        if label.fault == "stockout" and label.device_id in {"vm-000001", "vm-000002"}:
            assert label.end_ms is not None


def test_writing_stock_directly_also_ends_a_stockout() -> None:
    fleet = VendingFleet(
        20, START_MS, np.random.default_rng(38), 0.0, 10 * DAY_MS, demand_scale=20.0,
        route="none",
    )  # fmt: skip
    _, ts, _ = vending_run(fleet, 3)
    fleet.stock = np.where(fleet.has_slot, fleet.capacity, 0)
    fleet.step(int(ts[-1]) + 3_600_000, 3600.0)
    assert all(lab.end_ms is not None for lab in fleet.labels() if lab.fault == "stockout")


def tyre_run(fleet: TyreFleet, days: float, dt_s: float = 1800.0) -> tuple[np.ndarray, np.ndarray]:
    steps = round(days * 86_400 / dt_s)
    ts = START_MS + np.arange(1, steps + 1) * round(dt_s * 1000)
    return np.stack([fleet.step(int(t), dt_s).values for t in ts]), ts


def test_valve_leak_loses_air_faster_while_driving() -> None:
    fleet = TyreFleet(
        40, START_MS, np.random.default_rng(39), 1.0, 20 * DAY_MS,
        fault_weights={"valve_leak": 1},
    )  # fmt: skip
    ref_before = fleet.ref_kpa.copy()
    driving_loss: list[float] = []
    parked_loss: list[float] = []
    for k in range(1, 8 * 48 + 1):
        ts = START_MS + k * 1_800_000
        before = fleet.ref_kpa[np.arange(40), fleet.tyre].copy()
        odo = fleet.odometer_km.copy()
        fleet.step(ts, 1800.0)
        after = fleet.ref_kpa[np.arange(40), fleet.tyre]
        started = fleet.book.onset_ms < ts - 1_800_000
        rate = np.log(before / after)[started]
        moved = (fleet.odometer_km - odo)[started] > 5.0
        driving_loss.extend(rate[moved])
        parked_loss.extend(rate[~moved])
    assert np.mean(driving_loss) > 1.5 * np.mean(parked_loss)
    assert np.all(fleet.ref_kpa <= ref_before + 1e-9)


def test_tpms_battery_fades_below_low_voltage_then_the_sensor_falls_silent() -> None:
    fleet = TyreFleet(
        30, START_MS, np.random.default_rng(40), 1.0, 40 * DAY_MS,
        fault_weights={"tpms_battery": 1},
    )  # fmt: skip
    values, ts = tyre_run(fleet, 40)
    failed = 0
    for label in fleet.labels():
        i = [d.device_id for d in fleet.devices].index(label.device_id)
        pos = label.component
        assert pos in POSITIONS
        volts = values[:, i, TYRE_CHANNELS.index(f"{pos}.battery_v")]
        pressure = values[:, i, TYRE_CHANNELS.index(f"{pos}.pressure_kpa")]
        if label.failure_ms is None:
            continue
        failed += 1
        at = int(np.searchsorted(ts, label.failure_ms))
        assert np.nanmin(volts[: at + 1]) < LOW_BATTERY_V + 0.1  # reading includes the cold
        silent = np.isnan(pressure)
        if silent.any():
            first = int(np.argmax(silent))
            assert np.all(silent[first:])
            assert fleet.battery_v[i, POSITIONS.index(pos)] < DEAD_BATTERY_V
            assert first >= at
    assert failed >= 10


def test_fault_weights_name_unknown_faults_and_bad_weights() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown fault 'jammed_coil'"):
        FridgeFleet(5, START_MS, rng, 0.5, DAY_MS, fault_weights={"jammed_coil": 1})
    with pytest.raises(ValueError, match="'puncture' must be a finite number"):
        TyreFleet(5, START_MS, rng, 0.5, DAY_MS, fault_weights={"puncture": -1})
    with pytest.raises(ValueError, match="at least one fault weight"):
        VendingFleet(5, START_MS, rng, 0.5, DAY_MS, fault_weights={"jammed_coil": 0})
    with pytest.raises(ValueError, match="unknown fault 'meteor'"):
        MixedFleet(9, START_MS, 1, fault_weights={"meteor": 1})
    with pytest.raises(ValueError, match="demand_scale"):
        VendingFleet(5, START_MS, rng, 0.5, DAY_MS, demand_scale=0.0)
    with pytest.raises(ValueError, match="route"):
        VendingFleet(5, START_MS, rng, 0.5, DAY_MS, route="daily")
    with pytest.raises(ValueError, match="variant_shares"):
        FridgeFleet(5, START_MS, rng, 0.5, DAY_MS, variant_shares=(1, 0))


def test_mixed_fleet_fault_weights_go_to_their_kind() -> None:
    fleet = MixedFleet(
        90, START_MS, 4, fault_share=1.0, horizon_days=10,
        fault_weights={"power_cut": 1, "puncture": 2},
    )  # fmt: skip
    assert set(fleet.fridges.book.fault.tolist()) == {
        fleet.fridges.book.fault_names.index("power_cut")
    }
    assert set(fleet.tyres.book.fault.tolist()) == {fleet.tyres.book.fault_names.index("puncture")}
    assert set(fleet.vending.book.fault.tolist()) == {-1}  # no vending fault weighs anything
