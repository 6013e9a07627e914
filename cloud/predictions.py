"""The latest prediction of every root cause, as the decisions stage last stated it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from cloud.decision_types import Decision


class PredictionBoard:
    """Keeps the newest ``Decision`` per device and fault (thread-safe: ingest writes, API reads).

    A decision carries the score, the ETA with its 80 % interval and the per-signal
    contributions, so this is what the API shows as a device's current predictions.
    ``version`` grows with every change, for clients that wait for news.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, str], Decision] = {}
        self.version = 0

    def record(self, decisions: Sequence[Decision]) -> None:
        with self._lock:
            for d in decisions:
                key = (d.device_id, d.fault)
                old = self._latest.get(key)
                if old is None or d.ts_ms >= old.ts_ms:
                    self._latest[key] = d
            self.version += 1

    def for_device(self, device_id: str) -> list[Decision]:
        with self._lock:
            found = [d for (dev, _f), d in self._latest.items() if dev == device_id]
        return sorted(found, key=lambda d: (-d.score, d.fault))

    def all(self) -> list[Decision]:
        """Newest data first."""
        with self._lock:
            found = list(self._latest.values())
        return sorted(found, key=lambda d: (-d.ts_ms, d.device_id, d.fault))
