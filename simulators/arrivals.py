"""Poisson arrivals (door openings) of a whole fleet with a time-varying rate, by time change."""

from __future__ import annotations

import numpy as np

from simulators.types import FloatArray, IntArray


class Arrivals:
    """A non-homogeneous Poisson process per device, advanced one sample at a time.

    Each device accumulates its integrated rate; an arrival happens whenever that crosses the
    next unit-exponential threshold (the time-change construction of a Poisson process). A step
    costs one add and one compare over the fleet; random numbers are drawn only for the few
    devices with an arrival, unlike a Poisson draw per device and sample.
    """

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self._rng = rng
        self._integrated = np.zeros(n)
        self._next = rng.exponential(1.0, size=n)

    def advance(self, rate_per_s: FloatArray, dt_s: float) -> tuple[IntArray, IntArray]:
        """Add ``rate_per_s · dt_s`` expected arrivals; return devices with arrivals and counts.

        The devices come in increasing order, each once, with its count (at least 1).
        """
        self._integrated += rate_per_s * dt_s
        who = np.flatnonzero(self._integrated >= self._next)
        counts = np.zeros(who.shape[0], dtype=np.int64)
        pending = np.arange(who.shape[0])
        while pending.size:
            counts[pending] += 1
            devices = who[pending]
            self._next[devices] += self._rng.exponential(1.0, size=devices.shape[0])
            pending = pending[self._integrated[devices] >= self._next[devices]]
        return who, counts
