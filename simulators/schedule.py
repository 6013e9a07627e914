"""How much of a sample interval falls inside on/off windows (defrost cycles, trips, outages)."""

from __future__ import annotations

import numpy as np

from simulators.types import FloatArray, IntArray


def overlap_ms(
    begin_ms: int, end_ms: int, window_start_ms: IntArray, window_end_ms: IntArray
) -> FloatArray:
    """Length of ``(begin_ms, end_ms]`` inside ``[window_start_ms, window_end_ms)``, per window.

    >>> overlap_ms(0, 600_000, np.array([300_000]), np.array([900_000]))
    array([300000.])
    """
    inside = np.minimum(end_ms, window_end_ms) - np.maximum(begin_ms, window_start_ms)
    length: FloatArray = np.maximum(inside, 0).astype(np.float64)
    return length


def periodic_on_ms(
    begin_ms: int,
    end_ms: int,
    phase_ms: IntArray | FloatArray,
    period_ms: IntArray | FloatArray,
    on_ms: IntArray | FloatArray,
) -> FloatArray:
    """Time within ``(begin_ms, end_ms]`` that a periodic window is on, per device.

    The window is on for ``on_ms`` at the start of each period, periods starting at
    ``phase_ms + k * period_ms``.

    >>> periodic_on_ms(0, 3_600_000, np.array([0]), np.array([1_800_000]), np.array([600_000]))
    array([1200000.])
    """

    # Float arithmetic: exact for millisecond times (below 2**53) and several times faster
    # than integer floor division over a large fleet.
    phase = np.asarray(phase_ms, dtype=np.float64)
    period = np.asarray(period_ms, dtype=np.float64)
    on = np.asarray(on_ms, dtype=np.float64)

    def cumulative(t_ms: int) -> FloatArray:
        shifted = t_ms - phase
        whole = np.floor(shifted / period)
        done: FloatArray = whole * on + np.minimum(shifted - whole * period, on)
        return done

    return cumulative(end_ms) - cumulative(begin_ms)


class PeriodicWindows:
    """:func:`periodic_on_ms` for a fleet stepped forward, touching only devices in a window.

    Keeps each device's next window start; a step computes overlaps only for devices whose
    window has begun (a few per cent for defrost cycles). Samples longer than the shortest
    gap between windows fall back to the closed form and resynchronise.
    """

    def __init__(
        self, phase_ms: FloatArray, period_ms: FloatArray, on_ms: FloatArray, from_ms: int
    ) -> None:
        self._phase = np.asarray(phase_ms, dtype=np.float64)
        self._period = np.asarray(period_ms, dtype=np.float64)
        self._on = np.asarray(on_ms, dtype=np.float64)
        self._max_fast_ms = float(np.min(self._period - self._on, initial=np.inf))
        self._start = self._next_start(from_ms)

    def _next_start(self, t_ms: float) -> FloatArray:
        """Start of each device's first window that ends after ``t_ms``."""
        k = np.floor((t_ms - self._on - self._phase) / self._period) + 1.0
        start: FloatArray = self._phase + k * self._period
        return start

    def on_ms(self, begin_ms: int, end_ms: int) -> tuple[IntArray, FloatArray]:
        """Devices on at some time in ``(begin_ms, end_ms]`` and how long, in ms."""
        if end_ms - begin_ms > self._max_fast_ms:
            on = periodic_on_ms(begin_ms, end_ms, self._phase, self._period, self._on)
            self._start = self._next_start(end_ms)
            who = np.flatnonzero(on > 0)
            return who, on[who]
        who = np.flatnonzero(self._start < end_ms)
        start = self._start[who]
        # A gap in the stepping (a window that ended before this sample) skips ahead.
        stale = start + self._on[who] <= begin_ms
        if stale.any():
            start = np.where(stale, self._next_start(begin_ms)[who], start)
        stop = start + self._on[who]
        on = np.maximum(np.minimum(stop, end_ms) - np.maximum(start, begin_ms), 0.0)
        self._start[who] = np.where(stop <= end_ms, start + self._period[who], start)
        keep = on > 0
        return who[keep], on[keep]
