"""Fridges' state: per-fridge health features as arrays, and how one reading moves them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Final, TypeAlias

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core.kernels import (
    F32,
    MS_PER_DAY,
    Float32Array,
    FloatArray,
    IntArray,
    Rows,
    Trend,
    ewm_alpha,
    ewm_update,
    fmax,
    maximum,
    minimum,
    select,
)
from cloud.core.registry import Registry, grow

FAULT: Final = "fridge.cooling"
CHANNELS: Final = (
    "cabinet_c",
    "evap_c",
    "ambient_c",
    "compressor_on",
    "compressor_a",
    "door_open_s",
    "defrost_on",
    "mains_ok",
)
SIGNALS: Final = (
    "duty_trend",
    "cabinet_excess",
    "compressor_stopped",
    "compressor_current",
    "pull_down",
    "evaporator_delta",
    "excursions",
    "cabinet_offset",  # how far the cabinet sensor has moved from the resting evaporator
)
REASONS: Final = (
    "",
    "the compressor has stopped while the cabinet warms",
    "the cabinet is above its food-safety limit",
    "cooling capacity is falling: the compressor runs longer every day",
    "the cabinet is warm although the compressor runs all the time",
    "the compressor draws more and more current: it is wearing out",
    "the cabinet sensor has read the same value for hours: it is stuck",
    "the cabinet sensor has drifted: it disagrees with the evaporator by more than it used to",
)
# variant → (setpoint °C, food-safety limit °C, minutes above the limit that count as failure)
VARIANTS: Final = {
    "household": (4.0, 5.0, 120.0),
    "commercial": (3.0, 5.0, 60.0),
    "freezer": (-18.0, -15.0, 120.0),
}
TAU_FAST_S: Final = 6 * 3600.0  # duty, evaporator delta, the slow idle gap
# Running current, in hours of wall time: it is seen only while the compressor runs, so its
# weight per sample is stretched by the duty (see fold()).
TAU_RUN_S: Final = 3 * 3600.0
MIN_DUTY: Final = 0.05  # floor of the duty that stretches a running sample's weight
# Cabinet − evaporator while the compressor rests, per idle sample: about TAU / (1 − duty) of
# wall time. Beside it the same gap over TAU_FAST_S: how far the fast one leads times a drift.
TAU_IDLE_S: Final = 2 * 3600.0
TAU_CABINET_S: Final = 1800.0
TAU_TREND_S: Final = 3 * 86400.0  # also the reference temperature difference
TAU_RECENT_S: Final = 86400.0  # the recent line that times a rise the long one has confirmed
STUCK_AFTER_MS: Final = 3 * 3600_000.0  # a live sensor's noise moves it within minutes
TAU_BASE_S: Final = 10 * 86400.0  # a device's own healthy levels
TAU_EXCURSION_S: Final = TAU_RECENT_S  # share of the last day spent warm
DUTY_SATURATED: Final = 0.97
MIN_SLOPE_PER_DAY: Final = 0.015
MIN_T_STAT: Final = 3.5
HORIZON_DAYS: Final = 14.0
STOPPED_AFTER_MS: Final = 30 * 60_000.0
PULL_DOWN_MS: Final = 4 * 3600_000.0  # after mains returns, the cabinet is being pulled down
AFTER_DEFROST_MS: Final = 45 * 60_000.0  # the post-defrost pull-down runs at full duty
LONG_DOOR_S: Final = 60.0  # an opening long enough to need a measurable pull-down
PULL_DOWN_BAND_K: Final = 1.0  # pulled down: back within this of the setpoint
PULL_DOWN_ALPHA: Final = 0.2  # weight of one recovery in the recent mean
PULL_DOWN_BASE_ALPHA: Final = 0.02
MIN_DRIVE_K: Final = 3.0  # ambient − cabinet below this makes the duty ratio meaningless
WARM_EXCESS_K: Final = 2.5
MIN_HISTORY_DAYS: Final = 2.0  # no trend verdict before the line has seen two daily cycles
# Running current this much above the device's own baseline. Referred to 25 °C and compared with
# the device itself, a healthy compressor stays within half a percent in the simulated fleets
# (600 fridges over a month); a worn one climbs steadily until it stops, so only an early, low
# bar leaves days to act.
WEAR_RATIO: Final = 1.05
WEAR_LEARN_RATIO: Final = 1.03  # the baseline stops learning above this
# Sensor drift. While the compressor rests, the evaporator settles just below the cabinet air,
# so cabinet reading − resting evaporator is a small, device-specific gap that neither the room
# nor the load moves (lost refrigerant or an iced coil change the gap while it *runs*). A
# cabinet sensor that drifts shifts it by its offset; doors, defrosts and power cuts are left out.
DRIFT_K: Final = 0.3  # idle-gap shift from the device's own level that flags a drift
DRIFT_LEARN_K: Final = 0.15  # the idle gap's baseline stops learning beyond this shift
DRIFT_MIN_RATE: Final = 0.05  # K/day: the slowest drift the ETA assumes
DRIFT_ETA: Final = (0.3, 1.0, 3.0)  # the interval as multiples of the margin / rate estimate
YOUNG_MS: Final = 86_400_000  # for its first day a fridge's idle baseline follows it closely
# A compressor draws more current against a warmer room (higher condensing pressure); the
# current is referred to 25 °C ambient before it is compared with the device's baseline.
CURRENT_PER_K: Final = 0.01
# A worn compressor stops within days of crossing the bar; the interval is wide because wear
# is not linear.
WEAR_ETA_DAYS: Final = (0.5, 3.0, 6.0)
# New values of FridgeState fields by name (arrays, and a Trend for each trend), in a form
# dataclasses.replace() takes as it is.
Folded: TypeAlias = dict[str, Any]
_CAP_MS: Final = np.float32(1e8)  # elapsed-time counters saturate here (about a day)
_F32_FIELDS: Final = (
    "duty",
    "cabinet_c",
    "drive_ref_k",
    "above_ms",
    "stopped_ms",
    "since_mains_ms",
    "since_defrost_ms",
    "recover_ms",
    "pull_down_min",
    "pull_down_base_min",
    "evap_delta_k",
    "evap_base_k",
    "current_a",
    "current_base_a",
    "excursion",
    "last_cab_c",
    "unchanged_ms",
    "idle_delta_k",
    "idle_slow_k",
    "idle_base_k",
)


@dataclass(frozen=True, slots=True)
class FridgeState:
    """Per-fridge arrays, indexed by ``registry`` position (configuration, clocks, features)."""

    registry: Registry
    setpoint_c: Float32Array
    limit_c: Float32Array
    limit_ms: FloatArray
    last_ts_ms: IntArray
    origin_ms: IntArray
    duty: Float32Array  # compressor duty while powered, smoothed over hours
    cabinet_c: Float32Array
    drive_ref_k: Float32Array  # typical ambient − cabinet over days: the duty's reference load
    above_ms: Float32Array  # time above the food-safety limit, once settled
    stopped_ms: Float32Array  # time the compressor has been called but not run
    since_mains_ms: Float32Array
    since_defrost_ms: Float32Array
    recover_ms: Float32Array  # length of the pull-down in progress; NaN when none is
    pull_down_min: Float32Array  # recent pull-down durations after defrosts and long openings
    pull_down_base_min: Float32Array
    evap_delta_k: Float32Array  # cabinet − evaporator while running
    evap_base_k: Float32Array
    current_a: Float32Array  # running current, smoothed over hours
    current_base_a: Float32Array  # the device's own healthy level, learned over days
    excursion: Float32Array  # share of settled time the cabinet spent warm, over a day
    last_cab_c: Float32Array  # the last cabinet reading
    unchanged_ms: Float32Array  # how long the cabinet sensor has read exactly the same
    idle_delta_k: Float32Array  # cabinet − evaporator while the compressor rests, over hours
    idle_slow_k: Float32Array  # the same over TAU_FAST_S: how fast a drift moves it
    idle_base_k: Float32Array  # the device's own healthy idle gap
    trend: Trend  # ambient-adjusted duty against days since ``origin_ms``, over days
    recent: Trend  # the same over the last day: how fast is it rising now?

    @classmethod
    def empty(cls) -> FridgeState:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.int64)
        g = np.zeros(0, dtype=F32)
        floats = {name: g for name in _F32_FIELDS}
        return cls(Registry(), g, g, f, i, i, trend=Trend.zeros(0), recent=Trend.zeros(0), **floats)

    def grown(self, n: int) -> FridgeState:
        if n <= len(self.last_ts_ms):
            return self
        sp, lim, lim_min = VARIANTS["household"]
        fill: dict[str, float] = {
            "setpoint_c": sp,
            "limit_c": lim,
            "limit_ms": lim_min * 60_000.0,
            "last_ts_ms": -1,
            "origin_ms": -1,
            "above_ms": 0.0,
            "stopped_ms": 0.0,
            "since_mains_ms": float(_CAP_MS),
            "since_defrost_ms": float(_CAP_MS),
            "excursion": 0.0,
            "unchanged_ms": 0.0,
        }
        grown = {
            f.name: grow(getattr(self, f.name), n, fill.get(f.name, np.nan))
            for f in fields(self)
            if f.name not in ("registry", "trend", "recent")
        }
        return FridgeState(
            registry=self.registry, trend=self.trend.grow(n), recent=self.recent.grow(n), **grown
        )

    def copy(self) -> FridgeState:
        arrays = {f: getattr(self, f).copy() for f in ("last_ts_ms", "origin_ms", *_F32_FIELDS)}
        return replace(self, trend=self.trend.copy(), recent=self.recent.copy(), **arrays)

    def put(self, rows: Rows, new: Folded) -> None:
        """Write fields from :func:`folded` into rows ``rows`` of this (private) state."""
        for name, part in new.items():
            field = getattr(self, name)
            if isinstance(field, Trend):
                field.put(rows, part)
            else:
                field[rows] = part

    @property
    def state_bytes(self) -> int:
        arrays = [
            getattr(self, f.name)
            for f in fields(self)
            if f.name not in ("registry", "trend", "recent")
        ]
        trends = sum(a.nbytes for t in (self.trend, self.recent) for a in t.arrays())
        return int(sum(a.nbytes for a in arrays) + trends)


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


def channel_matrix(batch: TelemetryBatch, order: IntArray) -> Float32Array:
    """The batch's rows in ``order`` as a float32 matrix of :data:`CHANNELS` (NaN if absent)."""
    out = np.full((order.shape[0], len(CHANNELS)), np.nan, dtype=F32)
    for j, name in enumerate(CHANNELS):
        if name in batch.channels:
            out[:, j] = batch.values[order, batch.channels.index(name)]
    return out


def fold(st: FridgeState, d: Rows, t: IntArray, x: Float32Array) -> None:
    """Fold one reading per listed fridge into ``st`` (a private copy), in place."""
    st.put(d, folded(st, d, t, x))


def folded(st: FridgeState, d: Rows, t: IntArray, x: Float32Array) -> Folded:
    """The fields one reading per listed fridge moves, as new arrays for rows ``d``.

    ``st`` is only read: a dense step makes these the arrays of its new state, with no copy
    of the old one and no pass to write them back; a sparse update puts them into its copy.
    """
    cab, evap, amb, on, amps, door, defrost, mains = np.ascontiguousarray(x.T)
    last = st.last_ts_ms[d]
    dt_ms = select(last >= 0, t - last, 0).astype(F32)
    # Rows come in time order (update() folds fresh rows only, round by round), so dt_s is never
    # negative and the weights below skip ewm_alpha's clamp.
    dt_s = dt_ms * F32(1e-3)
    # A fleet that reports in lockstep has one dt: the weights are then worked out for one row
    # and broadcast (numpy's expm1 gives a value the same bits wherever it sits in an array).
    dt_w = dt_s[:1] if dt_s.size and dt_s.min() == dt_s.max() else dt_s
    origin = st.origin_ms[d]
    origin = select(origin < 0, t, origin)
    a_fast = ewm_alpha(dt_w, TAU_FAST_S, nonnegative=True)
    a_base = ewm_alpha(dt_w, TAU_BASE_S, nonnegative=True)
    setpoint = st.setpoint_c[d]

    mains_ok = ~(mains < 0.5)  # a missing mains reading is no evidence of a cut
    defrosting = defrost > 0.05
    since_mains = select(mains_ok, minimum(st.since_mains_ms[d] + dt_ms, _CAP_MS), 0)
    since_defrost = select(defrosting, 0, minimum(st.since_defrost_ms[d] + dt_ms, _CAP_MS))
    settled = mains_ok & (since_mains >= PULL_DOWN_MS)
    steady = settled & (since_defrost >= AFTER_DEFROST_MS)  # neither defrost nor its pull-down

    duty = ewm_update(st.duty[d], select(mains_ok, on, np.nan), a_fast)
    a_cabinet = ewm_alpha(dt_w, TAU_CABINET_S, nonnegative=True)
    cabinet = ewm_update(st.cabinet_c[d], cab, a_cabinet)
    drive = amb - cab
    a_trend = ewm_alpha(dt_w, TAU_TREND_S, nonnegative=True)
    drive_ref = ewm_update(st.drive_ref_k[d], select(steady, drive, np.nan), a_trend)
    warm = cab > st.limit_c[d]
    above = select(settled & warm, st.above_ms[d] + dt_ms, 0)

    # A stopped compressor: the thermostat calls for cooling but no current flows, or (without
    # a current sensor) nothing runs while the cabinet is warm.
    no_current = (on > 0.5) & (amps < 0.2)
    idle_warm = (on < 0.05) & (cab > setpoint + WARM_EXCESS_K)
    stopped = select(settled & (no_current | idle_warm), st.stopped_ms[d] + dt_ms, 0)
    running = settled & (on > 0.05) & (amps >= 0.2)
    per_k = select(np.isnan(amb), 0, amb - 25) * F32(CURRENT_PER_K)
    a_run = select(running, amps / (1 + per_k), np.nan)
    # Running samples come only at the duty's rate: per sample, the weight of one that follows
    # ``dt / duty`` seconds of wall time keeps the time constants in wall time at any duty.
    a_running = ewm_alpha(dt_s / fmax(duty, MIN_DUTY), TAU_RUN_S, nonnegative=True)
    amps_fast = ewm_update(st.current_a[d], a_run, a_running)
    base = st.current_base_a[d]
    learn = select(~(amps_fast / base >= WEAR_LEARN_RATIO), a_run, np.nan)  # NaN: learning
    amps_base = ewm_update(base, learn, a_base)  # never learn from worn readings

    gap = cab - evap
    delta = select(steady & (on > 0.5) & ~(amps < 0.2), gap, np.nan)
    delta_fast = ewm_update(st.evap_delta_k[d], delta, a_fast)
    evap_base = st.evap_base_k[d]
    healthy = ~(delta_fast / evap_base <= 0.95)
    evap_base = ewm_update(evap_base, select(healthy, delta, np.nan), a_base)

    # The idle gap: whole samples with the compressor at rest and the door shut (an opening
    # bumps the reading, not the coil), outside defrosts and their pull-down.
    idle = select(steady & (on <= 0) & ~(door > 0), gap, np.nan)
    a_idle = ewm_alpha(dt_w, TAU_IDLE_S, nonnegative=True)
    idle_fast = ewm_update(st.idle_delta_k[d], idle, a_idle)
    idle_slow = ewm_update(st.idle_slow_k[d], idle, a_fast)
    idle_base = st.idle_base_k[d]
    age_ms = t - origin
    young = age_ms < YOUNG_MS
    keep = young | ~(np.abs(idle_fast - idle_base) > DRIFT_LEARN_K)  # never learn a drift
    idle_base = ewm_update(idle_base, select(keep, idle, np.nan), select(young, a_idle, a_base))

    # Pull-down: from the end of a disturbance (defrost, long door opening, mains back) until
    # the cabinet is back near its setpoint; each finished recovery is one observation.
    disturbed = defrosting | (door > LONG_DOOR_S) | ~mains_ok
    rec = st.recover_ms[d]
    rec = select(disturbed, 0, rec + dt_ms)
    done = ~disturbed & (cab <= setpoint + PULL_DOWN_BAND_K) & ~np.isnan(rec)
    minutes = select(done, rec / F32(60_000.0), np.nan)
    pd_fast = ewm_update(st.pull_down_min[d], minutes, F32(PULL_DOWN_ALPHA))
    pd_base = st.pull_down_base_min[d]
    pd_learn = select(~(pd_fast / maximum(pd_base, 1) >= 1.3), minutes, np.nan)
    pd_base = ewm_update(pd_base, pd_learn, F32(PULL_DOWN_BASE_ALPHA))

    is_warm = select(steady, (cab > setpoint + WARM_EXCESS_K).astype(F32), np.nan)
    a_day = ewm_alpha(dt_w, TAU_RECENT_S, nonnegative=True)  # TAU_EXCURSION_S too

    # The trend input: duty scaled to the device's typical load, so a warm week does not look
    # like a failing compressor (without an ambient sensor the duty is taken as it is).
    load_factor = drive_ref / maximum(drive, MIN_DRIVE_K)
    load_factor = select(np.isnan(load_factor), 1, load_factor)
    y = select(steady, on * load_factor, np.nan)
    x_days = (age_ms / MS_PER_DAY).astype(F32)
    # A sensor that reads exactly the same for hours while the compressor cycles is stuck.
    last_cab = st.last_cab_c[d]
    same = np.abs(cab - last_cab) < 1e-4
    return {
        "last_ts_ms": t,
        "origin_ms": origin,
        "duty": duty,
        "cabinet_c": cabinet,
        "drive_ref_k": drive_ref,
        "above_ms": above,
        "stopped_ms": stopped,
        "since_mains_ms": since_mains,
        "since_defrost_ms": since_defrost,
        "recover_ms": select(done, np.nan, rec),
        "pull_down_min": pd_fast,
        "pull_down_base_min": pd_base,
        "evap_delta_k": delta_fast,
        "evap_base_k": evap_base,
        "current_a": amps_fast,
        "current_base_a": amps_base,
        "excursion": ewm_update(st.excursion[d], is_warm, a_day),
        "last_cab_c": select(np.isnan(cab), last_cab, cab),
        "unchanged_ms": select(same, minimum(st.unchanged_ms[d] + dt_ms, _CAP_MS), 0),
        "idle_delta_k": idle_fast,
        "idle_slow_k": idle_slow,
        "idle_base_k": idle_base,
        "trend": st.trend.folded(d, x_days, y, 1 - a_trend),
        "recent": st.recent.folded(d, x_days, y, 1 - a_day),
    }
