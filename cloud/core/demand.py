"""Intermittent demand: Croston and TSB baselines, seasonal profiles, stock-out probabilities.

Vending demand per slot is a count process: many hours without a sale, a daily and a weekly
rhythm. :func:`croston` and :func:`tsb` are the classic intermittent-demand estimators (as in
Nixtla's statsforecast ``_croston_classic`` and ``_tsb``), written as kernels over many series at
once; the vending model uses a seasonal rate instead (a per-machine hour-of-day and day-of-week
profile times a per-slot level) and these two are its yardsticks. :func:`stockout_probability`
turns an expected demand into the probability that a slot empties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaincinv, gammainc

from cloud.core.kernels import AnyFloatArray, BoolArray, FloatArray, IntArray

HOURS_PER_WEEK = 168
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday; Monday is 0


def _check_counts(y: npt.ArrayLike, n_series: int | None = None) -> FloatArray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"y must be a (series, time) matrix, got shape {arr.shape}")
    if n_series is not None and arr.shape[0] != n_series:
        raise ValueError(f"y has {arr.shape[0]} series, the state {n_series}")
    if np.isnan(arr).any():
        raise ValueError("y holds NaN: give 0 for periods without demand")
    if (arr < 0).any():
        raise ValueError("y holds negative demand")
    return arr


@dataclass(frozen=True, slots=True)
class IntermittentState:
    """Per series: the smoothed demand size, the smoothed inter-demand interval (Croston) or
    demand probability (TSB), periods since the last demand, and periods seen so far."""

    size: FloatArray
    spacing: FloatArray
    since: FloatArray
    periods: IntArray

    @classmethod
    def empty(cls, n: int) -> IntermittentState:
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), np.zeros(n), np.zeros(n, dtype=np.int64))

    def grow(self, n: int) -> IntermittentState:
        """Room for ``n`` series; new series start empty."""
        pad = n - self.size.shape[0]
        if pad <= 0:
            return self
        new = IntermittentState.empty(pad)
        return IntermittentState(
            *(np.r_[old, add] for old, add in zip(self.arrays(), new.arrays(), strict=True))
        )

    def arrays(self) -> tuple[FloatArray, FloatArray, FloatArray, IntArray]:
        return (self.size, self.spacing, self.since, self.periods)


def _smooth(old: FloatArray, x: FloatArray, alpha: float, where: BoolArray) -> FloatArray:
    fresh = np.where(np.isnan(old), x, old + alpha * (x - old))
    out: FloatArray = np.where(where, fresh, old)
    return out


def croston_update(
    state: IntermittentState, y: npt.ArrayLike, alpha: float = 0.1
) -> IntermittentState:
    """Fold the periods ``y[series, t]`` into Croston's smoothers (folding in pieces = at once)."""
    arr = _check_counts(y, state.size.shape[0])
    size, interval, since = state.size, state.spacing, state.since
    for t in range(arr.shape[1]):
        since = since + 1.0
        hit = arr[:, t] > 0
        size = _smooth(size, arr[:, t], alpha, hit)
        interval = _smooth(interval, since, alpha, hit)
        since = np.where(hit, 0.0, since)
    return IntermittentState(size, interval, since, state.periods + arr.shape[1])


def tsb_update(
    state: IntermittentState, y: npt.ArrayLike, alpha_d: float = 0.2, alpha_p: float = 0.1
) -> IntermittentState:
    """Fold the periods ``y[series, t]`` into TSB's smoothers (folding in pieces = at once)."""
    arr = _check_counts(y, state.size.shape[0])
    size, prob = state.size, state.spacing
    for t in range(arr.shape[1]):
        hit = arr[:, t] > 0
        size = _smooth(size, arr[:, t], alpha_d, hit)
        prob = _smooth(prob, hit.astype(np.float64), alpha_p, np.ones_like(hit))
    since = np.where(arr.any(axis=1), 0.0, state.since)  # unused by TSB; kept for inspection
    return IntermittentState(size, prob, since, state.periods + arr.shape[1])


def croston_forecast(state: IntermittentState) -> FloatArray:
    """Demand per period: size / interval; 0 for series that never had demand."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.nan_to_num(state.size / state.spacing)
    return out


def tsb_forecast(state: IntermittentState) -> FloatArray:
    """Demand per period: probability × size; 0 for series that never had demand."""
    out: FloatArray = np.nan_to_num(state.spacing) * np.nan_to_num(state.size)
    return out


def croston(y: npt.ArrayLike, alpha: float = 0.1) -> FloatArray:
    """Croston's classic one-step forecast of demand per period, for each row of ``y``.

    Simple exponential smoothing of the non-zero demand sizes and of the intervals between
    them; the forecast is size / interval. Series without any demand forecast 0. Both smoothers
    start at their first observation, as statsforecast's ``_croston_classic`` does.

    >>> croston(np.array([[0, 2, 0, 0, 2, 0, 2]]), alpha=0.1).round(3)
    array([0.957])
    """
    arr = _check_counts(y)
    return croston_forecast(croston_update(IntermittentState.empty(arr.shape[0]), arr, alpha))


def tsb(y: npt.ArrayLike, alpha_d: float = 0.2, alpha_p: float = 0.1) -> FloatArray:
    """Teunter–Syntetos–Babai one-step forecast: demand probability × demand size.

    The probability of a period with demand is smoothed every period (so it decays while no
    demand comes, unlike Croston's interval); the size only when demand occurs. The first
    period sets the probability, as in statsforecast's ``_tsb``.

    >>> tsb(np.array([[0, 2, 0, 0, 2, 0, 2]]), alpha_d=0.2, alpha_p=0.1).round(3)
    array([0.48])
    """
    arr = _check_counts(y)
    state = IntermittentState.empty(arr.shape[0])
    return tsb_forecast(tsb_update(state, arr, alpha_d, alpha_p))


def hour_of_week(ts_ms: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """UTC hour of the week, Monday 00:00 = 0.

    >>> int(hour_of_week(np.array([0]))[0])  # Thursday 00:00
    72
    """
    hours = ts_ms // 3_600_000
    out: npt.NDArray[np.int64] = (hours + 24 * EPOCH_WEEKDAY) % HOURS_PER_WEEK
    return out


def profile_factor(sales: AnyFloatArray, hours: AnyFloatArray, prior_h: float) -> FloatArray:
    """Demand multiplier per bucket (hour of day, weekday) from forgetting sums, mean 1 per row.

    ``sales[unit, bucket]`` and ``hours[unit, bucket]`` are the sales and the hours observed in
    each bucket. Each bucket's rate is shrunk towards the unit's mean rate by ``prior_h``
    pseudo-hours, so a sparse seller's profile stays flat until its data says otherwise.

    >>> profile_factor(np.array([[0.0, 30.0]]), np.array([[10.0, 10.0]]), 10.0).round(2)
    array([[0.5, 1.5]])
    """
    s = np.asarray(sales, dtype=np.float64)
    h = np.asarray(hours, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s.sum(axis=1, keepdims=True) / h.sum(axis=1, keepdims=True)
        rate = (s + prior_h * mean) / (h + prior_h)
        factor = rate / rate.mean(axis=1, keepdims=True)
    out: FloatArray = np.where(np.isfinite(factor), factor, 1.0)
    return out


def seasonal_factor(hod: FloatArray, dow: FloatArray) -> FloatArray:
    """``factor[unit, hour of week]`` from hour-of-day ``[unit, 24]`` and weekday ``[unit, 7]``
    factors (:func:`profile_factor`), Monday 00:00 UTC first."""
    out: FloatArray = (dow[:, :, None] * hod[:, None, :]).reshape(hod.shape[0], HOURS_PER_WEEK)
    return out


def cumulative_profile(
    factor: FloatArray, start_how: npt.NDArray[np.int64], hours: int
) -> FloatArray:
    """Expected demand in hours at average rate over the next ``1..hours`` hours.

    ``out[unit, k]`` is the sum of ``factor`` over the ``k + 1`` hours of the week that follow
    ``start_how[unit]`` (the current hour counts as the first).
    """
    idx = (start_how[:, None] + np.arange(hours)[None, :]) % HOURS_PER_WEEK
    out: FloatArray = np.cumsum(np.take_along_axis(factor, idx, axis=1), axis=1)
    return out


def stockout_probability(
    stock: AnyFloatArray, mean_demand: AnyFloatArray, shape: AnyFloatArray | None = None
) -> FloatArray:
    """Probability that demand with mean ``mean_demand`` takes at least ``stock`` items.

    Demand is negative binomial with gamma ``shape`` (a Poisson rate that is itself gamma
    distributed: bursty demand), or Poisson when ``shape`` is ``None``; for the mixture,
    ``P(D >= s) = I_x(s, shape)`` with ``x = mean / (mean + shape)``. An empty slot (stock 0)
    has already sold out: probability 1. NaN stock (no such slot) → 0.

    >>> stockout_probability(np.array([0.0, 1.0, 5.0]), np.array([1.0, 1.0, 1.0])).round(4)
    array([1.    , 0.6321, 0.0037])
    >>> stockout_probability(np.array([5.0]), np.array([1.0]), shape=np.array([1.0])).round(4)
    array([0.0312])
    """
    s = np.asarray(stock, dtype=np.float64)
    mu = np.maximum(np.nan_to_num(np.asarray(mean_demand, dtype=np.float64)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if shape is None:
            p = np.where(s >= 1, gammainc(np.maximum(s, 1.0), mu), 1.0)
        else:
            k = np.maximum(np.asarray(shape, dtype=np.float64), 1e-9)
            p = np.where(s >= 1, betainc(np.maximum(s, 1.0), k, mu / (mu + k)), 1.0)
    out: FloatArray = np.where(np.isnan(s), 0.0, np.where(mu <= 0, np.where(s >= 1, 0.0, 1.0), p))
    return out


def stockout_mean(stock: AnyFloatArray, shape: AnyFloatArray, probability: float) -> FloatArray:
    """The mean demand at which negative binomial demand of gamma ``shape`` takes at least
    ``stock`` items with ``probability``: the inverse of :func:`stockout_probability` in its mean.

    >>> stockout_mean(np.array([5.0]), np.array([1.0]), 0.0312).round(2)
    array([1.])
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {probability}")
    s = np.maximum(np.asarray(stock, dtype=np.float64), 1.0)
    k = np.maximum(np.asarray(shape, dtype=np.float64), 1e-9)
    x = betaincinv(s, k, probability)
    with np.errstate(divide="ignore"):
        out: FloatArray = np.where(x < 1.0, k * x / (1.0 - x), np.inf)
    return out


def stockout_quantile_hours(
    cum: FloatArray,
    rate: AnyFloatArray,
    stock: AnyFloatArray,
    shape_per_day: float,
    probability: float,
) -> FloatArray:
    """Hours until a slot has sold out with ``probability``, per (unit, slot).

    Demand until hour ``t`` is negative binomial with mean ``rate × cum[t]`` and gamma shape
    ``shape_per_day`` per day (days burst independently; within one day demand shares one
    burst, so the shape never falls below one day's). The shape depends on ``t``, so the time
    is found by a few fixed-point steps from the mean crossing; ``0`` for an empty slot.
    """
    s = np.asarray(stock, dtype=np.float64)
    # The inverse on a table of (distinct stock, whole days), interpolated between the days:
    # stock takes few values, and this keeps the incomplete-beta inversions per call small.
    values, where = np.unique(np.maximum(np.nan_to_num(s), 1.0), return_inverse=True)
    where = where.reshape(s.shape)
    n_days = cum.shape[1] // 24 + 2
    table = stockout_mean(
        values[:, None], shape_per_day * np.arange(1.0, n_days + 1)[None, :], probability
    )
    t = crossing_hours(cum, rate, s)
    for _ in range(3):
        days = np.clip(np.where(np.isfinite(t), t, cum.shape[1]) / 24.0, 1.0, float(n_days))
        i = np.minimum(np.floor(days).astype(np.int64), n_days - 1)
        w = days - i
        mean = table[where, i - 1] * (1.0 - w) + table[where, i] * w
        t = crossing_hours(cum, rate, mean)
    out: FloatArray = np.where(s <= 0, 0.0, t)
    return out


def crossing_hours(cum: FloatArray, rate: AnyFloatArray, target: AnyFloatArray) -> FloatArray:
    """Hours until ``rate × cum`` first reaches ``target``, per (unit, slot).

    ``cum[unit, k]`` is a cumulative profile (:func:`cumulative_profile`), ``rate[unit, slot]``
    the level per average hour and ``target[unit, slot]`` the demand to reach. Beyond the
    profile's span the last week's mean pace is extrapolated; ``inf`` without demand.

    >>> crossing_hours(np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 2.0]]), np.array([[2.5, 9.0]]))
    array([[2. , 4.5]])
    """
    r = np.nan_to_num(np.asarray(rate, dtype=np.float64))
    tgt = np.asarray(target, dtype=np.float64)
    need = np.where(r > 0, tgt / np.where(r > 0, r, 1.0), np.inf)  # in average-rate hours
    n, span = cum.shape
    # One sorted search over all rows: each row's profile is lifted above the one before it.
    lift = (np.arange(n, dtype=np.float64) * (float(cum[:, -1].max(initial=0.0)) + 1.0))[:, None]
    flat = (cum + lift).ravel()
    capped = np.clip(np.nan_to_num(need, posinf=np.inf), -1.0, cum[:, -1:] + 0.5)
    k = np.searchsorted(flat, (capped + lift).ravel(), side="left").reshape(need.shape)
    k = (k - np.arange(n)[:, None] * span).astype(np.float64)
    pace = cum[:, -1] / span  # average-rate hours per hour over the span
    extra = np.where(k >= span, (need - cum[:, None, -1]) / np.maximum(pace[:, None], 1e-9), 0.0)
    out: FloatArray = np.where(np.isfinite(need), np.where(tgt <= 0, 0.0, k + extra), np.inf)
    return out
