"""The soak's load generator on a real broker: every message arrives intact, every one is
acknowledged, and the window of unacknowledged messages is respected."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from forewarn.bench.soak import RawPublisher, _Feed, _remaining_length
from forewarn.broker import MosquittoProcess, free_port


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16_383, b"\xff\x7f"),
     (16_384, b"\x80\x80\x01"), (2_097_152, b"\x80\x80\x80\x01")],
)  # fmt: skip
def test_remaining_length_is_the_mqtt_variable_byte_integer(n, encoded):
    assert _remaining_length(n) == encoded


def test_raw_publisher_delivers_every_message_intact_with_qos1(broker: MosquittoProcess):
    got: list[tuple[str, bytes, int]] = []
    done = threading.Event()
    total = 2500
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        got.append((msg.topic, msg.payload, msg.qos))
        if len(got) == total:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="soak-test-subscriber")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    sub.subscribe("forewarn/v1/#", qos=1)
    assert subscribed.wait(10)

    feed = _Feed(devices=7, rows=3, start_ms=1_700_000_000_000)
    sent: list[tuple[str, bytes]] = []
    pub = RawPublisher(broker.host, broker.port, "soak-test-publisher", inflight=100)
    deadline = time.monotonic() + 30
    while len(sent) < total and time.monotonic() < deadline:
        room = min(pub.room(), total - len(sent))
        if room > 0:
            chunk = [feed.next() for _ in range(room)]
            pub.publish_many(chunk)
            sent.extend(chunk)
            assert pub.sent - pub.acked <= 100
        else:
            time.sleep(0.001)
    while pub.acked < total and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pub.acked == pub.sent == total
    assert pub.error is None
    pub.close()
    assert done.wait(30)
    sub.disconnect()
    sub.loop_stop()
    assert [(t, b) for t, b, _ in got] == sent  # in order, byte for byte
    assert {q for _, _, q in got} == {1}
    assert pub.room() == 100


def test_raw_publisher_refuses_more_than_its_window(broker: MosquittoProcess):
    pub = RawPublisher(broker.host, broker.port, "soak-test-window", inflight=3)
    try:
        feed = _Feed(devices=1, rows=1, start_ms=1_700_000_000_000)
        with pytest.raises(ValueError, match="exceed the room"):
            pub.publish_many([feed.next() for _ in range(4)])
        assert pub.sent == 0
    finally:
        pub.close()
    with pytest.raises(ValueError, match="inflight"):
        RawPublisher(broker.host, broker.port, "x", inflight=0)


def test_raw_publisher_reports_a_broker_that_is_not_there():
    with pytest.raises(OSError):
        RawPublisher("127.0.0.1", free_port(), "soak-test-nobody")


def test_raw_publisher_notices_the_broker_going_away():
    proc = MosquittoProcess()
    proc.start()
    pub = RawPublisher(proc.host, proc.port, "soak-test-gone", inflight=10)
    proc.close()
    deadline = time.monotonic() + 10
    while pub.error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pub.error == "the broker closed the connection"
    feed = _Feed(devices=1, rows=1, start_ms=1_700_000_000_000)
    with pytest.raises(ConnectionError, match="closed"):
        pub.publish_many([feed.next()])
    pub.close()


def test_a_short_soak_processes_every_acknowledged_message():
    from forewarn.bench.soak import run_soak

    out = run_soak(minutes=0.15, devices=20, rows=2, rate=200.0)
    assert out["messages"] > 0
    assert out["processed"] == out["messages"]  # nothing published is left behind
    assert out["readings_stored"] == 2 * out["messages"]
    assert out["rejected_messages"] == 0  # the cloud's clock never trails the data
    assert out["samples"] >= 1
    assert out["cloud_rss_end_mib"] > 0
    assert out["broker_rss_end_mib"] > 0
    assert out["measured_ingest_msgs_per_s"] is None  # the rate was given
