"""Ports of the telemetry store: what ingest writes through and what the API reads through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cloud.batch import FloatArray, IntArray, TelemetryBatch


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one writer since it was opened.

    ``rows_failed`` and ``batches_failed`` only ever grow: a failure stays counted after its
    rows were delivered later (a redrive adds them to ``rows_written``). ``rows_pending`` are
    rows handed to the writer and neither confirmed nor failed yet.
    """

    rows_written: int
    rows_failed: int
    batches_failed: int
    rows_pending: int
    last_error: str | None


class TelemetryWriter(Protocol):
    """Somewhere telemetry batches go: the embedded history or a production mirror."""

    def write(self, batch: TelemetryBatch) -> int:
        """Store ``batch``; return the rows newly written.

        Idempotent per message: rows of a ``(device_id, seq)`` that is already stored are not
        written again. A writer that sends in the background returns the rows it accepted.
        """
        ...

    def flush(self) -> None:
        """Return once everything accepted so far is written (or counted as failed)."""
        ...

    def close(self) -> None:
        """Flush and release the writer's resources."""
        ...

    def stats(self) -> WriterStats: ...


@dataclass(frozen=True, slots=True)
class Series:
    """One channel of one device over a time range, in time order.

    Only readings that exist are points: a reading the device did not report leaves a gap in
    ``ts_ms``, not a NaN. Raw points have ``min`` and ``max`` set to ``None``. Downsampled
    points are time buckets holding at least one reading: ``ts_ms`` is the bucket start,
    ``values`` the mean of the bucket's readings and ``min``/``max`` their extremes.
    """

    device_id: str
    channel: str
    ts_ms: IntArray
    values: FloatArray
    min: FloatArray | None
    max: FloatArray | None

    @property
    def n_points(self) -> int:
        return int(self.ts_ms.shape[0])

    @property
    def downsampled(self) -> bool:
        return self.min is not None


class TelemetryReader(Protocol):
    """Read access to stored telemetry history."""

    def query(
        self,
        device_id: str,
        channel: str,
        start_ms: int,
        end_ms: int,
        max_points: int | None = None,
    ) -> Series:
        """Readings with ``start_ms <= ts_ms <= end_ms``, downsampled to at most ``max_points``."""
        ...

    def channels(self, device_id: str) -> list[str]:
        """Channels the device ever reported, sorted; empty for an unknown device."""
        ...

    def rows_stored(self) -> int:
        """Exact number of readings (rows) stored."""
        ...
