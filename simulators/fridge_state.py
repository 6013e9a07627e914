"""Per-fridge bookkeeping the fleet updates each sample, touching only the devices concerned."""

from __future__ import annotations

import numpy as np

from simulators.types import FloatArray, IntArray


class Effects:
    """Fault effects on the whole fleet, updated in place for the faulty devices only."""

    __slots__ = ("alive", "capacity_frac", "coil_drop_k", "current_factor", "sensor_offset_k")

    def __init__(self, evap_delta_k: FloatArray) -> None:
        n = evap_delta_k.shape[0]
        dtype = evap_delta_k.dtype
        self.capacity_frac = np.ones(n, dtype)  # cooling capacity left (0 once it died)
        self.coil_drop_k = evap_delta_k.copy()  # running coil below cabinet (less when iced)
        self.current_factor = np.ones(n, dtype)
        self.sensor_offset_k = np.zeros(n, dtype)
        self.alive = np.ones(n, dtype)  # 1.0 while the compressor can run


class AboveLimit:
    """How long each device has been above its limit, counted from the first sample above it.

    Only devices above their limit now or at the previous sample are touched.
    """

    def __init__(self, limit_c: FloatArray, limit_ms: IntArray) -> None:
        self._limit_c = limit_c
        self._limit_ms = limit_ms.astype(np.float64)
        self._above_ms = np.zeros(limit_c.shape[0])
        self._above = np.zeros(limit_c.shape[0], dtype=np.bool_)
        self._was: IntArray = np.zeros(0, dtype=np.int64)

    def update(self, temp_c: FloatArray, dt_ms: float) -> IntArray:
        """Devices above their limit for at least their limit duration as of this sample."""
        now = np.flatnonzero(temp_c > self._limit_c)
        # Devices above now and at the previous sample add the sample; new ones start at 0.
        above_ms = np.where(self._above[now], self._above_ms[now] + dt_ms, 0.0)
        self._above[self._was] = False
        self._above[now] = True
        self._above_ms[now] = above_ms
        self._was = now
        held: IntArray = now[above_ms >= self._limit_ms[now]]
        return held


class TimedEvents:
    """Devices whose scheduled instants (power off, power on, compressor stop) fall in a sample.

    Time only moves forward, so each schedule keeps a cursor past the instants already due.
    """

    def __init__(self, *times_ms: IntArray) -> None:
        self._order = [np.argsort(t, kind="stable") for t in times_ms]
        self._sorted = [t[o] for t, o in zip(times_ms, self._order, strict=True)]
        self._cursor = [int(np.searchsorted(t, 0, side="right")) for t in self._sorted]

    def due(self, which: int, begin_ms: int, ts_ms: int) -> list[tuple[int, int]]:
        """(device, time) of schedule ``which`` within ``(begin_ms, ts_ms]``, by device."""
        times = self._sorted[which]
        lo = self._cursor[which]
        if lo >= times.shape[0] or times[lo] > ts_ms:
            return []
        lo = max(lo, int(np.searchsorted(times, begin_ms, side="right")))
        hi = int(np.searchsorted(times, ts_ms, side="right"))
        self._cursor[which] = hi
        devices = self._order[which][lo:hi].tolist()
        return sorted(zip(devices, times[lo:hi].tolist(), strict=True))
