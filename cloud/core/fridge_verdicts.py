"""The ``fridge.cooling`` verdict: which fridges are failing, how surely, and by when."""

from __future__ import annotations

import numpy as np

from cloud.core.fridge_state import (
    DRIFT_ETA,
    DRIFT_K,
    DRIFT_MIN_RATE,
    DUTY_SATURATED,
    FAULT,
    HORIZON_DAYS,
    MIN_HISTORY_DAYS,
    MIN_SLOPE_PER_DAY,
    MIN_T_STAT,
    REASONS,
    SIGNALS,
    STOPPED_AFTER_MS,
    STUCK_AFTER_MS,
    TAU_FAST_S,
    TAU_IDLE_S,
    WEAR_ETA_DAYS,
    WEAR_RATIO,
    FridgeState,
)
from cloud.core.kernels import (
    F32,
    MS_PER_DAY,
    AnyFloatArray,
    BoolArray,
    Float32Array,
    FloatArray,
    IntArray,
    Trend,
    logistic,
    maximum,
    minimum,
    quantile80,
    select,
)
from cloud.core.types import Condition, column_shares


def assess(st: FridgeState, touched: BoolArray) -> Condition:
    """Turn the state into a ``fridge.cooling`` verdict per fridge.

    Every fridge gets a score and contributions; ETAs and intervals are worked out only for
    the few fridges with an active condition.
    """
    n = len(st.registry)
    x_now = ((st.last_ts_ms - st.origin_ms) / MS_PER_DAY).astype(F32)
    fit = st.trend.fit(x_now)
    slope, se = fit.slope, fit.slope_se
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = slope / se
        t_stat = select(np.isnan(t_stat), 0, t_stat)
        ratio = _or_one(st.current_a / st.current_base_a)
        pd_ratio = _or_one(st.pull_down_min / maximum(st.pull_down_base_min, 1))
        evap_ratio = _or_one(st.evap_delta_k / st.evap_base_k)
    history_d = select(st.origin_ms >= 0, x_now, 0)
    rising = (
        (slope > MIN_SLOPE_PER_DAY)
        & (t_stat > MIN_T_STAT)
        & (fit.weight > 24)
        & (history_d >= MIN_HISTORY_DAYS)
    )
    cand = np.flatnonzero(rising)
    cand_days = saturation_days(st, cand, x_now[cand])
    trending = np.zeros(n, dtype=bool)
    trending[cand] = cand_days[:, 0] < HORIZON_DAYS
    wearing = (ratio > WEAR_RATIO) & (history_d >= 1.0)
    excess = st.cabinet_c - st.setpoint_c
    excess = select(np.isnan(excess), 0, excess)
    saturated = (st.duty > 0.93) & (excess > 1.5) & (st.since_mains_ms > 0)
    stopped = st.stopped_ms >= STOPPED_AFTER_MS
    failing = st.above_ms >= st.limit_ms
    cycling = (st.duty > 0.02) & (st.duty < 0.98)
    stuck = (st.unchanged_ms >= STUCK_AFTER_MS) & cycling & (st.since_mains_ms > 0)
    offset_k, drifting = sensor_offset(st, history_d)
    active = trending | saturated | stopped | failing | wearing | stuck | drifting
    # Severity and reason are worked out for the few active fridges only (the rest are 0).
    u = np.flatnonzero(active)
    severity = np.zeros(n, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int64)
    eta, lo, hi = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if u.size:
        severity[u] = np.where(stopped[u] | failing[u], 2, 1)
        reason[u] = np.select(
            [c[u] for c in (stopped, failing, trending, saturated, wearing, stuck, drifting)],
            [1, 2, 3, 4, 5, 6, 7],
            default=0,
        )
        days = np.full((n, 3), np.nan)
        days[cand] = cand_days
        soon = saturated[u] | stopped[u]
        eta[u], lo[u], hi[u] = _eta(st, u, trending[u], wearing[u], soon, failing[u], days[u])
        late = drifting[u] & ~trending[u] & ~wearing[u] & ~soon & ~failing[u]
        if late.any():
            w = u[late]
            eta[w], lo[w], hi[w] = _drift_eta(st, w, offset_k[w])

    positive_t = maximum(t_stat, 0)
    excursion = select(np.isnan(st.excursion), 0, st.excursion)
    # Below the alarm: a graded health score from the duty trend and the supporting features.
    health = logistic(
        0.5 * (positive_t - MIN_T_STAT)
        + 4.0 * maximum(1 - evap_ratio, 0)
        + maximum(pd_ratio - 1, 0)
        + 4.0 * excursion
    )
    score = minimum(health, 0.49)
    if u.size:
        t_u, r_u = t_stat[u].astype(np.float64), ratio[u].astype(np.float64)
        s_u = logistic(t_u - MIN_T_STAT) * trending[u]
        s_u = np.maximum(s_u, np.where(severity[u] == 2, 1.0, 0.0))
        s_u = np.maximum(s_u, np.where(saturated[u], 0.9, 0.0))
        s_u = np.maximum(s_u, np.where(stuck[u], 0.8, 0.0))
        drift_u = np.clip(np.abs(offset_k[u]) / (2 * DRIFT_K), 0.5, 1.0)
        s_u = np.maximum(s_u, np.where(drifting[u], drift_u, 0.0))
        s_u = np.maximum(s_u, np.where(wearing[u], np.clip((r_u - 1.0) * 4.0, 0.5, 1.0), 0.0))
        score[u] = np.clip(s_u, 0.0, 1.0)

    evidence = (
        positive_t * (slope > 0),
        maximum(excess, 0),
        stopped * F32(10.0),
        maximum(ratio - 1, 0) * F32(20.0),
        maximum(pd_ratio - 1, 0),
        maximum(1 - evap_ratio, 0) * F32(5.0),
        excursion * F32(5.0),
        np.abs(offset_k) * F32(10.0),
    )
    return Condition(
        fault=FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=severity,
        score=score,
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=SIGNALS,
        contributions=column_shares(evidence),
        reason=reason,
        reason_names=REASONS,
    )


def sensor_offset(st: FridgeState, history_d: AnyFloatArray) -> tuple[Float32Array, BoolArray]:
    """How far each fridge's cabinet sensor has moved from the evaporator's account, in kelvin
    (negative: it reads colder than the cabinet is), and whether that is a drift.

    A drift moves the idle gap (cabinet reading − resting evaporator) away from the device's
    own level by the sensor's offset. A fridge needs a day of history first.
    """
    offset = st.idle_delta_k - st.idle_base_k
    offset = select(np.isnan(offset), 0, offset)
    drifting = (np.abs(offset) > DRIFT_K) & (history_d >= 1.0) & (st.since_mains_ms > 0)
    return offset, drifting


def saturation_days(st: FridgeState, u: IntArray, x_now: AnyFloatArray) -> FloatArray:
    """Days until the compressor of fridges ``u`` saturates: ``[:, (eta, lo, hi)]``.

    Lost capacity makes the duty rise as ``load / capacity``: with capacity falling steadily the
    duty accelerates, so the point estimate extrapolates ``1 / duty`` linearly (a hyperbola
    through the current level and slope), from the recent line when it rises faster than the
    long one. The early end uses the fast bound of that slope; the late end the straight line
    of the long trend's slow bound, which is what a steady, non-accelerating rise would give.
    """
    long = st.trend.fit(x_now) if u.size == st.trend.w.shape[0] else _sub(st.trend, u).fit(x_now)
    rec = _sub(st.recent, u).fit(x_now)
    l_long, s_long = long.level.astype(np.float64), long.slope.astype(np.float64)
    se_long = long.slope_se.astype(np.float64)
    l_rec, s_rec = rec.level.astype(np.float64), rec.slope.astype(np.float64)
    se_rec = rec.slope_se.astype(np.float64)
    use = np.isfinite(s_rec) & (s_rec > s_long)
    level = np.where(use, l_rec, l_long)
    slope = np.where(use, s_rec, s_long)
    q = quantile80(np.where(use, rec.weight, long.weight).astype(np.float64) - 2.0)
    fast = slope + q * np.where(use, se_rec, se_long)
    sat = DUTY_SATURATED
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(level >= sat, 0.0, (1.0 - level / sat) * level / slope)
        lo = np.where(level >= sat, 0.0, (1.0 - level / sat) * level / fast)
        slow = s_long - quantile80(long.weight.astype(np.float64) - 2.0) * se_long
        hi = np.where(slow > 0, (sat - l_long) / slow, np.inf)
    eta = np.where(slope > 0, eta, np.inf)
    out: FloatArray = np.stack([eta, np.minimum(lo, eta), np.maximum(hi, eta)], axis=1)
    return out


def _sub(trend: Trend, u: IntArray) -> Trend:
    return Trend(*(a[u] for a in trend.arrays()))


def _or_one(ratio: AnyFloatArray) -> AnyFloatArray:
    out: AnyFloatArray = select(np.isnan(ratio), 1, ratio)
    return out


def _eta(
    st: FridgeState,
    u: IntArray,
    trending: BoolArray,
    wearing: BoolArray,
    soon: BoolArray,
    failing: BoolArray,
    days: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ETA of failure with its 80 % interval for the active fridges ``u``.

    ``days[:, 0:3]`` is the trend's time to saturation with its interval, in days.
    """
    now = st.last_ts_ms[u].astype(np.float64)
    lim = st.limit_ms[u]
    # Failure follows saturation by about the time the cabinet may stay above its limit.
    eta = np.where(trending, now + days[:, 0] * MS_PER_DAY + lim, np.nan)
    lo = np.where(trending, now + days[:, 1] * MS_PER_DAY + 0.25 * lim, np.nan)
    hi = np.where(trending, now + np.minimum(days[:, 2], 60.0) * MS_PER_DAY + 2.0 * lim, np.nan)
    lo_w, mid_w, hi_w = (now + d * MS_PER_DAY for d in WEAR_ETA_DAYS)
    wear_only = wearing & ~trending
    eta = np.where(wear_only, mid_w, eta)
    lo = np.where(wear_only, lo_w, lo)
    hi = np.where(wear_only, hi_w, hi)
    soon = soon & ~failing
    remaining = np.maximum(lim - st.above_ms[u], 0.0)
    eta = np.where(soon, now + remaining + 0.5 * 3600_000.0, eta)
    lo = np.where(soon, now + 0.5 * remaining, lo)
    hi = np.where(soon, now + remaining + 6 * 3600_000.0, hi)
    return np.where(failing, now, eta), np.where(failing, now, lo), np.where(failing, now, hi)


def _drift_eta(
    st: FridgeState, u: IntArray, offset_k: AnyFloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ETA of failure with its 80 % interval for fridges ``u`` whose sensor drifts.

    The thermostat holds the *reading* at its setpoint, so the true cabinet is the reading less
    the offset, and it warms as fast as the offset grows. That rate is the lead of the idle
    gap's fast average over its slow one, divided by the difference of their time constants in
    wall time (idle samples come at ``1 − duty`` of the rate): exact on a steady ramp, low just
    after the onset, before the slow average has fallen behind, so the early end of the
    interval allows a much faster rate. A sensor that drifts warm makes the cabinet colder: no
    failure is in sight and the ETA stays NaN.
    """
    now = st.last_ts_ms[u].astype(np.float64)
    lim = st.limit_ms[u]
    idle_share = np.clip(1.0 - np.nan_to_num(st.duty[u].astype(np.float64)), 0.05, 1.0)
    lag_days = (TAU_FAST_S - TAU_IDLE_S) / 86_400.0 / idle_share
    rate = (st.idle_slow_k[u] - st.idle_delta_k[u]).astype(np.float64) / lag_days
    rate = np.maximum(rate, DRIFT_MIN_RATE)
    true_c = (st.cabinet_c[u] - offset_k).astype(np.float64)
    margin = np.maximum(st.limit_c[u] - true_c, 0.0)
    cold = offset_k < 0
    days = margin / rate
    eta = np.where(cold, now + days * DRIFT_ETA[1] * MS_PER_DAY + lim, np.nan)
    lo = np.where(cold, now + days * DRIFT_ETA[0] * MS_PER_DAY + 0.25 * lim, np.nan)
    hi = np.where(cold, now + days * DRIFT_ETA[2] * MS_PER_DAY + 2.0 * lim, np.nan)
    return eta, lo, hi
