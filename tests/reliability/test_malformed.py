"""Malformed input: 100,000 mutated messages at the decoder and 10,000 through a real broker,
interleaved with valid traffic. No crash, every reject counted with its reason, every valid
reading stored."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import load_settings
from cloud.messages import CommandAck, EventBatch, Status, Telemetry
from cloud.service import CloudService
from cloud.wire import REASONS, decode_many
from forewarn.broker import MosquittoProcess
from forewarn.clock import SimClock

from .conftest import T0_MS, Fleet, run_in_thread, wait_until
from .fuzz import golden, malformed

DECODER_MESSAGES = 100_000
BROKER_MESSAGES = 10_000


def test_the_decoder_survives_100000_mutated_messages_and_names_a_reason_for_each() -> None:
    reasons: Counter[str] = Counter()
    decoded_count = 0
    messages = malformed(seed=20260101, count=DECODER_MESSAGES, received_ms=T0_MS)
    chunk = []
    for message in messages:
        chunk.append(message)
        if len(chunk) == 2000:
            decoded, rejects = decode_many(chunk)
            assert len(decoded) + len(rejects) == len(chunk)
            for item in decoded:
                assert isinstance(item, Telemetry | EventBatch | Status | CommandAck)
            for reject in rejects:
                assert reject.reason in REASONS, reject
                assert reject.detail, reject
                assert reject.topic is not None
            reasons.update(r.reason for r in rejects)
            decoded_count += len(decoded)
            chunk = []
    assert sum(reasons.values()) + decoded_count == DECODER_MESSAGES
    # The fuzzer reaches most of the decoder's checks, not one shallow error path.
    assert {"size", "encoding", "json", "schema", "topic", "channel", "range"} <= set(reasons)
    assert sum(reasons.values()) > 0.8 * DECODER_MESSAGES
    # The golden examples themselves still decode: the mutations, not the corpus, are bad.
    assert len(golden()) >= 10


def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-publisher")
    client.max_inflight_messages_set(200)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()


def test_10000_malformed_messages_through_the_broker_are_dead_lettered_and_valid_traffic_kept(
    broker: MosquittoProcess, fleet_factory: Callable[..., Fleet], tmp_path: Path
) -> None:
    # Keep only what the decoder rejects on its own (some mutations stay valid), and predict
    # each reason: the cloud must dead-letter exactly these.
    rogue = []
    for message in malformed(seed=7, count=3 * BROKER_MESSAGES, received_ms=T0_MS, routable=True):
        _, rejects = decode_many([message])
        if rejects:
            rogue.append((message.topic, message.payload, rejects[0].reason))
        if len(rogue) == BROKER_MESSAGES:
            break
    assert len(rogue) == BROKER_MESSAGES
    expected = Counter(reason for _, _, reason in rogue)
    clock = SimClock(T0_MS)  # fixed: the decoder sees the same receive time as above
    # Rogue and valid messages share device ids and the clock stands still, so lift the
    # per-device rate limit (test_flood.py covers it): this test is about content.
    settings = load_settings(
        data_dir=tmp_path / "cloud", mqtt_url=broker.url, device_burst_msgs=10 * BROKER_MESSAGES
    )
    service = CloudService(settings, clock_ms=clock.now_ms)
    service.start()
    fleet = fleet_factory(broker.port, 3, clock, batch_max_rows=5)
    fleet.start()
    try:
        valid = run_in_thread(lambda: fleet.feed(-200, 200, pause_s=0.005))
        publish_all(broker.port, [(t, p) for t, p, _ in rogue])
        valid.join(timeout=60)
        assert fleet.drain(60)
        total_rows = fleet.submitted
        assert wait_until(lambda: service.store.rows_stored() == total_rows, 60)
        assert service.wait_idle(timeout_s=60, quiet_s=1.0)
        counters = service.pipeline.counters
        assert counters.rejects_by_reason == expected
        assert service.records.reject_counts() == dict(expected)  # kept as dead letters
        assert service.store.rows_stored() == total_rows == 600
        assert counters.readings_rejected >= 0
        assert service.ingest_errors == 0
    finally:
        fleet.stop()
        service.stop()
