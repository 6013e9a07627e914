"""A durable, ordered on-disk outbox (SQLite) that gives every message its device ``seq``.

Policy, in the order it is applied:

* ``enqueue`` takes the next ``seq`` and inserts the message in one transaction. The counter
  lives in the same file, survives restarts and never goes back, even after every row has been
  acknowledged and deleted, so the cloud's ``(device_id, seq)`` deduplication never discards a
  new message as an old one.
* A message leaves the outbox only by ``ack`` (the broker acknowledged it), or by a counted drop:
  messages older than ``ttl_s`` (by the outbox clock) are dropped first, then, when the payload
  bytes exceed ``max_bytes``, the oldest messages are dropped until the new one fits. Both drop
  counts are persisted and reported by ``stats``; nothing disappears silently.
* Durability ``"full"`` (the default) fsyncs every commit (WAL, ``synchronous=FULL``). ``"normal"``
  is faster (``synchronous=NORMAL``: the WAL is synced only at checkpoints) but a power loss can
  roll back the last commits: acknowledged messages come back (harmless duplicates) *and the seq
  counter can go back*, so messages sealed after the power loss may reuse a seq the cloud has
  already seen and be discarded as duplicates. Use ``"normal"`` for simulations and tests, never
  on a device that can lose power.

The file is opened in exclusive locking mode: a second agent pointed at the same outbox fails
at once instead of sharing (and corrupting) the seq counter.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

from edge.errors import OutboxError

logger = logging.getLogger(__name__)

Durability = Literal["full", "normal"]
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
DEFAULT_TTL_S: Final = 30 * 86400.0
# TTL expiry needs a query; doing it at most this often keeps peek() cheap.
_EXPIRE_EVERY_MS: Final = 1000

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox ("
    " seq INTEGER PRIMARY KEY, suffix TEXT NOT NULL, payload BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL, rows INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_ms)",
    "INSERT OR IGNORE INTO counters (name, value)"
    " VALUES ('next_seq', 0), ('dropped_cap', 0), ('dropped_ttl', 0)",
)


def wall_clock_ms() -> int:
    """UTC milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One sealed message waiting for the broker's acknowledgement."""

    seq: int
    suffix: str
    payload: bytes
    created_ms: int
    rows: int  # reading rows the message carries (telemetry), for delivery statistics


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int  # messages not yet acknowledged
    size_bytes: int  # their payload bytes (what max_bytes limits)
    dropped_cap: int  # dropped because the outbox was full
    dropped_ttl: int  # dropped because they were older than the TTL
    next_seq: int  # the seq the next message will get

    @property
    def dropped(self) -> int:
        return self.dropped_cap + self.dropped_ttl


class Outbox:
    """Durable FIFO of sealed messages; thread-safe (one connection behind one lock)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        ttl_s: float | None = DEFAULT_TTL_S,
        durability: Durability = "full",
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        if max_bytes <= 0:
            raise OutboxError(f"outbox max_bytes must be positive, got {max_bytes}")
        if ttl_s is not None and ttl_s <= 0:
            raise OutboxError(f"outbox ttl_s must be positive or None, got {ttl_s}")
        if durability not in ("full", "normal"):
            raise OutboxError(f"outbox durability must be 'full' or 'normal', got {durability!r}")
        self.path = path
        self._max_bytes = max_bytes
        self._ttl_ms = None if ttl_s is None else int(ttl_s * 1000)
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._next_expire_ms = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            self._db = sqlite3.connect(
                path, timeout=1.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={durability.upper()}")
            # Hundreds of agents share one process: keep each page cache small (256 KiB).
            self._db.execute("PRAGMA cache_size=-256")
            self._db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute("COMMIT")
            depth, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
            (next_seq,) = self._db.execute(
                "SELECT value FROM counters WHERE name = 'next_seq'"
            ).fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            hint = " (is another agent using it?)" if "locked" in str(exc) else ""
            raise OutboxError(f"cannot open outbox {path}{hint}: {exc}") from exc
        self._depth: int = depth
        self._bytes: int = size
        self._next_seq: int = next_seq
        self._closed = False

    # -- writing ---------------------------------------------------------------------------

    def enqueue(
        self, suffix: str, payload_builder: Callable[[int], bytes], *, rows: int = 0
    ) -> int:
        """Seal one message: take the next seq, build its payload with it, store both.

        ``payload_builder(seq)`` runs inside the transaction; if it raises, nothing is stored
        and the seq is not consumed. Returns the message's seq.
        """
        now_ms = self._clock_ms()
        with self._lock, self._transaction() as db:
            self._expire_locked(now_ms)
            (seq,) = db.execute("SELECT value FROM counters WHERE name = 'next_seq'").fetchone()
            payload = payload_builder(seq)
            db.execute(
                "INSERT INTO outbox (seq, suffix, payload, created_ms, rows)"
                " VALUES (?, ?, ?, ?, ?)",
                (seq, suffix, payload, now_ms, rows),
            )
            db.execute("UPDATE counters SET value = ? WHERE name = 'next_seq'", (seq + 1,))
            self._next_seq = seq + 1
            self._depth += 1
            self._bytes += len(payload)
            if self._bytes > self._max_bytes:
                self._drop_oldest_locked()
        return int(seq)

    def ack(self, seq: int) -> bool:
        """Delete an acknowledged message; ``False`` if it was not there (acked or dropped)."""
        return self.ack_many((seq,)) == 1

    def ack_many(self, seqs: Iterable[int]) -> int:
        """Delete several acknowledged messages in one transaction; returns how many were there."""
        wanted = list(seqs)
        if not wanted:
            return 0
        removed = 0
        with self._lock, self._transaction() as db:
            for seq in wanted:
                row = db.execute(
                    "DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
                ).fetchone()
                if row is not None:
                    removed += 1
                    self._depth -= 1
                    self._bytes -= row[0]
        return removed

    # -- reading ---------------------------------------------------------------------------

    def peek(self, n: int, after_seq: int = -1) -> list[OutboxMessage]:
        """Up to ``n`` unacknowledged messages with ``seq > after_seq``, oldest first."""
        if n <= 0:
            return []
        now_ms = self._clock_ms()
        with self._lock:
            if self._ttl_ms is not None and self._depth and now_ms >= self._next_expire_ms:
                with self._transaction():
                    self._expire_locked(now_ms)
            self._check_open()
            try:
                rows = self._db.execute(
                    "SELECT seq, suffix, payload, created_ms, rows FROM outbox"
                    " WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, n),
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
        return [OutboxMessage(s, x, bytes(p), c, r) for s, x, p, c, r in rows]

    @property
    def stats(self) -> OutboxStats:
        with self._lock:
            self._check_open()
            try:
                counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
            return OutboxStats(
                depth=self._depth,
                size_bytes=self._bytes,
                dropped_cap=counters["dropped_cap"],
                dropped_ttl=counters["dropped_ttl"],
                next_seq=counters["next_seq"],
            )

    @property
    def depth(self) -> int:
        """Messages not yet acknowledged (no I/O)."""
        return self._depth

    @property
    def last_seq(self) -> int:
        """The seq of the newest message ever enqueued, -1 if none (no I/O)."""
        return self._next_seq - 1

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals (caller holds self._lock and an open transaction) -------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (caller holds ``self._lock``); SQLite errors become OutboxError."""
        self._check_open()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot write to outbox {self.path}: {exc}") from exc
        try:
            yield db
            db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            self._reload_totals_locked()
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"cannot write to outbox {self.path}: {exc}") from exc
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxError(f"outbox {self.path} is closed")

    def _expire_locked(self, now_ms: int) -> None:
        if self._ttl_ms is None or not self._depth:
            return
        self._next_expire_ms = now_ms + _EXPIRE_EVERY_MS
        cutoff_ms = now_ms - self._ttl_ms
        count, size, first, last = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(seq), MAX(seq)"
            " FROM outbox WHERE created_ms < ?",
            (cutoff_ms,),
        ).fetchone()
        if not count:
            return
        self._db.execute("DELETE FROM outbox WHERE created_ms < ?", (cutoff_ms,))
        self._db.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'dropped_ttl'", (count,)
        )
        self._depth -= count
        self._bytes -= size
        logger.warning(
            "outbox %s: dropped %d message(s) older than the TTL (seq %d..%d)",
            self.path,
            count,
            first,
            last,
        )

    def _drop_oldest_locked(self) -> None:
        over = self._bytes - self._max_bytes
        freed = count = 0
        first = last = -1
        cursor = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq")
        try:
            while freed < over:
                chunk = cursor.fetchmany(256)
                if not chunk:
                    break
                for seq, size in chunk:
                    freed += size
                    count += 1
                    last = seq
                    if first < 0:
                        first = seq
                    if freed >= over:
                        break
        finally:
            cursor.close()
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (last,))
        self._db.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'dropped_cap'", (count,)
        )
        self._depth -= count
        self._bytes -= freed
        logger.warning(
            "outbox %s: full (%d bytes max), dropped the %d oldest message(s) (seq %d..%d)",
            self.path,
            self._max_bytes,
            count,
            first,
            last,
        )

    def _reload_totals_locked(self) -> None:
        try:
            self._depth, self._bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
            (self._next_seq,) = self._db.execute(
                "SELECT value FROM counters WHERE name = 'next_seq'"
            ).fetchone()
        except sqlite3.Error:
            logger.exception("outbox %s: cannot recount after a failed transaction", self.path)
