"""Tyre conditions: leak and puncture per tyre, tread and sensor cell per vehicle, with ETAs.

A leak is told by the slow pressure trend (days: is the fall real?) and timed by the recent one
(hours: how fast is it falling now?), because a leak that began yesterday is diluted in a
two-day line. Tread ETAs come in km and in days; a cell's ETA in days. Intervals are 80 % and
use Student's t while a line rests on few points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from cloud.core.kernels import (
    F32,
    MS_PER_DAY,
    AnyFloatArray,
    BoolArray,
    FloatArray,
    IntArray,
    Trend,
    logistic,
    quantile80,
    time_to_cross,
)
from cloud.core.types import Condition, normalise_contributions
from cloud.core.tyre_state import POSITIONS, TyreState

PRESSURE_FAULT: Final = "tyres.pressure"
TREAD_FAULT: Final = "tyres.tread"
BATTERY_FAULT: Final = "tyres.tpms_battery"
FAILURE_SHARE: Final = 0.75  # FMVSS 138: warn at 25 % below placard
TREAD_ADVICE_MM: Final = 3.0
TREAD_LEGAL_MM: Final = 1.6
BATTERY_LOW_V: Final = 2.6  # the profile's low-voltage warning
KM_PER_DAY_SPREAD: Final = 0.3  # how far a week's driving strays from the usual km per day
PUNCTURE_DROP_KPA: Final = 25.0
MIN_LEAK_KPA_PER_DAY: Final = 1.5
MIN_T_STAT: Final = 4.0
MIN_TREAD_READINGS: Final = 10.0  # daily tread readings before a wear rate is believed
MIN_WEAR_T_STAT: Final = 5.0
MIN_BATTERY_T_STAT: Final = 4.0
HORIZON_DAYS: Final = 30.0
BATTERY_HORIZON_DAYS: Final = 21.0

PRESSURE_REASONS: Final = (
    "",
    "slow leak: pressure is falling at a steady rate",
    "fast pressure loss: likely puncture",
    "pressure is below the safe minimum",
)
TREAD_REASONS: Final = (
    "",
    "tyre tread is below 3 mm: replacement advised",
    "tyre tread will reach the 1.6 mm legal limit soon",
    "tyre tread is below the 1.6 mm legal limit",
)
BATTERY_REASONS: Final = (
    "",
    "a tyre sensor's battery is running down: replace the sensor",
    "a tyre sensor's battery is low",
)


def _labels(n_dev: int) -> tuple[str, ...]:
    return POSITIONS * n_dev


def assess_pressure(st: TyreState, touched: BoolArray) -> Condition:
    n = st.last_ts_ms.shape[0]
    limit = np.repeat(st.placard_kpa, 4) * FAILURE_SHARE
    x_now = ((st.last_ts_ms - st.origin_ms) / MS_PER_DAY).astype(F32)
    fit = st.pressure.fit(x_now)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = np.nan_to_num(-fit.slope / fit.slope_se).astype(np.float64)
    leaking = (-fit.slope > MIN_LEAK_KPA_PER_DAY) & (t_stat > MIN_T_STAT) & (fit.weight > 36)
    puncture = st.drop_kpa > PUNCTURE_DROP_KPA
    low = np.nan_to_num(st.level_kpa, nan=np.inf) < limit
    now = st.last_ts_ms.astype(np.float64)
    eta, lo, hi = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    u = np.flatnonzero(leaking)
    if u.size:
        days = _leak_eta(st, u, x_now[u], limit[u])
        leaking[u] = days[:, 0] < HORIZON_DAYS
        eta[u], lo[u], hi[u] = (now[u] + days[:, k] * MS_PER_DAY for k in range(3))
    # A puncture: the time to the limit at the rate the last reading fell.
    with np.errstate(divide="ignore", invalid="ignore"):
        left_s = (st.last_kpa - limit) / st.drop_kpa_per_s
    left_ms = np.where(np.isfinite(left_s) & (left_s > 0), left_s * 1000.0, 0.0)
    eta = np.where(puncture, now + left_ms, eta)
    lo = np.where(puncture, now, lo)
    hi = np.where(puncture, now + 3.0 * left_ms + 900_000.0, hi)
    eta, lo, hi = (np.where(low, now, a) for a in (eta, lo, hi))
    active = leaking | puncture | low
    critical = puncture | low
    graded = np.minimum(logistic(t_stat - MIN_T_STAT) * (fit.slope < 0), 0.49)
    score = np.where(critical, 1.0, np.where(leaking, logistic(t_stat - MIN_T_STAT), graded))
    score = np.where(leaking, np.maximum(score, 0.5), score)
    raw = np.stack([np.maximum(t_stat, 0.0), np.maximum(st.drop_kpa, 0.0) * puncture], axis=1)
    return Condition(
        fault=PRESSURE_FAULT,
        unit_device=np.repeat(np.arange(n // 4, dtype=np.int64), 4),
        unit_label=_labels(n // 4),
        unit_key=np.arange(n, dtype=np.int64),
        touched=touched,
        active=active,
        severity=np.where(critical, 2, np.where(active, 1, 0)).astype(np.int64),
        score=np.clip(score, 0.0, 1.0),
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=("pressure_trend", "pressure_drop"),
        contributions=normalise_contributions(raw.astype(np.float64)),
        reason=np.select([puncture, low, leaking], [2, 3, 1], default=0).astype(np.int64),
        reason_names=PRESSURE_REASONS,
    )


def _leak_eta(st: TyreState, u: IntArray, x_now: AnyFloatArray, limit: FloatArray) -> FloatArray:
    """Days to the limit for leaking tyres ``u``: ``[:, (eta, lo, hi)]``.

    The point estimate follows the recent line; the early end also allows for the recent
    line's lag behind a leak that has just begun; the late end is the slower of the recent
    line's slow bound and the long line (a leak rarely slows down by itself).
    """
    long = _fit_at(st.pressure, u, x_now)
    rec = _fit_at(st.recent, u, x_now)
    rate = np.where(np.isfinite(rec[1]) & (rec[1] < long[1]), rec[1], long[1])
    level = np.where(np.isfinite(rec[0]), rec[0], long[0])
    q = quantile80(np.maximum(rec[3] - 2.0, 1.0))
    gap = level - limit
    # Just after a leak starts, even the recent line trails the true rate by about as much as
    # it leads the long one (Brown's double smoothing): the early end allows for that.
    lag = np.maximum(np.nan_to_num(long[1] - rate), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(rate < 0, gap / -rate, np.inf)
        fast = -rate + lag + q * np.nan_to_num(rec[2])
        slow = np.minimum(-long[1], -rate - q * np.nan_to_num(rec[2]))
        lo = np.where(fast > 0, gap / fast, np.inf)
        hi = np.where(slow > 0, gap / slow, 90.0)
    eta = np.maximum(eta, 0.0)
    out: FloatArray = np.stack(
        [eta, np.clip(lo, 0.0, eta), np.clip(np.maximum(hi, eta), 0.0, 90.0)], axis=1
    )
    return out


def _fit_at(trend: Trend, u: IntArray, x_now: AnyFloatArray) -> tuple[FloatArray, ...]:
    """``(level, slope, slope_se, weight)`` of ``trend`` for units ``u`` as float64."""
    sub = Trend(*(a[u] for a in trend.arrays()))
    fit = sub.fit(x_now)
    return tuple(
        np.asarray(a, dtype=np.float64) for a in (fit.level, fit.slope, fit.slope_se, fit.weight)
    )


@dataclass(frozen=True, slots=True)
class TreadForecast:
    """Per vehicle, for its most worn tyre: km and days to a tread limit, with 80 % intervals.

    ``km`` and ``days`` are ``inf`` while the wear rate is not yet believed (too few readings,
    or a slope indistinguishable from zero), NaN without any tread reading.
    """

    position: IntArray  # index into POSITIONS
    tread_mm: FloatArray
    km: FloatArray
    km_lo: FloatArray
    km_hi: FloatArray
    days: FloatArray
    days_lo: FloatArray
    days_hi: FloatArray


def forecast_tread(st: TyreState, limit_mm: float) -> TreadForecast:
    """Distance and time until each vehicle's most worn tyre reaches ``limit_mm``.

    Tread is trended against km driven (wear follows distance, not time); the date follows from
    the vehicle's own km per day, whose week-to-week spread widens the interval by
    :data:`KM_PER_DAY_SPREAD`.
    """
    n = st.last_ts_ms.shape[0]
    n_dev = n // 4
    km_now = np.repeat((st.odometer_km - st.odo_origin_km).astype(F32), 4)
    fit = st.tread.fit(km_now)
    level = np.where(np.isnan(fit.level), st.tread_mm, fit.level)
    with np.errstate(divide="ignore", invalid="ignore"):
        wear_t = np.nan_to_num(-fit.slope / fit.slope_se)
    believed = (fit.weight >= MIN_TREAD_READINGS) & (wear_t > MIN_WEAR_T_STAT)
    km, km_lo, km_hi = time_to_cross(
        level, fit.slope, fit.slope_se, limit_mm, dof=np.maximum(fit.weight - 2, 1)
    )
    km, km_lo, km_hi = (np.where(believed, a, np.inf) for a in (km, km_lo, km_hi))
    below = level <= limit_mm
    km, km_lo, km_hi = (np.where(below, 0.0, a) for a in (km, km_lo, km_hi))
    tread = np.nan_to_num(st.tread_mm, nan=np.inf).reshape(n_dev, 4)
    worn = np.argmin(tread, axis=1)
    rows = np.arange(n_dev)

    def pick(a: FloatArray) -> FloatArray:
        out: FloatArray = a.reshape(n_dev, 4)[rows, worn].astype(np.float64)
        return out

    km, km_lo, km_hi = pick(km), pick(km_lo), pick(km_hi)
    per_day = st.km_per_day.astype(np.float64)
    ok = per_day > 0.1
    with np.errstate(divide="ignore", invalid="ignore"):
        days = np.where(ok, km / per_day, np.inf)
        days_lo = np.where(ok, km_lo / (per_day * (1.0 + KM_PER_DAY_SPREAD)), np.inf)
        days_hi = np.where(ok, km_hi / (per_day * (1.0 - KM_PER_DAY_SPREAD)), np.inf)
    days = np.where(km == 0, 0.0, days)
    no_data = ~np.isfinite(tread[rows, worn])
    nan = np.where(no_data, np.nan, 0.0)
    return TreadForecast(
        worn.astype(np.int64), tread[rows, worn] + nan, km + nan, km_lo + nan, km_hi + nan,
        days + nan, np.minimum(days_lo, days) + nan, np.maximum(days_hi, days) + nan,
    )  # fmt: skip


def _tread_note(advice: TreadForecast, legal: TreadForecast, unit: int) -> str:
    pos = POSITIONS[int(legal.position[unit])]
    parts = [f"{pos} tread {legal.tread_mm[unit]:.1f} mm"]
    for name, f in (("3 mm", advice), ("1.6 mm", legal)):
        if f.km[unit] == 0:
            parts.append(f"below {name} now")
        elif np.isfinite(f.km[unit]):
            text = f"{name} in about {f.km[unit]:,.0f} km"
            if np.isfinite(f.days[unit]):
                text += f" ({f.days_lo[unit]:.0f}–{f.days_hi[unit]:.0f} days)"
            parts.append(text)
    return "; ".join(parts)


def assess_tread(st: TyreState, touched: BoolArray) -> Condition:
    """Tread is one root cause per vehicle (tyres are replaced together): the worst tyre counts.

    The ETA is the date the worst tyre reaches the 1.6 mm legal limit; the note gives km and
    days to 3 mm (advice) and to 1.6 mm.
    """
    n = st.last_ts_ms.shape[0]
    n_dev = n // 4
    legal = forecast_tread(st, TREAD_LEGAL_MM)
    advice_fc = forecast_tread(st, TREAD_ADVICE_MM)
    tread_min = np.nan_to_num(legal.tread_mm, nan=np.inf)
    illegal = tread_min < TREAD_LEGAL_MM
    soon = ~illegal & (legal.days < HORIZON_DAYS)
    advice = tread_min < TREAD_ADVICE_MM
    active = illegal | soon | advice
    now = st.last_ts_ms.reshape(n_dev, 4).max(axis=1).astype(np.float64)
    has_eta = (soon | advice) & np.isfinite(legal.days)
    eta = np.where(illegal, now, np.where(has_eta, now + legal.days * MS_PER_DAY, np.nan))
    lo = np.where(illegal, now, np.where(has_eta, now + legal.days_lo * MS_PER_DAY, np.nan))
    hi_ms = now + np.minimum(legal.days_hi, 365.0) * MS_PER_DAY
    hi = np.where(illegal, now, np.where(has_eta, np.maximum(hi_ms, eta), np.nan))
    depth = np.clip((TREAD_ADVICE_MM - tread_min) / (TREAD_ADVICE_MM - TREAD_LEGAL_MM), 0.0, 1.0)
    graded = np.clip((8.0 - tread_min) / 10.0, 0.0, 0.49)
    tread = np.nan_to_num(st.tread_mm, nan=np.inf).reshape(n_dev, 4)
    notes = {int(u): _tread_note(advice_fc, legal, int(u)) for u in np.flatnonzero(active)}
    return Condition(
        fault=TREAD_FAULT,
        unit_device=np.arange(n_dev, dtype=np.int64),
        unit_label=("",) * n_dev,
        touched=np.asarray(touched.reshape(n_dev, 4).any(axis=1), dtype=bool),
        active=active,
        severity=np.where(illegal, 2, np.where(soon, 1, 0)).astype(np.int64),
        score=np.where(active, np.maximum(depth, 0.5), graded),
        ts_ms=now.astype(np.int64),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=tuple(f"{p}.tread_mm" for p in POSITIONS),
        contributions=normalise_contributions(
            np.clip(TREAD_ADVICE_MM - tread, 0.0, None) * active[:, None]
        ),
        notes=notes,
        note_name="tread",
        reason=np.select([illegal, soon, advice], [3, 2, 1], default=0).astype(np.int64),
        reason_names=TREAD_REASONS,
    )


def assess_battery(st: TyreState, touched: BoolArray) -> Condition:
    """A sensor cell running down, per vehicle (its weakest sensor), with the ETA to low voltage.

    Cells lose a tenth of a volt a year when healthy; a failing one falls by tenths in weeks,
    which a trend over days separates from temperature (already referred to 20 °C).
    """
    n = st.last_ts_ms.shape[0]
    n_dev = n // 4
    x_now = ((st.last_ts_ms - st.origin_ms) / MS_PER_DAY).astype(F32)
    fit = st.battery.fit(x_now)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = np.nan_to_num(-fit.slope / fit.slope_se).astype(np.float64)
    days, lo_d, hi_d = time_to_cross(fit.level, fit.slope, fit.slope_se, BATTERY_LOW_V)
    # A line fitted across the start of a fault trails it: allow twice the rate at the early end.
    lo_d = np.minimum(lo_d, days / 2.0)
    falling = (t_stat > MIN_BATTERY_T_STAT) & (fit.weight > 36) & (days < BATTERY_HORIZON_DAYS)
    low = np.nan_to_num(st.battery_v, nan=np.inf) < BATTERY_LOW_V
    days = np.where(low, 0.0, np.where(falling, days, np.inf)).reshape(n_dev, 4)
    worst = np.argmin(days, axis=1)
    rows = np.arange(n_dev)
    d = days[rows, worst]
    lo = np.where(low, 0.0, lo_d).reshape(n_dev, 4)[rows, worst]
    hi = np.where(low, 0.0, np.minimum(hi_d, 365.0)).reshape(n_dev, 4)[rows, worst]
    active = np.isfinite(d)
    now = st.last_ts_ms.reshape(n_dev, 4).max(axis=1).astype(np.float64)
    is_low = low.reshape(n_dev, 4).any(axis=1)
    t_worst = t_stat.reshape(n_dev, 4).max(axis=1)
    score = np.where(active, np.maximum(logistic(t_worst - MIN_BATTERY_T_STAT), 0.5), 0.0)
    score = np.where(is_low, 1.0, np.where(active, score, np.minimum(logistic(t_worst - 6), 0.49)))
    contributions = np.zeros((n_dev, 4))
    contributions[rows[active], worst[active]] = 1.0
    return Condition(
        fault=BATTERY_FAULT,
        unit_device=np.arange(n_dev, dtype=np.int64),
        unit_label=("",) * n_dev,
        touched=np.asarray(touched.reshape(n_dev, 4).any(axis=1), dtype=bool),
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=np.clip(score, 0.0, 1.0),
        ts_ms=now.astype(np.int64),
        eta_ms=np.where(active, now + d * MS_PER_DAY, np.nan),
        eta_lo_ms=np.where(active, now + np.minimum(lo, d) * MS_PER_DAY, np.nan),
        eta_hi_ms=np.where(active, now + np.maximum(hi, d) * MS_PER_DAY, np.nan),
        signals=tuple(f"{p}.battery_v" for p in POSITIONS),
        contributions=contributions,
        reason=np.where(is_low, 2, np.where(active, 1, 0)).astype(np.int64),
        reason_names=BATTERY_REASONS,
    )
