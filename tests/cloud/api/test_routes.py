"""The ``/api/v1`` resources over a real cloud service: what each returns and refuses."""

from __future__ import annotations

import pytest

from tests.cloud.api.conftest import STEP, T0, auth


@pytest.fixture
def h(fleet):
    return auth(fleet, "admin")


def _technician(fleet, tech_id="tech-1"):
    fleet.service.actions.technicians.upsert(tech_id, "Tess Tech", "north", ["tyres"])
    return tech_id


def test_devices_list_filters_and_detail(client, h):
    devices = client.get("/api/v1/devices", headers=h).json()
    assert [d["device_id"] for d in devices] == ["ty-000001", "ty-000002"]
    first = devices[0]
    assert first["online"] is True
    assert first["readings"] == 12
    assert first["health"] == "critical"
    assert first["owner"] == {"customer_id": "c-1", "customer_name": "Ada",
                              "nickname": "Family car", "region": None}  # fmt: skip
    assert client.get("/api/v1/devices", headers=h, params={"kind": "fridge"}).json() == []
    assert client.get("/api/v1/devices", headers=h, params={"health": "ok"}).json() == []
    paged = client.get("/api/v1/devices", headers=h, params={"limit": 1, "offset": 1}).json()
    assert [d["device_id"] for d in paged] == ["ty-000002"]
    detail = client.get("/api/v1/devices/ty-000001", headers=h).json()
    assert "fr.pressure_kpa" in detail["channels"]
    assert detail["predictions"][0]["fault"] == "tyres.pressure.fr"
    assert client.get("/api/v1/devices/nope-000", headers=h).status_code == 404
    assert client.get("/api/v1/devices", headers=h, params={"limit": 0}).status_code == 422


def test_telemetry_history_is_bucketed_into_min_mean_max(client, h):
    url = "/api/v1/devices/ty-000001/telemetry"
    full = client.get(url, headers=h, params={"channel": "fr.pressure_kpa"}).json()
    assert len(full["mean"]) == 12
    assert full["bucket_ms"] is None
    assert full["mean"][-1] == full["min"][-1] == full["max"][-1] == 30.0
    three = client.get(url, headers=h, params={"channel": "fr.pressure_kpa", "max_points": 3})
    series = three.json()
    assert len(series["ts_ms"]) == 3
    assert series["min"][-1] == 30.0
    assert series["max"][-1] == 100.0
    assert series["mean"][-1] == pytest.approx((100 + 60 + 40 + 30) / 4)
    # An hour's resolution over two hours of 10-minute readings: two buckets of six.
    hourly_params = {"channel": "fr.pressure_kpa", "resolution_s": 3600}
    hourly = client.get(url, headers=h, params=hourly_params).json()
    assert hourly["bucket_ms"] == 3_600_000
    assert len(hourly["ts_ms"]) == 2
    assert hourly["min"] == [240.0, 30.0]
    window = client.get(url, headers=h, params={"channel": "fr.pressure_kpa",
                        "start_ms": T0 + 10 * STEP, "end_ms": T0 + 11 * STEP}).json()  # fmt: skip
    assert window["mean"] == [40.0, 30.0]
    unknown = client.get(url, headers=h, params={"channel": "nope"}).json()
    assert unknown["ts_ms"] == []
    for bad, code in (
        ({"channel": "x", "max_points": 0}, 422),  # does not fit the schema
        ({"channel": "x", "resolution_s": 0}, 422),
        ({}, 422),
        ({"channel": "x", "resolution_s": 1, "start_ms": 0}, 400),  # fits, but refused
        ({"channel": "x", "start_ms": 10, "end_ms": 5}, 400),
    ):
        r = client.get(url, headers=h, params=bad)
        assert r.status_code == code, bad
        if code == 400:
            assert isinstance(r.json()["detail"], str)


def test_predictions_carry_scores_etas_with_intervals_and_contributions(client, h):
    found = client.get("/api/v1/predictions", headers=h).json()
    assert {p["device_id"] for p in found} == {"ty-000001", "ty-000002"}
    p = found[0]
    assert 0 <= p["score"] <= 1
    assert p["severity"] == "critical"
    assert set(p) >= {"eta_ms", "eta_lo_ms", "eta_hi_ms", "contributions", "decision_id"}
    assert sum(p["contributions"].values()) == pytest.approx(1.0, abs=0.05)
    only = client.get("/api/v1/predictions", headers=h, params={"fault": "tyres.tread"}).json()
    assert only == []
    per_device = client.get("/api/v1/devices/ty-000002/predictions", headers=h).json()
    assert [x["device_id"] for x in per_device] == ["ty-000002"]
    assert client.get("/api/v1/predictions", headers=h, params={"min_score": 2}).status_code == 422


def test_tickets_list_with_filters_pages_and_events(client, h):
    page = client.get("/api/v1/tickets", headers=h).json()
    assert page["total"] == 2
    assert [t["device_id"] for t in page["items"]] == ["ty-000002", "ty-000001"]
    one = client.get("/api/v1/tickets", headers=h, params={"limit": 1, "offset": 1}).json()
    assert one["total"] == 2
    assert [t["device_id"] for t in one["items"]] == ["ty-000001"]
    by_device = client.get("/api/v1/tickets", headers=h, params={"device_id": "ty-000001"})
    assert by_device.json()["total"] == 1
    assert client.get("/api/v1/tickets", headers=h, params={"status": "open"}).json()["total"] == 2
    assert client.get("/api/v1/tickets", headers=h,
                      params={"status": "resolved"}).json()["total"] == 0  # fmt: skip
    assert client.get("/api/v1/tickets", headers=h,
                      params={"action": "dispatch"}).json()["total"] == 0  # fmt: skip
    detail = client.get(f"/api/v1/tickets/{page['items'][1]['id']}", headers=h).json()
    assert detail["fault"] == "tyres.pressure.fr"
    assert detail["events"][0]["kind"] == "opened"
    assert isinstance(detail["events"][0]["detail"], dict)
    assert client.get("/api/v1/tickets/999", headers=h).status_code == 404


def test_ticket_lifecycle_through_the_api(client, fleet):
    tech = _technician(fleet)
    roster = client.get("/api/v1/technicians", headers=auth(fleet, "dispatcher")).json()
    assert [(t["id"], t["skills"], t["open_tickets"]) for t in roster] == [(tech, ["tyres"], 0)]
    ticket = client.get("/api/v1/tickets", headers=auth(fleet, "admin")).json()["items"][0]["id"]
    url = f"/api/v1/tickets/{ticket}"
    d, t = auth(fleet, "dispatcher"), auth(fleet, "technician")
    assigned = client.post(f"{url}/assign", headers=d, json={"technician_id": tech})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["status"] == "assigned"
    assert assigned.json()["assignee_id"] == tech
    assert client.post(f"{url}/assign", headers=d,
                       json={"technician_id": "nobody"}).status_code == 400  # fmt: skip
    acked = client.post(f"{url}/acknowledge", headers=t).json()
    assert acked["acknowledged_ms"] == fleet.clock.now_ms()
    # Skipping a step is a conflict with the lifecycle, not bad input.
    skip = client.post(f"{url}/resolve", headers=t, json={"closure_code": "fault_confirmed"})
    assert skip.status_code == 409
    assert "cannot go to resolved" in skip.json()["detail"]
    for status in ("en_route", "on_site"):
        r = client.post(f"{url}/transition", headers=t, json={"status": status})
        assert r.status_code == 200, r.text
    # Cancelling and sending back to the queue need a dispatcher.
    assert client.post(f"{url}/transition", headers=t,
                       json={"status": "cancelled"}).status_code == 403  # fmt: skip
    bad_code = client.post(f"{url}/resolve", headers=t, json={"closure_code": "fixed-it"})
    assert bad_code.status_code == 400
    fixed = {"closure_code": "fault_confirmed", "note": "valve replaced"}
    done = client.post(f"{url}/resolve", headers=t, json=fixed)
    assert done.status_code == 200
    body = done.json()
    assert body["status"] == "resolved"
    assert body["closure_code"] == "fault_confirmed"
    actors = {e["actor"] for e in body["events"]}
    assert {"token:dispatcher token", "token:technician token"} <= actors
    closed = client.post(f"{url}/transition", headers=t, json={"status": "on_site"})
    assert closed.status_code == 409
    assert client.get("/api/v1/technicians", headers=t).json()[0]["open_tickets"] == 0


def test_emails_list_detail_and_scope(client, h, fleet):
    emails = client.get("/api/v1/emails", headers=h).json()
    assert sorted(e["to_addr"] for e in emails) == ["ada@example.com", "bob@example.com"]
    assert client.get(f"/api/v1/emails/{emails[0]['id']}", headers=h).json() == emails[0]
    assert client.get("/api/v1/emails/999", headers=h).status_code == 404
    assert client.get("/api/v1/emails", headers=h, params={"status": "x"}).status_code == 400
    bobs = next(e["id"] for e in emails if e["to_addr"] == "bob@example.com")
    assert client.get(f"/api/v1/emails/{bobs}", headers=auth(fleet, "customer")).status_code == 404


def test_dead_letters_outbox_and_stats(client, h):
    letters = client.get("/api/v1/dead-letters", headers=h).json()
    assert sorted(d["reason"] for d in letters) == ["encoding", "topic"]
    only = client.get("/api/v1/dead-letters", headers=h, params={"reason": "topic"}).json()
    assert [d["reason"] for d in only] == ["topic"]
    assert client.get("/api/v1/dead-letters/reasons", headers=h).json() == {
        "encoding": 1, "topic": 1,
    }  # fmt: skip
    assert client.get("/api/v1/dead-letters", headers=h, params={"limit": 0}).status_code == 422
    outbox = client.get("/api/v1/outbox", headers=h).json()
    assert outbox
    assert all(i["state"] == "sent" for i in outbox if i["kind"] == "email")
    assert client.get("/api/v1/outbox", headers=h, params={"state": "x"}).status_code == 400
    assert client.post("/api/v1/outbox/999/requeue", headers=h).status_code == 409
    stats = client.get("/api/v1/stats", headers=h).json()
    assert stats["readings_stored"] == 24
    assert stats["rejected_messages"] == 2
    assert stats["rejects_by_reason"] == {"encoding": 1, "topic": 1}
    assert stats["actions"]["tickets"] == {"new": 2}


def test_restock_routes_answer_even_without_vending_machines(client, h):
    assert client.get("/api/v1/restock/routes", headers=h).json() == []
    assert client.get("/api/v1/restock/orders", headers=h).json() == []
    pick = client.get("/api/v1/restock/pick-list", headers=h,
                      params={"route": "r1", "day": "2026-01-02"})  # fmt: skip
    assert pick.json() == {
        "route": "r1", "day": "2026-01-02", "items": 0, "stops": [], "deferred": 0
    }  # fmt: skip
    none = client.get("/api/v1/restock/pick-list", headers=h,
                      params={"route": "r1", "day": "2026-01-02", "max_stops": 0})  # fmt: skip
    assert none.status_code == 422  # a route serves at least one machine
    csv = client.get("/api/v1/restock/pick-list", headers=h,
                     params={"route": "r1", "day": "2026-01-02", "format": "csv"})  # fmt: skip
    assert csv.headers["content-type"].startswith("text/csv")
    bad = client.get("/api/v1/restock/pick-list", headers=h, params={"route": "r1", "day": "x"})
    assert bad.status_code == 400
    assert client.get("/api/v1/restock/orders", headers=h,
                      params={"status": "x"}).status_code == 400  # fmt: skip
    assert client.post("/api/v1/restock/orders/9/close", headers=h, json={}).status_code == 400


def test_openapi_document_lists_the_bearer_scheme(client):
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/api/v1/tickets/{ticket_id}/resolve" in doc["paths"]
    assert not any(p.startswith("/tickets") for p in doc["paths"])  # console pages stay out


def test_the_same_api_on_postgresql(pg_url, session_broker, tmp_path, monkeypatch):
    """The read model's queries (filters, customer scope, change fingerprint, rendered emails)
    and the account tables on PostgreSQL, as docker-compose runs them."""
    from fastapi.testclient import TestClient

    from cloud import accounts
    from cloud.accounts import Role
    from cloud.api.app import create_app
    from cloud.config import load_settings
    from cloud.service import CloudService
    from forewarn.clock import SimClock
    from tests.cloud.api.conftest import PASSWORD, punctured, sign_in

    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)
    clock = SimClock(T0)
    svc = CloudService(
        load_settings(data_dir=tmp_path, mqtt_url=session_broker.url, database_url=pg_url,
                      ingest_receiver="thread"),
        clock_ms=clock.now_ms,
    )  # fmt: skip
    try:
        svc.actions.upsert_customer("c-1", "Ada", "ada@example.com")
        svc.actions.upsert_customer("c-2", "Bob", "bob@example.com")
        svc.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
        svc.actions.upsert_device("ty-000002", "tyres", "c-2", "Van")
        clock.set(T0 + 12 * STEP)
        svc.pipeline.process([*punctured("ty-000001"), *punctured("ty-000002")])
        svc.deliver_now()
        before = svc.reads.ticket_fingerprint()
        admin = {"Authorization": f"Bearer {svc.accounts.create_token('a', Role.ADMIN)[1]}"}
        scoped = svc.accounts.create_token("ada", Role.READ_ONLY, "c-1")[1]
        svc.accounts.create_user("admin", PASSWORD, Role.ADMIN)
        with TestClient(create_app(svc)) as client:
            assert client.get("/ready").json()["checks"]["database"] == "ok"
            page = client.get("/api/v1/tickets", headers=admin,
                              params={"status": "open", "priority": "P1"}).json()  # fmt: skip
            assert page["total"] == 2
            mine = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {scoped}"})
            assert [t["device_id"] for t in mine.json()["items"]] == ["ty-000001"]
            assert client.post(f"/api/v1/tickets/{page['items'][0]['id']}/acknowledge",
                               headers=admin).status_code == 200  # fmt: skip
            assert svc.reads.ticket_fingerprint() != before
            sign_in(client, "admin")
            email_id = client.get("/api/v1/emails", headers=admin).json()[0]["id"]
            assert 'class="preview"' in client.get(f"/emails/{email_id}").text
            assert "forewarn_tickets" in client.get("/metrics", headers=admin).text
    finally:
        svc.stop()
