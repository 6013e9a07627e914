"""A device offline for six simulated hours buffers on disk, replays in order at a bounded rate,
and the cloud raises no stale alarm from the back-filled data (but does for a fault that lasts)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cloud.config import load_settings
from cloud.service import CloudService
from edge.agent import AgentConfig, EdgeAgent
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock
from tests.edge.conftest import Observer, first_arrivals

from .conftest import T0_MS, TcpProxy, fridge_row, wait_until
from .test_offline import online

STEP_MS = 60_000
OUTAGE_FROM, OUTAGE_TO = 120, 480  # minutes: six hours without a network
RATE, BURST = 20.0, 5


def warm(device: str, minute: int) -> bool:
    if device == "fr-000001":  # a food-safety excursion during the outage, over long before
        return 180 <= minute < 330
    if device == "fr-000003":  # one that began during the outage and still lasts
        return minute >= 390
    return False


def test_six_hours_offline_replays_in_order_at_a_bounded_rate_without_stale_alarms(
    broker: MosquittoProcess, proxy_factory: Callable[[int], TcpProxy], tmp_path: Path
) -> None:
    clock = SimClock(T0_MS)
    service = CloudService(
        load_settings(data_dir=tmp_path / "cloud", mqtt_url=broker.url), clock_ms=clock.now_ms
    )
    service.start()
    proxy = proxy_factory(broker.port)
    observer = Observer(broker.port)
    agents: dict[str, EdgeAgent] = {}
    for device in ("fr-000001", "fr-000002", "fr-000003"):
        behind_proxy = device != "fr-000002"
        agents[device] = EdgeAgent(
            AgentConfig(
                device_id=device, kind="fridge", outbox_path=tmp_path / f"{device}.outbox",
                port=proxy.port if behind_proxy else broker.port, batch_max_rows=10,
                outbox_durability="normal", replay_rate_msgs_per_s=RATE, replay_burst=BURST,
                reconnect_min_s=0.2, reconnect_max_s=0.3,
                attributes={"variant": "household", "setpoint_c": 4.0},
            ),
            clock_ms=clock.now_ms,
        )  # fmt: skip
    for agent in agents.values():
        agent.start()
    submitted = 0

    def feed(first: int, last: int) -> None:
        nonlocal submitted
        for minute in range(first, last):
            ts = T0_MS + minute * STEP_MS
            clock.set(ts)
            for device, agent in agents.items():
                row = fridge_row(minute, warm(device, minute))
                agent.submit(ts, row)
                submitted += 1

    try:
        feed(0, OUTAGE_FROM)
        assert all(a.wait_drained(30) for a in agents.values())
        proxy.cut()
        feed(OUTAGE_FROM, OUTAGE_TO)
        for agent in agents.values():
            agent.flush()
        buffered = agents["fr-000001"].stats.outbox_depth
        assert buffered >= 35, "six hours of readings wait in the outbox on disk"
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)
        now = clock.now_ms()
        # Offline by the reporting interval, whatever else happened.
        assert not online(service, "fr-000001", now)
        assert online(service, "fr-000002", now)
        assert service.actions.tickets() == []
        replay_started = time.monotonic()
        proxy.restore()
        assert all(a.wait_drained(60) for a in agents.values())
        replay_s = time.monotonic() - replay_started
        feed(OUTAGE_TO, OUTAGE_TO + 60)  # live again, the second device still warm
        for agent in agents.values():
            agent.flush()
        assert all(a.wait_drained(30) for a in agents.values())
        assert wait_until(lambda: service.pipeline.counters.readings_stored == submitted, 30)
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)

        # Nothing lost, nothing twice.
        assert service.store.rows_stored() == submitted
        # In order: the replay delivered the backlog by increasing seq.
        arrived = [m for m in observer.of("telemetry") if "fr-000001" in m.topic]
        order = first_arrivals(arrived)
        assert order == sorted(order)
        assert len(order) == agents["fr-000001"].stats.messages_acked
        # At a bounded rate: the token bucket lets BURST through, then RATE per second.
        assert replay_s >= (buffered - BURST) / RATE * 0.9
        # No stale alarm: the excursion that ended hours before the device came back opens
        # no ticket; the one that still lasts does, once fresh evidence arrives.
        tickets = service.actions.tickets()
        assert [(t.device_id, t.fault) for t in tickets] == [("fr-000003", "fridge.cooling")]
        assert all(online(service, d, clock.now_ms()) for d in agents)
    finally:
        observer.close()
        for agent in agents.values():
            agent.stop(graceful=False)
        service.stop()
