"""Dead letters and device events: what ingest keeps besides telemetry (SQLAlchemy adapter)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from cloud.errors import DatabaseUnavailable
from cloud.wire import EventBatch, Reject

MAX_KEPT_PAYLOAD = 70_000  # enough for any legal message; oversized ones are cut, with their size

metadata = sa.MetaData()

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("topic", sa.String(512), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False, index=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("device_id", sa.String(64)),
    sa.Column("product_kind", sa.String(16)),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

device_events = sa.Table(
    "device_events",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("product_kind", sa.String(16), nullable=False),
    sa.Column("ts_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("attrs", sa.JSON, nullable=False),
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    received_ms: int
    topic: str
    reason: str
    detail: str
    device_id: str | None
    product_kind: str | None
    rows: int
    size_bytes: int
    payload_preview: str


class RecordStore:
    """Keeps every rejected message with its reason, and every device event once."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        try:
            metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot create the dead-letter tables: {exc}") from exc

    def add_rejects(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        rows = [
            {
                "received_ms": r.received_ms,
                "topic": r.topic[:512],
                "reason": r.reason,
                "detail": r.detail[:2000],
                "device_id": r.device_id[:64] if r.device_id else None,
                "product_kind": r.kind[:16] if r.kind else None,
                "rows": r.rows,
                "size_bytes": len(r.payload),
                "payload": bytes(r.payload[:MAX_KEPT_PAYLOAD]),
            }
            for r in rejects
        ]
        self._run(lambda c: c.execute(dead_letters.insert(), rows))

    def add_events(self, batches: Sequence[EventBatch]) -> int:
        """Store events idempotently on ``(device_id, seq, index)``; return how many were new."""
        rows = [
            {
                "device_id": b.device_id,
                "seq": b.seq,
                "idx": i,
                "product_kind": b.kind,
                "ts_ms": e.ts_ms,
                "type": e.type,
                "attrs": {k: v for k, v in asdict(e).items() if k != "ts_ms"},
            }
            for b in batches
            for i, e in enumerate(b.events)
        ]
        if not rows:
            return 0

        def write(conn: sa.Connection) -> int:
            keys = {(r["device_id"], r["seq"]) for r in rows}
            existing = set()
            for dev, seq in keys:
                hit = conn.execute(
                    sa.select(device_events.c.seq)
                    .where(device_events.c.device_id == dev, device_events.c.seq == seq)
                    .limit(1)
                ).first()
                if hit is not None:
                    existing.add((dev, seq))
            fresh = [r for r in rows if (r["device_id"], r["seq"]) not in existing]
            if fresh:
                conn.execute(device_events.insert(), fresh)
            return len(fresh)

        result: int = self._run(write)
        return result

    def dead_letters(
        self, limit: int = 50, offset: int = 0, reason: str | None = None
    ) -> list[DeadLetter]:
        q = sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit).offset(offset)
        if reason:
            q = q.where(dead_letters.c.reason == reason)
        with self.engine.connect() as conn:
            return [
                DeadLetter(
                    id=r.id,
                    received_ms=r.received_ms,
                    topic=r.topic,
                    reason=r.reason,
                    detail=r.detail,
                    device_id=r.device_id,
                    product_kind=r.product_kind,
                    rows=r.rows,
                    size_bytes=r.size_bytes,
                    payload_preview=bytes(r.payload[:300]).decode("utf-8", errors="replace"),
                )
                for r in conn.execute(q)
            ]

    def reject_counts(self) -> dict[str, int]:
        q = sa.select(dead_letters.c.reason, sa.func.count()).group_by(dead_letters.c.reason)
        with self.engine.connect() as conn:
            return {reason: int(n) for reason, n in conn.execute(q)}

    def events(self, device_id: str, limit: int = 100) -> list[dict[str, Any]]:
        q = (
            sa.select(device_events)
            .where(device_events.c.device_id == device_id)
            .order_by(device_events.c.ts_ms.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                {"ts_ms": r.ts_ms, "type": r.type, "seq": r.seq, **dict(r.attrs)}
                for r in conn.execute(q)
            ]

    def _run(self, fn: Any) -> Any:
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"dead-letter/event store failed: {exc}") from exc
