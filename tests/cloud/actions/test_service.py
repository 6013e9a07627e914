"""Tickets from decisions on SQLite and PostgreSQL: one ticket, one email per root cause."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.actions import (
    ActionService,
    EmailRenderer,
    EmlDirSender,
    create_engine_for,
    init_schema,
)
from cloud.decision_types import Action, Severity
from cloud.errors import ConfigError, DatabaseUnavailable, RejectedInput
from forewarn.broker import free_port
from tests.cloud.actions.conftest import (
    DAY_MS,
    HOUR_MS,
    Clock,
    ServiceFactory,
    later,
    make_decision,
    seed,
)


@pytest.fixture
def service(make_service: ServiceFactory, tmp_path: Path) -> ActionService:
    return make_service(EmlDirSender(tmp_path / "eml"))


@pytest.fixture
def sqlite_service(tmp_path: Path, clock: Clock) -> Iterator[ActionService]:
    """For input checks that refuse before touching storage: one database is enough."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'checks.db'}")
    init_schema(engine)
    service = ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path / "eml"), clock)
    seed(service)
    yield service
    engine.dispose()


def test_same_decision_three_times_and_after_a_restart_is_one_ticket(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    decision = make_decision()
    first = make_service(EmlDirSender(tmp_path))
    result = first.apply([decision, decision, decision])
    assert (result.tickets_opened, result.emails_queued, result.unchanged) == (1, 1, 2)
    again = first.apply([decision])
    assert (again.tickets_opened, again.tickets_updated, again.emails_queued) == (0, 0, 0)
    restarted = make_service(EmlDirSender(tmp_path))  # a new process on the same database
    replay = restarted.apply([decision])
    assert (replay.tickets_opened, replay.emails_queued, replay.unchanged) == (0, 0, 1)
    counts = restarted.counts()
    assert counts.tickets == {"new": 1}
    assert counts.emails == {"queued": 1}
    assert counts.outbox == {"pending": 1}
    ticket = restarted.ticket_by_correlation(decision.decision_id)
    assert ticket is not None
    assert ticket.evidence_count == 1
    assert [e.kind for e in ticket.events] == ["opened"]


def test_new_evidence_updates_the_ticket_and_never_lowers_severity(
    service: ActionService, clock: Clock
) -> None:
    decision = make_decision(lead_ms=5 * DAY_MS)
    service.apply([decision])
    opened = service.ticket_by_correlation(decision.decision_id)
    assert opened is not None
    assert (opened.priority, opened.severity) == ("P3", "warning")
    clock.advance(HOUR_MS)
    worse = later(decision, HOUR_MS, severity=Severity.CRITICAL, score=0.95)
    assert service.apply([worse]).tickets_updated == 1
    milder = later(
        decision,
        2 * HOUR_MS,
        severity=Severity.INFO,
        score=0.4,
        eta_ms=None,
        eta_lo_ms=None,
        eta_hi_ms=None,
    )
    assert service.apply([milder, milder]).tickets_updated == 1
    stale = later(decision, 30 * 60_000, severity=Severity.INFO)  # older than what we know
    result = service.apply([stale, worse])
    assert (result.tickets_updated, result.unchanged, result.emails_queued) == (0, 2, 0)
    ticket = service.ticket(opened.id)
    assert ticket is not None
    assert ticket.severity == "critical"
    assert ticket.priority == "P1"
    assert ticket.score == pytest.approx(0.4)
    assert ticket.eta_ms is None
    assert ticket.evidence_count == 3
    assert ticket.updated_ms == clock.now_ms
    assert [e.kind for e in ticket.events] == ["opened", "evidence", "evidence"]
    assert json.loads(ticket.events[1].detail)["severity"] == "critical"
    assert service.counts().emails == {"queued": 1}
    assert len(service.tickets()) == 1


def test_priority_and_due_time_follow_the_eta(service: ActionService) -> None:
    cases = {
        "fridge.a": (10 * HOUR_MS, Severity.WARNING, "P1"),
        "fridge.b": (2 * DAY_MS, Severity.WARNING, "P2"),
        "fridge.c": (5 * DAY_MS, Severity.INFO, "P3"),
        "fridge.d": (20 * DAY_MS, Severity.WARNING, "P4"),
        "fridge.e": (20 * DAY_MS, Severity.CRITICAL, "P1"),
    }
    decisions = {
        fault: make_decision(fault=fault, lead_ms=lead, severity=sev)
        for fault, (lead, sev, _) in cases.items()
    }
    assert service.apply(list(decisions.values())).tickets_opened == 5
    for fault, (_, _, priority) in cases.items():
        d = decisions[fault]
        ticket = service.ticket_by_correlation(d.decision_id)
        assert ticket is not None
        assert ticket.priority == priority, fault
        assert d.eta_lo_ms is not None
        assert ticket.due_ms <= d.eta_lo_ms  # the team is due before the early case


def test_each_root_cause_gets_its_own_ticket_and_message_id(service: ActionService) -> None:
    a = make_decision("fr-000001", "fridge.cooling_loss", 1)
    c = make_decision("fr-000001", "fridge.door_seal", 1)
    d = make_decision("ty-000001", "tyres.slow_leak.fl", 1, kind="tyres", action=Action.ADVICE)
    result = service.apply([a, c, d])
    assert (result.tickets_opened, result.emails_queued) == (3, 3)
    emails = service.emails()
    assert len({e.message_id for e in emails}) == 3
    assert {e.correlation_id for e in emails} == {x.decision_id for x in (a, c, d)}
    assert {e.kind for e in emails} == {"dispatch_opened", "advice"}
    assert {e.to_addr for e in emails} == {"ada@example.org", "grace@example.org"}


def test_another_episode_id_of_an_open_root_cause_is_evidence_not_a_ticket(
    service: ActionService,
) -> None:
    # The policy lost its state (a restart) and re-detected the fault under a new episode id:
    # while the first ticket is open this is the same root cause.
    first = make_decision("fr-000001", "fridge.cooling_loss", 1)
    again = later(make_decision("fr-000001", "fridge.cooling_loss", 2), HOUR_MS)
    assert first.decision_id != again.decision_id
    assert service.apply([first]).tickets_opened == 1
    result = service.apply([again])
    assert (result.tickets_opened, result.tickets_updated, result.emails_queued) == (0, 1, 0)
    tickets = service.tickets()
    assert len(tickets) == 1
    assert tickets[0].evidence_count == 2
    assert len(service.emails()) == 1


def test_restock_and_customers_without_address_get_no_email(service: ActionService) -> None:
    restock = make_decision(
        "vm-000001", "vending.stockout.A1", kind="vending", action=Action.RESTOCK
    )
    no_address = make_decision("fr-000002")
    unknown_device = make_decision("fr-999999")
    result = service.apply([restock, no_address, unknown_device])
    assert (result.tickets_opened, result.emails_queued) == (3, 0)
    ticket = service.ticket_by_correlation(restock.decision_id)
    assert ticket is not None
    assert (ticket.action, ticket.status) == ("restock", "new")
    assert service.emails() == []


def test_one_failing_decision_rolls_back_the_whole_call(service: ActionService) -> None:
    good = make_decision()
    bad = make_decision("fr-000002", action="teleport")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="teleport"):
        service.apply([good, bad])
    assert service.tickets() == []
    assert service.counts().outbox == {}


def test_two_services_applying_at_once_open_one_ticket_per_root_cause(
    db_url: str, clock: Clock, tmp_path: Path
) -> None:
    engines = [create_engine_for(db_url) for _ in range(2)]
    init_schema(engines[0])
    try:
        services = [
            ActionService(e, EmailRenderer(), EmlDirSender(tmp_path), clock) for e in engines
        ]
        seed(services[0])
        decisions = [make_decision(fault=f"fridge.f{i}") for i in range(8)]

        def run(service: ActionService) -> int:
            return sum(
                service.apply(decisions[i:] + decisions[:i]).tickets_opened for i in range(4)
            )

        with ThreadPoolExecutor(2) as pool:
            opened = list(pool.map(run, services))
        assert sum(opened) == 8
        counts = services[1].counts()
        assert counts.tickets == {"new": 8}
        assert counts.outbox == {"pending": 8}
    finally:
        for e in engines:
            e.dispose()


def test_reading_tickets_by_status_and_page(service: ActionService) -> None:
    service.apply([make_decision(fault=f"fridge.f{i}") for i in range(5)])
    newest_first = service.tickets()
    assert [t.id for t in newest_first] == sorted((t.id for t in newest_first), reverse=True)
    assert len(service.tickets(status="new", limit=2)) == 2
    assert [t.id for t in service.tickets(limit=2, offset=4)] == [newest_first[4].id]
    assert service.tickets(status="resolved") == []
    assert service.ticket(10_000) is None
    assert newest_first[0].reference == f"FW-{newest_first[0].id:06d}"


def test_reads_refuse_bad_arguments(sqlite_service: ActionService) -> None:
    with pytest.raises(RejectedInput):
        sqlite_service.tickets(status="lost")
    with pytest.raises(RejectedInput):
        sqlite_service.tickets(limit=0)
    with pytest.raises(RejectedInput):
        sqlite_service.emails(offset=-1)
    with pytest.raises(RejectedInput):
        sqlite_service.outbox(state="lost")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("c-9", "Ada\r\nBcc: evil@x.example", "a@example.org"), {}),
        (("c-9", "Ada", "a@example.org\nBcc: evil@x.example"), {}),
        (("c-9", "Ada", "not an address"), {}),
        (("c-9", "  ", "a@example.org"), {}),
        (("c-9", "Ada", "a@example.org"), {"tz": "Mars/Olympus"}),
        (("c-9", "Ada", "a@example.org"), {"locale": "english"}),
    ],
)
def test_upsert_customer_refuses_unsafe_data(
    sqlite_service: ActionService, args: tuple[str, str, str], kwargs: dict[str, str]
) -> None:
    with pytest.raises(RejectedInput):
        sqlite_service.upsert_customer(*args, **kwargs)


def test_upsert_device_refuses_bad_values(sqlite_service: ActionService) -> None:
    service = sqlite_service
    with pytest.raises(RejectedInput, match="device id"):
        service.upsert_device("FR_1", "fridge")
    with pytest.raises(RejectedInput, match="kind"):
        service.upsert_device("fr-000009", "toaster")
    with pytest.raises(RejectedInput, match="customer"):
        service.upsert_device("fr-000009", "fridge", "c-unknown")
    with pytest.raises(RejectedInput, match="nickname"):
        service.upsert_device("fr-000009", "fridge", "c-1", nickname="a\r\nBcc: evil@x.example")


def test_upsert_replaces_the_address_used_for_new_tickets(service: ActionService) -> None:
    service.upsert_customer("c-1", "Ada King", "ada.king@example.org", tz="Europe/London")
    service.upsert_device(
        "fr-000001", "fridge", "c-1", nickname="Garage fridge", attributes={"variant": "freezer"}
    )
    service.apply([make_decision()])
    [queued] = service.emails()
    assert queued.to_addr == "ada.king@example.org"


def test_unreachable_database_is_database_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable):
        create_engine_for(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    with pytest.raises(DatabaseUnavailable):
        create_engine_for(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "sqlite+nosuchdriver:///x.db"])
def test_unusable_database_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        create_engine_for(url)


def test_missing_schema_is_a_config_error(tmp_path: Path, clock: Clock) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        service = ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path), clock)
        with pytest.raises(ConfigError, match="init_schema"):
            service.tickets()
    finally:
        engine.dispose()


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine: Engine = create_engine_for(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
