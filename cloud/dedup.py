"""Duplicate detection on ``(device_id, seq)`` for at-least-once delivery."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

WINDOW: Final = 4096


@dataclass(slots=True)
class _DeviceSeqs:
    highest: int = -1
    recent: set[int] = field(default_factory=set)
    order: deque[int] = field(default_factory=deque)


class SeqDeduper:
    """Remembers the last ``window`` sequence numbers of each device.

    Devices publish in ``seq`` order, so a redelivery is almost always recent; a seq that is
    older than the window is also treated as already seen. Memory per device is bounded by the
    window. The telemetry store is idempotent on ``(device_id, seq)`` as well, so this is the fast
    path and the counter of duplicates, not the only guard.
    """

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._devices: dict[str, _DeviceSeqs] = {}
        self.duplicates = 0

    def seen(self, device_id: str, seq: int) -> bool:
        """True if ``(device_id, seq)`` was accepted before; otherwise remember it."""
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = _DeviceSeqs()
        if seq in dev.recent or seq <= dev.highest - self.window:
            self.duplicates += 1
            return True
        dev.recent.add(seq)
        dev.order.append(seq)
        if len(dev.order) > self.window:
            dev.recent.discard(dev.order.popleft())
        dev.highest = max(dev.highest, seq)
        return False

    def forget(self, device_id: str, seq: int) -> None:
        """Undo ``seen`` for a message whose processing failed, so its redelivery is accepted."""
        dev = self._devices.get(device_id)
        if dev is not None:
            dev.recent.discard(seq)
