"""Tables of the actions stage (customers, devices, tickets, emails, outbox) and their engine.

The same SQLAlchemy code runs on SQLite (embedded default) and PostgreSQL (``postgresql+psycopg``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final

import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from cloud.actions.records import Email, OutboxItem, Ticket, TicketEvent, ticket_reference
from cloud.errors import ConfigError, DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION: Final = "0001"  # the schema before migrations existed
MIGRATION_LOCK: Final = 0x666F_7265_7761_726E  # "forewarn": one migrator at a time
# Modules that declare tables on ``Base``; a module adding tables must be listed here, so that
# the migrations' environment and their drift test see every table.
MODEL_MODULES: Final = (
    "cloud.actions.db",
    "cloud.actions.consent",
    "cloud.actions.mailer",
    "cloud.actions.reminders",
    "cloud.accounts",
)

# SQLite needs INTEGER PRIMARY KEY for its rowid alias; PostgreSQL gets 64-bit ids.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        int: sa.BigInteger(),
        dict[str, Any]: sa.JSON(),
    }


class CustomerRow(Base):
    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    locale: Mapped[str] = mapped_column(sa.String(16), default="en")
    tz: Mapped[str] = mapped_column(sa.String(64), default="UTC")  # IANA name
    created_ms: Mapped[int]


class DeviceRow(Base):
    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(sa.String(48), primary_key=True)
    product_kind: Mapped[str] = mapped_column(sa.String(16))
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"), index=True)
    nickname: Mapped[str | None] = mapped_column(sa.String(200))
    region: Mapped[str | None] = mapped_column(sa.String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    correlation_id: Mapped[str] = mapped_column(sa.String(64), unique=True)  # Decision.decision_id
    device_id: Mapped[str] = mapped_column(sa.String(48), index=True)
    product_kind: Mapped[str] = mapped_column(sa.String(16))
    fault: Mapped[str] = mapped_column(sa.String(120))
    action: Mapped[str] = mapped_column(sa.String(16))  # dispatch | restock | advice
    # new | assigned | en_route | on_site | resolved | closed_incomplete | cancelled
    status: Mapped[str] = mapped_column(sa.String(24), index=True)
    severity: Mapped[str] = mapped_column(sa.String(16))
    priority: Mapped[str] = mapped_column(sa.String(2))
    due_ms: Mapped[int]
    score: Mapped[float]
    summary: Mapped[str] = mapped_column(sa.Text)
    eta_ms: Mapped[int | None]
    eta_lo_ms: Mapped[int | None]
    eta_hi_ms: Mapped[int | None]
    evidence_ts_ms: Mapped[int]  # data time of the newest decision applied; replays are older
    evidence_count: Mapped[int]
    opened_ms: Mapped[int]
    updated_ms: Mapped[int]
    region: Mapped[str | None] = mapped_column(sa.String(64))  # the device's, at opening
    skill: Mapped[str] = mapped_column(sa.String(48), default="", server_default="")
    assignee_id: Mapped[str | None] = mapped_column(sa.ForeignKey("technicians.id"), index=True)
    status_ms: Mapped[int | None]  # last status change: starts the acknowledgement clock
    acknowledged_ms: Mapped[int | None]
    booked_start_ms: Mapped[int | None]
    booked_end_ms: Mapped[int | None]
    # 0 nothing yet, 1 reminder sent, 2 escalated; reset by every assignment
    escalation_level: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    sla_breached_ms: Mapped[int | None]
    closure_code: Mapped[str | None] = mapped_column(sa.String(24))
    closed_ms: Mapped[int | None]

    def record(self, events: tuple[TicketEvent, ...] = ()) -> Ticket:
        return Ticket(
            id=self.id,
            reference=ticket_reference(self.id),
            correlation_id=self.correlation_id,
            device_id=self.device_id,
            product_kind=self.product_kind,
            fault=self.fault,
            action=self.action,
            status=self.status,
            severity=self.severity,
            priority=self.priority,
            due_ms=self.due_ms,
            score=self.score,
            summary=self.summary,
            eta_ms=self.eta_ms,
            eta_lo_ms=self.eta_lo_ms,
            eta_hi_ms=self.eta_hi_ms,
            evidence_count=self.evidence_count,
            opened_ms=self.opened_ms,
            updated_ms=self.updated_ms,
            events=events,
            region=self.region,
            skill=self.skill,
            assignee_id=self.assignee_id,
            acknowledged_ms=self.acknowledged_ms,
            booked_start_ms=self.booked_start_ms,
            booked_end_ms=self.booked_end_ms,
            escalation_level=self.escalation_level,
            sla_breached_ms=self.sla_breached_ms,
            closure_code=self.closure_code,
            closed_ms=self.closed_ms,
        )


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    ts_ms: Mapped[int]
    actor: Mapped[str] = mapped_column(sa.String(64))
    # opened | evidence | status | acknowledged | reminder | escalated | sla_breached
    kind: Mapped[str] = mapped_column(sa.String(16))
    detail: Mapped[str] = mapped_column(sa.Text)  # JSON object

    def record(self) -> TicketEvent:
        return TicketEvent(self.ts_ms, self.actor, self.kind, self.detail)


class EmailRow(Base):
    __tablename__ = "emails"
    __table_args__ = (sa.Index("ix_emails_customer_day", "customer_id", "scheduled_ms"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    correlation_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"))
    to_addr: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str | None] = mapped_column(sa.String(400))  # known once rendered
    kind: Mapped[str] = mapped_column(sa.String(40))
    # queued | sent | parked | suppressed (opted out before a worker claimed it)
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    created_ms: Mapped[int]
    sent_ms: Mapped[int | None]
    # Consent category of the kind (see cloud.actions.consent): service, reminders, offers, safety
    category: Mapped[str] = mapped_column(
        sa.String(24), default="service", server_default="service"
    )
    outbox_key: Mapped[str | None] = mapped_column(sa.String(160), index=True)
    scheduled_ms: Mapped[int | None]  # first send time after quiet hours and caps

    def record(self) -> Email:
        return Email(
            id=self.id,
            message_id=self.message_id,
            correlation_id=self.correlation_id,
            customer_id=self.customer_id,
            to_addr=self.to_addr,
            subject=self.subject,
            kind=self.kind,
            status=self.status,
            created_ms=self.created_ms,
            sent_ms=self.sent_ms,
        )


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "state", "next_attempt_ms"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(160), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # email | webhook
    payload: Mapped[dict[str, Any]]
    # pending | sending (claimed by a worker, outcome not yet recorded) | sent | parked
    state: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(default=0)  # since queued or requeued
    claims: Mapped[int] = mapped_column(default=0)  # never reset: fences off stale workers
    next_attempt_ms: Mapped[int]  # when pending: retry time; when sending: claim expiry
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_ms: Mapped[int]
    sent_ms: Mapped[int | None]

    def record(self) -> OutboxItem:
        return OutboxItem(
            id=self.id,
            idempotency_key=self.idempotency_key,
            kind=self.kind,
            state=self.state,
            attempts=self.attempts,
            next_attempt_ms=self.next_attempt_ms,
            last_error=self.last_error,
            created_ms=self.created_ms,
            sent_ms=self.sent_ms,
            payload=dict(self.payload),
        )


class TechnicianRow(Base):
    __tablename__ = "technicians"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    region: Mapped[str] = mapped_column(sa.String(64), index=True)
    skills: Mapped[list[str]] = mapped_column(sa.JSON)
    tz: Mapped[str] = mapped_column(sa.String(64))  # IANA name of the working hours
    work_days: Mapped[list[int]] = mapped_column(sa.JSON)  # ISO weekdays, 1 = Monday
    work_start_min: Mapped[int] = mapped_column(sa.Integer)  # minutes after local midnight
    work_end_min: Mapped[int] = mapped_column(sa.Integer)
    active: Mapped[bool] = mapped_column(sa.Boolean)
    created_ms: Mapped[int]
    updated_ms: Mapped[int]


class WebhookRow(Base):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret: Mapped[str] = mapped_column(sa.String(200))  # signs bodies; never read back out
    events: Mapped[list[str]] = mapped_column(sa.JSON)  # event names, or ["*"]
    description: Mapped[str] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(sa.Boolean)
    created_ms: Mapped[int]


class DeviceFeedbackRow(Base):
    """What closed tickets taught about a device: consecutive no-fault-found closures."""

    __tablename__ = "device_feedback"

    device_id: Mapped[str] = mapped_column(sa.String(48), primary_key=True)
    nff_streak: Mapped[int] = mapped_column(sa.Integer)  # reset by a confirmed fault
    last_code: Mapped[str] = mapped_column(sa.String(24))
    updated_ms: Mapped[int]


class RestockOrderRow(Base):
    __tablename__ = "restock_orders"
    __table_args__ = (sa.Index("ix_restock_route_day", "route", "visit_day", "status"),)

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), unique=True)
    route: Mapped[str] = mapped_column(sa.String(64))
    device_id: Mapped[str] = mapped_column(sa.String(48))
    visit_day: Mapped[str] = mapped_column(sa.String(10))  # ISO date (UTC) to visit by
    stockout_ms: Mapped[int | None]  # predicted first sell-out and its early bound
    stockout_lo_ms: Mapped[int | None]
    score: Mapped[float]
    lines: Mapped[list[list[Any]]] = mapped_column(sa.JSON)  # [[slot, quantity], ...]
    status: Mapped[str] = mapped_column(sa.String(16))  # open | delivered | cancelled
    created_ms: Mapped[int]
    updated_ms: Mapped[int]


InsertFn = Callable[[Any], postgresql.Insert | sqlite.Insert]


def insert_for(engine: Engine) -> InsertFn:
    """The dialect's INSERT that supports ``ON CONFLICT`` (PostgreSQL and SQLite share it)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    raise ConfigError(f"unsupported database {engine.dialect.name!r}: use sqlite or postgresql")


def create_engine_for(url: str, *, check: bool = True) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://user@host/db``.

    SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions, so that
    two writers queue for the lock instead of failing on a read-to-write upgrade. With
    ``check`` the database is contacted once: an unreachable server raises
    ``DatabaseUnavailable``, a malformed URL ``ConfigError``.
    """
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as err:
        raise ConfigError(
            "database URL is malformed: use sqlite:/// or postgresql+psycopg://"
        ) from err
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database URL {shown}: use sqlite:/// or postgresql+psycopg://")
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection, or every session would see its own empty database.
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"]["check_same_thread"] = False
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
        raise ConfigError(f"database URL {shown} cannot be used: {err}") from err
    if backend == "sqlite":
        _configure_sqlite(engine)
    if check:
        with unavailable_as_error(), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy; pysqlite would otherwise defer BEGIN.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def import_models() -> None:
    """Import every module that declares tables on ``Base``, so the metadata is complete."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def include_name(name: str | None, type_: str, _parents: Mapping[Any, str | None]) -> bool:
    """Migrations manage the tables on ``Base`` only; other stores sharing the database
    (dead letters, device events) create their own."""
    return type_ != "table" or name in Base.metadata.tables


def alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    """The migrations shipped in the package, run on ``connection`` when given."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def init_schema(engine: Engine) -> None:
    """Bring the actions database to the newest schema: ``alembic upgrade head``.

    A database made before migrations existed (it has tables but no ``alembic_version``) is
    first stamped as the baseline it matches. Concurrent callers take turns: PostgreSQL under
    an advisory lock, SQLite under its write lock.
    """
    with unavailable_as_error(), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config(conn)
        tables = set(sa.inspect(conn).get_table_names())
        if "tickets" in tables and "alembic_version" not in tables:
            alembic_command.stamp(config, BASELINE_REVISION)
        try:
            alembic_command.upgrade(config, "head")
        except (exc.OperationalError, exc.ProgrammingError) as err:
            if not _schema_conflict(err):
                raise
            raise ConfigError(
                f"the actions database cannot be migrated ({err.orig}): its tables match no "
                "migration (made by create_all of a development build?). Back it up, then "
                "start from an empty database or bring it to a known revision by hand"
            ) from err


@contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Map a lost or unreachable database onto ``DatabaseUnavailable``.

    A missing table is no outage (SQLite reports both as ``OperationalError``): it becomes a
    ``ConfigError`` that says to create the schema.
    """
    try:
        yield
    except (exc.OperationalError, exc.ProgrammingError) as err:
        if _schema_missing(err):
            raise ConfigError(
                f"tickets database has no schema ({err.orig}): run init_schema"
            ) from err
        if isinstance(err, exc.ProgrammingError):
            raise
        raise DatabaseUnavailable(f"tickets database unavailable: {err.orig or err}") from err
    except exc.InterfaceError as err:
        raise DatabaseUnavailable(f"tickets database unavailable: {err.orig or err}") from err
    except exc.DBAPIError as err:
        if err.connection_invalidated:
            raise DatabaseUnavailable(f"tickets database connection lost: {err}") from err
        raise


def _schema_conflict(err: exc.DBAPIError) -> bool:
    """A migration met a table or column that already exists."""
    if getattr(err.orig, "sqlstate", None) in ("42P07", "42701"):  # duplicate table / column
        return True
    text = str(err.orig)
    return "already exists" in text or "duplicate column name" in text


def _schema_missing(err: exc.DBAPIError) -> bool:
    if getattr(err.orig, "sqlstate", None) == "42P01":  # PostgreSQL undefined_table
        return True
    return str(err.orig).startswith("no such table")


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One committed transaction, rolled back on any error, with connection errors mapped."""
    with unavailable_as_error(), sessions.begin() as session:
        yield session
