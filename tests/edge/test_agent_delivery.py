"""The agent against a real Mosquitto: order, seq, restarts, outages, replay rate, presence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.agent import AgentConfig, EdgeAgent
from edge.errors import EdgeConfigError, ReadingError
from forewarn.broker import MosquittoProcess

from .conftest import T0_MS, Observer, Received, first_arrivals, seqs, validate

pytestmark = pytest.mark.integration

MakeAgent = Callable[..., EdgeAgent]
Observe = Callable[..., Observer]


def submit_rows(agent: EdgeAgent, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        agent.submit(T0_MS + i * 60_000, {"cabinet_c": 4.0 + (i % 10) / 10, "compressor_on": 0.5})


def all_ts(messages: list[Received]) -> list[int]:
    return [ts for m in messages for ts in m.payload["ts_ms"]]


def test_rows_and_events_arrive_in_order_with_increasing_seq_and_valid_payloads(
    make_agent: MakeAgent, observe: Observe
) -> None:
    observer = observe()
    agent = make_agent(batch_max_rows=20, batch_interval_s=86400)
    agent.start()
    submit_rows(agent, 130)
    agent.submit_event({"ts_ms": T0_MS + 5, "type": "power", "on": False})
    agent.submit_event({"ts_ms": T0_MS + 1, "type": "door", "open": True})
    agent.flush()
    assert agent.wait_drained(10)

    telemetry = observer.wait_count("telemetry", 7)
    [event] = observer.wait_count("event", 1)
    assert len(telemetry) == 7  # 6 full messages of 20 rows, then the 10 flushed ones
    assert all_ts(telemetry) == [T0_MS + i * 60_000 for i in range(130)]
    assert seqs(telemetry) == list(range(7))
    assert event.payload["seq"] == 7
    assert [e["type"] for e in event.payload["events"]] == ["door", "power"]  # sorted by time
    for message in [*telemetry, event]:
        validate(message.topic.rsplit("/", 1)[1], message.payload)
        assert message.payload["device_id"] == "fr-0001"
    stats = agent.stats
    assert (stats.readings_submitted, stats.readings_acked) == (130, 130)
    assert (stats.messages_enqueued, stats.messages_acked, stats.outbox_depth) == (8, 8, 0)
    assert stats.connected


def test_a_batch_is_sealed_when_it_spans_the_batch_interval(make_agent: MakeAgent) -> None:
    agent = make_agent(batch_max_rows=720, sample_interval_s=60, batch_interval_s=600)
    submit_rows(agent, 25)  # never started: everything stays in the outbox
    stats = agent.stats
    assert (stats.messages_enqueued, stats.outbox_depth) == (2, 2)  # 10 + 10, 5 still buffered


def test_bad_readings_are_refused_and_out_of_range_values_sent_as_null(
    make_agent: MakeAgent, observe: Observe
) -> None:
    observer = observe()
    agent = make_agent()
    agent.start()
    agent.submit(T0_MS, {"cabinet_c": 250.0, "evap_c": -20.0})
    with pytest.raises(ReadingError, match="increase"):
        agent.submit(T0_MS, {"cabinet_c": 4.0})
    with pytest.raises(ReadingError, match="not a fridge channel"):
        agent.submit(T0_MS + 1, {"speed_kmh": 4.0})
    with pytest.raises(ReadingError, match="ts_ms"):
        agent.submit(-1, {"cabinet_c": 4.0})
    agent.flush()
    [message] = observer.wait_count("telemetry", 1)
    assert message.payload["values"] == {"cabinet_c": [None], "evap_c": [-20.0]}
    assert agent.stats.values_nulled == 1


def test_a_restarted_agent_delivers_the_outbox_of_a_crashed_one_in_order(
    broker: MosquittoProcess, make_agent: MakeAgent, observe: Observe, tmp_path: Path
) -> None:
    outbox = tmp_path / "shared.outbox.sqlite"
    first = make_agent(batch_max_rows=5, outbox_path=outbox)
    first.start()
    submit_rows(first, 10)
    assert first.wait_drained(10)  # seq 0, 1 delivered
    broker.stop()
    submit_rows(first, 40, start=10)  # seq 2..9 sealed while the broker is away
    first.flush()
    first.stop(graceful=False)
    assert first.stats.outbox_depth == 8

    broker.start()
    observer = observe()
    second = make_agent(batch_max_rows=5, outbox_path=outbox)
    second.start()
    submit_rows(second, 5, start=50)  # and new rows after the restart: seq 10
    assert second.wait_drained(10)
    telemetry = observer.wait_count("telemetry", 9)
    assert seqs(telemetry) == list(range(2, 11))
    assert all_ts(telemetry) == [T0_MS + i * 60_000 for i in range(10, 55)]


def kick(port: int, client_id: str) -> None:
    """Cut a client's connection the way a network fault would: another client takes its id."""
    connected = threading.Event()
    intruder = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    intruder.on_connect = lambda *_: connected.set()
    intruder.connect("127.0.0.1", port, clean_start=True)
    intruder.loop_start()
    assert connected.wait(5)
    intruder.disconnect()
    intruder.loop_stop()


def test_connections_cut_mid_stream_lose_nothing_and_keep_seq_order(
    broker: MosquittoProcess, make_agent: MakeAgent, observe: Observe
) -> None:
    observer = observe()
    agent = make_agent(batch_max_rows=1, replay_rate_msgs_per_s=2000.0, replay_burst=50)
    agent.start()
    total = 400

    def produce() -> None:
        for i in range(total):
            agent.submit(T0_MS + i * 1000, {"cabinet_c": 4.0})
            if i % 4 == 0:
                time.sleep(0.002)  # a steady stream, so messages are in flight at each cut

    producer = threading.Thread(target=produce)
    producer.start()
    for cut in (40, 150):
        observer.wait_count("telemetry", cut)
        kick(broker.port, "fr-0001")  # unacknowledged messages lose their PUBACKs
    producer.join()
    assert agent.wait_drained(20)
    received = observer.wait_for("telemetry", lambda m: len(set(seqs(m))) >= total)
    # The cloud keeps the first copy of each seq: nothing lost, first arrivals in seq order.
    assert first_arrivals(received) == list(range(total))
    assert agent.stats.messages_acked == total
    births = [m for m in observer.of("status") if m.payload["state"] == "online"]
    assert len(births) == 3  # it did reconnect twice


def test_replay_after_an_outage_is_rate_limited_and_in_order(
    make_agent: MakeAgent, observe: Observe
) -> None:
    rate, burst, backlog = 20.0, 5, 40
    agent = make_agent(batch_max_rows=1, replay_rate_msgs_per_s=rate, replay_burst=burst)
    submit_rows(agent, backlog)  # sealed while offline
    observer = observe()
    agent.start()
    received = observer.wait_count("telemetry", backlog, timeout_s=15)
    assert seqs(received) == list(range(backlog))
    # A token bucket lets at most burst + rate * t messages through in any span of t seconds
    # (one extra for arrivals that straddle the window's edge).
    start_s = received[0].arrived_s
    for window_s in (0.25, 0.5, 1.0):
        in_window = sum(1 for m in received if m.arrived_s - start_s <= window_s)
        assert in_window <= burst + rate * window_s + 1, (window_s, in_window)


def test_birth_is_retained_and_graceful_stop_leaves_offline_shutdown(
    make_agent: MakeAgent, observe: Observe
) -> None:
    attributes = {"variant": "commercial", "setpoint_c": 3.0}
    clock_ms = 1_800_000_000_000
    agent = make_agent(attributes=attributes, model="CoolMax 300", clock_ms=lambda: clock_ms)
    agent.start()
    first = observe()
    first.wait_count("status", 1)
    late = observe()  # subscribes after the birth: gets it as the retained message
    [birth] = late.wait_count("status", 1)
    assert birth.retain
    validate("status", birth.payload)
    assert birth.payload["state"] == "online"
    assert birth.payload["attributes"] == attributes
    assert birth.payload["ts_ms"] == clock_ms  # the injected clock, not the wall clock
    assert (birth.payload["sample_interval_s"], birth.payload["model"]) == (60, "CoolMax 300")

    agent.stop(graceful=True)
    [_, goodbye] = first.wait_count("status", 2)
    validate("status", goodbye.payload)
    assert goodbye.payload["state"] == "offline"
    assert (goodbye.payload["reason"], goodbye.payload["ts_ms"]) == ("shutdown", clock_ms)
    [retained] = observe().wait_count("status", 1)
    assert (retained.retain, retained.payload["reason"]) == (True, "shutdown")
    assert not agent.stats.connected


def test_the_broker_publishes_the_retained_last_will_when_the_agent_dies(
    make_agent: MakeAgent, observe: Observe
) -> None:
    agent = make_agent(device_id="vm-0042", kind="vending")
    agent.start()
    observer = observe()
    observer.wait_for("status", lambda m: any(x.payload["state"] == "online" for x in m))
    agent.stop(graceful=False)
    observer.wait_for("status", lambda m: m[-1].payload["state"] == "offline")
    [retained] = observe().wait_count("status", 1)
    assert retained.retain
    assert retained.payload == {
        "v": 1,
        "device_id": "vm-0042",
        "kind": "vending",
        "state": "offline",
        "reason": "lost",
    }
    validate("status", retained.payload)


def test_a_stopped_agent_refuses_new_readings(make_agent: MakeAgent) -> None:
    agent = make_agent()
    agent.stop()
    with pytest.raises(ReadingError, match="stopped"):
        agent.submit(T0_MS, {"cabinet_c": 4.0})
    agent.stop()  # a second stop is harmless


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"device_id": "Bad_Id"}, "device_id"),
        ({"kind": "toaster"}, "kind"),
        ({"batch_max_rows": 721}, "batch_max_rows"),
        ({"replay_rate_msgs_per_s": 0.0}, "replay_rate"),
        ({"password": "secret"}, "needs a username"),
        ({"tls_ca": Path("/nonexistent/ca.pem")}, "TLS CA file"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {
        "device_id": "fr-0001",
        "kind": "fridge",
        "outbox_path": tmp_path / "o.sqlite",
    }
    settings.update(overrides)
    with pytest.raises(EdgeConfigError, match=message):
        EdgeAgent(AgentConfig(**settings))  # type: ignore[arg-type]


def test_a_full_outbox_drops_the_oldest_counts_them_and_sends_the_rest_in_order(
    make_agent: MakeAgent, observe: Observe
) -> None:
    agent = make_agent(batch_max_rows=1, outbox_max_bytes=2_000)
    submit_rows(agent, 30)  # over 100 bytes each: only the newest fit in 2000 bytes
    dropped = agent.stats.dropped
    assert 10 <= dropped < 30
    assert agent.stats.outbox_depth == 30 - dropped
    observer = observe()
    agent.start()
    assert agent.wait_drained(10)
    telemetry = observer.wait_count("telemetry", 30 - dropped)
    assert seqs(telemetry) == list(range(dropped, 30))
    assert agent.stats.dropped == dropped
