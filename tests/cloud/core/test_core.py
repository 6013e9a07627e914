"""Behaviour of the first core models, without any server."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cloud.batch import TelemetryBatch
from cloud.core import fleet, vending
from cloud.core.kernels import rank_within_groups
from cloud.core.tyres import compensate_kpa
from cloud.decisions import PolicyState, decide

DAY = 86_400_000
STEP = 600_000  # 10 minutes
T0 = 1_767_225_600_000


def make_batch(
    kind: str, device: str, ts: np.ndarray, cols: dict[str, np.ndarray], seq0: int = 0
) -> TelemetryBatch:
    names = tuple(cols)
    return TelemetryBatch(
        kind=kind,
        device_ids=(device,),
        channels=names,
        row_device=np.zeros(ts.size, dtype=np.int64),
        row_seq=seq0 + np.arange(ts.size, dtype=np.int64) // 6,
        ts_ms=ts.astype(np.int64),
        values=np.stack([np.asarray(cols[c], dtype=float) for c in names], axis=1),
    )


def noisy(cabinet_c: np.ndarray) -> np.ndarray:
    """A cabinet sensor's reading: the temperature plus its noise (a stuck sensor has none)."""
    return cabinet_c + np.random.default_rng(3).normal(0.0, 0.05, cabinet_c.shape)


def fridge_rows(days: float, duty: np.ndarray | float, cabinet: np.ndarray | float = 4.0):
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    n = ts.size
    daily = 0.05 * np.sin(2 * np.pi * (ts - T0) / DAY)
    noise = np.random.default_rng(7).normal(0.0, 0.08, n)  # a compressor cycles within a sample
    duty_arr = np.clip(np.broadcast_to(duty, n) + daily + noise, 0, 1)
    cols = {
        "cabinet_c": noisy(np.broadcast_to(cabinet, n)),
        "compressor_on": duty_arr,
        "mains_ok": np.ones(n),
    }
    return ts, cols


def run(kind: str, ts, cols, chunk: int = 6, device: str = "dev-001"):
    state = fleet.FleetState.empty()
    policy = PolicyState()
    decisions = []
    for i in range(0, ts.size, chunk):
        sl = slice(i, i + chunk)
        batch = make_batch(kind, device, ts[sl], {k: v[sl] for k, v in cols.items()}, seq0=i)
        state, conds = fleet.update(state, batch)
        policy, out = decide(policy, kind, state.device_ids(kind), conds)
        decisions.extend(out)
    return state, decisions


def test_rank_within_groups_orders_each_device_in_time():
    group = np.array([1, 0, 1, 0, 1])
    ts = np.array([30, 20, 10, 10, 20])
    order, rank = rank_within_groups(group, ts)
    assert group[order].tolist() == [0, 0, 1, 1, 1]
    assert ts[order].tolist() == [10, 20, 10, 20, 30]
    assert rank.tolist() == [0, 1, 0, 1, 2]


def test_healthy_fridge_opens_nothing():
    ts, cols = fridge_rows(20, 0.4)
    _, decisions = run("fridge", ts, cols)
    assert decisions == []


def test_refrigerant_leak_is_ticketed_before_the_cabinet_warms():
    days = 20
    ts, cols = fridge_rows(days, 0.0)
    frac = (ts - T0) / (days * DAY)
    duty = np.clip(0.35 + 1.6 * np.maximum(frac - 0.25, 0), 0, 1)  # rises from day 5
    cols["compressor_on"] = duty
    saturate_ms = ts[np.argmax(duty >= 0.97)]
    _, decisions = run("fridge", ts, cols)
    assert decisions, "a steady rise of the duty cycle must open an episode"
    first = decisions[0]
    assert first.fault == "fridge.cooling"
    assert first.ts_ms < saturate_ms - 2 * DAY
    assert first.eta_lo_ms is not None
    assert first.eta_hi_ms is not None
    assert first.eta_lo_ms <= first.eta_ms <= first.eta_hi_ms
    assert {d.decision_id for d in decisions} == {first.decision_id}


def test_streaming_equals_batch_for_fridges():
    ts, cols = fridge_rows(3, 0.5)
    one = make_batch("fridge", "dev-001", ts, cols)
    s_batch, _ = fleet.update(fleet.FleetState.empty(), one)
    s_stream = fleet.FleetState.empty()
    for i in range(ts.size):
        row = make_batch(
            "fridge", "dev-001", ts[i : i + 1], {k: v[i : i + 1] for k, v in cols.items()}
        )
        s_stream, _ = fleet.update(s_stream, row)
    for name in ("duty", "cabinet_c", "above_ms", "last_ts_ms"):
        np.testing.assert_allclose(getattr(s_batch.fridge, name), getattr(s_stream.fridge, name))
    for a, b in zip(s_batch.fridge.trend.arrays(), s_stream.fridge.trend.arrays(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9)


def test_input_batch_is_not_mutated():
    ts, cols = fridge_rows(1, 0.5)
    batch = make_batch("fridge", "dev-001", ts, cols)
    before = batch.values.copy()
    fleet.update(fleet.FleetState.empty(), batch)
    np.testing.assert_array_equal(before, batch.values)


def test_late_rows_do_not_move_the_state():
    ts, cols = fridge_rows(1, 0.5)
    batch = make_batch("fridge", "dev-001", ts, cols)
    state, _ = fleet.update(fleet.FleetState.empty(), batch)
    again, conds = fleet.update(state, batch)
    np.testing.assert_array_equal(state.fridge.duty, again.fridge.duty)
    assert not conds[0].touched.any()


def test_compressor_stop_is_critical_at_once_but_power_cut_is_not_a_fault():
    ts, cols = fridge_rows(6, 0.4)
    stop = ts >= T0 + 4 * DAY
    cols["compressor_on"] = np.where(stop, 0.0, cols["compressor_on"])
    cols["cabinet_c"] = noisy(np.where(stop, 4.0 + (ts - T0 - 4 * DAY) / 3600_000.0, 4.0))
    _, decisions = run("fridge", ts, cols)
    assert decisions
    assert decisions[0].severity == "critical"
    assert "compressor" in decisions[0].summary

    ts, cols = fridge_rows(6, 0.4)
    cut = (ts >= T0 + 4 * DAY) & (ts < T0 + 4 * DAY + 8 * 3600_000)
    cols["mains_ok"] = np.where(cut, 0.0, 1.0)
    cols["compressor_on"] = np.where(cut, 0.0, cols["compressor_on"])
    cols["cabinet_c"] = noisy(np.where(cut, 4.0 + (ts - T0 - 4 * DAY) / 3600_000.0, 4.0))
    _, decisions = run("fridge", ts, cols)
    assert decisions == []


def test_gas_law_compensation_removes_temperature():
    air = (240.0 + 101.325) / 293.15  # constant air mass
    temp = np.array([-10.0, 0.0, 20.0, 60.0])
    gauge = air * (temp + 273.15) - 101.325
    np.testing.assert_allclose(compensate_kpa(gauge, temp), 240.0)


def tyre_rows(days: float, leak_kpa_per_day: float = 0.0, puncture_at_day: float | None = None):
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    hours = ((ts - T0) / 3600_000.0) % 24
    ambient = 8.0 + 10.0 * np.sin(2 * np.pi * (hours - 9) / 24)  # cold mornings
    cold = 240.0 - leak_kpa_per_day * (ts - T0) / DAY
    if puncture_at_day is not None:
        t_p = T0 + puncture_at_day * DAY
        cold = np.where(ts >= t_p, np.maximum(cold - (ts - t_p) / 60_000.0 * 5, 60.0), cold)
    gauge = (cold + 101.325) * (ambient + 273.15) / 293.15 - 101.325
    cols = {"ambient_c": ambient}
    for p in ("fl", "fr", "rl", "rr"):
        cols[f"{p}.pressure_kpa"] = (
            gauge.copy() if p == "fl" else (240.0 + 101.325) * (ambient + 273.15) / 293.15 - 101.325
        )
        cols[f"{p}.temp_c"] = ambient
    return ts, cols


def test_cold_mornings_raise_no_tyre_ticket():
    ts, cols = tyre_rows(10)
    _, decisions = run("tyres", ts, cols)
    assert decisions == []


def test_slow_leak_gives_an_eta_before_the_limit():
    ts, cols = tyre_rows(12, leak_kpa_per_day=6.0)  # limit 180 kPa after 10 days
    _, decisions = run("tyres", ts, cols)
    assert decisions
    first = decisions[0]
    assert first.fault == "tyres.pressure.fl"
    assert first.severity == "warning"
    true_failure = T0 + 10 * DAY
    assert first.ts_ms < true_failure - 3 * DAY
    assert abs(first.eta_ms - true_failure) < 3 * DAY


def test_puncture_is_critical_within_the_hour():
    ts, cols = tyre_rows(3, puncture_at_day=2.0)
    _, decisions = run("tyres", ts, cols)
    assert decisions
    assert decisions[0].severity == "critical"
    assert decisions[0].ts_ms - (T0 + 2 * DAY) <= 3600_000


def vending_rows(days: float, jam_slot_after_day: float | None = None):
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    n = ts.size
    rng = np.random.default_rng(1)
    cols: dict[str, np.ndarray] = {"cabinet_c": np.full(n, 5.0)}
    for slot, rate_h in (("A1", 0.5), ("A2", 0.1)):
        vends = rng.poisson(rate_h * STEP / 3600_000.0, n).astype(float)
        stock = np.maximum(30 - np.cumsum(vends), 0)
        fails = np.zeros(n)
        if jam_slot_after_day is not None and slot == "A2":
            jammed = ts >= T0 + jam_slot_after_day * DAY
            fails = np.where(jammed, 1.0, 0.0)
            vends = np.where(jammed, 0.0, vends)
            stock = np.maximum(30 - np.cumsum(vends), 0)
        cols[f"slot.{slot}.stock"] = stock
        cols[f"slot.{slot}.vends"] = np.where(stock > 0, vends, 0)
        cols[f"slot.{slot}.fails"] = fails
    return ts, cols


def test_vending_restock_is_ordered_before_the_slot_sells_out():
    ts, cols = vending_rows(4)
    _, decisions = run("vending", ts, cols)
    restock = [d for d in decisions if d.fault == "vending.restock"]
    assert restock
    sold_out = ts[np.argmax(cols["slot.A1.stock"] == 0)]
    assert restock[0].ts_ms < sold_out
    assert "A1" in restock[0].summary


def test_jammed_coil_is_found_from_failed_vends_with_stock_left():
    ts, cols = vending_rows(2, jam_slot_after_day=1.0)
    _, decisions = run("vending", ts, cols)
    jams = [d for d in decisions if d.fault.startswith("vending.jammed_coil")]
    assert len(jams) == 1
    assert jams[0].fault == "vending.jammed_coil.A2"


def two_failed_vends_at_a2(later_fail_at_a1_h: float | None = None, day: int = 1):
    """A slow slot A2 fails two vends an hour apart on ``day`` and is not tried again; A1 sells
    on, and fails one vend ``later_fail_at_a1_h`` hours after A2's first when given."""
    ts, cols = vending_rows(day + 3)
    first = T0 + day * DAY
    cols["slot.A2.vends"] = np.zeros(ts.size)
    cols["slot.A2.fails"] = np.where((ts == first) | (ts == first + 6 * STEP), 1.0, 0.0)
    if later_fail_at_a1_h is not None:
        at = first + int(later_fail_at_a1_h * 6) * STEP
        cols["slot.A1.fails"] = np.where(ts == at, 1.0, 0.0)
    return first, ts, cols


def test_two_failed_vends_are_a_jam_once_the_rest_of_the_machine_has_sold_a_dozen():
    first, ts, cols = two_failed_vends_at_a2()
    _, decisions = run("vending", ts, cols)
    jams = [d for d in decisions if d.fault.startswith("vending.jammed_coil")]
    assert [d.fault for d in jams] == ["vending.jammed_coil.A2"]
    # not at the second failure (a payment reader starting to fail can decline two in a row),
    # but within the message in which A1 sells its twelfth item since the first
    sold_after = np.cumsum(np.where(ts > first, cols["slot.A1.vends"], 0))
    twelfth = ts[np.argmax(sold_after >= 12)]
    assert twelfth > first + 6 * STEP
    assert twelfth <= jams[0].ts_ms < twelfth + 6 * STEP


def test_a_third_failed_vend_confirms_a_jam_at_once():
    first, ts, cols = two_failed_vends_at_a2()
    third = first + 18 * STEP  # three hours after the first
    cols["slot.A2.fails"] = np.where(ts == third, 1.0, cols["slot.A2.fails"])
    _, decisions = run("vending", ts, cols)
    jams = [d for d in decisions if d.fault.startswith("vending.jammed_coil")]
    assert len(jams) == 1
    assert third <= jams[0].ts_ms <= third + 6 * STEP  # within the message that carries it


def test_two_failed_vends_followed_by_a_failure_at_another_slot_are_not_a_jam():
    _, ts, cols = two_failed_vends_at_a2(later_fail_at_a1_h=12)
    _, decisions = run("vending", ts, cols)
    assert not [d for d in decisions if d.fault.startswith("vending.jammed_coil")]


def test_failed_vends_spread_thinly_over_other_slots_are_not_a_jam():
    # A dead reader on a quiet machine declines now at one slot, now at another: no other slot
    # failed twice, but together they failed twice in the days before A2's run.
    first, ts, cols = two_failed_vends_at_a2(day=7)
    for slot, days_before in (("A3", 6.0), ("A4", 5.5)):
        at = first - int(days_before * DAY / STEP) * STEP
        cols[f"slot.{slot}.stock"] = np.full(ts.size, 10.0)
        cols[f"slot.{slot}.vends"] = np.zeros(ts.size)
        cols[f"slot.{slot}.fails"] = np.where(ts == at, 1.0, 0.0)
    third = first + 18 * STEP
    cols["slot.A2.fails"] = np.where(ts == third, 1.0, cols["slot.A2.fails"])
    _, decisions = run("vending", ts, cols)
    assert not [d for d in decisions if d.fault.startswith("vending.jammed_coil")]


@pytest.mark.parametrize("kind", ["fridge", "tyres", "vending"])
def test_devices_appearing_later_grow_the_state(kind):
    ts, cols = {
        "fridge": fridge_rows(0.5, 0.4),
        "tyres": tyre_rows(0.5),
        "vending": vending_rows(0.5),
    }[kind]
    state = fleet.FleetState.empty()
    state, _ = fleet.update(state, make_batch(kind, "dev-a", ts, cols))
    state, conds = fleet.update(state, make_batch(kind, "dev-b", ts, cols))
    assert state.device_ids(kind) == ("dev-a", "dev-b")
    assert all(c.touched.shape[0] == c.unit_device.shape[0] for c in conds)


def test_a_stuck_cabinet_sensor_is_flagged_but_a_live_one_is_not():
    ts, cols = fridge_rows(4, 0.4)
    frozen = ts >= T0 + 3 * DAY
    cols["cabinet_c"] = np.where(frozen, 4.21, cols["cabinet_c"])
    _, decisions = run("fridge", ts, cols)
    assert decisions
    assert "stuck" in decisions[0].summary
    assert decisions[0].ts_ms >= T0 + 3 * DAY + 3 * 3600_000


def tyre_battery_rows(days: float, fall_v_per_day: float):
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    hours = ((ts - T0) / 3600_000.0) % 24
    ambient = 8.0 + 10.0 * np.sin(2 * np.pi * (hours - 9) / 24)
    cols = {"ambient_c": ambient}
    noise = np.random.default_rng(2).normal(0.0, 0.005, ts.size)
    for p in ("fl", "fr", "rl", "rr"):
        cols[f"{p}.pressure_kpa"] = (240.0 + 101.325) * (ambient + 273.15) / 293.15 - 101.325
        cols[f"{p}.temp_c"] = ambient
        fall = fall_v_per_day * (ts - T0) / DAY if p == "rl" else 0.0
        # a cell reads higher when warm; the core refers it to 20 °C
        cols[f"{p}.battery_v"] = 3.0 - fall + 0.003 * (ambient - 20.0) + noise
    return ts, cols


def test_a_sensor_cell_running_down_gets_an_eta_and_a_cold_night_does_not():
    ts, cols = tyre_battery_rows(10, 0.03)  # 3.0 V → 2.6 V after 13.3 days
    _, decisions = run("tyres", ts, cols)
    battery = [d for d in decisions if d.fault == "tyres.tpms_battery"]
    assert battery
    first = battery[0]
    assert first.eta_lo_ms <= T0 + 13.3 * DAY <= first.eta_hi_ms
    assert dict(first.contributions)["rl.battery_v"] == 1.0
    _, healthy = run("tyres", *tyre_battery_rows(10, 0.0))
    assert not [d for d in healthy if d.fault == "tyres.tpms_battery"]


def tread_rows(days: float, wear_mm_per_km: float, start_mm: float = 2.4):
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    km = 60.0 * (ts - T0) / DAY  # 60 km a day
    daily = ((ts - T0) % DAY) == 0
    rng = np.random.default_rng(4)
    cols = {"ambient_c": np.full(ts.size, 15.0), "odometer_km": 20_000.0 + km}
    for p in ("fl", "fr", "rl", "rr"):
        cols[f"{p}.pressure_kpa"] = np.full(ts.size, 240.0 * 288.15 / 293.15)
        cols[f"{p}.temp_c"] = np.full(ts.size, 15.0)
        depth = start_mm - wear_mm_per_km * km + rng.normal(0.0, 0.02, ts.size)
        cols[f"{p}.tread_mm"] = np.where(daily, np.round(depth, 2), np.nan)
    return ts, cols


def test_tread_gives_km_and_days_to_the_advice_and_legal_limits():
    ts, cols = tread_rows(14, 0.4e-3)  # 24 mm/1000 km·day → 1.6 mm after 33 days
    _, decisions = run("tyres", ts, cols)
    tread = [d for d in decisions if d.fault == "tyres.tread"]
    assert tread
    with_eta = [d for d in tread if d.eta_ms is not None]
    assert with_eta, "after enough daily readings the wear rate gives an ETA"
    legal_ms = T0 + (0.8 / (0.4e-3 * 60.0)) * DAY
    d = with_eta[0]
    assert d.eta_lo_ms <= legal_ms <= d.eta_hi_ms
    note = dict(d.details)["tread"]
    assert "1.6 mm in about" in note
    assert "km" in note
    assert "days" in note


def test_normal_tread_wear_raises_nothing():
    _, decisions = run("tyres", *tread_rows(20, 0.16e-3, start_mm=6.0))
    assert not [d for d in decisions if d.fault == "tyres.tread"]


def test_failed_vends_at_many_slots_are_the_payment_reader_not_jams():
    ts, cols = vending_rows(3)
    later = ts >= T0 + DAY
    rng = np.random.default_rng(6)
    for slot in ("A1", "A2"):
        cols[f"slot.{slot}.fails"] = np.where(later & (rng.random(ts.size) < 0.15), 1.0, 0.0)
    _, decisions = run("vending", ts, cols)
    faults = {d.fault for d in decisions}
    assert "vending.payment_reader" in faults
    assert not any(f.startswith("vending.jammed_coil") for f in faults)


def with_card_reader(cols: dict[str, np.ndarray], decline_p: np.ndarray, seed: int = 3) -> None:
    """Add the card reader's counts: a third of the vends paid by card, ``decline_p`` of those
    cards (per sample) declined."""
    rng = np.random.default_rng(seed)
    vends = sum(v for k, v in cols.items() if k.endswith(".vends"))
    auths = rng.binomial(vends.astype(np.int64), 1 / 3) + rng.poisson(0.05, vends.size)
    cols["card_auths"] = auths.astype(float)
    cols["card_declines"] = rng.binomial(auths, decline_p).astype(float)


def test_a_working_card_reader_raises_nothing_over_weeks():
    ts, cols = vending_rows(21)
    with_card_reader(cols, np.full(ts.size, 0.05))
    assert cols["card_declines"].sum() >= 5  # it does decline cards, as issuers do
    state, decisions = run("vending", ts, cols)
    assert not [d for d in decisions if d.fault != "vending.restock"]
    assert float(state.vending.decline_cusum.max()) < vending.DECLINE_ALARM


def test_a_card_reader_that_declines_most_cards_is_the_payment_reader():
    ts, cols = vending_rows(4)
    failing = ts >= T0 + 2 * DAY
    with_card_reader(cols, np.where(failing, 1.0, 0.02))  # then it declines every card
    _, decisions = run("vending", ts, cols)
    payment = [d for d in decisions if d.fault == "vending.payment_reader"]
    assert len(payment) == 1
    assert "declines far more cards than a working reader" in payment[0].summary
    assert dict(payment[0].contributions)["card_declines"] == 1.0
    # four declines in a row reach the alarm (4 × 1.20 > ln 100), and the policy opens the
    # ticket once the condition has held for three messages
    declined = np.cumsum(np.where(failing, cols["card_declines"], 0))
    fourth = ts[np.argmax(declined >= 4)]
    assert T0 + 2 * DAY < payment[0].ts_ms <= fourth + 3 * 6 * STEP
    assert not [d for d in decisions if d.fault.startswith("vending.jammed_coil")]


def test_with_the_card_readers_counts_two_failed_vends_are_a_jam_at_once():
    # Its declines are counted apart, so a failed vend is the coil's: no confirmation is
    # needed, and a failure at another slot does not hide it.
    first, ts, cols = two_failed_vends_at_a2(later_fail_at_a1_h=0.5)
    with_card_reader(cols, np.full(ts.size, 0.03))
    _, decisions = run("vending", ts, cols)
    jams = [d for d in decisions if d.fault.startswith("vending.jammed_coil")]
    assert [d.fault for d in jams] == ["vending.jammed_coil.A2"]
    second = first + 6 * STEP
    assert second <= jams[0].ts_ms <= second + 6 * STEP  # within the message that carries it


def test_more_declines_than_card_payments_are_clipped_not_trusted():
    ts, cols = vending_rows(3)
    with_card_reader(cols, np.full(ts.size, 0.0))
    cols["card_declines"] = cols["card_auths"] + 5.0  # a firmware that miscounts
    state, _ = run("vending", ts, cols)
    v = state.vending
    assert np.isfinite(v.decline_cusum).all()
    assert float(v.card_declines_w[0]) <= float(v.card_auths_w[0]) + 1e-3


def _first_restock(ts, cols, visits: dict[str, object] | None):
    """The first restock decision for one machine configured with these planned visits."""
    attrs: dict[str, object] = {
        "slots": [{"slot": "A1", "capacity": 30}, {"slot": "A2", "capacity": 30}]
    }
    if visits is not None:
        attrs["visits"] = visits
    state = fleet.configure(fleet.FleetState.empty(), "vending", "dev-001", attrs)
    policy = PolicyState()
    for i in range(0, ts.size, 6):
        sl = slice(i, i + 6)
        batch = make_batch("vending", "dev-001", ts[sl], {k: v[sl] for k, v in cols.items()}, i)
        state, conds = fleet.update(state, batch)
        policy, out = decide(policy, "vending", state.device_ids("vending"), conds)
        restock = [d for d in out if d.fault == "vending.restock"]
        if restock:
            return restock[0], state
    return None, state


def test_hours_to_the_next_planned_visit_follow_the_local_clock():
    visits = vending.PlannedVisits(("mon", "thu"), 9, "Europe/Berlin")  # 08:00 UTC in winter
    st = fleet.FleetState.empty()
    for device, planned in (("a", visits), ("b", visits), ("c", None)):
        st = replace(st, vending=vending.configure(st.vending, device, {"A1": 5}, planned))
    v = st.vending
    monday = 1_767_571_200_000  # 2026-01-05 00:00 UTC
    v.last_ts_ms[:] = [monday + 7 * 3_600_000 + 1_800_000, monday + 8 * 3_600_000 + 600_000, monday]
    hours = vending.hours_to_visit(v)
    assert hours[0] == pytest.approx(0.5)  # 07:30 UTC: the 09:00 Berlin visit is half an hour on
    assert hours[1] == pytest.approx(3 * 24 - 1 / 6)  # during the visit hour: Thursday's is next
    assert hours[2] == np.inf  # visited on demand
    with pytest.raises(ValueError, match="unknown time zone"):
        vending.PlannedVisits(("mon",), 9, "Nowhere/Land")
    with pytest.raises(ValueError, match="visit days"):
        vending.PlannedVisits(("someday",), 9, "UTC")


def test_a_planned_visit_tomorrow_makes_an_extra_one_today_unneeded():
    ts, cols = vending_rows(4)  # A1 sells out after about 60 hours
    sold_out = ts[np.argmax(cols["slot.A1.stock"] == 0)]
    on_demand, _ = _first_restock(ts, cols, None)
    assert on_demand is not None
    assert on_demand.ts_ms < sold_out
    # Visited every day at 06:00 UTC, the machine needs an extra visit only when a slot may
    # sell out before the next morning's: later, and with less stock left.
    daily = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "hour": 6, "tz": "UTC"}
    extra, state = _first_restock(ts, cols, daily)
    assert extra is not None
    assert on_demand.ts_ms < extra.ts_ms < sold_out
    assert float(vending.hours_to_visit(state.vending)[0]) <= 24
    # A machine whose next planned visit lies beyond the horizon is ordered for as if on demand.
    weekly = {"days": ["wed"], "hour": 20, "tz": "UTC"}  # the data runs Thursday to Sunday
    far, _ = _first_restock(ts, cols, weekly)
    assert far is not None
    assert far.ts_ms == on_demand.ts_ms


def test_planned_visits_of_the_wrong_shape_leave_the_machine_on_demand():
    for bad in ({"days": "mon", "hour": 9, "tz": "UTC"}, {"days": ["mon"], "hour": 9},
                {"days": ["mon"], "hour": 9, "tz": "Nowhere/Land"}, "weekly"):  # fmt: skip
        st = fleet.configure(fleet.FleetState.empty(), "vending", "dev-001",
                             {"slots": [{"slot": "A1", "capacity": 5}], "visits": bad})  # fmt: skip
        assert int(st.vending.visit_zone[0]) == -1
        assert not st.vending.visit_mask.any()


def test_restock_decision_carries_pick_list_priority_and_an_interval():
    ts, cols = vending_rows(4)
    _, decisions = run("vending", ts, cols)
    restock = [d for d in decisions if d.fault == "vending.restock"]
    assert restock
    d = restock[0]
    assert 0.5 <= d.score <= 1.0  # the route priority: the worst slot's stock-out probability
    assert d.eta_lo_ms <= d.eta_ms <= d.eta_hi_ms
    pick = dict(d.details)["pick_list"]
    assert pick.startswith("A1×")


def test_an_odometer_jump_is_not_distance_driven():
    ts, cols = tread_rows(20, 0.16e-3, start_mm=6.0)
    jump = ts >= T0 + 5 * DAY
    cols["odometer_km"] = np.where(jump, cols["odometer_km"] + 80_000.0, cols["odometer_km"])
    state, decisions = run("tyres", ts, cols)
    assert not [d for d in decisions if d.fault == "tyres.tread"]
    assert 50.0 < float(state.tyres.km_per_day[0]) < 70.0  # 60 km a day, jump or not
