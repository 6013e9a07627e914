"""The cloud service's loops survive a poison message and keep every other message."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud import pipeline as pipeline_module
from cloud.config import load_settings
from cloud.service import CloudService

T0 = 1_767_225_600_000


def fridge_message(device: str, seq: int) -> tuple[str, bytes]:
    ts = [T0 + seq * 600_000 + i * 60_000 for i in range(3)]
    body = {"v": 1, "device_id": device, "kind": "fridge", "seq": seq, "sent_ms": ts[-1],
            "ts_ms": ts, "values": {"cabinet_c": [4.0, 4.1, 4.2]}}  # fmt: skip
    return f"forewarn/v1/fridge/{device}/telemetry", json.dumps(body).encode()


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-poison-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for info in [client.publish(t, p, qos=1) for t, p in messages]:
        info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def wait_for_messages(service: CloudService, n: int, timeout_s: float = 30.0) -> None:
    """Wait until the pipeline has handled ``n`` messages (a poison one counts), then settles.

    Waiting for quiet alone is not enough: on a busy machine the broker may not have delivered
    anything yet when the quiet period ends.
    """
    deadline = time.monotonic() + timeout_s
    while service.pipeline.counters.messages < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.pipeline.counters.messages >= n, service.pipeline.counters.snapshot()
    assert service.wait_idle(timeout_s=timeout_s, quiet_s=0.5)


def test_a_poison_message_is_dead_lettered_and_ingest_goes_on(broker, tmp_path, monkeypatch):
    real_update = pipeline_module.fleet.update

    def update(state, batch):  # a bug that only one device's data triggers
        if "fr-666666" in batch.device_ids:
            raise ZeroDivisionError("simulated bug")
        return real_update(state, batch)

    monkeypatch.setattr(pipeline_module.fleet, "update", update)
    service = CloudService(
        load_settings(data_dir=tmp_path, mqtt_url=broker.url), clock_ms=lambda: T0 + 86_400_000
    )
    service.start()
    try:
        publish(
            broker.port,
            [fridge_message("fr-000001", 0), fridge_message("fr-666666", 0),
             fridge_message("fr-000002", 0)],
        )  # fmt: skip
        wait_for_messages(service, 3)
        publish(broker.port, [fridge_message("fr-000001", 1)])
        wait_for_messages(service, 4)
        counters = service.pipeline.counters
        assert counters.rejects_by_reason == {"processing": 1}
        letters = service.records.dead_letters()
        assert [(d.device_id, d.reason) for d in letters] == [("fr-666666", "processing")]
        assert "ZeroDivisionError" in letters[0].detail
        # Storage comes before analysis, so even the poison message's readings are kept; the
        # dead letter records that the core could not process them.
        assert service.store.rows_stored() == 12
        assert service.ingest_errors >= 1
    finally:
        service.stop()
