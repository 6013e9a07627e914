"""Fridges and freezers: compressor duty trend, compressor stops and temperature excursions.

One fault family per fridge (``fridge.cooling``): a capacity loss shows first as a rising
compressor duty cycle (the compressor runs longer to hold the setpoint) and only later as a warm
cabinet, so the duty trend gives the lead time and the ETA; a stopped compressor or a cabinet above
the food-safety limit raise the same episode to critical. A power cut is not a fault of the fridge:
while mains is off, and for a pull-down period after it returns, nothing is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core.kernels import (
    MS_PER_DAY,
    BoolArray,
    FloatArray,
    IntArray,
    Trend,
    ewm_alpha,
    ewm_update,
    logistic,
    rank_within_groups,
    time_to_cross,
)
from cloud.core.registry import Registry, grow
from cloud.core.types import Condition, normalise_contributions

FAULT: Final = "fridge.cooling"
SIGNALS: Final = ("duty_trend", "cabinet_excess", "compressor_stopped", "compressor_current")
REASONS: Final = (
    "",
    "the compressor has stopped while the cabinet warms",
    "the cabinet is above its food-safety limit",
    "cooling capacity is falling: the compressor runs longer every day",
    "the cabinet is warm although the compressor runs all the time",
    "the compressor draws more and more current: it is wearing out",
)
# variant → (setpoint °C, food-safety limit °C, minutes above the limit that count as failure)
VARIANTS: Final = {
    "household": (4.0, 5.0, 120.0),
    "commercial": (3.0, 5.0, 60.0),
    "freezer": (-18.0, -15.0, 120.0),
}
TAU_DUTY_S: Final = 6 * 3600.0
TAU_CABINET_S: Final = 1800.0
TAU_TREND_S: Final = 3 * 86400.0
DUTY_SATURATED: Final = 0.97
MIN_SLOPE_PER_DAY: Final = 0.015
MIN_T_STAT: Final = 3.5
HORIZON_DAYS: Final = 14.0
STOPPED_AFTER_MS: Final = 30 * 60_000.0
PULL_DOWN_MS: Final = 4 * 3600_000.0
MIN_HISTORY_DAYS: Final = 2.0  # no trend verdict before the line has seen two daily cycles
TAU_CURRENT_FAST_S: Final = 6 * 3600.0
TAU_CURRENT_BASE_S: Final = 10 * 86400.0
WEAR_RATIO: Final = 1.12  # running current this much above the device's own baseline
# A worn compressor stops within days; the interval is wide because wear is not linear.
WEAR_ETA_DAYS: Final = (0.5, 2.0, 6.0)


@dataclass(frozen=True, slots=True)
class FridgeState:
    """Per-fridge arrays, indexed by ``registry`` position."""

    registry: Registry
    setpoint_c: FloatArray
    limit_c: FloatArray
    limit_ms: FloatArray
    last_ts_ms: IntArray
    origin_ms: IntArray
    duty: FloatArray
    cabinet_c: FloatArray
    above_ms: FloatArray
    stopped_ms: FloatArray
    mains_off_ms: FloatArray
    since_mains_ms: FloatArray
    current_a: FloatArray  # running current, smoothed over hours
    current_base_a: FloatArray  # the device's own healthy level, learned over days
    trend: Trend

    @classmethod
    def empty(cls) -> FridgeState:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.int64)
        return cls(Registry(), f, f, f, i, i, f, f, f, f, f, f, f, f, Trend.zeros(0))

    def grown(self, n: int) -> FridgeState:
        sp, lim, lim_min = VARIANTS["household"]
        return FridgeState(
            registry=self.registry,
            setpoint_c=grow(self.setpoint_c, n, sp),
            limit_c=grow(self.limit_c, n, lim),
            limit_ms=grow(self.limit_ms, n, lim_min * 60_000.0),
            last_ts_ms=grow(self.last_ts_ms, n, -1),
            origin_ms=grow(self.origin_ms, n, -1),
            duty=grow(self.duty, n, np.nan),
            cabinet_c=grow(self.cabinet_c, n, np.nan),
            above_ms=grow(self.above_ms, n, 0.0),
            stopped_ms=grow(self.stopped_ms, n, 0.0),
            mains_off_ms=grow(self.mains_off_ms, n, 0.0),
            since_mains_ms=grow(self.since_mains_ms, n, PULL_DOWN_MS),
            current_a=grow(self.current_a, n, np.nan),
            current_base_a=grow(self.current_base_a, n, np.nan),
            trend=self.trend.grow(n),
        )

    @property
    def state_bytes(self) -> int:
        arrays = [getattr(self, f) for f in self.__slots__ if f not in ("registry", "trend")]
        return int(sum(a.nbytes for a in arrays) + sum(a.nbytes for a in self.trend.arrays()))


def configure(
    state: FridgeState, device_id: str, variant: str, setpoint_c: float | None
) -> FridgeState:
    """Set a fridge's variant limits from its birth message (unknown variants keep defaults)."""
    reg, idx = state.registry.extend([device_id])
    st = replace(state, registry=reg).grown(len(reg))
    sp, lim, lim_min = VARIANTS.get(variant, VARIANTS["household"])
    setpoint, limit, limit_ms = st.setpoint_c.copy(), st.limit_c.copy(), st.limit_ms.copy()
    setpoint[idx] = sp if setpoint_c is None else setpoint_c
    limit[idx] = lim
    limit_ms[idx] = lim_min * 60_000.0
    return replace(st, setpoint_c=setpoint, limit_c=limit, limit_ms=limit_ms)


def update(state: FridgeState, batch: TelemetryBatch) -> tuple[FridgeState, Condition]:
    """Fold a batch of fridge rows into the state and assess every fridge it touched."""
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg).grown(len(reg))
    n = len(reg)
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    fresh = ts_s > st.last_ts_ms[dev_s]  # late or repeated rows are stored, not re-learned
    cab_in = batch.channel("cabinet_c")[order]
    duty_in = batch.channel("compressor_on")[order]
    mains_in = batch.channel("mains_ok")[order]
    amps_in = batch.channel("compressor_a")[order]

    last, origin = st.last_ts_ms.copy(), st.origin_ms.copy()
    duty, cab = st.duty.copy(), st.cabinet_c.copy()
    above, stopped = st.above_ms.copy(), st.stopped_ms.copy()
    mains_off, since_mains = st.mains_off_ms.copy(), st.since_mains_ms.copy()
    amps, amps_base = st.current_a.copy(), st.current_base_a.copy()
    trend = st.trend
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if not m.any():
            continue
        d, t = dev_s[m], ts_s[m]
        dt_s = np.where(last[d] >= 0, (t - last[d]) / 1000.0, 0.0)
        dt_ms = dt_s * 1000.0
        origin[d] = np.where(origin[d] < 0, t, origin[d])
        mains_ok = ~(mains_in[m] < 0.5)
        on = np.where(mains_ok, duty_in[m], np.nan)  # no evidence about capacity without power
        duty[d] = ewm_update(duty[d], on, ewm_alpha(dt_s, TAU_DUTY_S))
        cab[d] = ewm_update(cab[d], cab_in[m], ewm_alpha(dt_s, TAU_CABINET_S))
        mains_off[d] = np.where(mains_ok, 0.0, mains_off[d] + dt_ms)
        since_mains[d] = np.where(mains_ok, since_mains[d] + dt_ms, 0.0)
        settled = mains_ok & (since_mains[d] >= PULL_DOWN_MS)
        warm = cab_in[m] > st.limit_c[d]
        above[d] = np.where(settled & warm, above[d] + dt_ms, 0.0)
        # A stopped compressor: the thermostat calls for cooling but no current flows, or
        # (without a current sensor) nothing runs while the cabinet is warm.
        no_current = (duty_in[m] > 0.5) & (amps_in[m] < 0.2)
        idle_warm = (duty_in[m] < 0.05) & (cab_in[m] > st.setpoint_c[d] + 2.5)
        is_stopped = settled & (no_current | idle_warm)
        stopped[d] = np.where(is_stopped, stopped[d] + dt_ms, 0.0)
        running = settled & (duty_in[m] > 0.05) & (amps_in[m] >= 0.2)
        a_run = np.where(running, amps_in[m], np.nan)
        amps[d] = ewm_update(amps[d], a_run, ewm_alpha(dt_s, TAU_CURRENT_FAST_S))
        # Do not learn the baseline from readings that already look worn.
        learn = np.where(np.nan_to_num(amps[d] / amps_base[d], nan=1.0) < 1.05, a_run, np.nan)
        amps_base[d] = ewm_update(amps_base[d], learn, ewm_alpha(dt_s, TAU_CURRENT_BASE_S))
        x_days = (t - origin[d]) / MS_PER_DAY
        y = np.where(settled, duty_in[m], np.nan)
        trend = trend.update(d, x_days, y, np.exp(-dt_s / TAU_TREND_S))
        last[d] = t

    touched = np.zeros(n, dtype=bool)
    touched[dev_s[fresh]] = True
    new = FridgeState(
        reg, st.setpoint_c, st.limit_c, st.limit_ms, last, origin, duty, cab,
        above, stopped, mains_off, since_mains, amps, amps_base, trend,
    )  # fmt: skip
    return new, assess(new, touched)


def assess(st: FridgeState, touched: BoolArray) -> Condition:
    """Turn the state into a ``fridge.cooling`` verdict per fridge."""
    n = len(st.registry)
    icpt, slope, se, n_eff = st.trend.fit()
    x_now = (st.last_ts_ms - st.origin_ms) / MS_PER_DAY
    level = icpt + slope * x_now
    eta_d, lo_d, hi_d = time_to_cross(level, slope, se, np.full(n, DUTY_SATURATED))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = np.nan_to_num(slope / se)
    history_d = np.where(st.origin_ms >= 0, x_now, 0.0)
    trending = (
        (slope > MIN_SLOPE_PER_DAY)
        & (t_stat > MIN_T_STAT)
        & (eta_d < HORIZON_DAYS)
        & (n_eff > 24)
        & (history_d >= MIN_HISTORY_DAYS)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.nan_to_num(st.current_a / st.current_base_a, nan=1.0)
    wearing = (ratio > WEAR_RATIO) & (history_d >= 1.0)
    excess = np.nan_to_num(st.cabinet_c - st.setpoint_c)
    saturated = (np.nan_to_num(st.duty) > 0.93) & (excess > 1.5) & (st.mains_off_ms == 0)
    stopped = st.stopped_ms >= STOPPED_AFTER_MS
    failing = st.above_ms >= st.limit_ms
    active = trending | saturated | stopped | failing | wearing
    severity = np.where(stopped | failing, 2, np.where(active, 1, 0)).astype(np.int64)

    # Failure follows saturation by about the time the cabinet may stay above its limit.
    now = st.last_ts_ms.astype(np.float64)
    lim = st.limit_ms
    eta = np.where(trending, now + eta_d * MS_PER_DAY + lim, np.nan)
    lo = np.where(trending, now + lo_d * MS_PER_DAY + 0.25 * lim, np.nan)
    hi = np.where(trending, now + np.minimum(hi_d, 60.0) * MS_PER_DAY + 2.0 * lim, np.nan)
    lo_w, mid_w, hi_w = (now + d * MS_PER_DAY for d in WEAR_ETA_DAYS)
    wear_only = wearing & ~trending
    eta = np.where(wear_only, mid_w, eta)
    lo = np.where(wear_only, lo_w, lo)
    hi = np.where(wear_only, hi_w, hi)
    soon = (saturated | stopped) & ~failing
    remaining = np.maximum(lim - st.above_ms, 0.0)
    eta = np.where(soon, now + remaining + 0.5 * 3600_000.0, eta)
    lo = np.where(soon, now + 0.5 * remaining, lo)
    hi = np.where(soon, now + remaining + 6 * 3600_000.0, hi)
    eta = np.where(failing, now, eta)
    lo = np.where(failing, now, lo)
    hi = np.where(failing, now, hi)

    score = np.maximum(logistic(t_stat - MIN_T_STAT) * trending, np.where(severity == 2, 1.0, 0.0))
    score = np.maximum(score, np.where(saturated, 0.9, 0.0))
    score = np.maximum(score, np.where(wearing, np.clip((ratio - 1.0) * 4.0, 0.5, 1.0), 0.0))
    raw = np.stack(
        [
            np.maximum(t_stat, 0.0) * trending,
            np.maximum(excess, 0.0),
            stopped * 10.0,
            np.maximum(ratio - 1.0, 0.0) * 20.0 * wearing,
        ],
        axis=1,
    )
    return Condition(
        fault=FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=severity,
        score=np.clip(score, 0.0, 1.0),
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=SIGNALS,
        contributions=normalise_contributions(raw),
        reason=np.select([stopped, failing, trending, saturated], [1, 2, 3, 4], default=0).astype(
            np.int64
        ),
        reason_names=REASONS,
    )
