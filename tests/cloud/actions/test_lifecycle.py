"""Ticket lifecycle on SQLite and PostgreSQL: assignment, transitions, escalation, SLA, feedback."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloud.actions import ActionService, EmailRenderer, EmlDirSender, create_engine_for
from cloud.actions.priority import Priority
from cloud.actions.records import Ticket
from cloud.actions.tickets import ACK_MS, IllegalTransition
from cloud.decision_types import Action, Severity
from cloud.errors import RejectedInput
from tests.cloud.actions.conftest import (
    DAY_MS,
    HOUR_MS,
    T0_MS,
    Clock,
    ServiceFactory,
    make_decision,
)

THURSDAY_10_UTC = T0_MS + 10 * HOUR_MS  # 2026-01-01 is a Thursday


@pytest.fixture
def service(make_service: ServiceFactory, tmp_path: Path, clock: Clock) -> ActionService:
    clock.now_ms = THURSDAY_10_UTC
    svc = make_service(EmlDirSender(tmp_path / "eml"))
    svc.upsert_device("fr-000001", "fridge", "c-1", nickname="Kitchen fridge", region="north")
    svc.upsert_device("fr-000002", "fridge", "c-3", nickname="Cellar freezer", region="north")
    svc.upsert_device("fr-000003", "fridge", None, region="south")
    return svc


def open_ticket(service: ActionService, device_id: str = "fr-000001", **kw: object) -> Ticket:
    decision = make_decision(device_id, ts_ms=THURSDAY_10_UTC, **kw)  # type: ignore[arg-type]
    service.apply([decision])
    ticket = service.ticket_by_correlation(decision.decision_id)
    assert ticket is not None
    return ticket


def walk_to_site(service: ActionService, ticket_id: int, tech: str = "t-ann") -> None:
    service.assign(ticket_id, tech, actor="dispatcher")
    service.move(ticket_id, "en_route", actor=tech)
    service.move(ticket_id, "on_site", actor=tech)


def test_a_new_dispatch_ticket_goes_to_the_right_region_and_skill_on_shift_and_least_busy(
    service: ActionService,
) -> None:
    techs = service.technicians
    techs.upsert("t-ann", "Ann", "north", ["refrigeration"])  # UTC 08-17: on shift at 10 UTC
    techs.upsert("t-ben", "Ben", "north", ["tyres"])  # wrong skill
    techs.upsert("t-cat", "Cat", "south", ["refrigeration"])  # wrong region for fr-000001
    techs.upsert("t-dan", "Dan", "north", ["refrigeration"], active=False)
    techs.upsert("t-eve", "Eve", "north", ["refrigeration"], tz="Asia/Tokyo")  # 19:00 there
    first = open_ticket(service, "fr-000001")
    assert (first.status, first.assignee_id, first.skill, first.region) == (
        "assigned", "t-ann", "refrigeration", "north",
    )  # fmt: skip
    assert [(e.kind, e.actor) for e in first.events] == [
        ("opened", "decisions"),
        ("status", "auto-assign"),
    ]
    techs.upsert("t-fay", "Fay", "north", ["refrigeration", "tyres"])
    second = open_ticket(service, "fr-000002")
    assert second.assignee_id == "t-fay"  # on shift like Ann, and Ann already has a ticket
    south = open_ticket(service, "fr-000003")
    assert south.assignee_id == "t-cat"
    techs.set_active("t-cat", False)
    other = open_ticket(service, "fr-000003", fault="fridge.door_seal")
    assert (other.status, other.assignee_id) == ("new", None)  # nobody: waits for dispatch
    assert {t.id: t.open_tickets for t in techs.list(region="north")}["t-ann"] == 1


def test_a_visit_walks_the_lifecycle_and_every_change_has_its_time_and_actor(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    service.technicians.upsert("t-gus", "Gus", "north", ["refrigeration"])
    ticket = open_ticket(service)
    slot = (clock.now_ms + DAY_MS, clock.now_ms + DAY_MS + 2 * HOUR_MS)
    clock.advance(60_000)
    booked = service.assign(
        ticket.id, "t-gus", actor="dispatcher", booked_start_ms=slot[0], booked_end_ms=slot[1]
    )
    assert (booked.assignee_id, booked.booked_start_ms, booked.booked_end_ms) == ("t-gus", *slot)
    clock.advance(60_000)
    service.acknowledge(ticket.id, actor="t-gus")
    service.acknowledge(ticket.id, actor="t-gus")  # twice is once
    clock.advance(DAY_MS)
    service.move(ticket.id, "en_route", actor="t-gus")
    clock.advance(HOUR_MS)
    service.move(ticket.id, "on_site", actor="t-gus")
    clock.advance(HOUR_MS)
    done = service.move(
        ticket.id, "resolved", actor="t-gus", closure_code="fault_confirmed", note="new fan"
    )
    assert (done.status, done.closure_code, done.closed_ms) == (
        "resolved", "fault_confirmed", clock.now_ms,
    )  # fmt: skip
    assert not done.is_open
    full = service.ticket(ticket.id)
    assert full is not None
    steps = [(e.kind, e.actor, json.loads(e.detail).get("to")) for e in full.events]
    assert steps == [
        ("opened", "decisions", None),
        ("status", "auto-assign", "assigned"),
        ("status", "dispatcher", "assigned"),
        ("acknowledged", "t-gus", None),
        ("status", "t-gus", "en_route"),
        ("status", "t-gus", "on_site"),
        ("status", "t-gus", "resolved"),
    ]
    times = [e.ts_ms for e in full.events]
    assert times == sorted(times)
    assert times[-1] == clock.now_ms
    last = json.loads(full.events[-1].detail)
    assert last == {
        "from": "on_site", "to": "resolved", "closure_code": "fault_confirmed", "note": "new fan",
    }  # fmt: skip


def test_illegal_steps_and_bad_closures_are_clear_errors(service: ActionService) -> None:
    service.technicians.upsert("t-ann", "Ann", "south", ["refrigeration"])
    ticket = open_ticket(service)  # north: nobody to auto-assign
    assert ticket.status == "new"
    with pytest.raises(IllegalTransition, match=r"FW-\d{6} is new: cannot go to on_site"):
        service.move(ticket.id, "on_site", actor="t-ann")
    with pytest.raises(IllegalTransition, match="cannot go to resolved"):
        service.move(ticket.id, "resolved", actor="x", closure_code="fault_confirmed")
    with pytest.raises(RejectedInput, match="unknown ticket status"):
        service.move(ticket.id, "done", actor="x")
    with pytest.raises(RejectedInput, match="use assign"):
        service.move(ticket.id, "assigned", actor="x")
    with pytest.raises(RejectedInput, match="no active technician"):
        service.assign(ticket.id, "t-nobody", actor="dispatcher")
    with pytest.raises(RejectedInput, match="no ticket 999999"):
        service.move(999_999, "cancelled", actor="x")
    with pytest.raises(RejectedInput, match="booked slot"):
        service.assign(ticket.id, "t-ann", actor="d", booked_start_ms=5, booked_end_ms=5)
    with pytest.raises(RejectedInput, match="actor is empty"):
        service.acknowledge(ticket.id, actor=" ")
    walk_to_site(service, ticket.id)
    with pytest.raises(RejectedInput, match="needs a closure code"):
        service.move(ticket.id, "resolved", actor="t-ann")
    with pytest.raises(RejectedInput, match="does not fit resolved"):
        service.move(ticket.id, "resolved", actor="t-ann", closure_code="customer_declined")
    with pytest.raises(RejectedInput, match="does not fit"):
        service.move(ticket.id, "closed_incomplete", actor="t-ann", closure_code="fixed it")
    closed = service.move(
        ticket.id, "closed_incomplete", actor="t-ann", closure_code="customer_declined"
    )
    assert closed.status == "closed_incomplete"
    with pytest.raises(IllegalTransition, match="none: the ticket is closed"):
        service.move(ticket.id, "cancelled", actor="x")
    with pytest.raises(IllegalTransition):
        service.acknowledge(ticket.id, actor="x")
    untouched = service.ticket(ticket.id)
    assert untouched is not None
    assert untouched.status == "closed_incomplete"


def test_advice_tickets_close_without_a_visit(service: ActionService) -> None:
    ticket = open_ticket(
        service, "ty-000001", fault="tyres.pressure.fl", kind="tyres", action=Action.ADVICE
    )
    assert (ticket.status, ticket.skill) == ("new", "tyres")  # advice is never auto-assigned
    done = service.move(ticket.id, "resolved", actor="customer")
    assert (done.status, done.closure_code) == ("resolved", None)


def test_nobody_acknowledging_gets_one_reminder_then_one_escalation_and_a_breach_once(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    ticket = open_ticket(service)  # 2 days lead, 6 h early bound: P2, assigned to Ann
    assert (ticket.priority, ticket.assignee_id) == ("P2", "t-ann")
    window = ACK_MS[Priority.P2]
    start = clock.now_ms
    assert service.tick(start + window - 1).reminders == 0
    first = service.tick(start + window)
    assert (first.reminders, first.escalations) == (1, 0)
    assert service.tick(start + window + 1).reminders == 0  # idempotent
    second = service.tick(start + 2 * window)
    assert (second.reminders, second.escalations) == (0, 1)
    assert service.tick(start + 3 * window).escalations == 0
    late = ticket.due_ms + 1
    assert service.tick(late).sla_breaches == 1
    assert service.tick(late + HOUR_MS).sla_breaches == 0
    after = service.ticket(ticket.id)
    assert after is not None
    assert (after.escalation_level, after.sla_breached_ms) == (2, ticket.due_ms)
    assert [t.id for t in service.tickets(breached=True, assignee_id="t-ann")] == [ticket.id]
    assert service.tickets(breached=False) == []
    assert service.tickets(assignee_id="t-bob", device_id="fr-000001") == []
    kinds = [(e.kind, e.actor) for e in after.events if e.actor == "escalation"]
    assert kinds == [("reminder", "escalation"), ("escalated", "escalation"),
                     ("sla_breached", "escalation")]  # fmt: skip
    reminder = json.loads(next(e.detail for e in after.events if e.kind == "reminder"))
    assert reminder == {"to": "t-ann", "waiting_ms": window}


def test_acknowledging_stops_reminders_and_a_new_assignee_gets_a_fresh_clock(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    service.technicians.upsert("t-gus", "Gus", "north", ["refrigeration"])
    acked = open_ticket(service, "fr-000001", lead_ms=6 * DAY_MS)  # P3
    waiting = open_ticket(service, "fr-000002", lead_ms=6 * DAY_MS)
    service.acknowledge(acked.id, actor="t-ann")
    window = ACK_MS[Priority.P3]
    assert service.tick(clock.now_ms + window).reminders == 1  # only the other one
    clock.advance(window)
    service.assign(waiting.id, "t-gus", actor="dispatcher")
    assert service.tick(clock.now_ms + window - 1).reminders == 0
    assert service.tick(clock.now_ms + window).reminders == 1
    moved = service.ticket(waiting.id)
    assert moved is not None
    assert moved.escalation_level == 1


def test_a_late_resolution_marks_the_breach(service: ActionService, clock: Clock) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    ticket = open_ticket(service, severity=Severity.CRITICAL)  # P1: due within the day
    walk_to_site(service, ticket.id)
    clock.now_ms = ticket.due_ms + 1
    done = service.move(ticket.id, "resolved", actor="t-ann", closure_code="fault_confirmed")
    assert done.sla_breached_ms == ticket.due_ms


def test_repeated_no_fault_found_raises_the_device_bar_until_a_fault_is_confirmed(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])

    def episode(n: int, code: str, device: str = "fr-000001") -> None:
        decision = make_decision(device, episode=n, ts_ms=clock.now_ms)
        service.apply([decision])
        ticket = service.ticket_by_correlation(decision.decision_id)
        assert ticket is not None
        assert ticket.evidence_count == 1
        service.move(ticket.id, "en_route", actor="t-ann")
        service.move(ticket.id, "on_site", actor="t-ann")
        service.move(ticket.id, "resolved", actor="t-ann", closure_code=code)
        clock.advance(DAY_MS)

    episode(1, "no_fault_found")
    assert service.device_bars() == {}  # one false alarm is forgiven
    episode(2, "no_fault_found")
    episode(3, "no_fault_found")
    episode(1, "no_fault_found", device="fr-000002")
    assert service.device_bars() == {"fr-000001": 2.0}
    episode(4, "fault_confirmed")
    assert service.device_bars() == {}


def test_new_evidence_updates_an_assigned_ticket_instead_of_opening_another(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    ticket = open_ticket(service)
    service.move(ticket.id, "en_route", actor="t-ann")
    clock.advance(HOUR_MS)
    again = make_decision(episode=2, ts_ms=clock.now_ms, severity=Severity.CRITICAL)
    result = service.apply([again])
    assert (result.tickets_opened, result.tickets_updated) == (0, 1)
    after = service.ticket(ticket.id)
    assert after is not None
    assert (after.status, after.severity, after.priority, after.evidence_count) == (
        "en_route", "critical", "P1", 2,
    )  # fmt: skip


def test_a_booked_visit_and_the_resolution_follow_up_in_the_customers_thread(
    service: ActionService, clock: Clock
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    ticket = open_ticket(service)  # Ada's kitchen fridge: she gets the opening email
    start = clock.now_ms + DAY_MS
    service.assign(
        ticket.id, "t-ann", actor="dispatcher", booked_start_ms=start, booked_end_ms=start + HOUR_MS
    )
    service.assign(  # the same slot again: no second email
        ticket.id, "t-ann", actor="dispatcher", booked_start_ms=start, booked_end_ms=start + HOUR_MS
    )
    walk = [("en_route", None), ("on_site", None), ("resolved", "fault_confirmed")]
    for status, code in walk:
        service.move(ticket.id, status, actor="t-ann", closure_code=code)
    kinds = sorted(e.kind for e in service.emails() if e.correlation_id == ticket.correlation_id)
    assert kinds == ["dispatch_opened", "ticket_resolved", "visit_booked"]


def test_two_workers_ticking_at_once_remind_once(
    service: ActionService, db_url: str, clock: Clock, tmp_path: Path
) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    for device in ("fr-000001", "fr-000002", "fr-000003"):
        open_ticket(service, device, lead_ms=6 * DAY_MS)
    engines = [create_engine_for(db_url) for _ in range(2)]
    try:
        workers = [
            ActionService(e, EmailRenderer(), EmlDirSender(tmp_path / "eml"), clock)
            for e in engines
        ]
        due = clock.now_ms + ACK_MS[Priority.P3]
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda w: w.tick(due), workers))
        assert sum(r.reminders for r in results) == 3
        assert service.tick(due).reminders == 0
    finally:
        for e in engines:
            e.dispose()
