"""The device directory: what the cloud knows about each device and whether it is online."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final

from cloud.wire import Status

DEFAULT_BATCH_INTERVAL_S: Final = 600
OFFLINE_AFTER_BATCHES: Final = 3


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    kind: str
    first_seen_ms: int
    last_seen_ms: int  # data time of the newest reading or status
    readings: int
    presence: str  # what the device last said: online | offline
    presence_reason: str | None
    fw: str | None
    model: str | None
    batch_interval_s: int
    attributes: dict[str, object]

    def online(self, now_ms: int) -> bool:
        """Online means data arrived within three reporting intervals, whatever the TCP
        connection says; an explicit offline status (last will, shutdown) is believed at once."""
        if self.presence == "offline":
            return False
        limit_ms = OFFLINE_AFTER_BATCHES * self.batch_interval_s * 1000
        return now_ms - self.last_seen_ms <= limit_ms


class _Device:
    """The directory's own mutable record (updated in place on the ingest hot path)."""

    __slots__ = (
        "attributes", "batch_interval_s", "device_id", "first_seen_ms", "fw", "kind",
        "last_seen_ms", "model", "presence", "presence_reason", "readings",
    )  # fmt: skip

    def __init__(self, kind: str, device_id: str, ts_ms: int) -> None:
        self.device_id, self.kind = device_id, kind
        self.first_seen_ms = self.last_seen_ms = ts_ms
        self.readings = 0
        self.presence = "online"
        self.presence_reason: str | None = None
        self.fw: str | None = None
        self.model: str | None = None
        self.batch_interval_s = DEFAULT_BATCH_INTERVAL_S
        self.attributes: dict[str, object] = {}

    def snapshot(self) -> DeviceInfo:
        return DeviceInfo(
            self.device_id, self.kind, self.first_seen_ms, self.last_seen_ms, self.readings,
            self.presence, self.presence_reason, self.fw, self.model, self.batch_interval_s,
            dict(self.attributes),
        )  # fmt: skip


class DeviceDirectory:
    """Thread-safe: the ingest worker writes, the API reads (snapshots)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}

    def _get(self, kind: str, device_id: str, ts_ms: int) -> _Device:
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = _Device(kind, device_id, ts_ms)
        return dev

    def saw_data(
        self, kind: str, device_id: str, first_ts_ms: int, last_ts_ms: int, rows: int
    ) -> None:
        with self._lock:
            dev = self._get(kind, device_id, first_ts_ms)
            dev.first_seen_ms = min(dev.first_seen_ms, first_ts_ms)
            dev.last_seen_ms = max(dev.last_seen_ms, last_ts_ms)
            dev.readings += rows
            dev.presence, dev.presence_reason = "online", None

    def saw_status(self, status: Status, now_ms: int) -> None:
        ts = status.ts_ms if status.ts_ms is not None else now_ms
        with self._lock:
            dev = self._get(status.kind, status.device_id, ts)
            if status.state == "online":
                dev.presence, dev.presence_reason = "online", None
                dev.last_seen_ms = max(dev.last_seen_ms, ts)
                dev.fw = status.fw or dev.fw
                dev.model = status.model or dev.model
                dev.batch_interval_s = status.batch_interval_s or dev.batch_interval_s
                dev.attributes = dict(status.attributes) or dev.attributes
            else:
                dev.presence, dev.presence_reason = "offline", status.reason

    def get(self, device_id: str) -> DeviceInfo | None:
        with self._lock:
            dev = self._devices.get(device_id)
            return None if dev is None else dev.snapshot()

    def all(self) -> list[DeviceInfo]:
        with self._lock:
            return [self._devices[k].snapshot() for k in sorted(self._devices)]
