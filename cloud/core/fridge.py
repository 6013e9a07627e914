"""Fridges and freezers: health features, a degradation trend, stops and temperature excursions.

One fault family per fridge (``fridge.cooling``). A capacity loss (refrigerant leak, condenser
fouling, a leaking door gasket) shows first as a compressor that runs longer for the same heat
load and only later as a warm cabinet, so the trend of the ambient-adjusted duty cycle gives the
lead time and the ETA. Samples during and just after a defrost, and after mains returns, are
left out of that trend: the compressor cannot run while the heater melts the ice, then pulls the
cabinet down at full duty, which says nothing about its health. Supporting evidence: the
evaporator runs warmer relative to the cabinet (less refrigerant), pull-downs after defrosts take
longer, and the cabinet makes excursions. A stopped compressor (cooling called for, no current,
mains present) or a cabinet above its food-safety limit raise the episode to critical. A power
cut is not a fault of the fridge: while mains is off, and for a pull-down period after it
returns, nothing is opened.

Two faults are told by other physics. A wearing compressor draws more and more current
(referred to 25 °C, against its own healthy level) for days before it stops. A drifting cabinet
sensor fools the thermostat, which keeps the *reading* at the setpoint while the true cabinet
warms; it shows as the gap between the reading and the resting evaporator, which settles just
below the cabinet air, moving away from the device's own level by the sensor's offset.

State is float32 where a reading's precision is all it needs; times stay int64 milliseconds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core.fridge_state import (
    CHANNELS,
    FAULT,
    VARIANTS,
    FridgeState,
    channel_matrix,
    configure,
    fold,
    folded,
)
from cloud.core.fridge_verdicts import assess
from cloud.core.kernels import F32, Float32Array, rank_within_groups
from cloud.core.types import Condition

__all__ = ["CHANNELS", "FAULT", "VARIANTS", "FridgeState", "assess", "configure", "step", "update"]


def update(state: FridgeState, batch: TelemetryBatch) -> tuple[FridgeState, Condition]:
    """Fold a batch of fridge rows into the state and assess every fridge it touched."""
    reg, bidx = state.registry.extend(batch.device_ids)
    st = replace(state, registry=reg).grown(len(reg)).copy()
    dev = bidx[batch.row_device] if batch.n_rows else np.zeros(0, dtype=np.int64)
    order, rank = rank_within_groups(dev, batch.ts_ms)
    dev_s, ts_s = dev[order], batch.ts_ms[order]
    fresh = ts_s > st.last_ts_ms[dev_s]  # late or repeated rows are stored, not re-learned
    values = channel_matrix(batch, order)
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        m = (rank == r) & fresh
        if m.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                fold(st, dev_s[m], ts_s[m], values[m])
    touched = np.zeros(len(reg), dtype=bool)
    touched[dev_s[fresh]] = True
    return st, assess(st, touched)


def step(state: FridgeState, ts_ms: int, values: Float32Array) -> tuple[FridgeState, Condition]:
    """One sample of every known fridge at ``ts_ms``: ``values[device, channel]`` in
    :data:`CHANNELS` order, NaN where a channel was not read.

    The dense path of :func:`update` for a fleet that reports in lockstep (the simulators, the
    benchmark): no id lookup, no sorting, and whole-array views instead of gathers.
    """
    n = len(state.registry)
    if values.shape != (n, len(CHANNELS)):
        raise ValueError(f"values must have shape ({n}, {len(CHANNELS)}), got {values.shape}")
    if n and int(state.last_ts_ms.max()) >= ts_ms:
        raise ValueError("step() needs a time after every device's last reading; use update()")
    t = np.full(n, ts_ms, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Every field the fold moves comes back as a new array: those are the new state's (the
        # old state is left as it was), and the configuration it does not move is shared.
        st = replace(state, **folded(state, slice(None), t, values.astype(F32, copy=False)))
    return st, assess(st, np.ones(n, dtype=bool))
