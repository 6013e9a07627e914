"""Tables of the actions stage (customers, devices, tickets, emails, outbox) and their engine.

The same SQLAlchemy code runs on SQLite (embedded default) and PostgreSQL (``postgresql+psycopg``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Final

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from cloud.actions.records import Email, OutboxItem, Ticket, TicketEvent, ticket_reference
from cloud.errors import ConfigError, DatabaseUnavailable

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000

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
        )


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    ts_ms: Mapped[int]
    actor: Mapped[str] = mapped_column(sa.String(64))
    kind: Mapped[str] = mapped_column(sa.String(16))  # opened | evidence | status
    detail: Mapped[str] = mapped_column(sa.Text)  # JSON object

    def record(self) -> TicketEvent:
        return TicketEvent(self.ts_ms, self.actor, self.kind, self.detail)


class EmailRow(Base):
    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    correlation_id: Mapped[str] = mapped_column(sa.String(64), index=True)
    customer_id: Mapped[str | None] = mapped_column(sa.ForeignKey("customers.id"))
    to_addr: Mapped[str] = mapped_column(sa.String(320))
    subject: Mapped[str | None] = mapped_column(sa.String(400))  # known once rendered
    kind: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # queued | sent | parked
    created_ms: Mapped[int]
    sent_ms: Mapped[int | None]

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
    kind: Mapped[str] = mapped_column(sa.String(16))  # email
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


def init_schema(engine: Engine) -> None:
    """Create the tables that do not exist yet (migrations come later)."""
    with unavailable_as_error():
        Base.metadata.create_all(engine)


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


def _schema_missing(err: exc.DBAPIError) -> bool:
    if getattr(err.orig, "sqlstate", None) == "42P01":  # PostgreSQL undefined_table
        return True
    return str(err.orig).startswith("no such table")


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One committed transaction, rolled back on any error, with connection errors mapped."""
    with unavailable_as_error(), sessions.begin() as session:
        yield session
