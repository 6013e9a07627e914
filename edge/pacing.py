"""Pacing for outbox replay: a token bucket."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """At most ``burst + rate_per_s * t`` takes in any span of ``t`` seconds.

    Not thread-safe: the agent uses it only while holding its pump lock. Time is the monotonic
    clock, not the device clock: the bucket protects a real broker even when the device clock
    of a simulation runs faster than real time.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._monotonic_s = monotonic_s
        self._tokens = float(burst)
        self._last_s = monotonic_s()

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` whole tokens; returns how many were taken (maybe 0)."""
        self._refill()
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return max(granted, 0)

    def give_back(self, count: int) -> None:
        """Return tokens taken but not used."""
        self._tokens = min(float(self.burst), self._tokens + count)

    def seconds_until_token(self) -> float:
        """Seconds until at least one whole token is available (0 if one is)."""
        self._refill()
        return max(0.0, (1.0 - self._tokens) / self.rate_per_s)

    def _refill(self) -> None:
        now_s = self._monotonic_s()
        elapsed_s = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        self._tokens = min(float(self.burst), self._tokens + elapsed_s * self.rate_per_s)
