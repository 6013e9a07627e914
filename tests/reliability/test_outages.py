"""SMTP and database outages: emails wait and go out exactly once; a lost database holds back
MQTT acknowledgements (back-pressure) and loses nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from cloud.config import load_settings
from cloud.service import CloudService
from edge.agent import AgentConfig, EdgeAgent
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock

from .conftest import T0_MS, SlowSmtp, TcpProxy, wait_until
from .test_cloud_crash import tyre_row

STEP_MS = 600_000


def tyre_agent(port: int, tmp: Path, clock: SimClock, device_id: str) -> EdgeAgent:
    config = AgentConfig(
        device_id=device_id, kind="tyres", outbox_path=tmp / f"{device_id}.outbox", port=port,
        batch_max_rows=2, outbox_durability="normal", replay_rate_msgs_per_s=200.0,
        attributes={"placard_kpa": 240}, reconnect_min_s=0.2, reconnect_max_s=0.5,
    )  # fmt: skip
    return EdgeAgent(config, clock_ms=clock.now_ms)


def feed(agent: EdgeAgent, clock: SimClock, first: int, last: int, puncture_at: int) -> int:
    for i in range(first, last):
        ts = T0_MS + i * STEP_MS
        clock.set(ts)
        agent.submit(ts, tyre_row(i, puncture_at))
    agent.flush()
    return last - first


def test_emails_wait_for_a_down_smtp_server_and_go_out_exactly_once(
    broker: MosquittoProcess, slow_smtp: SlowSmtp, tmp_path: Path
) -> None:
    clock = SimClock(T0_MS)
    settings = load_settings(
        data_dir=tmp_path / "cloud", mqtt_url=broker.url, smtp_url=slow_smtp.url
    )
    service = CloudService(settings, clock_ms=clock.now_ms)
    service.actions.upsert_customer("c-1", "Ada Lovelace", "ada@example.com")
    service.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
    service.start()
    agent = tyre_agent(broker.port, tmp_path, clock, "ty-000001")
    agent.start()
    try:  # the SMTP server is not running: nothing listens on its port
        feed(agent, clock, 0, 40, puncture_at=30)
        assert agent.wait_drained(30)
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)
        assert len(service.actions.tickets()) == 1
        for _ in range(3):
            assert service.deliver_now() == 0
        [item] = service.actions.outbox()
        assert item.state == "pending"
        assert item.attempts >= 1
        assert item.last_error
        slow_smtp.start()
        clock.set(clock.now_ms() + 3_600_000)  # past the retry backoff
        assert wait_until(lambda: len(slow_smtp.messages) >= 1, 30)
        for _ in range(3):
            service.deliver_now()
        time.sleep(1.0)
        assert len(slow_smtp.messages) == 1
        assert [i.state for i in service.actions.outbox()] == ["sent"]
    finally:
        agent.stop(graceful=False)
        service.stop()


def test_a_lost_database_holds_back_acknowledgements_and_loses_nothing(
    broker: MosquittoProcess,
    pg_url: str,
    proxy_factory: Callable[[int], TcpProxy],
    tmp_path: Path,
) -> None:
    url = sa.make_url(pg_url)
    proxy = proxy_factory(url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    clock = SimClock(T0_MS)
    settings = load_settings(
        data_dir=tmp_path / "cloud", mqtt_url=broker.url, database_url=through_proxy
    )
    service = CloudService(settings, clock_ms=clock.now_ms)
    service.start()
    agent = tyre_agent(broker.port, tmp_path, clock, "ty-000002")
    agent.start()
    try:
        sent = feed(agent, clock, 0, 20, puncture_at=30)
        assert agent.wait_drained(30)
        assert wait_until(lambda: service.pipeline.counters.readings_stored == sent, 30)
        proxy.cut()  # the database is gone; the puncture needs it for its ticket
        sent += feed(agent, clock, 20, 40, puncture_at=30)
        assert agent.wait_drained(30), "the broker accepts and keeps what the cloud cannot take"
        assert wait_until(lambda: service.ingest_errors >= 2, 30)
        stalled = service.pipeline.counters.messages
        time.sleep(1.0)
        # Back-pressure: the failing group is retried, not acknowledged and not dropped.
        assert service.pipeline.counters.messages == stalled
        proxy.restore()
        assert wait_until(lambda: service.pipeline.counters.readings_stored == sent, 60)
        assert service.wait_idle(timeout_s=30, quiet_s=0.5)
        assert service.store.rows_stored() == sent
        tickets = service.actions.tickets()
        assert [(t.device_id, t.fault) for t in tickets] == [("ty-000002", "tyres.pressure.fr")]
    finally:
        agent.stop(graceful=False)
        service.stop()
