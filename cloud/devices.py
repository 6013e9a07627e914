"""The device directory: what the cloud knows about each device and whether it is online."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
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


class DeviceDirectory:
    """Thread-safe: the ingest worker writes, the API reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceInfo] = {}

    def _get(self, kind: str, device_id: str, ts_ms: int) -> DeviceInfo:
        info = self._devices.get(device_id)
        if info is None:
            info = DeviceInfo(
                device_id, kind, ts_ms, ts_ms, 0, "online", None, None, None,
                DEFAULT_BATCH_INTERVAL_S, {},
            )  # fmt: skip
        return info

    def saw_data(
        self, kind: str, device_id: str, first_ts_ms: int, last_ts_ms: int, rows: int
    ) -> None:
        with self._lock:
            info = self._get(kind, device_id, first_ts_ms)
            self._devices[device_id] = replace(
                info,
                first_seen_ms=min(info.first_seen_ms, first_ts_ms),
                last_seen_ms=max(info.last_seen_ms, last_ts_ms),
                readings=info.readings + rows,
                presence="online",
                presence_reason=None,
            )

    def saw_status(self, status: Status, now_ms: int) -> None:
        ts = status.ts_ms if status.ts_ms is not None else now_ms
        with self._lock:
            info = self._get(status.kind, status.device_id, ts)
            if status.state == "online":
                info = replace(
                    info,
                    presence="online",
                    presence_reason=None,
                    last_seen_ms=max(info.last_seen_ms, ts),
                    fw=status.fw or info.fw,
                    model=status.model or info.model,
                    batch_interval_s=status.batch_interval_s or info.batch_interval_s,
                    attributes=dict(status.attributes) or info.attributes,
                )
            else:
                info = replace(info, presence="offline", presence_reason=status.reason)
            self._devices[status.device_id] = info

    def get(self, device_id: str) -> DeviceInfo | None:
        with self._lock:
            return self._devices.get(device_id)

    def all(self) -> list[DeviceInfo]:
        with self._lock:
            return sorted(self._devices.values(), key=lambda d: d.device_id)
