"""A broker killed with SIGKILL and restarted mid-stream loses no reading and stores none twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloud.config import load_settings
from cloud.service import CloudService
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock

from .conftest import T0_MS, Fleet, run_in_thread, stored_seqs, wait_until


def test_broker_killed_and_restarted_twice_mid_stream_loses_and_doubles_nothing(
    durable_broker: MosquittoProcess, fleet_factory: Callable[..., Fleet], tmp_path: Path
) -> None:
    clock = SimClock(T0_MS)
    data_dir = tmp_path / "cloud"
    service = CloudService(
        load_settings(data_dir=data_dir, mqtt_url=durable_broker.url), clock_ms=clock.now_ms
    )
    service.start()
    fleet = fleet_factory(durable_broker.port, 4, clock)
    fleet.start()
    try:
        feeder = run_in_thread(lambda: fleet.feed(0, 150, pause_s=0.02))
        for _ in range(2):
            time.sleep(0.8)  # mid-stream: agents publish, the cloud consumes
            durable_broker.stop(kill=True)
            time.sleep(0.5)  # agents keep sampling into their outboxes meanwhile
            durable_broker.start()
        feeder.join(timeout=60)
        assert not feeder.is_alive()
        assert fleet.drain(60), [a.stats for a in fleet.agents]
        assert wait_until(lambda: service.pipeline.counters.readings_stored >= 600, 60)
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        assert fleet.submitted == 600
        counters = service.pipeline.counters
        # Every reading stored once: the store's row count equals what the devices read.
        assert service.store.rows_stored() == fleet.submitted
        assert counters.readings_stored == fleet.submitted
        seqs = stored_seqs(data_dir)
        assert sorted(seqs) == [a.config.device_id for a in fleet.agents]
        for agent in fleet.agents:
            # each device's messages are all there, each once, with no gap in seq
            sent = agent.stats.messages_acked
            assert seqs[agent.config.device_id] == list(range(sent)), agent.config.device_id
            assert agent.stats.dropped == 0
        assert counters.rejects_by_reason == {}
    finally:
        fleet.stop()
        service.stop()
