"""Vending machines: per-slot demand, stock-out ETAs, restock pick lists, jammed coils, cooling.

Slots are columns of per-machine matrices (``stock[device, slot]``); slot names seen anywhere in
the fleet share one column. Demand per slot is an exponentially weighted rate of successful vends
learned only while the slot had stock (a sold-out slot sells nothing, which says nothing about
demand). A jammed coil is failed vends while stock remains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core.kernels import (
    BoolArray,
    FloatArray,
    IntArray,
    ewm_alpha,
    ewm_update,
    rank_within_groups,
)
from cloud.core.registry import Registry, grow
from cloud.core.types import Condition, normalise_contributions

RESTOCK_FAULT: Final = "vending.restock"
JAM_FAULT: Final = "vending.jammed_coil"
COOLING_FAULT: Final = "vending.cooling"
SLOT_KEY: Final = 1024  # unit key of a slot: device * SLOT_KEY + slot column
TAU_RATE_S: Final = 3 * 86400.0
TAU_CABINET_S: Final = 1800.0
RESTOCK_HORIZON_H: Final = 36.0
JAM_AFTER_FAILS: Final = 2.0  # failed vends in a row, with stock left, that mean a jam
WARM_CABINET_C: Final = 7.0  # the profile's cabinet limit
WARM_AFTER_MS: Final = 30 * 60_000.0  # half the profile's 60 minutes: act before it counts
_SLOT_RE: Final = re.compile(r"^slot\.([A-J][0-9]{1,2})\.(stock|vends|fails)$")


@dataclass(frozen=True, slots=True)
class VendingState:
    registry: Registry
    slots: Registry  # slot name → column
    last_ts_ms: IntArray  # (n_devices,)
    stock: FloatArray  # (n_devices, n_slots); NaN = slot absent
    capacity: FloatArray  # most stock ever seen in the slot
    rate_per_h: FloatArray
    jam_fails: FloatArray  # failed vends since the slot last served one
    cabinet_c: FloatArray  # (n_devices,)
    warm_ms: FloatArray

    @classmethod
    def empty(cls) -> VendingState:
        i = np.zeros(0, dtype=np.int64)
        f = np.zeros(0)
        m = np.zeros((0, 0))
        return cls(Registry(), Registry(), i, m, m, m, m, f, f)

    def grown(self, n_dev: int, n_slots: int) -> VendingState:
        def grid(a: FloatArray, fill: float) -> FloatArray:
            a = grow(a, n_dev, fill)
            pad = n_slots - a.shape[1]
            if pad > 0:
                a = np.concatenate([a, np.full((a.shape[0], pad), fill)], axis=1)
            return a

        return VendingState(
            registry=self.registry,
            slots=self.slots,
            last_ts_ms=grow(self.last_ts_ms, n_dev, -1),
            stock=grid(self.stock, np.nan),
            capacity=grid(self.capacity, 0.0),
            rate_per_h=grid(self.rate_per_h, np.nan),
            jam_fails=grid(self.jam_fails, 0.0),
            cabinet_c=grow(self.cabinet_c, n_dev, np.nan),
            warm_ms=grow(self.warm_ms, n_dev, 0.0),
        )

    @property
    def state_bytes(self) -> int:
        arrays = (self.last_ts_ms, self.stock, self.capacity, self.rate_per_h, self.jam_fails)
        return sum(a.nbytes for a in arrays) + self.cabinet_c.nbytes + self.warm_ms.nbytes


def configure(state: VendingState, device_id: str, capacities: dict[str, int]) -> VendingState:
    """Record slot capacities from a machine's birth message."""
    reg, idx = state.registry.extend([device_id])
    slots, cols = state.slots.extend(list(capacities))
    st = replace(state, registry=reg, slots=slots).grown(len(reg), len(slots))
    cap = st.capacity.copy()
    cap[idx[0], cols] = np.fromiter(capacities.values(), dtype=np.float64, count=len(cols))
    return replace(st, capacity=cap)


def update(state: VendingState, batch: TelemetryBatch) -> tuple[VendingState, list[Condition]]:
    """Fold a batch of vending rows and assess the machines and slots it touched."""
    parsed = [(_SLOT_RE.match(c), i) for i, c in enumerate(batch.channels)]
    cols: dict[str, tuple[list[str], list[int]]] = {
        "stock": ([], []),
        "vends": ([], []),
        "fails": ([], []),
    }  # slot names, batch columns
    for match, i in parsed:
        if match:
            cols[match[2]][0].append(match[1])
            cols[match[2]][1].append(i)
    slots, _ = state.slots.extend([s for names, _ in cols.values() for s in names])
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg, slots=slots).grown(len(reg), len(slots))
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    vals = batch.values[order]
    n_s = len(slots)

    def matrix(metric: str) -> FloatArray:
        names, idx = cols[metric]
        out = np.full((vals.shape[0], n_s), np.nan)
        if names:
            out[:, [slots.pos[s] for s in names]] = vals[:, idx]
        return out

    stock_in, vends_in, fails_in = matrix("stock"), matrix("vends"), matrix("fails")
    cab_in = batch.channel("cabinet_c")[order]

    last = st.last_ts_ms.copy()
    stock, cap, rate = st.stock.copy(), st.capacity.copy(), st.rate_per_h.copy()
    jam, cab, warm = st.jam_fails.copy(), st.cabinet_c.copy(), st.warm_ms.copy()
    fresh = ts_s > last[dev_s]
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if not m.any():
            continue
        d, t = dev_s[m], ts_s[m]
        dt_s = np.where(last[d] >= 0, (t - last[d]) / 1000.0, 0.0)
        dt_h = (dt_s / 3600.0)[:, None]
        had_stock = np.nan_to_num(stock[d], nan=0.0) > 0
        sold = vends_in[m]
        observed = had_stock & ~np.isnan(sold) & (dt_h > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            inst = np.where(observed, sold / dt_h, np.nan)
        rate[d] = ewm_update(rate[d], inst, ewm_alpha(dt_s, TAU_RATE_S)[:, None])
        s_new = stock_in[m]
        stock[d] = np.where(np.isnan(s_new), stock[d], s_new)
        cap[d] = np.fmax(cap[d], np.nan_to_num(s_new, nan=0.0))
        failing = (np.nan_to_num(fails_in[m]) > 0) & (np.nan_to_num(stock[d]) > 0)
        served = np.nan_to_num(sold) > 0
        fails_now = np.where(failing, np.nan_to_num(fails_in[m]), 0.0)
        jam[d] = np.where(served, fails_now, jam[d] + fails_now)
        cab[d] = ewm_update(cab[d], cab_in[m], ewm_alpha(dt_s, TAU_CABINET_S))
        warm_now = np.nan_to_num(cab_in[m], nan=-np.inf) > WARM_CABINET_C
        warm[d] = np.where(warm_now, warm[d] + dt_s * 1000.0, 0.0)
        last[d] = t

    touched = np.zeros(len(reg), dtype=bool)
    touched[dev_s[fresh]] = True
    new = VendingState(reg, slots, last, stock, cap, rate, jam, cab, warm)
    return new, [
        assess_restock(new, touched),
        assess_jams(new, touched),
        assess_cooling(new, touched),
    ]


def hours_to_empty(st: VendingState) -> FloatArray:
    """Expected hours until each slot sells out at its learned rate (inf without demand)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        h: FloatArray = np.where(
            np.nan_to_num(st.rate_per_h) > 1e-6, np.nan_to_num(st.stock) / st.rate_per_h, np.inf
        )
    return np.where(np.isnan(st.stock), np.inf, h)


def pick_list(st: VendingState, device: int, horizon_h: float = 7 * 24.0) -> list[tuple[str, int]]:
    """Items to bring per slot: refill to capacity, slots at risk first."""
    h = hours_to_empty(st)[device]
    need = np.nan_to_num(st.capacity[device] - st.stock[device], nan=0.0)
    cols = np.flatnonzero((need > 0) & (h < horizon_h))
    cols = cols[np.argsort(h[cols], kind="stable")]
    return [(st.slots.ids[c], int(need[c])) for c in cols]


def assess_restock(st: VendingState, touched: BoolArray) -> Condition:
    n = len(st.registry)
    h = hours_to_empty(st) if st.stock.size else np.zeros((n, 0))
    first_h = h.min(axis=1) if h.shape[1] else np.full(n, np.inf)
    active = first_h < RESTOCK_HORIZON_H
    now = st.last_ts_ms.astype(np.float64)
    eta = np.where(active, now + first_h * 3600_000.0, np.nan)
    # Poisson spread of the sell-out time: ±1.28·sqrt(stock)/rate around the mean.
    with np.errstate(invalid="ignore"):
        at_risk = np.argmin(h, axis=1) if h.shape[1] else np.zeros(n, dtype=np.int64)
        s = np.nan_to_num(st.stock[np.arange(n), at_risk]) if h.shape[1] else np.zeros(n)
        rt = np.nan_to_num(st.rate_per_h[np.arange(n), at_risk]) if h.shape[1] else np.ones(n)
        spread_h = np.where(rt > 0, 1.2816 * np.sqrt(np.maximum(s, 1.0)) / np.maximum(rt, 1e-6), 0)
    lo = np.where(active, np.maximum(now, eta - spread_h * 3600_000.0), np.nan)
    hi = np.where(active, eta + spread_h * 3600_000.0, np.nan)
    empty_now = active & (first_h <= 0)
    notes = {
        int(d): ", ".join(f"{slot}×{qty}" for slot, qty in pick_list(st, int(d)))
        for d in np.flatnonzero(active & touched)
    }
    score = np.where(active, np.clip(1.0 - first_h / RESTOCK_HORIZON_H, 0.5, 1.0), 0.0)
    return Condition(
        fault=RESTOCK_FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=score,
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=eta,
        eta_lo_ms=lo,
        eta_hi_ms=hi,
        signals=("stock_cover",),
        contributions=active[:, None].astype(np.float64),
        notes=notes,
        reason=np.where(empty_now, 2, np.where(active, 1, 0)).astype(np.int64),
        reason_names=("", "a slot will sell out before the next visit", "a slot is sold out"),
    )


def assess_jams(st: VendingState, touched: BoolArray) -> Condition:
    # Every known slot of the touched machines, so that a cleared jam can close its episode.
    known = ~np.isnan(st.stock) | (st.capacity > 0)
    d, c = np.nonzero(known & touched[:, None]) if st.jam_fails.size else ([], [])
    d = np.asarray(d, dtype=np.int64)
    c = np.asarray(c, dtype=np.int64)
    jam = st.jam_fails[d, c] if d.size else np.zeros(0)
    active = jam >= JAM_AFTER_FAILS
    now = st.last_ts_ms[d].astype(np.float64)
    h = hours_to_empty(st)[d, c] if d.size else np.zeros(0)
    return Condition(
        fault=JAM_FAULT,
        unit_device=d,
        unit_label=tuple(st.slots.ids[i] for i in c),
        unit_key=d * SLOT_KEY + c,
        touched=np.ones(d.shape[0], dtype=bool),
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=np.clip(jam / (2 * JAM_AFTER_FAILS), 0.0, 1.0),
        ts_ms=st.last_ts_ms[d].copy(),
        eta_ms=np.where(active, now, np.nan),
        eta_lo_ms=np.where(active, now, np.nan),
        eta_hi_ms=np.where(active, now + np.where(np.isfinite(h), h, 0) * 3600_000.0, np.nan),
        signals=("failed_vends",),
        contributions=active[:, None].astype(np.float64),
        reason=active.astype(np.int64),
        reason_names=("", "vends fail while the slot still has stock: coil jammed"),
    )


def assess_cooling(st: VendingState, touched: BoolArray) -> Condition:
    n = len(st.registry)
    active = st.warm_ms >= WARM_AFTER_MS
    now = st.last_ts_ms.astype(np.float64)
    excess = np.nan_to_num(st.cabinet_c - WARM_CABINET_C)
    return Condition(
        fault=COOLING_FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=np.where(active, 2, 0).astype(np.int64),
        score=np.where(active, 1.0, np.clip(excess / 5.0, 0.0, 1.0)),
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=np.where(active, now, np.nan),
        eta_lo_ms=np.where(active, now, np.nan),
        eta_hi_ms=np.where(active, now, np.nan),
        signals=("cabinet_temperature",),
        contributions=normalise_contributions(np.maximum(excess, 0.0)[:, None]),
        reason=active.astype(np.int64),
        reason_names=("", "the cabinet is warm: cooling has failed"),
    )
