"""The embedded telemetry history: one SQLite file of compressed per-message column chunks."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.errors import StoreUnavailable
from cloud.store.chunks import (
    CHANNEL_SEP,
    ChunkRecord,
    DecodedChunk,
    decode_chunk,
    encode_batch,
)
from cloud.store.downsample import downsample
from cloud.store.ports import Series, WriterStats

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ts_first_ms INTEGER NOT NULL,
    ts_last_ms INTEGER NOT NULL,
    n_rows INTEGER NOT NULL,
    channels TEXT NOT NULL,
    codec INTEGER NOT NULL,
    ts_blob BLOB NOT NULL,
    values_blob BLOB NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX IF NOT EXISTS chunks_by_time ON chunks (device_id, ts_last_ms, ts_first_ms);
CREATE TABLE IF NOT EXISTS device_channels (
    device_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (device_id, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO totals (name, value) VALUES ('rows', 0);
CREATE TRIGGER IF NOT EXISTS chunks_count_insert AFTER INSERT ON chunks BEGIN
    UPDATE totals SET value = value + NEW.n_rows WHERE name = 'rows';
END;
CREATE TRIGGER IF NOT EXISTS chunks_count_delete AFTER DELETE ON chunks BEGIN
    UPDATE totals SET value = value - OLD.n_rows WHERE name = 'rows';
END;
"""

_INSERT_CHUNK = "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_CHANNEL = "INSERT OR IGNORE INTO device_channels (device_id, channel) VALUES (?, ?)"
_ROWS = "SELECT value FROM totals WHERE name = 'rows'"
# Chunks overlapping [start, end] that carry the channel; the channel test saves fetching blobs.
_SELECT_CHUNKS = (
    "SELECT channels, codec, n_rows, ts_blob, values_blob FROM chunks"
    " WHERE device_id = ? AND ts_last_ms >= ? AND ts_first_ms <= ?"
    " AND instr(',' || channels || ',', ',' || ? || ',') > 0"
)
# rowid grows with every insert: it orders messages by when they were stored.
_HIGH_WATER = "SELECT COALESCE(MAX(rowid), 0) FROM chunks"
_SELECT_AFTER = (
    "SELECT rowid, device_id, seq, kind, channels, codec, n_rows, ts_blob, values_blob"
    " FROM chunks WHERE rowid > ? ORDER BY rowid LIMIT ?"
)
_BUSY_TIMEOUT_S = 10.0
# Checkpoints (copying the write-ahead log into the file, with its fsyncs) run on a thread of
# their own, so that ingest does not wait for the disk; past this many log pages a writer
# checkpoints by itself (a safety net, should the thread fall behind).
CHECKPOINT_EVERY_S = 0.5
WAL_AUTOCHECKPOINT_PAGES = 16_384

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One stored telemetry message, as read back for replay."""

    position: int  # store order: larger was stored later
    kind: str
    device_id: str
    seq: int
    chunk: DecodedChunk


class EmbeddedStore:
    """Telemetry history in one SQLite file: a ``TelemetryWriter`` and ``TelemetryReader``.

    Each row of table ``chunks`` is one telemetry message ``(device_id, seq)`` with its
    ``ts_ms`` and value columns as blobs (see :mod:`cloud.store.chunks`). ``INSERT OR IGNORE``
    on that primary key makes redelivery harmless; triggers keep an exact reading count in the
    same transaction as the chunks they count.

    Threads: one connection writes (``write``, ``prune``, ``flush``) and another reads
    (``query``, ``channels``, ``rows_stored``), each behind its own lock, so any number of
    threads may share one store. In WAL mode a read never waits for a write to commit, and sees
    whole batches only. ``synchronous=NORMAL``: a committed batch survives a crash of the
    process; a power cut may lose the last batches, which devices still hold in their outboxes
    until acknowledged.

    ``compress`` selects zlib-compressed chunks (about a third of the raw size for fridge
    rows); files may mix both, each chunk records its codec. ``busy_timeout_s`` is how long a
    statement waits for another process holding the file's lock before failing.
    """

    def __init__(
        self, path: Path, *, compress: bool = True, busy_timeout_s: float = _BUSY_TIMEOUT_S
    ) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._compress = compress
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._closed = False
        self._checkpoint_stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # (device_id, channel text) pairs already in device_channels: skips re-inserting them
        self._known_channel_sets: set[tuple[str, str]] = set()
        self._rows_written = 0
        self._rows_failed = 0
        self._batches_failed = 0
        self._last_error: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"telemetry store {self.path}: cannot create its directory: {exc}"
            ) from exc
        self._writer = self._connect("open")
        try:
            self._init_schema()
            self._reader = self._connect("open")
        except StoreUnavailable:
            self._writer.close()
            raise

    # -- TelemetryWriter -------------------------------------------------------------------

    def write(self, batch: TelemetryBatch) -> int:
        """Store ``batch``; return the rows newly stored (rows of known messages are skipped).

        Raises ``ValueError`` for a malformed batch, ``StoreUnavailable`` if the file refused
        the write (nothing of the batch is stored then).
        """
        records = encode_batch(batch, compress=self._compress)
        if not records:
            return 0
        with self._write_lock:
            if self._checkpointer is None and not self._closed:
                self._start_checkpointer()
            try:
                written = self._run("write", lambda: self._write_records(records))
            except StoreUnavailable as exc:
                self._rows_failed += batch.n_rows
                self._batches_failed += 1
                self._last_error = str(exc)
                raise
            self._rows_written += written
            return written

    def flush(self) -> None:
        """Checkpoint the write-ahead log into the database file (each write already commits)."""
        with self._write_lock:
            self._run("flush", lambda: self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)"))

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            if self._closed:
                return
            self._closed = True
            self._checkpoint_stop.set()
            if self._checkpointer is not None:
                self._checkpointer.join()
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA optimize")
            self._reader.close()
            self._writer.close()

    def stats(self) -> WriterStats:
        return WriterStats(
            rows_written=self._rows_written,
            rows_failed=self._rows_failed,
            batches_failed=self._batches_failed,
            rows_pending=0,
            last_error=self._last_error,
        )

    # -- TelemetryReader -------------------------------------------------------------------

    def query(
        self,
        device_id: str,
        channel: str,
        start_ms: int,
        end_ms: int,
        max_points: int | None = None,
    ) -> Series:
        """Readings of one channel with ``start_ms <= ts_ms <= end_ms``, in time order.

        With ``max_points`` and more readings than that, the readings are averaged into at
        most ``max_points`` equal time buckets (see :func:`cloud.store.downsample.downsample`).
        A reading the device did not report (NaN) is not a point of the series, wherever it
        was missing. An unknown device or channel gives an empty series.
        """
        if max_points is not None and max_points < 1:
            raise ValueError(f"max_points must be >= 1, got {max_points}")
        if end_ms < start_ms:
            return _empty_series(device_id, channel)
        with self._read_lock:
            rows = self._run(
                "query",
                lambda: self._reader.execute(
                    _SELECT_CHUNKS, (device_id, start_ms, end_ms, channel)
                ).fetchall(),
            )
        if not rows:
            return _empty_series(device_id, channel)
        ts_parts = []
        value_parts = []
        for names, codec, n_rows, ts_blob, values_blob in rows:
            try:
                chunk = decode_chunk(names, codec, n_rows, ts_blob, values_blob)
                column = chunk.channels.index(channel)
            except ValueError as exc:
                raise StoreUnavailable(
                    f"telemetry store {self.path}: unreadable chunk of {device_id}: {exc}"
                ) from exc
            ts_parts.append(chunk.ts_ms)
            value_parts.append(chunk.values[:, column])
        ts_ms = np.concatenate(ts_parts)
        values = np.concatenate(value_parts)
        inside = (ts_ms >= start_ms) & (ts_ms <= end_ms) & np.isfinite(values)
        ts_ms, values = ts_ms[inside], values[inside]
        if ts_ms.shape[0] > 1 and bool(np.any(ts_ms[1:] < ts_ms[:-1])):
            order = np.argsort(ts_ms, kind="stable")
            ts_ms, values = ts_ms[order], values[order]
        if max_points is None or ts_ms.shape[0] <= max_points:
            return Series(device_id, channel, ts_ms, values, min=None, max=None)
        buckets = downsample(ts_ms, values, start_ms, end_ms, max_points)
        return Series(device_id, channel, buckets.ts_ms, buckets.mean, buckets.min, buckets.max)

    def channels(self, device_id: str) -> list[str]:
        with self._read_lock:
            rows = self._run(
                "channels",
                lambda: self._reader.execute(
                    "SELECT channel FROM device_channels WHERE device_id = ? ORDER BY channel",
                    (device_id,),
                ).fetchall(),
            )
        return [str(row[0]) for row in rows]

    def devices(self) -> list[str]:
        """Every device that has stored telemetry, sorted."""
        with self._read_lock:
            rows = self._run(
                "devices",
                lambda: self._reader.execute(
                    "SELECT DISTINCT device_id FROM device_channels ORDER BY device_id"
                ).fetchall(),
            )
        return [str(row[0]) for row in rows]

    def rows_stored(self) -> int:
        with self._read_lock:
            row = self._run("count", lambda: self._reader.execute(_ROWS).fetchone())
        return int(row[0])

    # -- replay ----------------------------------------------------------------------------

    def high_water(self) -> int:
        """Position of the newest stored message; ``messages_after`` reads what came later."""
        with self._read_lock:
            row = self._run("high water", lambda: self._reader.execute(_HIGH_WATER).fetchone())
        return int(row[0])

    def messages_after(self, position: int, limit: int = 1000) -> list[StoredMessage]:
        """Up to ``limit`` messages stored after ``position``, in the order they were stored."""
        with self._read_lock:
            rows = self._run(
                "replay",
                lambda: self._reader.execute(_SELECT_AFTER, (position, limit)).fetchall(),
            )
        out: list[StoredMessage] = []
        for rowid, device_id, seq, kind, names, codec, n_rows, ts_blob, values_blob in rows:
            try:
                chunk = decode_chunk(names, codec, n_rows, ts_blob, values_blob)
            except ValueError as exc:
                raise StoreUnavailable(
                    f"telemetry store {self.path}: unreadable chunk of {device_id}: {exc}"
                ) from exc
            out.append(StoredMessage(int(rowid), str(kind), str(device_id), int(seq), chunk))
        return out

    # -- retention -------------------------------------------------------------------------

    def prune(self, older_than_ms: int) -> int:
        """Delete messages whose newest reading is before ``older_than_ms``; return rows deleted.

        A message straddling the cut is kept whole. Devices keep their channel lists.
        """
        with self._write_lock:
            return self._run("prune", lambda: self._prune(older_than_ms))

    # -- internals -------------------------------------------------------------------------

    def _start_checkpointer(self) -> None:
        conn = self._run("checkpoint", lambda: self._connect("checkpoint"))
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(conn,), name="forewarn-store-checkpoint",
            daemon=True,
        )  # fmt: skip
        self._checkpointer.start()

    def _checkpoint_loop(self, conn: sqlite3.Connection) -> None:
        """Checkpoint every ``CHECKPOINT_EVERY_S`` until the store closes (PASSIVE: never blocks
        the writer or readers). A failure is kept as the last error and retried next round;
        committed data does not depend on it."""
        try:
            while not self._checkpoint_stop.wait(CHECKPOINT_EVERY_S):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    self._last_error = f"telemetry store {self.path}: checkpoint failed: {exc}"
        finally:
            conn.close()

    def _connect(self, action: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,  # transactions are explicit
                check_same_thread=False,  # guarded by this store's locks instead
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"telemetry store {self.path}: cannot {action}: {exc}") from exc
        return conn

    def _init_schema(self) -> None:
        def init() -> None:
            conn = self._writer
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, SCHEMA_VERSION):
                raise sqlite3.DatabaseError(
                    f"file format version {version}, this program reads {SCHEMA_VERSION}"
                )
            script = f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;"
            try:
                conn.executescript(script)
            except sqlite3.Error:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

        self._run("open", init)

    def _write_records(self, records: list[ChunkRecord]) -> int:
        conn = self._writer
        channel_sets = {(record[0], record[6]) for record in records} - self._known_channel_sets
        pairs = [
            (device_id, name)
            for device_id, names in channel_sets
            if names
            for name in names.split(CHANNEL_SEP)
        ]
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = int(conn.execute(_ROWS).fetchone()[0])
            conn.executemany(_INSERT_CHUNK, records)
            if pairs:
                conn.executemany(_INSERT_CHANNEL, pairs)
            after = int(conn.execute(_ROWS).fetchone()[0])
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self._known_channel_sets |= channel_sets
        return after - before

    def _prune(self, older_than_ms: int) -> int:
        conn = self._writer
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = int(conn.execute(_ROWS).fetchone()[0])
            # per device, so that each delete walks the (device_id, ts_last_ms) index
            conn.execute(
                "DELETE FROM chunks WHERE device_id IN "
                "(SELECT DISTINCT device_id FROM device_channels) AND ts_last_ms < ?",
                (older_than_ms,),
            )
            after = int(conn.execute(_ROWS).fetchone()[0])
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return before - after

    def _run(self, action: str, step: Callable[[], T]) -> T:
        if self._closed:
            raise StoreUnavailable(f"telemetry store {self.path} is closed")
        try:
            return step()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"telemetry store {self.path}: {action} failed: {exc}") from exc

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _empty_series(device_id: str, channel: str) -> Series:
    return Series(
        device_id=device_id,
        channel=channel,
        ts_ms=np.zeros(0, dtype=np.int64),
        values=np.zeros(0),
        min=None,
        max=None,
    )
