"""Tiny vectorized building blocks shared by the product models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MS_PER_DAY = 86_400_000.0
Z80 = 1.2815515655446004  # two-sided 80 % interval of a normal


def ewm_alpha(dt_s: FloatArray, tau_s: float) -> FloatArray:
    """Weight of a new sample in an exponentially weighted mean after ``dt_s`` seconds.

    Irregular sampling is handled by the time constant: a sample after a long gap weighs more.

    >>> float(ewm_alpha(np.array([0.0]), 60.0)[0])
    0.0
    """
    out: FloatArray = -np.expm1(-np.maximum(dt_s, 0.0) / tau_s)
    return out


def ewm_update(level: FloatArray, x: FloatArray, alpha: FloatArray) -> FloatArray:
    """Move ``level`` towards ``x``; NaN ``x`` keeps the level, a NaN level takes ``x``."""
    fresh = np.isnan(level)
    out = np.where(fresh, x, level + alpha * (x - level))
    result: FloatArray = np.where(np.isnan(x), level, out)
    return result


def rank_within_groups(group: IntArray, ts_ms: IntArray) -> tuple[IntArray, IntArray]:
    """Order rows by ``(group, ts_ms)`` and give each row its rank inside its group.

    Returns ``(order, rank)`` where ``order`` sorts the rows and ``rank[i]`` is the 0-based
    position of sorted row ``i`` within its group. Applying rows round by round (all rank-0
    rows, then all rank-1 rows, ...) updates every device in time order with whole-fleet array
    operations, which is why streaming one row at a time equals one batch.
    """
    order = np.lexsort((ts_ms, group))
    g = group[order]
    n = g.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    rank: IntArray = (np.arange(n) - first).astype(np.int64)
    return order.astype(np.int64), rank


@dataclass(frozen=True, slots=True)
class Trend:
    """Exponentially forgetting least-squares line ``y = a + b·x`` per series.

    Sufficient statistics only (six floats per series), so memory is constant per device. ``x`` is
    in days since a per-series origin to keep the sums well conditioned.
    """

    s0: FloatArray
    sx: FloatArray
    sxx: FloatArray
    sy: FloatArray
    sxy: FloatArray
    syy: FloatArray

    @classmethod
    def zeros(cls, n: int) -> Trend:
        z = np.zeros(n)
        return cls(z, z.copy(), z.copy(), z.copy(), z.copy(), z.copy())

    def grow(self, n: int) -> Trend:
        pad = n - self.s0.shape[0]
        if pad <= 0:
            return self
        return Trend(*(np.r_[a, np.zeros(pad)] for a in self.arrays()))

    def arrays(self) -> tuple[FloatArray, ...]:
        return (self.s0, self.sx, self.sxx, self.sy, self.sxy, self.syy)

    def update(self, idx: IntArray, x: FloatArray, y: FloatArray, decay: FloatArray) -> Trend:
        """Fold one point per listed series; NaN ``y`` is skipped (decay still applies)."""
        ok = ~np.isnan(y)
        xv = np.where(ok, x, 0.0)
        yv = np.where(ok, y, 0.0)
        w = ok.astype(np.float64)
        new = []
        for arr, term in zip(
            self.arrays(), (w, w * xv, w * xv * xv, w * yv, w * xv * yv, w * yv * yv), strict=True
        ):
            a = arr.copy()
            a[idx] = arr[idx] * decay + term
            new.append(a)
        return Trend(*new)

    def fit(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Return ``(intercept, slope, slope_se, n_eff)``; NaN where under-determined."""
        det = self.s0 * self.sxx - self.sx * self.sx
        good = (det > 1e-12) & (self.s0 > 2.5)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(good, (self.s0 * self.sxy - self.sx * self.sy) / det, np.nan)
            icpt = np.where(good, (self.sy - slope * self.sx) / self.s0, np.nan)
            sse = self.syy - icpt * self.sy - slope * self.sxy
            dof = np.maximum(self.s0 - 2.0, 1e-9)
            var = np.maximum(sse, 0.0) / dof
            se = np.where(good, np.sqrt(var * self.s0 / det), np.nan)
        return icpt, slope, se, self.s0


def time_to_cross(
    level: FloatArray, slope_per_day: FloatArray, slope_se: FloatArray, limit: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Days until a linear trend reaches ``limit``, with an 80 % interval from the slope error.

    Returns ``(eta, lo, hi)`` in days; ``inf`` where the trend moves away from the limit.
    The bound from the slower plausible slope is the late end of the interval.
    """
    gap = limit - level
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(gap * slope_per_day > 0, gap / slope_per_day, np.inf)
        fast = slope_per_day + np.sign(slope_per_day) * Z80 * slope_se
        slow = slope_per_day - np.sign(slope_per_day) * Z80 * slope_se
        lo = np.where(gap * fast > 0, gap / fast, np.inf)
        hi = np.where(gap * slow > 0, gap / slow, np.inf)
    eta = np.where(gap * np.sign(slope_per_day) <= 0, np.where(gap == 0, 0.0, eta), eta)
    return eta, np.minimum(lo, eta), np.maximum(hi, eta)


def logistic(z: FloatArray) -> FloatArray:
    """Map an evidence ratio to a score in [0, 1]."""
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out
