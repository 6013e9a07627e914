"""The HTTP API and overview page over a real cloud service (broker, SQLite, embedded store)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.config import load_settings
from cloud.service import CloudService
from cloud.wire import RawMessage
from forewarn.clock import SimClock

T0 = 1_767_225_600_000
STEP = 600_000


def telemetry(device: str, seq: int, t0: int, rows: int, **values: list[float]) -> RawMessage:
    ts = [t0 + i * STEP for i in range(rows)]
    body = {"v": 1, "device_id": device, "kind": "tyres", "seq": seq, "sent_ms": ts[-1],
            "ts_ms": ts, "values": values}  # fmt: skip
    return RawMessage(f"forewarn/v1/tyres/{device}/telemetry", json.dumps(body).encode(), ts[-1])


@pytest.fixture
def service(broker, tmp_path) -> Iterator[CloudService]:
    clock = SimClock(T0)
    svc = CloudService(
        load_settings(data_dir=tmp_path / "cloud", mqtt_url=broker.url), clock_ms=clock.now_ms
    )
    svc.actions.upsert_customer("c-1", "Ada", "ada@example.com")
    svc.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
    svc.start()
    # A healthy hour, then a punctured front-right tyre: one critical decision.
    ok = [240.0] * 6
    msgs = [
        telemetry("ty-000001", 0, T0, 6, **{"fl.pressure_kpa": ok, "fr.pressure_kpa": ok}),
        telemetry("ty-000001", 1, T0 + 6 * STEP, 6, **{
            "fl.pressure_kpa": ok, "fr.pressure_kpa": [200.0, 150.0, 100.0, 60.0, 40.0, 30.0]}),
        RawMessage("forewarn/v1/tyres/ty-000001/telemetry", b"\xff\xfe", T0),
        RawMessage("forewarn/v1/toaster/tt-000001/telemetry", b"{}", T0),
    ]  # fmt: skip
    clock.set(T0 + 12 * STEP)
    svc.pipeline.process(msgs)
    svc.deliver_now()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: CloudService) -> TestClient:
    return TestClient(create_app(service))


def test_health_says_ok_and_whether_the_broker_is_connected(client):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "broker_connected": True}


def test_devices_list_and_detail(client):
    devices = client.get("/api/v1/devices").json()
    assert [d["device_id"] for d in devices] == ["ty-000001"]
    assert devices[0]["online"] is True
    assert devices[0]["readings"] == 12
    assert client.get("/api/v1/devices", params={"kind": "fridge"}).json() == []
    detail = client.get("/api/v1/devices/ty-000001").json()
    assert "fr.pressure_kpa" in detail["channels"]
    assert client.get("/api/v1/devices/nope-000").status_code == 404


def test_telemetry_history_is_downsampled_on_request(client):
    r = client.get(
        "/api/v1/devices/ty-000001/telemetry",
        params={"channel": "fr.pressure_kpa", "max_points": 3},
    )
    assert r.status_code == 200
    series = r.json()
    assert len(series["ts_ms"]) == 3
    assert series["min"][-1] == 30.0
    full = client.get(
        "/api/v1/devices/ty-000001/telemetry", params={"channel": "fr.pressure_kpa"}
    ).json()
    assert len(full["values"]) == 12
    bad = client.get(
        "/api/v1/devices/ty-000001/telemetry", params={"channel": "x", "max_points": 0}
    )
    assert bad.status_code == 422


def test_tickets_emails_and_dead_letters(client):
    tickets = client.get("/api/v1/tickets").json()
    assert len(tickets) == 1
    assert tickets[0]["fault"] == "tyres.pressure.fr"
    assert tickets[0]["severity"] == "critical"
    one = client.get(f"/api/v1/tickets/{tickets[0]['id']}").json()
    assert one["events"][0]["kind"] == "opened"
    assert client.get("/api/v1/tickets/999").status_code == 404
    emails = client.get("/api/v1/emails").json()
    assert [e["to_addr"] for e in emails] == ["ada@example.com"]
    letters = client.get("/api/v1/dead-letters").json()
    assert sorted(d["reason"] for d in letters) == ["encoding", "topic"]
    only = client.get("/api/v1/dead-letters", params={"reason": "topic"}).json()
    assert [d["reason"] for d in only] == ["topic"]
    assert client.get("/api/v1/dead-letters", params={"limit": 0}).status_code == 422


def test_stats_count_what_happened(client):
    stats = client.get("/api/v1/stats").json()
    assert stats["readings_stored"] == 12
    assert stats["rejected_messages"] == 2
    assert stats["rejects_by_reason"] == {"encoding": 1, "topic": 1}
    assert stats["actions"]["tickets"] == {"new": 1}


def test_overview_page_renders_and_escapes(client, service):
    page = client.get("/")
    assert page.status_code == 200
    assert "tyres" in page.text
    assert "FW-000001" in page.text
    assert "<script>" not in page.text
