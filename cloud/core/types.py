"""Values the core hands to the decision policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloud.core.kernels import (
    AnyFloatArray,
    BoolArray,
    Float32Array,
    FloatArray,
    IntArray,
    fmax,
    select,
)

SEVERITY_NAMES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Condition:
    """One detector's verdict over all its units after an update.

    A unit is what a fault belongs to: a fridge, one tyre of a vehicle, one vending machine.
    ``touched`` marks the units that received data in this update; the policy only moves the
    episode state of touched units, so a silent device neither opens nor closes an episode.
    ``eta_ms`` and its 80 % interval are NaN where the detector makes no time prediction.
    ``contributions[u, k]`` is the share of ``signals[k]`` in unit ``u``'s score.
    """

    fault: str
    unit_device: IntArray
    unit_label: tuple[str, ...]
    touched: BoolArray
    active: BoolArray
    severity: IntArray
    score: AnyFloatArray
    ts_ms: IntArray
    eta_ms: FloatArray
    eta_lo_ms: FloatArray
    eta_hi_ms: FloatArray
    signals: tuple[str, ...]
    contributions: AnyFloatArray
    unit_key: IntArray | None = None  # stable id of each unit across updates (default: device)
    notes: dict[int, str] | None = None  # extra text for a few active units, keyed by unit
    note_name: str = "note"  # what the notes are (``pick_list``, ``tread``)
    reason: IntArray | None = None  # index into ``reason_names`` per unit: why it is active
    reason_names: tuple[str, ...] = ()

    def reason_of(self, unit: int) -> str:
        if self.reason is None or not self.reason_names:
            return ""
        return self.reason_names[int(self.reason[unit])]

    def keys(self) -> IntArray:
        return self.unit_device if self.unit_key is None else self.unit_key

    @property
    def n_units(self) -> int:
        return int(self.unit_device.shape[0])


def no_eta(n: int) -> FloatArray:
    return np.full(n, np.nan)


def normalise_contributions(raw: AnyFloatArray) -> AnyFloatArray:
    """Rows of non-negative evidence → shares that sum to 1 (zeros stay zeros), same dtype.

    NaN and negative evidence count as none. Infinite evidence (a t statistic over a zero
    standard error, a ratio over a zero baseline) takes the whole share, split equally where
    a row has more than one, instead of turning the row into NaN.

    >>> normalise_contributions(np.array([[1.0, 3.0], [np.inf, 2.0], [np.nan, -1.0]])).tolist()
    [[0.25, 0.75], [1.0, 0.0], [0.0, 0.0]]
    """
    raw = fmax(raw, 0)
    infinite = np.isinf(raw)
    rows = infinite.any(axis=1)
    if rows.any():  # the infinite pieces share the row equally, the finite ones get none
        raw[rows] = infinite[rows]
    total = raw.sum(axis=1, keepdims=True)
    out: AnyFloatArray = raw / np.where(total > 0, total, 1)
    return out


def column_shares(evidence: Sequence[AnyFloatArray]) -> Float32Array:
    """:func:`normalise_contributions` of the columns ``evidence``, given one signal at a
    time: ``out[unit, signal]``, rows summing to 1 (NaN and negative evidence count as none,
    infinite evidence takes the whole share, all-zero rows stay zero), float32.

    Summing the columns one by one and writing each share once needs a single ``(n, signals)``
    array instead of four, which at fleet scale is most of the cost of the normalisation. That
    array is the transpose of a signal-major one (column-major): each share is then written
    in one contiguous pass, where writing it into every eighth float took most of the time.

    >>> column_shares([np.array([1.0, 0.0, np.inf]), np.array([3.0, np.nan, 2.0])]).tolist()
    [[0.25, 0.75], [0.0, 0.0], [1.0, 0.0]]
    """
    parts = [fmax(e, 0) for e in evidence]
    total = parts[0].astype(np.float32)
    for p in parts[1:]:
        total += p
    if total.size and total.max() == np.inf:  # rare: one pass to find out, then the few rows
        rows = np.flatnonzero(total == np.inf)
        for p in parts:  # the infinite pieces share the row equally, the finite ones get none
            p[rows] = p[rows] == np.inf
        total[rows] = sum(p[rows] for p in parts)
    scale = 1 / select(total > 0, total, np.float32(1))
    by_signal = np.empty((len(parts), total.shape[0]), dtype=np.float32)
    for j, p in enumerate(parts):
        np.multiply(p, scale, out=by_signal[j])
    out: Float32Array = by_signal.T
    return out
