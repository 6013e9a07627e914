"""Ground-truth bookkeeping: which device has which fault, since when, and when it failed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from simulators.types import BoolArray, FaultLabel, IntArray

NO_FAULT = -1
NOT_YET = -1


class FaultBook:
    """At most one planned fault per device, as arrays, plus any number of episode labels.

    ``fault[device]`` indexes ``fault_names`` (``NO_FAULT`` for healthy devices);
    ``failure_ms[device]`` stays ``NOT_YET`` until :meth:`mark_failed` sees the failure.
    """

    def __init__(
        self,
        kind: str,
        device_ids: Sequence[str],
        fault_names: Sequence[str],
        fault: IntArray,
        onset_ms: IntArray,
        component: Sequence[str | None] | None = None,
    ) -> None:
        self.kind = kind
        self.device_ids = tuple(device_ids)
        self.fault_names = tuple(fault_names)
        self.fault = fault
        self.onset_ms = onset_ms
        self.failure_ms = np.full(fault.shape[0], NOT_YET, dtype=np.int64)
        self.component = tuple(component) if component is not None else (None,) * fault.shape[0]
        self.episodes: list[FaultLabel] = []
        self.now_ms: int | None = None

    def has(self, name: str) -> BoolArray:
        """Devices planned to get fault ``name`` (whether or not it has started yet)."""
        planned: BoolArray = self.fault == self.fault_names.index(name)
        return planned

    def active(self, ts_ms: int) -> BoolArray:
        """Devices whose fault has started by ``ts_ms``."""
        started: BoolArray = (self.fault != NO_FAULT) & (self.onset_ms <= ts_ms)
        return started

    def mark_failed(self, failing: BoolArray, ts_ms: int) -> BoolArray:
        """Record ``ts_ms`` as the failure time of active faults that fail now for the first time.

        Returns the devices whose failure was recorded by this call.
        """
        new = np.zeros(failing.shape[0], dtype=np.bool_)
        candidates = np.flatnonzero(failing)
        if candidates.size:
            fresh = (
                (self.fault[candidates] != NO_FAULT)
                & (self.onset_ms[candidates] <= ts_ms)
                & (self.failure_ms[candidates] == NOT_YET)
            )
            hit = candidates[fresh]
            self.failure_ms[hit] = ts_ms
            new[hit] = True
        return new

    def mark_failed_devices(self, devices: IntArray, ts_ms: int) -> None:
        """:meth:`mark_failed` for the devices listed in ``devices``."""
        if devices.size:
            fresh = (
                (self.fault[devices] != NO_FAULT)
                & (self.onset_ms[devices] <= ts_ms)
                & (self.failure_ms[devices] == NOT_YET)
            )
            self.failure_ms[devices[fresh]] = ts_ms

    def add_episode(
        self, device: int, fault: str, onset_ms: int, failure_ms: int | None, component: str | None
    ) -> None:
        self.episodes.append(
            FaultLabel(self.device_ids[device], self.kind, fault, onset_ms, failure_ms, component)
        )

    def labels(self) -> list[FaultLabel]:
        """Every fault that has started so far, planned ones first (in device order)."""
        if self.now_ms is None:
            return []
        started = np.flatnonzero(self.active(self.now_ms))
        planned = [
            FaultLabel(
                device_id=self.device_ids[i],
                kind=self.kind,
                fault=self.fault_names[self.fault[i]],
                onset_ms=int(self.onset_ms[i]),
                failure_ms=None if self.failure_ms[i] == NOT_YET else int(self.failure_ms[i]),
                component=self.component[i],
            )
            for i in started
        ]
        return planned + list(self.episodes)


def assign_faults(
    n: int, fault_share: float, weights: Sequence[float], rng: np.random.Generator
) -> IntArray:
    """Pick ``round(fault_share * n)`` devices and give each a fault drawn with ``weights``."""
    if not 0.0 <= fault_share <= 1.0:
        raise ValueError(f"fault_share must be within [0, 1], got {fault_share}")
    fault = np.full(n, NO_FAULT, dtype=np.int64)
    n_faulty = round(fault_share * n)
    chosen = rng.choice(n, size=n_faulty, replace=False)
    p = np.asarray(weights, dtype=np.float64)
    fault[chosen] = rng.choice(p.shape[0], size=n_faulty, p=p / p.sum())
    return fault


def fault_weights(
    names: Sequence[str], weights: Mapping[str, float] | None, default: Sequence[float]
) -> tuple[float, ...]:
    """Relative weights of ``names`` from ``weights`` (missing names weigh 0), else ``default``.

    Raises ``ValueError`` naming the offending key for an unknown fault or a weight that is not
    a finite non-negative number, and when every weight is 0.
    """
    if weights is None:
        return tuple(default)
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(names)}")
    for name, w in weights.items():
        if not (isinstance(w, int | float) and math.isfinite(w) and w >= 0):
            raise ValueError(f"fault weight {name!r} must be a finite number >= 0, got {w!r}")
    chosen = tuple(float(weights.get(name, 0.0)) for name in names)
    if sum(chosen) <= 0:
        raise ValueError(f"at least one fault weight must be positive, got {dict(weights)}")
    return chosen
