"""A simulation clock shared by the simulated devices and the cloud in accelerated time."""

from __future__ import annotations

import threading


class SimClock:
    """Data time in UTC milliseconds, moved forward by the simulation driver only."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def set(self, ts_ms: int) -> None:
        with self._lock:
            self._now = max(self._now, ts_ms)
