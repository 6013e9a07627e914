"""The ingest subscriber on a real broker: shared subscriptions, acknowledgement after storage."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.mqtt import Delivery, IngestSubscriber
from cloud.mqtt_receiver import ProcessIngestSubscriber

RECEIVERS = pytest.mark.parametrize(
    "receiver", [IngestSubscriber, ProcessIngestSubscriber], ids=["thread", "process"]
)


def publish(port: int, n: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [
        client.publish(f"forewarn/v1/fridge/fr-{i:06d}/telemetry", f"{i}".encode(), qos=1)
        for i in range(n)
    ]
    for info in infos:
        info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def drain(subs: list, want: int, timeout_s: float = 15.0) -> list[list[Delivery]]:
    got: list[list[Delivery]] = [[] for _ in subs]
    deadline = time.monotonic() + timeout_s
    while sum(map(len, got)) < want and time.monotonic() < deadline:
        for i, sub in enumerate(subs):
            batch = sub.take(1000, timeout_s=0.05)
            sub.ack(batch)
            got[i].extend(batch)
    return got


@RECEIVERS
def test_shared_subscription_splits_the_stream_between_workers(broker, receiver):
    subs = [
        receiver(broker.host, broker.port, client_id=f"ingest-{i}", shared_group="g1")
        for i in range(2)
    ]
    for s in subs:
        s.start()
    try:
        publish(broker.port, 200)
        got = drain(subs, 200)
        payloads = sorted(int(d.message.payload) for part in got for d in part)
        assert payloads == list(range(200))  # every message once, none twice
        assert all(len(part) > 0 for part in got)  # both workers took a share
    finally:
        for s in subs:
            s.stop()


@RECEIVERS
def test_unacknowledged_messages_come_back_after_a_reconnect(broker, receiver):
    sub = receiver(broker.host, broker.port, client_id="ingest-redelivery")
    sub.start()
    publish(broker.port, 20)
    first = []
    deadline = time.monotonic() + 10
    while len(first) < 20 and time.monotonic() < deadline:
        first.extend(sub.take(100, timeout_s=0.1))
    assert len(first) == 20
    sub.ack(first[:5])  # a crash after storing only the first five
    time.sleep(0.3)
    sub.stop()
    again = receiver(broker.host, broker.port, client_id="ingest-redelivery")
    again.start()
    try:
        redelivered = drain([again], 15)[0]
        assert sorted(int(d.message.payload) for d in redelivered) == list(range(5, 20))
    finally:
        again.stop()
