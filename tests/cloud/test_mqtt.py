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


def _delivery(i: int) -> Delivery:
    from cloud.messages import RawMessage

    return Delivery(RawMessage(f"t/{i}", b"", 0), i, 1)


def test_take_lingers_to_fill_a_group_from_a_trickle():
    import threading

    from cloud.mqtt import DeliveryQueue

    q = DeliveryQueue()
    started = threading.Event()

    def trickle() -> None:
        for i in range(10):
            q._queue.put(_delivery(i))
            started.set()
            time.sleep(0.01)

    t = threading.Thread(target=trickle)
    t.start()
    started.wait(5)
    group = q.take(10, timeout_s=5, linger_s=30)  # returns as soon as the group is full
    t.join()
    assert [d.mid for d in group] == list(range(10))

    for i in range(3):
        q._queue.put(_delivery(i))
    assert [d.mid for d in q.take(10, timeout_s=1, linger_s=0.05)] == [0, 1, 2]  # linger ends
    assert q.take(10, timeout_s=0.01, linger_s=5) == []  # nothing came: no linger


def test_take_without_linger_returns_what_is_there():
    from cloud.mqtt import DeliveryQueue

    q = DeliveryQueue()
    for i in range(5):
        q._queue.put(_delivery(i))
    assert [d.mid for d in q.take(3, timeout_s=1)] == [0, 1, 2]
    assert [d.mid for d in q.take(10, timeout_s=1)] == [3, 4]
