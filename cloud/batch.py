"""Columnar telemetry batches: the value that flows from decode through ingest to store and core."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TelemetryBatch:
    """Telemetry rows of one product kind from many devices, as arrays.

    Row ``r`` was read by device ``device_ids[row_device[r]]`` at ``ts_ms[r]``;
    ``values[r, c]`` is channel ``channels[c]`` (NaN where that device did not report it).
    Rows of one device are in time order; devices may interleave. ``row_seq`` lets a store
    write idempotently: the rows of one ``(device, seq)`` message are written once, whatever
    the number of deliveries.
    """

    kind: str
    device_ids: tuple[str, ...]
    channels: tuple[str, ...]
    row_device: IntArray  # (n_rows,) index into device_ids
    row_seq: IntArray  # (n_rows,) seq of the message each row arrived in
    ts_ms: IntArray  # (n_rows,)
    values: FloatArray  # (n_rows, n_channels)

    @property
    def n_rows(self) -> int:
        return int(self.ts_ms.shape[0])

    def channel(self, name: str) -> FloatArray:
        """One channel's column; all-NaN if no device in the batch reported it."""
        try:
            return self.values[:, self.channels.index(name)]
        except ValueError:
            return np.full(self.n_rows, np.nan)

    @classmethod
    def empty(cls, kind: str) -> TelemetryBatch:
        return cls(
            kind=kind,
            device_ids=(),
            channels=(),
            row_device=np.zeros(0, dtype=np.int64),
            row_seq=np.zeros(0, dtype=np.int64),
            ts_ms=np.zeros(0, dtype=np.int64),
            values=np.zeros((0, 0)),
        )
