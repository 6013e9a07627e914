"""Labelled scenarios for the core's tests: simulated fleets through the real core, with truth.

A run steps one simulated fleet, folds every step into the core as a ``TelemetryBatch``, and
keeps each scorer's score per unit and step. Afterwards each unit and step gets a label from the
simulator's ground truth: 1 while the unit has a fault of the scorer's family (from onset to
the end of the run: nothing repairs it), 0 otherwise; for the restock scorer, 1 when one of
the machine's slots is empty at some time within the restock horizon (from the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core import fleet, vending
from cloud.core.types import Condition
from simulators.fridge import FridgeFleet
from simulators.types import FaultLabel, StepOutput
from simulators.tyres import TyreFleet
from simulators.vending import VendingFleet

DAY_MS = 86_400_000
T0_MS = 1_767_571_200_000  # 2026-01-05T00:00Z, a Monday
# simulator fault → the scorer that should answer it
FAMILY = {
    "refrigerant_leak": "fridge.cooling",
    "condenser_fouling": "fridge.cooling",
    "compressor_failure": "fridge.cooling",
    "door_gasket_leak": "fridge.cooling",
    "defrost_heater_failure": "fridge.cooling",
    "slow_leak": "tyres.pressure",
    "valve_leak": "tyres.pressure",
    "puncture": "tyres.pressure",
    "tread_wear": "tyres.tread",
    "tpms_battery": "tyres.tpms_battery",
    "jammed_coil": "vending.jammed_coil",
    "cooling_failure": "vending.cooling",
    "payment_reader": "vending.payment_reader",
}
FLEETS = {"fridge": FridgeFleet, "tyres": TyreFleet, "vending": VendingFleet}


def to_batch(out: StepOutput, device_ids: tuple[str, ...], seq: int) -> TelemetryBatch:
    n = out.values.shape[0]
    return TelemetryBatch(
        kind=out.kind,
        device_ids=device_ids,
        channels=out.channels,
        row_device=np.arange(n, dtype=np.int64),
        row_seq=np.full(n, seq, dtype=np.int64),
        ts_ms=np.full(n, out.ts_ms, dtype=np.int64),
        values=out.values.copy(),
    )


def simulate(
    kind: str, n: int, days: float, dt_s: float, seed: int, fault_share: float = 0.5
) -> tuple[list[TelemetryBatch], list[FaultLabel], list[dict[str, object]]]:
    """Batches (one per step), ground truth and birth attributes of a simulated fleet."""
    rng = np.random.default_rng(seed)
    sim = FLEETS[kind](n, T0_MS, rng, fault_share, int(days * DAY_MS))
    ids = tuple(spec.device_id for spec in sim.devices)
    steps = round(days * 86_400 / dt_s)
    batches = [
        to_batch(sim.step(T0_MS + round(k * dt_s * 1000), dt_s), ids, k)
        for k in range(1, steps + 1)
    ]
    return batches, sim.labels(), [dict(spec.attributes) for spec in sim.devices]


def configured(
    kind: str, ids: tuple[str, ...], attributes: list[dict[str, object]]
) -> fleet.FleetState:
    state = fleet.FleetState.empty()
    for device_id, attrs in zip(ids, attributes, strict=True):
        state = fleet.configure(state, kind, device_id, attrs)
    return state


@dataclass
class ScoreLog:
    """Scores per step and unit for one scorer, with the units' identity."""

    ts_ms: list[int] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    last: Condition | None = None

    def add(self, cond: Condition) -> None:
        self.ts_ms.append(int(cond.ts_ms.max()) if cond.n_units else 0)
        self.scores.append(np.asarray(cond.score, dtype=np.float64).copy())
        self.last = cond


def run_core(
    kind: str, batches: list[TelemetryBatch], attributes: list[dict[str, object]]
) -> tuple[fleet.FleetState, dict[str, ScoreLog]]:
    state = configured(kind, batches[0].device_ids, attributes)
    logs: dict[str, ScoreLog] = {}
    for batch in batches:
        state, conds = fleet.update(state, batch)
        for cond in conds:
            logs.setdefault(cond.fault, ScoreLog()).add(cond)
    return state, logs


def empty_within(batches: list[TelemetryBatch], horizon_ms: int) -> np.ndarray:
    """``out[step, machine]``: a slot of the machine is empty at some time in [t, t + horizon]."""
    b0 = batches[0]
    cols = [i for i, c in enumerate(b0.channels) if c.startswith("slot.") and c.endswith(".stock")]
    empty = np.stack([np.nanmin(b.values[:, cols], axis=1) <= 0 for b in batches])
    ts = np.array([int(b.ts_ms.max()) for b in batches])
    out = np.zeros_like(empty)
    for k in range(ts.shape[0]):
        end = np.searchsorted(ts, ts[k] + horizon_ms, side="right")
        out[k] = empty[k:end].any(axis=0)
    return out


def label_matrix(
    log: ScoreLog,
    device_ids: tuple[str, ...],
    labels: list[FaultLabel],
    fault: str,
    batches: list[TelemetryBatch] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores[step, unit], truth[step, unit])`` over the steps where every unit existed.

    The restock scorer's truth comes from the data (``batches``): a slot of the machine is
    empty within the restock horizon.
    """
    cond = log.last
    if cond is None:
        raise ValueError("no condition was logged")
    n_units = cond.n_units
    rows = [i for i, s in enumerate(log.scores) if s.shape[0] == n_units]
    scores = np.stack([log.scores[i] for i in rows])
    ts = np.array([log.ts_ms[i] for i in rows], dtype=np.int64)
    truth = np.zeros_like(scores, dtype=bool)
    keys = [(device_ids[int(cond.unit_device[u])], cond.unit_label[u]) for u in range(n_units)]
    index = {key: u for u, key in enumerate(keys)}
    if fault == vending.RESTOCK_FAULT:
        if batches is None:
            raise ValueError("the restock truth needs the batches")
        empty = empty_within(batches, vending.RESTOCK_HORIZON_H * 3_600_000)
        by_id = {d: i for i, d in enumerate(batches[0].device_ids)}
        step = {int(b.ts_ms.max()): k for k, b in enumerate(batches)}
        at = np.array([step[int(t)] for t in ts])
        for (device_id, _), u in index.items():
            truth[:, u] = empty[at, by_id[device_id]]
        return scores, truth
    for lb in labels:
        if FAMILY.get(lb.fault) != fault:
            continue
        label = lb.component or ""
        u = index.get((lb.device_id, label if (lb.device_id, label) in index else ""))
        if u is None:
            continue
        truth[:, u] |= ts >= lb.onset_ms  # faults persist: nothing repairs them in a run
    return scores, truth


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with ties averaged)."""
    s = scores.ravel()
    y = truth.ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need positives and negatives")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.shape[0])
    sorted_s = s[order]
    # average ranks of ties
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.shape[0]]
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
