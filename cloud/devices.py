"""The device directory: what the cloud knows about each device and whether it is online."""

from __future__ import annotations

import threading
from collections.abc import Iterable
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
    throttled: int = 0  # messages dropped for exceeding the per-device rate: flagged if > 0

    @property
    def flagged(self) -> bool:
        """The device sent faster than any healthy device does (a fault, or a clone)."""
        return self.throttled > 0

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
        "last_seen_ms", "model", "presence", "presence_reason", "readings", "throttled",
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
        self.throttled = 0

    def snapshot(self) -> DeviceInfo:
        return DeviceInfo(
            self.device_id, self.kind, self.first_seen_ms, self.last_seen_ms, self.readings,
            self.presence, self.presence_reason, self.fw, self.model, self.batch_interval_s,
            dict(self.attributes), self.throttled,
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
        self.saw_data_many(((kind, device_id, first_ts_ms, last_ts_ms, rows),))

    def saw_data_many(self, seen: Iterable[tuple[str, str, int, int, int]]) -> None:
        """``saw_data`` for many under one lock: ``(kind, device_id, first, last, rows)`` each."""
        with self._lock:
            devices = self._devices
            for kind, device_id, first_ts_ms, last_ts_ms, rows in seen:
                dev = devices.get(device_id)
                if dev is None:
                    dev = devices[device_id] = _Device(kind, device_id, first_ts_ms)
                if first_ts_ms < dev.first_seen_ms:
                    dev.first_seen_ms = first_ts_ms
                if last_ts_ms > dev.last_seen_ms:
                    dev.last_seen_ms = last_ts_ms
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

    def restore(self, devices: Iterable[DeviceInfo]) -> None:
        """Replace what the directory knows with saved records (a snapshot after a restart)."""
        restored: dict[str, _Device] = {}
        for info in devices:
            dev = _Device(info.kind, info.device_id, info.first_seen_ms)
            dev.last_seen_ms, dev.readings = info.last_seen_ms, info.readings
            dev.presence, dev.presence_reason = info.presence, info.presence_reason
            dev.fw, dev.model = info.fw, info.model
            dev.batch_interval_s, dev.attributes = info.batch_interval_s, dict(info.attributes)
            dev.throttled = info.throttled
            restored[info.device_id] = dev
        with self._lock:
            self._devices = restored

    def saw_throttled(self, kind: str, device_id: str, count: int, now_ms: int) -> None:
        """Flag a device whose messages exceeded its rate (``count`` more were dropped)."""
        with self._lock:
            self._get(kind, device_id, now_ms).throttled += count

    def last_seen(self, device_ids: Iterable[str]) -> dict[str, int]:
        """Newest data or status time of each known device among ``device_ids``."""
        with self._lock:
            found = ((d, self._devices.get(d)) for d in device_ids)
            return {d: dev.last_seen_ms for d, dev in found if dev is not None}

    def get(self, device_id: str) -> DeviceInfo | None:
        with self._lock:
            dev = self._devices.get(device_id)
            return None if dev is None else dev.snapshot()

    def all(self) -> list[DeviceInfo]:
        with self._lock:
            return [self._devices[k].snapshot() for k in sorted(self._devices)]
