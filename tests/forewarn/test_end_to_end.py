"""The whole house on real servers: Mosquitto, edge agents, the cloud service, SMTP, PostgreSQL."""

from __future__ import annotations

import base64
import email
import json
import os
import subprocess
import sys
import time
from email import policy
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.config import load_settings
from cloud.service import CloudService
from edge.agent import AgentConfig, EdgeAgent
from firmware_specs import SPEC_DIR
from forewarn.clock import SimClock

REPO = Path(__file__).resolve().parents[2]
STEP_MS = 600_000


def publish_raw(port: int, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-raw-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(t, p, qos=1) for t, p in messages]:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def payload_of(case: dict) -> bytes:
    if "payload" in case:
        return json.dumps(case["payload"]).encode()
    if "payload_utf8" in case:
        return case["payload_utf8"].encode()
    return base64.b64decode(case["payload_b64"])


def fridge_agent(tmp: Path, port: int, clock: SimClock, device_id: str = "fr-900001") -> EdgeAgent:
    config = AgentConfig(
        device_id=device_id,
        kind="fridge",
        outbox_path=tmp / f"{device_id}.db",
        port=port,
        batch_max_rows=6,
        attributes={"variant": "household", "setpoint_c": 4.0},
        replay_rate_msgs_per_s=200.0,
        outbox_durability="normal",
    )
    return EdgeAgent(config, clock_ms=clock.now_ms)


def test_every_invalid_golden_example_is_dead_lettered_while_valid_traffic_flows(broker, tmp_path):
    cases = [json.loads(p.read_text()) for p in sorted((SPEC_DIR / "invalid").glob("*.json"))]
    assert len(cases) >= 12
    received = {c["received_ms"] for c in cases}
    assert len(received) == 1, "golden examples share one receive time so they replay together"
    now = received.pop()
    clock = SimClock(now)
    service = CloudService(
        load_settings(data_dir=tmp_path / "cloud", mqtt_url=broker.url), clock_ms=clock.now_ms
    )
    service.start()
    agent = fridge_agent(tmp_path, broker.port, clock)
    agent.start()
    try:
        t0 = now - 48 * 3600_000
        rows = 0
        for i, case in enumerate(cases):
            before = [(b["topic"], payload_of(b)) for b in case.get("before", [])]
            publish_raw(broker.port, [*before, (case["topic"], payload_of(case))])
            for k in range(6):  # valid traffic interleaved with each bad message
                ts = t0 + (i * 6 + k) * STEP_MS
                agent.submit(ts, {"cabinet_c": 4.0, "compressor_on": 0.4, "mains_ok": 1.0})
                rows += 1
            agent.flush()
        assert agent.wait_drained(30)
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        letters = service.records.dead_letters(limit=500)
        by_payload = {(d.topic, d.reason) for d in letters}
        for case in cases:
            assert (case["topic"], case["reason"]) in by_payload or (
                case["reason"] == "duplicate"
            ), case["description"]
        counts = service.pipeline.counters
        duplicates = [c for c in cases if c["reason"] == "duplicate"]
        assert counts.duplicate_messages >= len(duplicates)
        assert sum(counts.rejects_by_reason.values()) == len(cases) - len(duplicates)
        stored_rows = service.store.rows_stored()
        assert stored_rows >= rows  # the agent's rows, plus valid `before` messages
        assert agent.stats.readings_acked == rows
    finally:
        agent.stop()
        service.stop()


def tyre_rows(n: int, t0: int, puncture_at: int) -> list[tuple[int, dict[str, float]]]:
    out = []
    for i in range(n):
        ts = t0 + i * STEP_MS
        row = {"ambient_c": 15.0, "speed_kmh": 50.0}
        for pos in ("fl", "fr", "rl", "rr"):
            p = 240.0
            if pos == "fr" and i >= puncture_at:
                p = max(240.0 - 60.0 * (i - puncture_at + 1), 20.0)
            row[f"{pos}.pressure_kpa"] = p
            row[f"{pos}.temp_c"] = 15.0
        out.append((ts, row))
    return out


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_one_ticket_and_one_email_per_root_cause(broker, smtp_server, tmp_path, database, request):
    db_url = request.getfixturevalue("pg_url") if database == "postgresql" else None
    t0 = 1_767_225_600_000
    clock = SimClock(t0)
    settings = load_settings(
        data_dir=tmp_path / "cloud", mqtt_url=broker.url, smtp_url=smtp_server.url,
        database_url=db_url,
    )  # fmt: skip
    service = CloudService(settings, clock_ms=clock.now_ms)
    service.actions.upsert_customer("c-1", "Ada Lovelace", "ada@example.com", tz="Europe/London")
    service.actions.upsert_device("ty-900001", "tyres", "c-1", "Family car")
    service.start()
    config = AgentConfig(
        device_id="ty-900001", kind="tyres", outbox_path=tmp_path / "ty.db", port=broker.port,
        batch_max_rows=6, attributes={"placard_kpa": 240, "vehicle": "test car"},
        outbox_durability="normal", replay_rate_msgs_per_s=200.0,
    )  # fmt: skip
    captured: list[tuple[str, bytes]] = []
    observer = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-observer")
    observer.on_message = lambda c, u, m: captured.append((m.topic, m.payload))
    observer.connect("127.0.0.1", broker.port)
    observer.subscribe("forewarn/v1/tyres/+/telemetry", qos=1)
    observer.loop_start()
    agent = EdgeAgent(config, clock_ms=clock.now_ms)
    agent.start()
    try:
        for ts, row in tyre_rows(48, t0, puncture_at=30):
            clock.set(ts)
            agent.submit(ts, row)
        agent.flush()
        assert agent.wait_drained(30)
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        stored = service.store.rows_stored()
        assert stored == 48
        # A cloud restart without its state, and the broker delivering everything again: the
        # replayed evidence reopens the same episode, which must not open a second ticket or
        # send a second email.
        service.pipeline.policy = type(service.pipeline.policy)()
        service.pipeline.state = type(service.pipeline.state).empty()
        service.pipeline.dedup = type(service.pipeline.dedup)()
        assert len(captured) == agent.stats.messages_acked
        publish_raw(broker.port, captured)
        assert service.wait_idle(timeout_s=30, quiet_s=1.0)
        assert service.store.rows_stored() == stored  # idempotent on (device, seq)
        for _ in range(3):
            service.deliver_now()
        tickets = service.actions.tickets()
        assert [t.fault for t in tickets] == ["tyres.pressure.fr"]
        assert tickets[0].severity == "critical"
        messages = smtp_server.wait_for(1)
        time.sleep(0.5)
        assert len(smtp_server.messages) == 1
        msg = email.message_from_bytes(messages[0], policy=policy.default)
        assert msg["To"].addresses[0].addr_spec == "ada@example.com"
        assert msg.get_body(("plain",)) is not None
        assert msg.get_body(("html",)) is not None
    finally:
        observer.disconnect()
        observer.loop_stop()
        agent.stop()
        service.stop()


def test_demo_headless_runs_end_to_end_and_loses_no_reading(tmp_path, smtp_server):
    env = {**os.environ, "FOREWARN_SMTP_URL": smtp_server.url}
    proc = subprocess.run(
        [sys.executable, "-m", "forewarn", "demo", "--headless", "--json", "--devices", "24",
         "--sim-days", "4", "--seed", "3", "--data-dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("devices", "readings_published", "readings_stored", "readings_rejected",
                "tickets", "emails", "faults_injected", "faults_ticketed_before_failure",
                "wall_s"):  # fmt: skip
        assert key in summary, key
    assert summary["devices"] == 24
    assert summary["readings_published"] > 24 * 4 * 100
    assert (
        summary["readings_published"] == summary["readings_stored"] + summary["readings_rejected"]
    )
    # The demo also publishes the contract's invalid examples: each one is rejected, none lost.
    assert summary["rogue_messages_published"] >= 12
    assert summary["messages_rejected"] == summary["rogue_messages_published"]
    assert summary["outbox_backlog"] == 0
    assert summary["tickets"] >= 1
    # The customer emails went to the SMTP server named by FOREWARN_SMTP_URL, each once.
    assert summary["emails_sent"] >= 1
    messages = smtp_server.wait_for(summary["emails_sent"])
    assert len(messages) == summary["emails_sent"]
    parsed = [email.message_from_bytes(m, policy=policy.default) for m in messages]
    assert len({m["Message-ID"] for m in parsed}) == len(messages)
    for m in parsed:
        # Each is multipart with a text and an HTML part; service mail (not a safety notice)
        # carries the one-click unsubscribe headers of RFC 8058.
        assert m.get_body(("plain",)) is not None
        assert m.get_body(("html",)) is not None
        if not str(m["Subject"]).startswith("Safety notice"):
            # The demo's links point at its own console (plain http on localhost).
            assert "/u/" in str(m["List-Unsubscribe"])
            assert "<mailto:" in str(m["List-Unsubscribe"])
            assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert not (tmp_path / "demo" / "outbox").exists() or not any(
        (tmp_path / "demo" / "outbox").iterdir()
    )
