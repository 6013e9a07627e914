"""The benchmark's baseline: the fridge model's maths as a per-device pure-Python loop.

Same features, same constants, same trend and verdict as :mod:`cloud.core.fridge`, one device
and one reading at a time with the ``math`` module: what the model costs without array
programming. :func:`compare` checks that both agree on the same data, so the speed-up is a
comparison of like with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.special import stdtrit

from cloud.core import fridge_state as fr
from cloud.core.kernels import MS_PER_DAY

NAN = math.nan


def _alpha(dt_s: float, tau_s: float) -> float:
    return -math.expm1(-max(dt_s, 0.0) / tau_s)


def _ewm(level: float, x: float, alpha: float) -> float:
    if math.isnan(x):
        return level
    if math.isnan(level):
        return x
    return level + alpha * (x - level)


def _logistic(z: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * z))


class _Line:
    """The exponentially forgetting line of :class:`cloud.core.kernels.Trend`, for one series."""

    def __init__(self) -> None:
        self.w = self.mx = self.my = self.cxx = self.cxy = self.cyy = 0.0

    def fold(self, x: float, y: float, decay: float) -> None:
        w_new = self.w * decay + (0.0 if math.isnan(y) else 1.0)
        self.cxx *= decay
        self.cxy *= decay
        self.cyy *= decay
        if not math.isnan(y):
            share = 1.0 / max(w_new, 1e-30)
            dx, dy = x - self.mx, y - self.my
            keep = 1.0 - share
            self.cxx += dx * dx * keep
            self.cxy += dx * dy * keep
            self.cyy += dy * dy * keep
            self.mx += share * dx
            self.my += share * dy
        self.w = w_new

    def fit(self, x_now: float) -> tuple[float, float, float]:
        """``(level, slope, slope_se)`` at ``x_now``; NaN while under-determined."""
        if not (self.w > 2.5 and self.cxx > 1e-9 * max(self.w, 1.0)):
            return NAN, NAN, NAN
        slope = self.cxy / self.cxx
        sse = max(self.cyy - slope * self.cxy, 0.0)
        se = math.sqrt(sse / max(self.w - 2.0, 1e-9) / self.cxx)
        return self.my + slope * (x_now - self.mx), slope, se


class LoopFridge:
    """One fridge's state as Python floats, with ``fold`` and ``assess`` like the fleet model."""

    def __init__(self, setpoint_c: float, limit_c: float, limit_ms: float) -> None:
        self.setpoint_c, self.limit_c, self.limit_ms = setpoint_c, limit_c, limit_ms
        self.last_ts_ms = -1
        self.origin_ms = -1
        self.duty = self.cabinet_c = self.drive_ref_k = NAN
        self.above_ms = self.stopped_ms = 0.0
        self.since_mains_ms = self.since_defrost_ms = float(fr._CAP_MS)
        self.recover_ms = self.pull_down_min = self.pull_down_base_min = NAN
        self.evap_delta_k = self.evap_base_k = self.current_a = self.current_base_a = NAN
        self.excursion = 0.0
        self.last_cab_c = NAN
        self.unchanged_ms = 0.0
        self.idle_delta_k = self.idle_slow_k = self.idle_base_k = NAN
        self.trend = _Line()
        self.recent = _Line()

    def fold(self, t: int, row: Sequence[float]) -> None:
        cab, evap, amb, on, amps, door, defrost, mains = row
        dt_ms = float(t - self.last_ts_ms) if self.last_ts_ms >= 0 else 0.0
        dt_s = dt_ms * 1e-3
        if self.origin_ms < 0:
            self.origin_ms = t
        a_fast = _alpha(dt_s, fr.TAU_FAST_S)
        a_base = _alpha(dt_s, fr.TAU_BASE_S)
        sp = self.setpoint_c
        mains_ok = not mains < 0.5
        defrosting = defrost > 0.05
        cap = float(fr._CAP_MS)
        self.since_mains_ms = min(self.since_mains_ms + dt_ms, cap) if mains_ok else 0.0
        self.since_defrost_ms = 0.0 if defrosting else min(self.since_defrost_ms + dt_ms, cap)
        settled = mains_ok and self.since_mains_ms >= fr.PULL_DOWN_MS
        steady = settled and self.since_defrost_ms >= fr.AFTER_DEFROST_MS

        self.duty = _ewm(self.duty, on if mains_ok else NAN, a_fast)
        self.cabinet_c = _ewm(self.cabinet_c, cab, _alpha(dt_s, fr.TAU_CABINET_S))
        drive = amb - cab
        self.drive_ref_k = _ewm(
            self.drive_ref_k, drive if steady else NAN, _alpha(dt_s, fr.TAU_TREND_S)
        )
        self.above_ms = self.above_ms + dt_ms if settled and cab > self.limit_c else 0.0
        stopped = (on > 0.5 and amps < 0.2) or (on < 0.05 and cab > sp + fr.WARM_EXCESS_K)
        self.stopped_ms = self.stopped_ms + dt_ms if settled and stopped else 0.0
        per_k = 0.0 if math.isnan(amb) else (amb - 25.0) * fr.CURRENT_PER_K
        a_run = amps / (1.0 + per_k) if settled and on > 0.05 and amps >= 0.2 else NAN
        run_dt_s = dt_s / (fr.MIN_DUTY if math.isnan(self.duty) else max(self.duty, fr.MIN_DUTY))
        self.current_a = _ewm(self.current_a, a_run, _alpha(run_dt_s, fr.TAU_RUN_S))
        learn = a_run if not self.current_a / self.current_base_a >= fr.WEAR_LEARN_RATIO else NAN
        self.current_base_a = _ewm(self.current_base_a, learn, a_base)

        delta = cab - evap if steady and on > 0.5 and not amps < 0.2 else NAN
        self.evap_delta_k = _ewm(self.evap_delta_k, delta, a_fast)
        healthy = not self.evap_delta_k / self.evap_base_k <= 0.95
        self.evap_base_k = _ewm(self.evap_base_k, delta if healthy else NAN, a_base)

        idle = cab - evap if steady and on <= 0 and not door > 0 else NAN
        a_idle = _alpha(dt_s, fr.TAU_IDLE_S)
        self.idle_delta_k = _ewm(self.idle_delta_k, idle, a_idle)
        self.idle_slow_k = _ewm(self.idle_slow_k, idle, a_fast)
        young = t - self.origin_ms < fr.YOUNG_MS
        keep = young or not abs(self.idle_delta_k - self.idle_base_k) > fr.DRIFT_LEARN_K
        self.idle_base_k = _ewm(
            self.idle_base_k, idle if keep else NAN, a_idle if young else a_base
        )

        disturbed = defrosting or door > fr.LONG_DOOR_S or not mains_ok
        rec = 0.0 if disturbed else self.recover_ms + dt_ms
        done = not disturbed and cab <= sp + fr.PULL_DOWN_BAND_K and not math.isnan(rec)
        minutes = rec / 60_000.0 if done else NAN
        self.pull_down_min = _ewm(self.pull_down_min, minutes, fr.PULL_DOWN_ALPHA)
        ratio = self.pull_down_min / max(self.pull_down_base_min, 1.0)
        pd_learn = minutes if not ratio >= 1.3 else NAN
        self.pull_down_base_min = _ewm(self.pull_down_base_min, pd_learn, fr.PULL_DOWN_BASE_ALPHA)
        self.recover_ms = NAN if done else rec

        warm = float(cab > sp + fr.WARM_EXCESS_K) if steady else NAN
        self.excursion = _ewm(self.excursion, warm, _alpha(dt_s, fr.TAU_EXCURSION_S))

        factor = self.drive_ref_k / max(drive, fr.MIN_DRIVE_K)
        y = on * (1.0 if math.isnan(factor) else factor) if steady else NAN
        x = (t - self.origin_ms) / MS_PER_DAY
        self.trend.fold(x, y, 1.0 - _alpha(dt_s, fr.TAU_TREND_S))
        self.recent.fold(x, y, 1.0 - _alpha(dt_s, fr.TAU_RECENT_S))
        same = abs(cab - self.last_cab_c) < 1e-4
        self.unchanged_ms = min(self.unchanged_ms + dt_ms, cap) if same else 0.0
        if not math.isnan(cab):
            self.last_cab_c = cab
        self.last_ts_ms = t

    def _saturation_days(self, x_now: float) -> tuple[float, float, float]:
        l_long, s_long, se_long = self.trend.fit(x_now)
        l_rec, s_rec, se_rec = self.recent.fit(x_now)
        use = not math.isnan(s_rec) and s_rec > s_long
        level, slope, se = (l_rec, s_rec, se_rec) if use else (l_long, s_long, se_long)
        q = _quantile80((self.recent.w if use else self.trend.w) - 2.0)
        sat = fr.DUTY_SATURATED
        if level >= sat:
            eta = lo = 0.0
        else:
            eta = (1.0 - level / sat) * level / slope if slope > 0 else math.inf
            fast = slope + q * se
            lo = (1.0 - level / sat) * level / fast if fast > 0 else math.inf
        slow = s_long - _quantile80(self.trend.w - 2.0) * se_long
        hi = (sat - l_long) / slow if slow > 0 else math.inf
        return eta, min(lo, eta), max(hi, eta)

    def _drift_eta(self, offset: float) -> tuple[float, float, float]:
        idle_share = min(max(1.0 - (0.0 if math.isnan(self.duty) else self.duty), 0.05), 1.0)
        lag_days = (fr.TAU_FAST_S - fr.TAU_IDLE_S) / 86_400.0 / idle_share
        rate = max((self.idle_slow_k - self.idle_delta_k) / lag_days, fr.DRIFT_MIN_RATE)
        margin = max(self.limit_c - (self.cabinet_c - offset), 0.0)
        days, now, lim = margin / rate, float(self.last_ts_ms), self.limit_ms
        lo_f, mid_f, hi_f = fr.DRIFT_ETA
        return (
            now + days * lo_f * MS_PER_DAY + 0.25 * lim,
            now + days * mid_f * MS_PER_DAY + lim,
            now + days * hi_f * MS_PER_DAY + 2.0 * lim,
        )

    def assess(self) -> tuple[bool, float, tuple[float, float, float], tuple[float, ...]]:
        """``(active, score, (eta, lo, hi) ms, contributions)`` as the fleet model's assess."""
        x_now = (self.last_ts_ms - self.origin_ms) / MS_PER_DAY
        _, slope, se = self.trend.fit(x_now)
        t_stat = slope / se if se > 0 else 0.0
        t_stat = 0.0 if math.isnan(t_stat) else t_stat
        ratio = _or_one(self.current_a / self.current_base_a)
        pd_ratio = _or_one(self.pull_down_min / max(self.pull_down_base_min, 1.0))
        evap_ratio = _or_one(self.evap_delta_k / self.evap_base_k if self.evap_base_k else NAN)
        history_d = x_now if self.origin_ms >= 0 else 0.0
        rising = (
            slope > fr.MIN_SLOPE_PER_DAY
            and t_stat > fr.MIN_T_STAT
            and self.trend.w > 24
            and history_d >= fr.MIN_HISTORY_DAYS
        )
        eta_d, lo_d, hi_d = self._saturation_days(x_now) if rising else (math.inf,) * 3
        trending = rising and eta_d < fr.HORIZON_DAYS
        wearing = ratio > fr.WEAR_RATIO and history_d >= 1.0
        excess = 0.0 if math.isnan(self.cabinet_c) else self.cabinet_c - self.setpoint_c
        duty = 0.0 if math.isnan(self.duty) else self.duty
        saturated = duty > 0.93 and excess > 1.5 and self.since_mains_ms > 0
        stopped = self.stopped_ms >= fr.STOPPED_AFTER_MS
        failing = self.above_ms >= self.limit_ms
        cycling = 0.02 < duty < 0.98
        stuck = self.unchanged_ms >= fr.STUCK_AFTER_MS and cycling and self.since_mains_ms > 0
        offset = _or_zero(self.idle_delta_k - self.idle_base_k)
        drifting = abs(offset) > fr.DRIFT_K and history_d >= 1.0 and self.since_mains_ms > 0
        active = trending or saturated or stopped or failing or wearing or stuck or drifting
        now, lim = float(self.last_ts_ms), self.limit_ms
        eta = lo = hi = NAN
        if trending:
            eta = now + eta_d * MS_PER_DAY + lim
            lo = now + lo_d * MS_PER_DAY + 0.25 * lim
            hi = now + min(hi_d, 60.0) * MS_PER_DAY + 2.0 * lim
        elif wearing:
            lo, eta, hi = (now + d * MS_PER_DAY for d in fr.WEAR_ETA_DAYS)
        elif drifting and offset < 0 and not (saturated or stopped or failing):
            lo, eta, hi = self._drift_eta(offset)
        if (saturated or stopped) and not failing:
            remaining = max(lim - self.above_ms, 0.0)
            eta, lo = now + remaining + 1_800_000.0, now + 0.5 * remaining
            hi = now + remaining + 6 * 3_600_000.0
        if failing:
            eta = lo = hi = now
        raw = (
            max(t_stat, 0.0) * (slope > 0),
            max(excess, 0.0),
            10.0 * stopped,
            max(ratio - 1.0, 0.0) * 20.0,
            max(pd_ratio - 1.0, 0.0),
            max(1.0 - evap_ratio, 0.0) * 5.0,
            self.excursion * 5.0,
            abs(offset) * 10.0,
        )
        total = sum(raw)
        shares = tuple(r / total if total > 0 else 0.0 for r in raw)
        if not active:
            health = _logistic(
                0.5 * (max(t_stat, 0.0) - fr.MIN_T_STAT)
                + 4.0 * max(1.0 - evap_ratio, 0.0)
                + max(pd_ratio - 1.0, 0.0)
                + 4.0 * self.excursion
            )
            return False, min(health, 0.49), (eta, lo, hi), shares
        score = _logistic(t_stat - fr.MIN_T_STAT) if trending else 0.0
        if stopped or failing:
            score = 1.0
        if saturated:
            score = max(score, 0.9)
        if stuck:
            score = max(score, 0.8)
        if wearing:
            score = max(score, min(max((ratio - 1.0) * 4.0, 0.5), 1.0))
        if drifting:
            score = max(score, min(max(abs(offset) / (2 * fr.DRIFT_K), 0.5), 1.0))
        return True, min(max(score, 0.0), 1.0), (eta, lo, hi), shares


def _quantile80(dof: float) -> float:
    return float(stdtrit(max(dof, 1.0), 0.9))


def _or_one(x: float) -> float:
    return 1.0 if math.isnan(x) else x


def _or_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x
