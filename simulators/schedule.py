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
    begin_ms: int, end_ms: int, phase_ms: IntArray, period_ms: IntArray, on_ms: IntArray
) -> FloatArray:
    """Time within ``(begin_ms, end_ms]`` that a periodic window is on, per device.

    The window is on for ``on_ms`` at the start of each period, periods starting at
    ``phase_ms + k * period_ms``.

    >>> periodic_on_ms(0, 3_600_000, np.array([0]), np.array([1_800_000]), np.array([600_000]))
    array([1200000.])
    """

    def cumulative(t_ms: int) -> IntArray:
        shifted = t_ms - phase_ms
        whole = np.floor_divide(shifted, period_ms)
        done: IntArray = whole * on_ms + np.minimum(shifted - whole * period_ms, on_ms)
        return done

    return (cumulative(end_ms) - cumulative(begin_ms)).astype(np.float64)
