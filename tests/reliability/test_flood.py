"""A flooding device is throttled and flagged at ingest; the rest of the fleet is unaffected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.config import load_settings
from cloud.messages import RawMessage
from cloud.service import CloudService
from cloud.throttle import DeviceThrottle
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock

from .conftest import T0_MS, Fleet, run_in_thread, wait_until
from .test_malformed import publish_all

FLOOD = 2000
BURST = 50


def flood_message(seq: int) -> tuple[str, bytes]:
    ts = T0_MS - 3_600_000 + seq
    body = {"v": 1, "device_id": "fr-000099", "kind": "fridge", "seq": seq, "sent_ms": ts,
            "ts_ms": [ts], "values": {"cabinet_c": [4.0]}}  # fmt: skip
    return "forewarn/v1/fridge/fr-000099/telemetry", json.dumps(body).encode()


def test_a_flooding_device_is_throttled_and_flagged_and_the_others_are_not(
    broker: MosquittoProcess, fleet_factory: Callable[..., Fleet], tmp_path: Path
) -> None:
    clock = SimClock(T0_MS)  # receive time stands still: no bucket refills during the test
    settings = load_settings(
        data_dir=tmp_path / "cloud", mqtt_url=broker.url,
        device_max_msgs_per_s=5.0, device_burst_msgs=BURST,
    )  # fmt: skip
    service = CloudService(settings, clock_ms=clock.now_ms)
    service.start()
    fleet = fleet_factory(broker.port, 3, clock, batch_max_rows=4)
    fleet.start()
    try:
        normal = run_in_thread(lambda: fleet.feed(-120, 120, pause_s=0.01))
        publish_all(broker.port, [flood_message(s) for s in range(FLOOD)])
        normal.join(timeout=60)
        assert fleet.drain(60)
        assert wait_until(lambda: service.store.rows_stored() == fleet.submitted + BURST, 60)
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        # Every reading of the well-behaved devices is stored (30 messages each, under burst).
        assert service.store.rows_stored() == fleet.submitted + BURST
        counters = service.pipeline.counters
        assert counters.rejects_by_reason == {"throttled": FLOOD - BURST}
        flooder = service.directory.get("fr-000099")
        assert flooder is not None
        assert flooder.flagged
        assert flooder.throttled == FLOOD - BURST
        for agent in fleet.agents:
            info = service.directory.get(agent.config.device_id)
            assert info is not None
            assert not info.flagged
        # The flood leaves evidence without filling the database: one sample a minute.
        letters = service.records.dead_letters(limit=100)
        assert [(d.device_id, d.reason) for d in letters] == [("fr-000099", "throttled")]
        assert "faster than 5 messages/s" in letters[0].detail
    finally:
        fleet.stop()
        service.stop()


def test_the_bucket_refills_at_the_rate_and_keeps_one_sample_a_minute() -> None:
    throttle = DeviceThrottle(rate_per_s=2.0, burst=3)
    topic, payload = flood_message(0)

    def at(ms: int, n: int) -> tuple[int, int]:
        out = throttle.admit([RawMessage(topic, payload, ms)] * n)
        return len(out.admitted), len(out.samples)

    assert at(0, 5) == (3, 1)  # the burst, then one sample of the two dropped
    assert at(500, 3) == (1, 0)  # half a second refills one token
    assert at(1_500, 1) == (1, 0)
    assert at(30_000, 10) == (3, 0)  # refilled to the burst, not beyond; same minute
    assert at(61_000, 10) == (3, 1)  # a new minute, a new sample
    assert throttle.throttled("fr-000099") == 2 + 2 + 7 + 7
    assert throttle.throttled("fr-000001") == 0
    # Messages without a device in the topic are left for the decoder to reject.
    assert len(throttle.admit([RawMessage("bad/topic", b"", 0)] * 10).admitted) == 10
    with pytest.raises(ValueError, match="positive"):
        DeviceThrottle(rate_per_s=0)
