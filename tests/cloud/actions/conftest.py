"""Fixtures for the actions tests: a settable clock, both databases, decisions and customers."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from cloud.actions import (
    ActionService,
    EmailRenderer,
    EmailSender,
    RetryPolicy,
    create_engine_for,
    init_schema,
)
from cloud.decision_types import Action, Decision, Severity, decision_id
from forewarn.broker import free_port

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class Clock:
    now_ms: int = T0_MS

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; each test gets a copy (migrating is the slow part)."""
    path = tmp_path_factory.mktemp("actions-template") / "actions.db"
    eng = create_engine_for(f"sqlite:///{path}")
    init_schema(eng)
    eng.dispose()
    return path


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One migrated PostgreSQL database per session, emptied before each test that uses it."""
    url = os.environ.get("FOREWARN_TEST_PG_URL")
    if not url:
        pytest.skip("FOREWARN_TEST_PG_URL is not set")
    name = f"fw_actions_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    test_url = sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    eng = create_engine_for(test_url)
    init_schema(eng)
    eng.dispose()
    try:
        yield test_url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_tables(url: str) -> None:
    """Delete every row and restart the id sequences (DELETE beats TRUNCATE on tiny tables)."""
    eng = sa.create_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))  # no FK order
            names = sa.inspect(conn).get_table_names()
            for table in names:
                if table != "alembic_version":
                    conn.execute(sa.text(f'DELETE FROM "{table}"'))
            sequences = conn.execute(
                sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
            ).scalars()
            for sequence in list(sequences):
                conn.execute(sa.text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    finally:
        eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty actions database: a copy of the SQLite template, or the session's
    PostgreSQL database with every table truncated."""
    if request.param == "sqlite":
        path = tmp_path / "actions.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_session_url")
    empty_tables(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_engine_for(db_url)
    init_schema(eng)
    yield eng
    eng.dispose()


ServiceFactory = Callable[[EmailSender], ActionService]


@pytest.fixture
def make_service(engine: Engine, clock: Clock) -> ServiceFactory:
    """A new ``ActionService`` on the test database, as after a process restart."""

    def make(sender: EmailSender) -> ActionService:
        retry = RetryPolicy(max_attempts=3, backoff_base_ms=60_000, claim_ms=10 * 60_000)
        service = ActionService(engine, EmailRenderer(), sender, clock, retry=retry)
        seed(service)
        return service

    return make


def seed(service: ActionService) -> None:
    service.upsert_customer("c-1", "Ada Lovelace", "ada@example.org", tz="Europe/Berlin")
    service.upsert_customer("c-2", "Grace Hopper", "grace@example.org", tz="America/New_York")
    service.upsert_customer("c-3", "No Mail", None)
    service.upsert_device("fr-000001", "fridge", "c-1", nickname="Kitchen fridge")
    service.upsert_device("vm-000001", "vending", None, region="north")
    service.upsert_device("ty-000001", "tyres", "c-2", nickname="Blue van")
    service.upsert_device("fr-000002", "fridge", "c-3", nickname="Cellar freezer")


def make_decision(
    device_id: str = "fr-000001",
    fault: str = "fridge.cooling_loss",
    episode: int = 1,
    *,
    kind: str = "fridge",
    action: Action = Action.DISPATCH,
    severity: Severity = Severity.WARNING,
    ts_ms: int = T0_MS,
    lead_ms: int | None = 2 * DAY_MS,
    score: float = 0.7,
) -> Decision:
    eta = None if lead_ms is None else ts_ms + lead_ms
    return Decision(
        decision_id=decision_id(device_id, fault, episode),
        device_id=device_id,
        product_kind=kind,
        fault=fault,
        action=action,
        severity=severity,
        episode=episode,
        opened_ms=ts_ms,
        ts_ms=ts_ms,
        score=score,
        summary="The cabinet is warming up although the compressor runs.",
        eta_ms=eta,
        eta_lo_ms=None if eta is None else eta - HOUR_MS * 6,
        eta_hi_ms=None if eta is None else eta + DAY_MS,
    )


def later(decision: Decision, ms: int, **changes: object) -> Decision:
    """New evidence for the same root cause ``ms`` later."""
    return replace(decision, ts_ms=decision.ts_ms + ms, **changes)  # type: ignore[arg-type]


class HangUpAfterData:
    """An SMTP server that keeps each message, then drops the line before saying "250"."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: object, envelope: Any) -> str:
        self.messages.append(envelope.content)
        server.transport.close()
        return "250 OK"


@pytest.fixture
def hangup_server() -> Iterator[tuple[str, HangUpAfterData]]:
    handler = HangUpAfterData()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}", handler
    finally:
        controller.stop()
