"""Vehicle tyres' state: temperature-compensated pressure trends, tread wear, sensor cells.

Pressure is first compensated to a 20 °C reference with the ideal gas law on absolute pressure
(at constant air mass ``p_abs / T`` is constant), so a cold morning or a hot motorway leaves the
compensated value flat and only a loss of air makes it fall. A falling trend gives the leak rate
and the ETA to 25 % below placard (FMVSS 138); a fast drop is a puncture and critical at once.
Tread depth is trended against km driven for the ETA to 3 mm (advice) and to 1.6 mm (legal
limit), and each sensor's cell voltage against time for the ETA to its low-voltage warning.
This module holds the state and how one reading moves it; :mod:`cloud.core.tyres` the entry
points and :mod:`cloud.core.tyre_verdicts` the conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Final

import numpy as np

from cloud.core.kernels import (
    F32,
    MS_PER_DAY,
    Float32Array,
    FloatArray,
    IntArray,
    Trend,
    ewm_alpha,
    ewm_update,
)
from cloud.core.registry import Registry, grow

POSITIONS: Final = ("fl", "fr", "rl", "rr")
ATM_KPA: Final = 101.325
T_REF_K: Final = 293.15
PLACARD_KPA: Final = 240.0
TAU_LEVEL_S: Final = 3600.0
TAU_TREND_S: Final = 2 * 86400.0
TAU_RECENT_S: Final = 12 * 3600.0
TAU_BATTERY_S: Final = 12 * 3600.0  # cells fall smoothly: a short line lags a fault least
BATTERY_V_PER_K: Final = 0.003  # a lithium cell's open-circuit voltage per kelvin
TAU_TREAD_S: Final = 30 * 86400.0
TAU_KM_S: Final = 14 * 86400.0
MAX_KM_PER_H: Final = 250.0
MIN_KM_DAYS: Final = 1.0  # days of odometer readings before a daily distance is given


def compensate_kpa(gauge_kpa: FloatArray, temp_c: FloatArray) -> FloatArray:
    """Gauge pressure referred to 20 °C at constant air mass (ideal gas law).

    >>> round(float(compensate_kpa(np.array([240.0]), np.array([20.0]))[0]), 6)
    240.0
    """
    out: FloatArray = (gauge_kpa + ATM_KPA) * (T_REF_K / (temp_c + 273.15)) - ATM_KPA
    return out


@dataclass(frozen=True, slots=True)
class TyreState:
    """Per-tyre arrays (unit ``device * 4 + position``) and per-vehicle placard and odometer."""

    registry: Registry
    placard_kpa: FloatArray  # (n_devices,)
    odometer_km: FloatArray  # (n_devices,) last reading
    odo_origin_km: FloatArray  # (n_devices,) first reading: the tread trend's origin
    odo_ts_ms: IntArray  # (n_devices,) time of the last odometer reading
    km_w: Float32Array  # (n_devices,) km driven, forgetting over weeks
    km_days_w: Float32Array  # (n_devices,) days those km were driven in, forgetting alike
    last_ts_ms: IntArray  # (n_tyres,)
    origin_ms: IntArray
    level_kpa: Float32Array  # compensated, smoothed over an hour
    last_kpa: Float32Array  # the last compensated reading
    drop_kpa: Float32Array  # last fall below the level (puncture evidence)
    drop_kpa_per_s: Float32Array  # how fast that fall came
    tread_mm: Float32Array
    battery_v: Float32Array  # sensor cell voltage referred to 20 °C, smoothed over hours
    pressure: Trend  # compensated pressure against days, over days: is it leaking?
    recent: Trend  # the same over hours: how fast is it leaking now?
    tread: Trend  # tread depth against km driven
    battery: Trend  # sensor cell voltage against days

    @classmethod
    def empty(cls) -> TyreState:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.int64)
        g = np.zeros(0, dtype=F32)
        z = Trend.zeros
        return cls(
            Registry(), f, f, f, i, g, g, i, i, g, g, g, g, g, g,
            pressure=z(0), recent=z(0), tread=z(0), battery=z(0),
        )  # fmt: skip

    def grown(self, n_dev: int) -> TyreState:
        n = 4 * n_dev
        return TyreState(
            registry=self.registry,
            placard_kpa=grow(self.placard_kpa, n_dev, PLACARD_KPA),
            odometer_km=grow(self.odometer_km, n_dev, np.nan),
            odo_origin_km=grow(self.odo_origin_km, n_dev, np.nan),
            odo_ts_ms=grow(self.odo_ts_ms, n_dev, -1),
            km_w=grow(self.km_w, n_dev, 0.0),
            km_days_w=grow(self.km_days_w, n_dev, 0.0),
            last_ts_ms=grow(self.last_ts_ms, n, -1),
            origin_ms=grow(self.origin_ms, n, -1),
            level_kpa=grow(self.level_kpa, n, np.nan),
            last_kpa=grow(self.last_kpa, n, np.nan),
            drop_kpa=grow(self.drop_kpa, n, 0.0),
            drop_kpa_per_s=grow(self.drop_kpa_per_s, n, 0.0),
            tread_mm=grow(self.tread_mm, n, np.nan),
            battery_v=grow(self.battery_v, n, np.nan),
            pressure=self.pressure.grow(n),
            recent=self.recent.grow(n),
            tread=self.tread.grow(n),
            battery=self.battery.grow(n),
        )

    @property
    def km_per_day(self) -> FloatArray:
        """Distance driven per day over the last weeks (NaN before a day of odometer readings)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out: FloatArray = np.where(
                self.km_days_w >= MIN_KM_DAYS, self.km_w / self.km_days_w, np.nan
            ).astype(np.float64)
        return out

    def copy(self) -> TyreState:
        arrays = {
            f.name: getattr(self, f.name).copy()
            for f in fields(self)
            if f.name not in ("registry", "placard_kpa")
        }
        return replace(self, **arrays)

    @property
    def state_bytes(self) -> int:
        own = sum(
            getattr(self, f.name).nbytes
            for f in fields(self)
            if not isinstance(getattr(self, f.name), Registry | Trend)
        )
        trends = (self.pressure, self.recent, self.tread, self.battery)
        return int(own + sum(a.nbytes for t in trends for a in t.arrays()))


def fold(
    st: TyreState,
    d: IntArray,
    t: IntArray,
    odometer: FloatArray,
    p20: Float32Array,
    tread_in: Float32Array,
    v20: Float32Array,
) -> None:
    """Fold one reading per listed vehicle (four tyres each) into ``st``, in place."""
    # Distance per day from odometer increments, over the readings that carry one.
    has_odo = ~np.isnan(odometer)
    prev_ts, prev_km = st.odo_ts_ms[d], st.odometer_km[d]
    span_d = np.where(prev_ts >= 0, (t - prev_ts) / MS_PER_DAY, 0.0)
    step_km = odometer - prev_km
    rate = np.where(has_odo & (span_d > 0), step_km / np.maximum(span_d, 1e-9), np.nan)
    # A reset, a replaced odometer or a jump faster than any car drives is no distance driven:
    # it neither counts as speed nor moves the tread trend's km axis.
    plausible = (rate >= 0) & (rate <= MAX_KM_PER_H * 24.0)
    jump = has_odo & ~np.isnan(prev_km) & (span_d > 0) & ~plausible
    rate = np.where(plausible, rate, np.nan)
    # A ratio of forgetting sums, not a mean of rates: the first reading's speed (a car on the
    # motorway) would otherwise be taken for its daily distance for weeks.
    keep = (1 - ewm_alpha(span_d * 86400.0, TAU_KM_S)).astype(F32)
    counted = np.where(plausible, span_d, 0)
    st.km_w[d] = st.km_w[d] * keep + np.where(plausible, step_km, 0).astype(F32)
    st.km_days_w[d] = st.km_days_w[d] * keep + counted.astype(F32)
    origin = np.where(np.isnan(st.odo_origin_km[d]), odometer, st.odo_origin_km[d])
    st.odo_origin_km[d] = np.where(jump, origin + step_km, origin)
    st.odometer_km[d] = np.where(has_odo, odometer, prev_km)
    st.odo_ts_ms[d] = np.where(has_odo, t, prev_ts)
    km = np.repeat((st.odometer_km[d] - st.odo_origin_km[d]).astype(F32), 4)
    km = np.where(np.repeat(has_odo, 4), km, np.nan)

    u = ((4 * d)[:, None] + np.arange(4)[None, :]).ravel()
    tu = np.repeat(t, 4)
    p = p20.ravel()
    last = st.last_ts_ms[u]
    dt_s = np.where(last >= 0, (tu - last) / 1000.0, 0.0).astype(F32)
    st.origin_ms[u] = np.where(st.origin_ms[u] < 0, tu, st.origin_ms[u])
    level = st.level_kpa[u]
    drop = np.where(np.isnan(p), st.drop_kpa[u], np.nan_to_num(level - p))
    st.drop_kpa[u] = drop
    st.drop_kpa_per_s[u] = np.where(
        np.isnan(p), st.drop_kpa_per_s[u], np.maximum(st.last_kpa[u] - p, 0) / np.maximum(dt_s, 1)
    )
    st.last_kpa[u] = np.where(np.isnan(p), st.last_kpa[u], p)
    st.level_kpa[u] = ewm_update(level, p, ewm_alpha(dt_s, TAU_LEVEL_S))
    x_days = ((tu - st.origin_ms[u]) / MS_PER_DAY).astype(F32)
    st.pressure.fold(u, x_days, p, 1 - ewm_alpha(dt_s, TAU_TREND_S))
    st.recent.fold(u, x_days, p, 1 - ewm_alpha(dt_s, TAU_RECENT_S))
    v = v20.ravel()
    st.battery_v[u] = ewm_update(st.battery_v[u], v, ewm_alpha(dt_s, TAU_LEVEL_S))
    st.battery.fold(u, x_days, v, 1 - ewm_alpha(dt_s, TAU_BATTERY_S))
    tr = tread_in.ravel()
    st.tread_mm[u] = np.where(np.isnan(tr), st.tread_mm[u], tr)
    # Tread wears with distance; forget old readings by time so a new driving style shows.
    st.tread.fold(u, km, np.where(np.isnan(km), np.nan, tr), 1 - ewm_alpha(dt_s, TAU_TREAD_S))
    st.last_ts_ms[u] = tu
