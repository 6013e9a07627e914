"""Backtest scoring rules without a simulation: ticket matching, ledger, visits, progress."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from cloud.decision_types import Action, Decision, Severity
from forewarn.backtest.ledger import DecisionRecord, Ledger, TicketRecord
from forewarn.backtest.metrics import eta_coverage, match, on_faulty_devices, score_kind
from forewarn.backtest.progress import ProgressBar
from forewarn.backtest.restock import RouteDriver, next_visit_ms, visit_for_ms
from simulators.scenario import RestockPolicy, load_scenario
from simulators.types import FaultLabel
from simulators.vending import VendingFleet

DAY = 86_400_000
T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday


def _ticket(device: str, fault: str, opened_ms: int, tag: str = "") -> TicketRecord:
    return TicketRecord(device, "tyres", fault, "advice", opened_ms, f"{device}{fault}{tag}",
                        "warning", 0.8, emailed=False)  # fmt: skip


def _decision(device: str, fault: str, ts_ms: int, lo: int | None, hi: int | None):
    return DecisionRecord(f"d-{device}", device, fault, "warning", ts_ms, 0.9, lo, lo, hi)


def test_tickets_match_faults_by_device_family_component_and_time():
    leak = FaultLabel("ty-000001", "tyres", "slow_leak", T0 + DAY, T0 + 5 * DAY, "fl")
    cut = FaultLabel("fr-000001", "fridge", "power_cut", T0 + DAY, None)
    late = FaultLabel("ty-000002", "tyres", "puncture", T0 + DAY, T0 + DAY + 600_000, "rr")
    tickets = [
        _ticket("ty-000001", "tyres.pressure.fr", T0 + 2 * DAY),  # wrong tyre: false
        _ticket("ty-000001", "tyres.pressure.fl", T0 + 2 * DAY),  # right: 3 days early
        _ticket("ty-000002", "tyres.pressure.rr", T0 + DAY - 1),  # before onset: false
        _ticket("ty-000002", "tyres.pressure.rr", T0 + 2 * DAY, "b"),  # after failure
        _ticket("fr-000001", "fridge.cooling", T0 + DAY + 3_600_000),  # a power cut: false
    ]
    matches, false = match([leak, cut, late], tickets, [])
    assert [m.label.fault for m in matches] == ["slow_leak", "puncture"]
    leak_m, late_m = matches
    assert leak_m.before_failure
    assert leak_m.lead_days == pytest.approx(3.0)
    assert late_m.detected
    assert not late_m.before_failure
    assert late_m.lead_days is None
    assert {(t.device_id, t.fault, t.opened_ms) for t in false} == {
        ("ty-000001", "tyres.pressure.fr", T0 + 2 * DAY),
        ("ty-000002", "tyres.pressure.rr", T0 + DAY - 1),
        ("fr-000001", "fridge.cooling", T0 + DAY + 3_600_000),
    }
    # The wrong tyre on a leaking vehicle is a false ticket on a faulty device; a ticket before
    # the onset or after a power cut is not.
    assert on_faulty_devices(false, [leak, cut, late]) == 1
    kind = score_kind("tyres", "slow_leak", [leak_m])
    assert (kind.injected, kind.failed, kind.detected_before_failure) == (1, 1, 1)
    assert kind.detected_before_failure_pct == 100.0
    assert kind.median_lead_days == kind.p10_lead_days == 3.0
    assert score_kind("tyres", "puncture", [late_m]).detected_before_failure_pct == 0.0


def test_eta_coverage_uses_the_first_interval_issued_before_the_failure():
    failure = T0 + 5 * DAY
    a = FaultLabel("ty-000001", "tyres", "slow_leak", T0, failure, "fl")
    b = FaultLabel("ty-000002", "tyres", "slow_leak", T0, failure, "fl")
    c = FaultLabel("ty-000003", "tyres", "slow_leak", T0, failure, "fl")
    tickets = [_ticket(d, "tyres.pressure.fl", T0 + DAY) for d in ("ty-000001", "ty-000002")]
    tickets.append(_ticket("ty-000003", "tyres.pressure.fl", T0 + DAY))
    decisions = [
        _decision("ty-000001", "tyres.pressure.fl", T0 + DAY, failure - DAY, failure + DAY),
        # a later, wrong interval does not count: the first one does
        _decision("ty-000001", "tyres.pressure.fl", T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY),
        _decision("ty-000002", "tyres.pressure.fl", T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY),
        _decision("ty-000003", "tyres.pressure.fl", T0 + DAY, None, None),  # no interval
    ]
    matches, _ = match([a, b, c], tickets, decisions)
    assert eta_coverage(matches) == (0.5, 2)
    assert eta_coverage([]) == (None, 0)


def _dec(device: str, fault: str, action: Action, ts_ms: int, opened_ms: int) -> Decision:
    return Decision(
        decision_id=f"{device}|{fault}|{opened_ms}", device_id=device, product_kind="fridge",
        fault=fault, action=action, severity=Severity.WARNING, episode=1, opened_ms=opened_ms,
        ts_ms=ts_ms, score=0.9, summary="s",
    )  # fmt: skip


def test_ledger_opens_one_ticket_per_root_cause_and_emails_only_known_addresses():
    ledger = Ledger({"fr-000001"})
    orders = ledger.apply(
        [
            _dec("fr-000001", "fridge.cooling", Action.DISPATCH, T0, T0),
            _dec("fr-000001", "fridge.cooling", Action.DISPATCH, T0 + DAY, T0),  # evidence
            _dec("fr-000001", "fridge.cooling", Action.DISPATCH, T0 + 2 * DAY, T0 + 2 * DAY),
            _dec("fr-000002", "fridge.cooling", Action.DISPATCH, T0, T0),  # no address
            _dec("vm-000001", "vending.restock", Action.RESTOCK, T0, T0),
            _dec("vm-000001", "vending.restock", Action.RESTOCK, T0 + 1, T0),  # same episode
        ]
    )
    # Both restock decisions go to the route (the second refreshes the first's order).
    assert [(o.device_id, o.ts_ms) for o in orders] == [("vm-000001", T0), ("vm-000001", T0 + 1)]
    assert ledger.restock_episodes == 1
    assert [(t.device_id, t.emailed) for t in ledger.tickets] == [
        ("fr-000001", True),
        ("fr-000002", False),
    ]
    assert ledger.emails == 1
    assert len(ledger.decisions) == 4
    assert ledger.restock_decisions == 2


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def test_visits_wait_for_the_delay_and_for_working_hours_in_the_machine_time_zone():
    weekdays = RestockPolicy(delay_h=4, visit_days=(0, 1, 2, 3, 4), visit_start_h=8,
                             visit_end_h=17)  # fmt: skip
    monday_9 = T0 + 9 * 3_600_000
    assert _utc(next_visit_ms(monday_9, "UTC", weekdays)) == dt.datetime(
        2026, 1, 5, 13, tzinfo=dt.UTC
    )
    friday_16 = T0 + 4 * DAY + 16 * 3_600_000
    assert _utc(next_visit_ms(friday_16, "UTC", weekdays)) == dt.datetime(
        2026, 1, 12, 8, tzinfo=dt.UTC
    )
    # 08:00 in New York is 13:00 UTC in January.
    assert _utc(next_visit_ms(T0, "America/New_York", weekdays)) == dt.datetime(
        2026, 1, 5, 13, tzinfo=dt.UTC
    )


def test_a_visit_comes_as_late_as_the_predicted_sell_out_allows():
    weekdays = RestockPolicy(delay_h=4, visit_days=(0, 1, 2, 3, 4), visit_start_h=8,
                             visit_end_h=17)  # fmt: skip
    monday_9 = T0 + 9 * 3_600_000
    wednesday_11_30 = T0 + 2 * DAY + 11 * 3_600_000 + 1_800_000
    assert visit_for_ms(monday_9, wednesday_11_30, "UTC", weekdays) == wednesday_11_30
    wednesday_3 = T0 + 2 * DAY + 3 * 3_600_000  # night: the last working hour before it
    assert _utc(visit_for_ms(monday_9, wednesday_3, "UTC", weekdays)) == dt.datetime(
        2026, 1, 6, 16, tzinfo=dt.UTC
    )
    # Sell-out sooner than a driver can come: the earliest visit.
    assert visit_for_ms(monday_9, monday_9 + 3_600_000, "UTC", weekdays) == monday_9 + 4 * 3_600_000


def test_route_driver_replaces_the_weekly_route_with_ordered_visits():
    s = load_scenario("quick")
    rng = np.random.default_rng(3)
    machines = VendingFleet(6, s.start_ms, rng, 0.0, 7 * DAY)
    driver = RouteDriver(machines, machines.devices, s.restock)
    visits_seen = 0
    for k in range(1, 8 * 24 + 1):  # eight days, hourly: every route day comes once
        ts = s.start_ms + k * 3_600_000
        driver.serve(ts - 3_600_000, ts)
        out = machines.step(ts, 3600.0)
        driver.check_no_route_visit(out)  # the simulator's own route never comes
        if k == 30:
            before = machines.stock.copy()
            driver.order(2, ts, ts + 3 * DAY)
            booked = int(driver.pending_ms[2])
            driver.order(2, ts + 1, None)  # must come sooner: brought forward
            assert ts < driver.pending_ms[2] < booked
            sooner = int(driver.pending_ms[2])
            driver.order(2, ts + 2, ts + 4 * DAY)  # a later one never postpones the visit
            assert driver.pending_ms[2] == sooner
        if k > 30 and driver.pending_ms[2] < 0 and not visits_seen:
            visits_seen = 1
            refilled = machines.stock[2] >= before[2]
            assert refilled[machines.has_slot[2]].all()
    assert driver.orders == 3
    assert [machine for machine, _ in driver.visits] == [2]


def test_route_never_visits_more_often_than_the_weekly_schedule_it_replaces():
    s = load_scenario("quick")
    machines = VendingFleet(8, s.start_ms, np.random.default_rng(5), 0.0, 21 * DAY)
    route_day = machines.route_day.copy()
    driver = RouteDriver(machines, machines.devices, s.restock)
    scheduled = 0
    for k in range(1, 14 * 24 + 1):  # two weeks, hourly; every machine asks all the time
        ts = s.start_ms + k * 3_600_000
        for i in range(8):
            driver.order(i, ts - 3_600_000, None)
        driver.serve(ts - 3_600_000, ts)
        # The schedule visits each machine on its route day; a day's credit comes at 17:00.
        for i, spec in enumerate(machines.devices):
            local = _utc(ts).astimezone(ZoneInfo(spec.tz))
            if local.weekday() == route_day[i] and local.hour == 17 and local.minute == 0:
                scheduled += 1
        assert len(driver.visits) <= scheduled
    assert scheduled == 16
    # Always asked: every visit earned is made, but perhaps the last Friday's (earned after
    # hours where it was earned; a machine in a later time zone may still take it).
    assert scheduled - int((route_day == 4).sum()) <= len(driver.visits) <= scheduled
    # Scarce visits go round: every machine is served, not only the first to ask.
    assert sorted({m for m, _ in driver.visits}) == list(range(8))
    assert all(_utc(t).astimezone(ZoneInfo(machines.devices[m].tz)).weekday() < 5
               for m, t in driver.visits)  # fmt: skip


def test_progress_bar_stays_quiet_on_short_runs_and_reports_tenths_otherwise():
    now = [0.0]
    stream = io.StringIO()
    bar = ProgressBar(stream, "run", clock=lambda: now[0], quiet_for_s=1.0)
    bar(1, 100)
    assert stream.getvalue() == ""
    for done in range(2, 101):
        now[0] += 0.1
        bar(done, 100)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("run [##############################] 100.0 %")
    assert 9 <= len(lines) <= 11
    assert all(line.startswith("run [") for line in lines)
