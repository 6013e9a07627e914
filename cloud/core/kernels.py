"""Tiny vectorized building blocks shared by the product models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.special import stdtrit

FloatArray: TypeAlias = npt.NDArray[np.float64]
Float32Array: TypeAlias = npt.NDArray[np.float32]
AnyFloatArray: TypeAlias = npt.NDArray[np.floating[Any]]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
# Rows of a fleet array: an index array for a sparse update, ``slice(None)`` for a dense step
# (every device, in order), which numpy serves with views instead of gathers and scatters.
Rows: TypeAlias = IntArray | slice

MS_PER_DAY = 86_400_000.0
Z80 = 1.2815515655446004  # two-sided 80 % interval of a normal
F32 = np.float32


# Integer type of the same width, for :func:`select`'s bit masks.
_SAME_WIDTH_INT: dict[int, type[np.signedinteger[Any]]] = {
    1: np.int8,
    2: np.int16,
    4: np.int32,
    8: np.int64,
}


def select(mask: BoolArray | bool, a: Any, b: Any) -> npt.NDArray[Any]:
    """``np.where(mask, a, b)``, bit for bit, at a fixed cost whatever the mask.

    ``np.where`` branches per element: with a mask that changes from one element to the next
    (compressor on or off, a channel read or not) the mispredictions make it about 9 times
    slower than with a uniform mask (350 µs against 40 µs for 100,000 float32). Here the bits
    are picked with integer arithmetic instead, ``b ^ ((a ^ b) * mask)``, which costs three
    cheap passes for any mask, and one copy for a uniform one. The result dtype and value are
    ``np.where``'s (NaN payloads and signed zeros included); dtypes other than float, integer
    and bool fall back to it.

    >>> select(np.array([True, False, True]), np.array([1.0, 2.0, -0.0]), np.nan)
    array([ 1., nan, -0.])
    """
    dtype = np.result_type(a, b)
    ints = _SAME_WIDTH_INT.get(dtype.itemsize)
    if ints is None or dtype.kind not in "fiub":
        out: npt.NDArray[Any] = np.where(mask, a, b)
        return out
    pick = np.asarray(mask, dtype=np.bool_)
    # A uniform mask (every fridge steady, no reading missing) needs no picking: one copy. The
    # two checks cost about a microsecond each for 100,000 rows, the picking about 25.
    if pick.all():
        return _broadcast_copy(a, dtype, pick, b)
    if not pick.any():
        return _broadcast_copy(b, dtype, pick, a)
    bits_b = np.asarray(b, dtype=dtype).view(ints)
    picked = np.bitwise_xor(np.asarray(a, dtype=dtype).view(ints), bits_b)
    if picked.shape == pick.shape:
        picked *= pick  # a ^ b where the mask holds, 0 elsewhere
    else:
        picked = picked * pick  # broadcasts
    picked ^= bits_b
    return picked.view(dtype)


def _against_constant(ufunc: np.ufunc, x: npt.ArrayLike, c: Any) -> npt.NDArray[Any]:
    """``ufunc(x, c)`` for a constant ``c``, bit for bit, in about half the time at fleet scale.

    numpy's SIMD loops for maximum and minimum take two arrays; against a scalar they fall back
    to an element loop (31 µs against 8 µs for 100,000 float32). The result is filled with
    ``c`` first and the ufunc runs into it: one cheap pass more, no array more.
    """
    out: npt.NDArray[Any] = np.full(np.shape(x), c, dtype=np.result_type(x, c))
    ufunc(x, out, out=out)
    return out


def maximum(x: npt.ArrayLike, c: Any) -> npt.NDArray[Any]:
    """``np.maximum(x, c)`` for a constant ``c`` (NaN propagates).

    >>> maximum(np.array([-1.0, np.nan, 2.0]), 0)
    array([ 0., nan,  2.])
    """
    return _against_constant(np.maximum, x, c)


def minimum(x: npt.ArrayLike, c: Any) -> npt.NDArray[Any]:
    """``np.minimum(x, c)`` for a constant ``c`` (NaN propagates)."""
    return _against_constant(np.minimum, x, c)


def fmax(x: npt.ArrayLike, c: Any) -> npt.NDArray[Any]:
    """``np.fmax(x, c)`` for a constant ``c`` (NaN gives ``c``).

    >>> fmax(np.array([-1.0, np.nan, 2.0], dtype=np.float32), 0).tolist()
    [0.0, 0.0, 2.0]
    """
    return _against_constant(np.fmax, x, c)


def _broadcast_copy(x: Any, dtype: np.dtype[Any], *others: Any) -> npt.NDArray[Any]:
    """A new array of ``x`` cast to ``dtype``, in the shape ``x`` broadcasts to with ``others``."""
    out: npt.NDArray[Any] = np.empty(np.broadcast_shapes(*map(np.shape, (x, *others))), dtype)
    out[...] = x
    return out


def ewm_alpha(dt_s: AnyFloatArray, tau_s: float, *, nonnegative: bool = False) -> AnyFloatArray:
    """Weight of a new sample in an exponentially weighted mean after ``dt_s`` seconds.

    Irregular sampling is handled by the time constant: a sample after a long gap weighs more.
    The result has the dtype of ``dt_s``. A caller whose ``dt_s`` cannot be negative or NaN
    says so with ``nonnegative`` and saves the clamp (the result is the same).

    >>> float(ewm_alpha(np.array([0.0]), 60.0)[0])
    0.0
    """
    dt = dt_s if nonnegative else np.maximum(dt_s, 0)
    out: AnyFloatArray = -np.expm1(dt * (-1.0 / tau_s))
    return out


def ewm_update(
    level: AnyFloatArray, x: AnyFloatArray, alpha: AnyFloatArray | np.floating[Any]
) -> AnyFloatArray:
    """Move ``level`` towards ``x``; NaN ``x`` keeps the level, a NaN level takes ``x``.

    >>> ewm_update(np.array([1.0, np.nan, 1.0]), np.array([3.0, 2.0, np.nan]), np.full(3, 0.5))
    array([2., 2., 1.])
    """
    moved = level + alpha * (x - level)
    # Each select is skipped when its mask is all False (no NaN level: the usual case once a
    # feature has seen data), where it would return ``moved`` unchanged.
    missing_level = np.isnan(level)
    if missing_level.any():
        moved = select(missing_level, x, moved)
    missing_x = np.isnan(x)
    if missing_x.any():
        moved = select(missing_x, level, moved)
    result: AnyFloatArray = moved
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
class TrendFit:
    """A fitted line per series: level at ``x_now``, slope per unit of x, its standard error and
    the effective number of points; in the trend's own dtype."""

    level: AnyFloatArray
    slope: AnyFloatArray
    slope_se: AnyFloatArray
    weight: AnyFloatArray


@dataclass(frozen=True, slots=True)
class Trend:
    """Exponentially forgetting least-squares line ``y = a + b·x`` per series.

    Kept as a weight, weighted means and centred co-moments (West's weighted Welford update),
    so the fit stays accurate in float32 however far ``x`` (days since a per-series origin) runs
    from zero: a raw-sum form loses the slope to cancellation after a few weeks in float32.
    Six numbers per series; memory is constant per device.
    """

    w: AnyFloatArray
    mx: AnyFloatArray
    my: AnyFloatArray
    cxx: AnyFloatArray
    cxy: AnyFloatArray
    cyy: AnyFloatArray

    @classmethod
    def zeros(cls, n: int, dtype: type[np.floating[Any]] = F32) -> Trend:
        z = np.zeros(n, dtype=dtype)
        return cls(z, z.copy(), z.copy(), z.copy(), z.copy(), z.copy())

    def grow(self, n: int) -> Trend:
        pad = n - self.w.shape[0]
        if pad <= 0:
            return self
        return Trend(*(np.r_[a, np.zeros(pad, dtype=a.dtype)] for a in self.arrays()))

    def arrays(self) -> tuple[AnyFloatArray, ...]:
        return (self.w, self.mx, self.my, self.cxx, self.cxy, self.cyy)

    def copy(self) -> Trend:
        return Trend(*(a.copy() for a in self.arrays()))

    def fold(self, rows: Rows, x: AnyFloatArray, y: AnyFloatArray, decay: AnyFloatArray) -> None:
        """Fold one point per listed series into this (freshly copied) trend, in place."""
        self.put(rows, self.folded(rows, x, y, decay))

    def folded(self, rows: Rows, x: AnyFloatArray, y: AnyFloatArray, decay: AnyFloatArray) -> Trend:
        """The listed series with one point each folded in, as new arrays; ``self`` is kept.

        NaN ``y`` is skipped but the decay still applies: old evidence fades with time whether
        or not new evidence arrives.
        """
        ok = ~np.isnan(y)
        wi = ok.astype(self.w.dtype)
        w_old = self.w[rows] * decay
        w_new = w_old + wi
        share = select(ok, wi / maximum(w_new, 1e-30), 0).astype(self.w.dtype, copy=False)
        dx = select(ok, x - self.mx[rows], 0)
        dy = select(ok, y - self.my[rows], 0)
        # Co-moments update with the deviation before and after the mean moves.
        keep = 1 - share
        return Trend(
            w=w_new,
            mx=self.mx[rows] + share * dx,
            my=self.my[rows] + share * dy,
            cxx=self.cxx[rows] * decay + wi * dx * dx * keep,
            cxy=self.cxy[rows] * decay + wi * dx * dy * keep,
            cyy=self.cyy[rows] * decay + wi * dy * dy * keep,
        )

    def put(self, rows: Rows, part: Trend) -> None:
        """Write ``part`` (from :meth:`folded`) into the listed series of this trend."""
        for a, p in zip(self.arrays(), part.arrays(), strict=True):
            a[rows] = p

    def fit(self, x_now: AnyFloatArray, min_weight: float = 2.5) -> TrendFit:
        """The line at ``x_now``: level, slope, slope standard error, effective sample size.

        NaN where the line is under-determined (too little weight or no spread in ``x``).
        """
        w, cxx = self.w, self.cxx
        good = (w > min_weight) & (cxx > 1e-9 * maximum(w, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = select(good, self.cxy / cxx, np.nan).astype(w.dtype, copy=False)
            level = self.my + slope * (x_now - self.mx)
            sse = maximum(self.cyy - slope * self.cxy, 0)
            var = sse / maximum(w - 2, 1e-9)
            se = select(good, np.sqrt(var / cxx), np.nan).astype(w.dtype, copy=False)
        return TrendFit(level, slope, se, w)


def quantile80(dof: AnyFloatArray | None) -> FloatArray | float:
    """Half-width, in standard errors, of a two-sided 80 % interval with ``dof`` degrees of
    freedom (Student's t; the normal's 1.2816 when ``dof`` is None).

    A line fitted to a handful of points knows its slope poorly, and its standard error
    knows that poorly too: the t quantile widens the early intervals accordingly.

    >>> round(float(quantile80(np.array([1.0]))[0]), 3), round(float(quantile80(None)), 3)
    (3.078, 1.282)
    """
    if dof is None:
        return Z80
    out: FloatArray = stdtrit(np.maximum(np.asarray(dof, dtype=np.float64), 1.0), 0.9)
    return out


def time_to_cross(
    level: AnyFloatArray,
    slope_per_day: AnyFloatArray,
    slope_se: AnyFloatArray,
    limit: AnyFloatArray | float,
    dof: AnyFloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Days until a linear trend reaches ``limit``, with an 80 % interval from the slope error.

    Returns ``(eta, lo, hi)`` in days; ``inf`` where the trend moves away from the limit.
    The bound from the slower plausible slope is the late end of the interval. ``dof`` (the
    fit's effective points less two) uses Student's t instead of the normal quantile.

    >>> eta, lo, hi = time_to_cross(np.array([1.0]), np.array([0.5]), np.array([0.1]),
    ...                             np.array([3.0]))
    >>> float(eta[0]), bool(lo[0] < 4.0 < hi[0])
    (4.0, True)
    """
    level = np.asarray(level, dtype=np.float64)
    slope_per_day = np.asarray(slope_per_day, dtype=np.float64)
    slope_se = np.asarray(slope_se, dtype=np.float64)
    gap = limit - level
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(gap * slope_per_day > 0, gap / slope_per_day, np.inf)
        q = quantile80(dof)
        fast = slope_per_day + np.sign(slope_per_day) * q * slope_se
        slow = slope_per_day - np.sign(slope_per_day) * q * slope_se
        lo = np.where(gap * fast > 0, gap / fast, np.inf)
        hi = np.where(gap * slow > 0, gap / slow, np.inf)
    eta = np.where(gap * np.sign(slope_per_day) <= 0, np.where(gap == 0, 0.0, eta), eta)
    return eta, np.minimum(lo, eta), np.maximum(hi, eta)


def logistic(z: AnyFloatArray) -> FloatArray:
    """Map an evidence ratio to a score in [0, 1]."""
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
    return out
