"""Vehicle tyres: temperature-compensated pressure trends, punctures and tread wear.

Pressure is first compensated to a 20 °C reference with the ideal gas law on absolute pressure
(at constant air mass ``p_abs / T`` is constant), so a cold morning or a hot motorway leaves the
compensated value flat and only a loss of air makes it fall. A falling trend gives the leak rate
and the ETA to 25 % below placard (FMVSS 138); a fast drop is a puncture and critical at once.
Tread depth is trended against time for the ETA to 3 mm (advice) and to 1.6 mm (legal limit).
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

POSITIONS: Final = ("fl", "fr", "rl", "rr")
PRESSURE_FAULT: Final = "tyres.pressure"
TREAD_FAULT: Final = "tyres.tread"
ATM_KPA: Final = 101.325
T_REF_K: Final = 293.15
PLACARD_KPA: Final = 240.0
FAILURE_SHARE: Final = 0.75  # FMVSS 138: warn at 25 % below placard
TREAD_ADVICE_MM: Final = 3.0
TREAD_LEGAL_MM: Final = 1.6
TAU_LEVEL_S: Final = 3600.0
TAU_TREND_S: Final = 2 * 86400.0
TAU_TREAD_S: Final = 30 * 86400.0
PUNCTURE_DROP_KPA: Final = 25.0
MIN_LEAK_KPA_PER_DAY: Final = 1.5
MIN_T_STAT: Final = 4.0
HORIZON_DAYS: Final = 30.0

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


def compensate_kpa(gauge_kpa: FloatArray, temp_c: FloatArray) -> FloatArray:
    """Gauge pressure referred to 20 °C at constant air mass (ideal gas law).

    >>> round(float(compensate_kpa(np.array([240.0]), np.array([20.0]))[0]), 6)
    240.0
    """
    out: FloatArray = (gauge_kpa + ATM_KPA) * (T_REF_K / (temp_c + 273.15)) - ATM_KPA
    return out


@dataclass(frozen=True, slots=True)
class TyreState:
    """Per-tyre arrays (unit ``device * 4 + position``) and per-vehicle placard."""

    registry: Registry
    placard_kpa: FloatArray  # (n_devices,)
    last_ts_ms: IntArray  # (n_tyres,)
    origin_ms: IntArray
    level_kpa: FloatArray  # compensated, smoothed over an hour
    drop_kpa: FloatArray  # last fall below the level (puncture evidence)
    tread_mm: FloatArray
    pressure: Trend
    tread: Trend

    @classmethod
    def empty(cls) -> TyreState:
        f = np.zeros(0)
        i = np.zeros(0, dtype=np.int64)
        return cls(Registry(), f, i, i, f, f, f, Trend.zeros(0), Trend.zeros(0))

    def grown(self, n_dev: int) -> TyreState:
        n = 4 * n_dev
        return TyreState(
            registry=self.registry,
            placard_kpa=grow(self.placard_kpa, n_dev, PLACARD_KPA),
            last_ts_ms=grow(self.last_ts_ms, n, -1),
            origin_ms=grow(self.origin_ms, n, -1),
            level_kpa=grow(self.level_kpa, n, np.nan),
            drop_kpa=grow(self.drop_kpa, n, 0.0),
            tread_mm=grow(self.tread_mm, n, np.nan),
            pressure=self.pressure.grow(n),
            tread=self.tread.grow(n),
        )

    @property
    def state_bytes(self) -> int:
        fields = ("placard_kpa", "last_ts_ms", "origin_ms", "level_kpa", "drop_kpa", "tread_mm")
        own = sum(getattr(self, f).nbytes for f in fields)
        return int(own + sum(a.nbytes for t in (self.pressure, self.tread) for a in t.arrays()))


def configure(state: TyreState, device_id: str, placard_kpa: float | None) -> TyreState:
    reg, idx = state.registry.extend([device_id])
    st = replace(state, registry=reg).grown(len(reg))
    placard = st.placard_kpa.copy()
    placard[idx] = PLACARD_KPA if placard_kpa is None else placard_kpa
    return replace(st, placard_kpa=placard)


def update(state: TyreState, batch: TelemetryBatch) -> tuple[TyreState, list[Condition]]:
    """Fold a batch of vehicle rows into the state and assess every tyre it touched."""
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg).grown(len(reg))
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    ambient = batch.channel("ambient_c")[order]
    pres = np.stack([batch.channel(f"{p}.pressure_kpa")[order] for p in POSITIONS], axis=1)
    temp = np.stack([batch.channel(f"{p}.temp_c")[order] for p in POSITIONS], axis=1)
    tread_in = np.stack([batch.channel(f"{p}.tread_mm")[order] for p in POSITIONS], axis=1)
    # Without a tyre or ambient temperature the pressure is taken as is (no compensation).
    temp = np.where(np.isnan(temp), ambient[:, None], temp)
    temp = np.where(np.isnan(temp), T_REF_K - 273.15, temp)
    p20_all = compensate_kpa(pres, temp)

    last, origin = st.last_ts_ms.copy(), st.origin_ms.copy()
    level, drop, tread = st.level_kpa.copy(), st.drop_kpa.copy(), st.tread_mm.copy()
    ptrend, ttrend = st.pressure, st.tread
    fresh = ts_s > last[4 * dev_s]
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if not m.any():
            continue
        u = (4 * dev_s[m])[:, None] + np.arange(4)[None, :]
        u = u.ravel()
        t = np.repeat(ts_s[m], 4)
        p20 = p20_all[m].ravel()
        dt_s = np.where(last[u] >= 0, (t - last[u]) / 1000.0, 0.0)
        origin[u] = np.where(origin[u] < 0, t, origin[u])
        drop[u] = np.where(np.isnan(p20), drop[u], np.nan_to_num(level[u] - p20))
        level[u] = ewm_update(level[u], p20, ewm_alpha(dt_s, TAU_LEVEL_S))
        x_days = (t - origin[u]) / MS_PER_DAY
        ptrend = ptrend.update(u, x_days, p20, np.exp(-dt_s / TAU_TREND_S))
        tr = tread_in[m].ravel()
        tread[u] = np.where(np.isnan(tr), tread[u], tr)
        ttrend = ttrend.update(
            u, x_days, tr, np.where(np.isnan(tr), 1.0, np.exp(-dt_s / TAU_TREAD_S))
        )
        last[u] = t

    n_t = 4 * len(reg)
    touched = np.zeros(n_t, dtype=bool)
    touched[(4 * dev_s[fresh])[:, None] + np.arange(4)] = True
    new = TyreState(reg, st.placard_kpa, last, origin, level, drop, tread, ptrend, ttrend)
    return new, [assess_pressure(new, touched), assess_tread(new, touched)]


def _labels(n_dev: int) -> tuple[str, ...]:
    return POSITIONS * n_dev


def assess_pressure(st: TyreState, touched: BoolArray) -> Condition:
    n = st.last_ts_ms.shape[0]
    limit = np.repeat(st.placard_kpa, 4) * FAILURE_SHARE
    icpt, slope, se, n_eff = st.pressure.fit()
    x_now = (st.last_ts_ms - st.origin_ms) / MS_PER_DAY
    now_kpa = icpt + slope * x_now
    eta_d, lo_d, hi_d = time_to_cross(now_kpa, slope, se, limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_stat = np.nan_to_num(-slope / se)
    leaking = (-slope > MIN_LEAK_KPA_PER_DAY) & (t_stat > MIN_T_STAT) & (n_eff > 36)
    leaking &= eta_d < HORIZON_DAYS
    puncture = st.drop_kpa > PUNCTURE_DROP_KPA
    low = np.nan_to_num(st.level_kpa, nan=np.inf) < limit
    active = leaking | puncture | low
    now = st.last_ts_ms.astype(np.float64)
    critical = puncture | low
    eta = np.where(critical, now, np.where(leaking, now + eta_d * MS_PER_DAY, np.nan))
    lo = np.where(critical, now, np.where(leaking, now + lo_d * MS_PER_DAY, np.nan))
    hi = np.where(
        critical, now, np.where(leaking, now + np.minimum(hi_d, 90.0) * MS_PER_DAY, np.nan)
    )
    score = np.where(critical, 1.0, logistic(t_stat - MIN_T_STAT) * leaking)
    raw = np.stack([t_stat * leaking, np.maximum(st.drop_kpa, 0.0) * puncture], axis=1)
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
        contributions=normalise_contributions(raw),
        reason=np.select([puncture, low, leaking], [2, 3, 1], default=0).astype(np.int64),
        reason_names=PRESSURE_REASONS,
    )


def assess_tread(st: TyreState, touched: BoolArray) -> Condition:
    """Tread is one root cause per vehicle (tyres are replaced together): the worst tyre counts."""
    n = st.last_ts_ms.shape[0]
    n_dev = n // 4
    icpt, slope, se, _ = st.tread.fit()
    x_now = (st.last_ts_ms - st.origin_ms) / MS_PER_DAY
    level = np.where(np.isnan(icpt), st.tread_mm, icpt + slope * x_now)
    eta_d, lo_d, hi_d = time_to_cross(level, slope, se, np.full(n, TREAD_LEGAL_MM))
    eta_d, lo_d, hi_d = (a.reshape(n_dev, 4) for a in (eta_d, lo_d, hi_d))
    tread = np.nan_to_num(st.tread_mm, nan=np.inf).reshape(n_dev, 4)
    worst = np.argmin(tread, axis=1)
    rows = np.arange(n_dev)
    tread_min = tread[rows, worst]
    eta_d, lo_d, hi_d = eta_d.min(axis=1), lo_d.min(axis=1), hi_d.min(axis=1)
    illegal = tread_min < TREAD_LEGAL_MM
    soon = ~illegal & (eta_d < HORIZON_DAYS)
    advice = tread_min < TREAD_ADVICE_MM
    active = illegal | soon | advice
    now = st.last_ts_ms.reshape(n_dev, 4).max(axis=1).astype(np.float64)
    has_eta = soon | (advice & np.isfinite(eta_d))
    eta = np.where(illegal, now, np.where(has_eta, now + eta_d * MS_PER_DAY, np.nan))
    lo = np.where(illegal, now, np.where(has_eta, now + lo_d * MS_PER_DAY, np.nan))
    hi_ms = now + np.minimum(hi_d, 365.0) * MS_PER_DAY
    hi = np.where(illegal, now, np.where(has_eta, hi_ms, np.nan))
    depth = np.clip((TREAD_ADVICE_MM - tread_min) / (TREAD_ADVICE_MM - TREAD_LEGAL_MM), 0.0, 1.0)
    return Condition(
        fault=TREAD_FAULT,
        unit_device=np.arange(n_dev, dtype=np.int64),
        unit_label=("",) * n_dev,
        touched=np.asarray(touched.reshape(n_dev, 4).any(axis=1), dtype=bool),
        active=active,
        severity=np.where(illegal, 2, np.where(soon, 1, 0)).astype(np.int64),
        score=np.where(active, np.maximum(depth, 0.5), 0.0),
        ts_ms=now.astype(np.int64),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=tuple(f"{p}.tread_mm" for p in POSITIONS),
        contributions=normalise_contributions(
            np.clip(TREAD_ADVICE_MM - tread, 0.0, None) * active[:, None]
        ),
        reason=np.select([illegal, soon, advice], [3, 2, 1], default=0).astype(np.int64),
        reason_names=TREAD_REASONS,
    )
