"""A real cloud service (broker, SQLite, embedded store) with one punctured tyre, and a token
and a signed-in console user of every role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from cloud import accounts
from cloud.accounts import Role
from cloud.api.app import create_app
from cloud.config import load_settings
from cloud.service import CloudService
from cloud.wire import RawMessage
from forewarn.clock import SimClock

T0 = 1_767_225_600_000
STEP = 600_000
PASSWORD = "correct horse battery"
ROLES = (Role.READ_ONLY, Role.TECHNICIAN, Role.DISPATCHER, Role.ADMIN)


def telemetry(device: str, seq: int, t0: int, rows: int, **values: list[float]) -> RawMessage:
    ts = [t0 + i * STEP for i in range(rows)]
    body = {"v": 1, "device_id": device, "kind": "tyres", "seq": seq, "sent_ms": ts[-1],
            "ts_ms": ts, "values": values}  # fmt: skip
    return RawMessage(f"forewarn/v1/tyres/{device}/telemetry", json.dumps(body).encode(), ts[-1])


def punctured(device: str, seq0: int = 0) -> list[RawMessage]:
    """A healthy hour, then a punctured front-right tyre: one critical decision."""
    ok = [240.0] * 6
    return [
        telemetry(device, seq0, T0, 6, **{"fl.pressure_kpa": ok, "fr.pressure_kpa": ok}),
        telemetry(device, seq0 + 1, T0 + 6 * STEP, 6, **{
            "fl.pressure_kpa": ok, "fr.pressure_kpa": [200.0, 150.0, 100.0, 60.0, 40.0, 30.0]}),
    ]  # fmt: skip


@dataclass
class Fleet:
    service: CloudService
    clock: SimClock
    tokens: dict[str, str]  # role (or "customer") -> bearer secret


@pytest.fixture
def fleet(session_broker, tmp_path, monkeypatch) -> Iterator[Fleet]:
    # Cheaper hashes for the many users the tests create (the parameters are stored with each
    # hash, so verification is unaffected); production keeps the default cost.
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)
    clock = SimClock(T0)
    svc = CloudService(
        load_settings(
            data_dir=tmp_path / "cloud",
            mqtt_url=session_broker.url,
            ingest_receiver="thread",
            reports_dir=tmp_path / "reports",
        ),
        clock_ms=clock.now_ms,
    )
    svc.actions.upsert_customer("c-1", "Ada", "ada@example.com")
    svc.actions.upsert_customer("c-2", "Bob", "bob@example.com")
    svc.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
    svc.actions.upsert_device("ty-000002", "tyres", "c-2", "Van")
    svc.start()
    msgs = [
        *punctured("ty-000001"),
        *punctured("ty-000002"),
        RawMessage("forewarn/v1/tyres/ty-000001/telemetry", b"\xff\xfe", T0),
        RawMessage("forewarn/v1/toaster/tt-000001/telemetry", b"{}", T0),
    ]
    clock.set(T0 + 12 * STEP)
    svc.pipeline.process(msgs)
    svc.deliver_now()
    tokens = {}
    for role in ROLES:
        svc.accounts.create_user(role.value.replace("_", "-"), PASSWORD, role)
        tokens[role.value] = svc.accounts.create_token(f"{role.value} token", role)[1]
    tokens["customer"] = svc.accounts.create_token("Ada's portal", Role.READ_ONLY, "c-1")[1]
    svc.accounts.create_user("ada", PASSWORD, Role.READ_ONLY, customer_id="c-1")
    try:
        yield Fleet(svc, clock, tokens)
    finally:
        svc.stop()


@pytest.fixture
def client(fleet: Fleet) -> Iterator[TestClient]:
    with TestClient(create_app(fleet.service)) as c:
        yield c


def auth(fleet: Fleet, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fleet.tokens[who]}"}


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a browser does."""
    page = client.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf, "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/"
