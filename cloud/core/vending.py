"""Vending machines: seasonal slot demand, stock-out risk, pick lists, jammed coils, cooling.

Slots are columns of per-machine matrices (``stock[device, slot]``); slot names seen anywhere in
the fleet share one column. Demand is an intermittent count process: a per-machine
hour-of-day × day-of-week profile (pooled over the machine's slots, learned in UTC) times a
per-slot level. The level is a Poisson rate-ratio estimate, sales over profile-weighted hours,
with exponential forgetting, and it learns only while the slot had stock (a sold-out slot sells
nothing, which says nothing about demand). From it: the probability that a slot sells out
within the restock horizon, the expected stock-out time with an 80 % interval, the pick list
and a route priority. A jammed coil is failed vends while stock remains, or a slot that has
stopped selling although its stock and its expected demand say it should have sold by now. A
failing payment reader declines far more cards than a working one (where the machine reports
its reader's counts), or leaves failed vends at several slots (where it does not).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core import vending_verdicts as verdicts
from cloud.core.kernels import F32, Float32Array, rank_within_groups
from cloud.core.types import Condition
from cloud.core.vending_state import (
    COOLING_FAULT,
    DECLINE_ALARM,
    JAM_FAULT,
    PAYMENT_FAULT,
    RESTOCK_FAULT,
    RESTOCK_HORIZON_H,
    SLOT_CHANNEL,
    PlannedVisits,
    VendingState,
    configure,
    fold,
    hours_to_visit,
)
from cloud.core.vending_verdicts import StockForecast, forecast_stock, pick_list

__all__ = [
    "COOLING_FAULT",
    "DECLINE_ALARM",
    "JAM_FAULT",
    "PAYMENT_FAULT",
    "RESTOCK_FAULT",
    "RESTOCK_HORIZON_H",
    "PlannedVisits",
    "StockForecast",
    "VendingState",
    "configure",
    "forecast_stock",
    "hours_to_visit",
    "pick_list",
    "update",
]


def update(state: VendingState, batch: TelemetryBatch) -> tuple[VendingState, list[Condition]]:
    """Fold a batch of vending rows and assess the machines and slots it touched."""
    cols: dict[str, tuple[list[str], list[int]]] = {"stock": ([], []), "vends": ([], []),
                                                    "fails": ([], [])}  # fmt: skip
    for i, c in enumerate(batch.channels):
        match = SLOT_CHANNEL.match(c)
        if match:
            cols[match[2]][0].append(match[1])
            cols[match[2]][1].append(i)
    slots, _ = state.slots.extend([s for names, _ in cols.values() for s in names])
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg, slots=slots).grown(len(reg), len(slots)).copy()
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    n_s = len(slots)

    def matrix(metric: str) -> Float32Array:
        names, idx = cols[metric]
        out = np.full((order.shape[0], n_s), np.nan, dtype=F32)
        if names:
            out[:, [slots.pos[s] for s in names]] = batch.values[order][:, idx]
        return out

    stock_in, vends_in, fails_in = matrix("stock"), matrix("vends"), matrix("fails")
    cab_in = batch.channel("cabinet_c")[order].astype(F32)
    auths_in = batch.channel("card_auths")[order].astype(F32)
    declines_in = batch.channel("card_declines")[order].astype(F32)
    fresh = ts_s > st.last_ts_ms[dev_s]
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if m.any():
            fold(
                st, dev_s[m], ts_s[m], stock_in[m], vends_in[m], fails_in[m], cab_in[m],
                auths_in[m], declines_in[m],
            )  # fmt: skip
    touched = np.zeros(len(reg), dtype=bool)
    touched[dev_s[fresh]] = True
    return st, [
        verdicts.assess_restock(st, touched),
        verdicts.assess_jams(st, touched),
        verdicts.assess_payment(st, touched),
        verdicts.assess_cooling(st, touched),
    ]
