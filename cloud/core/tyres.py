"""Vehicle tyres: temperature-compensated pressure trends, punctures, tread wear, sensor cells.

Pressure is first compensated to a 20 °C reference with the ideal gas law on absolute pressure
(at constant air mass ``p_abs / T`` is constant), so a cold morning or a hot motorway leaves the
compensated value flat and only a loss of air makes it fall. A falling trend gives the leak rate
and the ETA to 25 % below placard (FMVSS 138); a fast drop is a puncture and critical at once.
Tread depth is trended against km driven for the ETA (date and km) to 3 mm (advice) and to
1.6 mm (legal limit); each sensor's cell voltage against time for the ETA to its low-voltage
warning. State: :mod:`cloud.core.tyre_state`; conditions: :mod:`cloud.core.tyre_verdicts`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core import tyre_verdicts as verdicts
from cloud.core.kernels import F32, rank_within_groups
from cloud.core.types import Condition
from cloud.core.tyre_state import (
    BATTERY_V_PER_K,
    PLACARD_KPA,
    POSITIONS,
    T_REF_K,
    TyreState,
    compensate_kpa,
    fold,
)

PRESSURE_FAULT: Final = verdicts.PRESSURE_FAULT
TREAD_FAULT: Final = verdicts.TREAD_FAULT
BATTERY_FAULT: Final = verdicts.BATTERY_FAULT
__all__ = ["BATTERY_FAULT", "PRESSURE_FAULT", "TREAD_FAULT", "TyreState", "compensate_kpa",
           "configure", "update"]  # fmt: skip


def configure(state: TyreState, device_id: str, placard_kpa: float | None) -> TyreState:
    reg, idx = state.registry.extend([device_id])
    st = replace(state, registry=reg).grown(len(reg))
    placard = st.placard_kpa.copy()
    placard[idx] = PLACARD_KPA if placard_kpa is None else placard_kpa
    return replace(st, placard_kpa=placard)


def update(state: TyreState, batch: TelemetryBatch) -> tuple[TyreState, list[Condition]]:
    """Fold a batch of vehicle rows into the state and assess every tyre it touched."""
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg).grown(len(reg)).copy()
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    ambient = batch.channel("ambient_c")[order]
    odometer = batch.channel("odometer_km")[order]
    pres = np.stack([batch.channel(f"{p}.pressure_kpa")[order] for p in POSITIONS], axis=1)
    temp = np.stack([batch.channel(f"{p}.temp_c")[order] for p in POSITIONS], axis=1)
    tread_in = np.stack([batch.channel(f"{p}.tread_mm")[order] for p in POSITIONS], axis=1)
    battery = np.stack([batch.channel(f"{p}.battery_v")[order] for p in POSITIONS], axis=1)
    # Without a tyre or ambient temperature the pressure is taken as is (no compensation).
    temp = np.where(np.isnan(temp), ambient[:, None], temp)
    temp = np.where(np.isnan(temp), T_REF_K - 273.15, temp)
    p20_all = compensate_kpa(pres, temp).astype(F32)
    tread_all = tread_in.astype(F32)
    # Cell voltage rises with temperature; refer it to 20 °C so winter nights look healthy.
    v20_all = (battery - BATTERY_V_PER_K * (temp - 20.0)).astype(F32)

    fresh = ts_s > st.last_ts_ms[4 * dev_s]
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if m.any():
            fold(st, dev_s[m], ts_s[m], odometer[m], p20_all[m], tread_all[m], v20_all[m])

    n_t = 4 * len(reg)
    touched = np.zeros(n_t, dtype=bool)
    touched[(4 * dev_s[fresh])[:, None] + np.arange(4)] = True
    return st, [
        verdicts.assess_pressure(st, touched),
        verdicts.assess_tread(st, touched),
        verdicts.assess_battery(st, touched),
    ]
