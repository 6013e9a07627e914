"""InfluxDB 2.x mirror of telemetry, through influxdb-client's batching writer."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import cast

import urllib3.exceptions
import urllib3.util
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS, WriteApi, WriteOptions
from influxdb_client.domain.write_precision import WritePrecision
from reactivex.scheduler import ThreadPoolScheduler

from cloud.batch import TelemetryBatch
from cloud.errors import ConfigError, StoreUnavailable
from cloud.store.chunks import check_batch
from cloud.store.line_protocol import batch_lines, count_lines
from cloud.store.ports import WriterStats
from cloud.store.spool import Spool, SpoolStatus

log = logging.getLogger(__name__)

# The client annotates precisions as WritePrecision but defines them as plain strings.
_MS = cast(WritePrecision, WritePrecision.MS)

# What influxdb-client raises: HTTP status errors, urllib3 transport errors, socket errors.
CLIENT_ERRORS = (InfluxDBError, urllib3.exceptions.HTTPError, OSError)
# Statuses that condemn the payload itself; anything else (auth, 404 bucket, 5xx) may pass later.
_PAYLOAD_REJECTED = frozenset({400, 413, 422})
# Lines are handed to the batching pipeline in items of this many: its per-item cost would
# otherwise be several times that of formatting a line.
ITEM_LINES = 100


class InfluxWriter:
    """A ``TelemetryWriter`` that mirrors batches into an InfluxDB 2.x bucket.

    ``write`` returns at once with the rows accepted; the rows are sent in batches of about
    ``batch_size`` lines (whole items of up to ``ITEM_LINES`` lines) or every
    ``flush_interval_ms``. Writing a reading twice overwrites it with itself (same measurement,
    tags and time), so redelivery is harmless. Safe to share between threads.

    The batching writer sends from a background thread and reports only through callbacks, so
    this adapter keeps the books: every row handed over is pending until a callback says it
    was written or failed. A failed batch (after the client's own retries) is counted and its
    line-protocol payload kept in a bounded on-disk spool under ``spool_dir``;
    :meth:`redrive` resends the spool synchronously. Nothing is dropped without being counted
    (``rows_lost``) and logged.
    """

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        spool_dir: Path,
        batch_size: int = 5_000,
        flush_interval_ms: int = 1_000,
        max_retries: int = 5,
        retry_interval_ms: int = 5_000,
        max_retry_time_ms: int = 180_000,
        timeout_ms: int = 10_000,
        max_spool_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if batch_size < 1 or flush_interval_ms < 1:
            raise ConfigError("InfluxDB batch_size and flush_interval_ms must be positive")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"InfluxDB url must start with http:// or https://, got {url!r}")
        self.url = url
        self.org = org
        self.bucket = bucket
        self._spool = Spool(spool_dir, max_spool_bytes)
        self._batch_size = batch_size
        self._flush_interval_ms = flush_interval_ms
        self._max_retries = max_retries
        self._retry_interval_ms = retry_interval_ms
        self._max_retry_time_ms = max_retry_time_ms
        # close() is how flush() drains; allow it the whole retry budget and one request
        self._max_close_wait_ms = max_retry_time_ms + 2 * timeout_ms + flush_interval_ms
        self._lock = threading.Lock()  # the batching api: write, flush and close
        self._stats_lock = threading.Lock()  # counters, also taken by the client's callbacks
        self._redrive_lock = threading.Lock()
        self._rows_written = 0
        self._rows_failed = 0
        self._batches_failed = 0
        self._rows_pending = 0
        self._rows_lost = 0
        self._retries = 0
        self._last_error: str | None = None
        self._closed = False
        # One sending thread of our own: WriteOptions' default scheduler is shared process-wide.
        self._scheduler = ThreadPoolScheduler(max_workers=1)
        self._client = InfluxDBClient(
            url=url,
            token=token,
            org=org,
            timeout=timeout_ms,
            # for redrive's synchronous writes (batching writes use WritesRetry): writes of the
            # same points are idempotent, so POSTs may be retried after a dropped connection
            retries=urllib3.util.Retry(total=2, backoff_factor=0.1, allowed_methods=None),
        )
        self._api = self._open_batching_api()
        self._sync_api = self._client.write_api(write_options=SYNCHRONOUS)

    # -- TelemetryWriter -------------------------------------------------------------------

    def write(self, batch: TelemetryBatch) -> int:
        """Hand ``batch`` to the background writer; return the rows accepted.

        Never raises for a server problem: failures arrive later in :meth:`stats` and the
        spool. Raises ``ValueError`` for a malformed batch and ``StoreUnavailable`` once closed.
        """
        check_batch(batch)
        lines = batch_lines(batch)
        if not lines:
            return 0
        items = [b"\n".join(lines[i : i + ITEM_LINES]) for i in range(0, len(lines), ITEM_LINES)]
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"InfluxDB writer for {self.url} is closed")
            with self._stats_lock:
                self._rows_pending += len(lines)
            try:
                self._api.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=items,
                    write_precision=_MS,
                )
            except CLIENT_ERRORS as exc:
                with self._stats_lock:
                    self._rows_pending -= len(lines)
                raise StoreUnavailable(f"InfluxDB {self.url}: write failed: {exc}") from exc
        return len(lines)

    def flush(self) -> None:
        """Send what is buffered now and wait until every batch succeeded or failed.

        While the server is away this takes up to the retry budget (``max_retry_time_ms``).
        """
        with self._lock:
            if self._closed:
                return
            # influxdb-client's WriteApi.flush() does nothing; closing drains the pipeline.
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = self._open_batching_api()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._api.close()  # type: ignore[no-untyped-call]
            self._sync_api.close()  # type: ignore[no-untyped-call]
            self._client.close()  # type: ignore[no-untyped-call]
            self._scheduler.executor.shutdown(wait=True)

    def stats(self) -> WriterStats:
        with self._stats_lock:
            return WriterStats(
                rows_written=self._rows_written,
                rows_failed=self._rows_failed,
                batches_failed=self._batches_failed,
                rows_pending=self._rows_pending,
                last_error=self._last_error,
            )

    # -- the spool -------------------------------------------------------------------------

    @property
    def rows_lost(self) -> int:
        """Rows of failed batches the spool could not keep (full, or the disk refused)."""
        with self._stats_lock:
            return self._rows_lost

    @property
    def retries(self) -> int:
        """Retryable errors the client met (each retried, not yet a failure)."""
        with self._stats_lock:
            return self._retries

    def spool_status(self) -> SpoolStatus:
        return self._spool.status()

    def redrive(self) -> int:
        """Resend spooled batches, oldest first, removing each once written; return rows sent.

        A payload the server refuses as malformed (400, 413, 422) is set aside as
        ``*.rejected`` so that it cannot block the rest. Any other failure stops the redrive,
        keeps the remaining files and raises ``StoreUnavailable``.
        """
        sent = 0
        with self._redrive_lock:
            for path in self._spool.files():
                try:
                    payload = path.read_bytes()
                except OSError as exc:
                    raise StoreUnavailable(f"spool file {path} unreadable: {exc}") from exc
                rows = count_lines(payload)
                try:
                    self._sync_api.write(
                        bucket=self.bucket,
                        org=self.org,
                        record=payload,
                        write_precision=_MS,
                    )
                except CLIENT_ERRORS as exc:
                    error = _describe(exc)
                    with self._stats_lock:
                        self._last_error = error
                    if getattr(exc, "status", None) in _PAYLOAD_REJECTED:
                        target = self._spool.reject(path)
                        log.error("InfluxDB refused spooled %s (%d rows): %s", target, rows, error)
                        continue
                    raise StoreUnavailable(
                        f"InfluxDB {self.url}: redrive stopped, {len(self._spool.files())} "
                        f"batches still spooled: {error}"
                    ) from exc
                self._spool.remove(path)
                sent += rows
                with self._stats_lock:
                    self._rows_written += rows
        return sent

    # -- callbacks of the batching writer (its thread) -------------------------------------

    def _on_success(self, conf: tuple[str, str, str], data: bytes) -> None:
        rows = count_lines(data)
        with self._stats_lock:
            self._rows_pending -= rows
            self._rows_written += rows

    def _on_error(self, conf: tuple[str, str, str], data: bytes, exc: Exception) -> None:
        rows = count_lines(data)
        error = _describe(exc)
        try:
            kept = self._spool.add(data)
            problem = None if kept else "spool full"
        except OSError as spool_exc:
            kept, problem = None, f"spool write failed: {spool_exc}"
        with self._stats_lock:
            self._rows_pending -= rows
            self._rows_failed += rows
            self._batches_failed += 1
            if kept is None:
                self._rows_lost += rows
                error = f"{error}; {problem}: {rows} rows lost"
            self._last_error = error
        if kept is None:
            log.error("InfluxDB batch of %d rows failed and was not kept: %s", rows, error)
        else:
            log.warning("InfluxDB batch of %d rows failed, spooled as %s: %s", rows, kept, error)

    def _on_retry(self, conf: tuple[str, str, str], data: bytes, exc: Exception) -> None:
        with self._stats_lock:
            self._retries += 1
            self._last_error = _describe(exc)

    def _open_batching_api(self) -> WriteApi:
        return self._client.write_api(
            write_options=WriteOptions(
                batch_size=max(1, self._batch_size // ITEM_LINES),
                flush_interval=self._flush_interval_ms,
                max_retries=self._max_retries,
                retry_interval=self._retry_interval_ms,
                max_retry_time=self._max_retry_time_ms,
                max_close_wait=self._max_close_wait_ms,
                write_scheduler=self._scheduler,
            ),
            success_callback=self._on_success,
            error_callback=self._on_error,
            retry_callback=self._on_retry,
        )

    def __enter__(self) -> InfluxWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    text = str(exc).strip() or type(exc).__name__
    return f"HTTP {status}: {text}" if status else f"{type(exc).__name__}: {text}"
