"""Offline is decided by the device's own reporting interval, not by its TCP connection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cloud.config import load_settings
from cloud.devices import OFFLINE_AFTER_BATCHES
from cloud.service import CloudService
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock

from .conftest import T0_MS, Fleet, fridge_row, wait_until

BATCH_INTERVAL_S = 300


def online(service: CloudService, device_id: str, now_ms: int) -> bool:
    info = service.directory.get(device_id)
    assert info is not None, device_id
    return info.online(now_ms)


def presence(service: CloudService, device_id: str) -> str:
    info = service.directory.get(device_id)
    return info.presence if info is not None else "unknown"


def test_a_connected_but_silent_device_goes_offline_and_comes_back_with_data_or_birth(
    broker: MosquittoProcess, fleet_factory: Callable[..., Fleet], tmp_path: Path
) -> None:
    clock = SimClock(T0_MS)
    service = CloudService(
        load_settings(data_dir=tmp_path / "cloud", mqtt_url=broker.url), clock_ms=clock.now_ms
    )
    service.start()
    fleet = fleet_factory(broker.port, 2, clock, batch_interval_s=BATCH_INTERVAL_S)
    fleet.start()
    silent, chatty = fleet.agents
    try:
        fleet.feed(0, 10)
        assert fleet.drain(30)
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)
        info = service.directory.get(silent.config.device_id)
        assert info is not None
        assert info.batch_interval_s == BATCH_INTERVAL_S  # from the device's birth message
        last_ms = info.last_seen_ms
        limit_ms = OFFLINE_AFTER_BATCHES * BATCH_INTERVAL_S * 1000
        # The silent device keeps its connection (keepalive pings) but sends nothing more.
        for minute in range(10, 10 + limit_ms // 60_000 + 2):
            ts = T0_MS + minute * 60_000
            clock.set(ts)
            chatty.submit(ts, fridge_row(minute))
        assert chatty.wait_drained(30)
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)
        now = clock.now_ms()
        assert now - last_ms > limit_ms
        assert silent.stats.connected, "the TCP connection is still up"
        assert not online(service, silent.config.device_id, now)
        assert online(service, chatty.config.device_id, now)
        # Just inside the interval it was online: the limit is the device's, not a constant.
        assert online(service, silent.config.device_id, last_ms + limit_ms)

        # Back online with its next reading.
        silent.submit(now, fridge_row(0))
        silent.flush()
        assert silent.wait_drained(30)
        assert wait_until(
            lambda: online(service, silent.config.device_id, clock.now_ms()),
            30,
        )

        # Gone (its last will), then back with a birth message alone, before any data.
        silent.stop(graceful=False)
        assert wait_until(
            lambda: presence(service, silent.config.device_id) == "offline",
            30,
        )
        assert not online(service, silent.config.device_id, clock.now_ms())
        clock.set(clock.now_ms() + 3_600_000)
        again = fleet_factory(broker.port, 1, clock, batch_interval_s=BATCH_INTERVAL_S)
        again.start()
        assert wait_until(
            lambda: online(service, silent.config.device_id, clock.now_ms()),
            30,
        )
        assert again.agents[0].stats.readings_submitted == 0
    finally:
        fleet.stop()
        service.stop()
