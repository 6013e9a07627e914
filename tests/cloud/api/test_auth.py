"""Authentication and authorisation: passwords, tokens, sessions, the 401/403 matrix, scopes."""

from __future__ import annotations

import pytest

from cloud.accounts import Role, hash_password, role_allows, verify_password
from cloud.api.sessions import SessionSigner
from cloud.config import load_settings
from cloud.errors import ConfigError, RejectedInput
from tests.cloud.api.conftest import PASSWORD, auth, sign_in

# Every route of the API with the least role it needs and whether customer-scoped callers are
# refused. A new route must be added here, or test_every_route_is_in_the_matrix fails.
MATRIX = {
    ("GET", "/api/v1/me"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/users"): (Role.ADMIN, True),
    ("POST", "/api/v1/users"): (Role.ADMIN, True),
    ("GET", "/api/v1/tokens"): (Role.ADMIN, True),
    ("POST", "/api/v1/tokens"): (Role.ADMIN, True),
    ("DELETE", "/api/v1/tokens/{token_id}"): (Role.ADMIN, True),
    ("GET", "/api/v1/devices"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/devices/{device_id}"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/devices/{device_id}/predictions"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/predictions"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/tickets"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/tickets/{ticket_id}"): (Role.READ_ONLY, False),
    ("POST", "/api/v1/tickets/{ticket_id}/assign"): (Role.DISPATCHER, True),
    ("POST", "/api/v1/tickets/{ticket_id}/acknowledge"): (Role.TECHNICIAN, False),
    ("POST", "/api/v1/tickets/{ticket_id}/transition"): (Role.TECHNICIAN, False),
    ("POST", "/api/v1/tickets/{ticket_id}/resolve"): (Role.TECHNICIAN, False),
    ("GET", "/api/v1/technicians"): (Role.READ_ONLY, True),
    ("GET", "/api/v1/emails"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/emails/{email_id}"): (Role.READ_ONLY, False),
    ("GET", "/api/v1/restock/routes"): (Role.READ_ONLY, True),
    ("GET", "/api/v1/restock/orders"): (Role.READ_ONLY, True),
    ("GET", "/api/v1/restock/pick-list"): (Role.READ_ONLY, True),
    ("POST", "/api/v1/restock/orders/{order_id}/close"): (Role.DISPATCHER, True),
    ("GET", "/api/v1/dead-letters"): (Role.DISPATCHER, True),
    ("GET", "/api/v1/dead-letters/reasons"): (Role.DISPATCHER, True),
    ("GET", "/api/v1/outbox"): (Role.DISPATCHER, True),
    ("POST", "/api/v1/outbox/{item_id}/requeue"): (Role.DISPATCHER, True),
    ("GET", "/api/v1/stats"): (Role.READ_ONLY, True),
    ("GET", "/metrics"): (Role.READ_ONLY, True),
}
PUBLIC = {("GET", "/health"), ("GET", "/ready")}
# Routes of the email module (previews need a dispatcher; unsubscribing is public).
PREVIEW_PREFIX = "/api/v1/email/"
UNSUBSCRIBE = "/u/"
PARAMS = {"device_id": "ty-000001", "ticket_id": "1", "email_id": "1", "token_id": "999999",
          "order_id": "1", "item_id": "1"}  # fmt: skip
QUERY = {"/api/v1/devices/{device_id}/telemetry": {"channel": "fr.pressure_kpa"},
         "/api/v1/restock/pick-list": {"route": "r1", "day": "2026-01-01"}}  # fmt: skip


def _routes(app):
    """Every (method, path) of the OpenAPI document: what the API offers."""
    found = [
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(found) > 20
    return found


def _needs(method, path):
    if (method, path) in MATRIX:
        return MATRIX[(method, path)]
    if path.startswith(PREVIEW_PREFIX):
        return Role.DISPATCHER, True
    return None


def _call(client, method, path, headers):
    url = path
    for key, value in PARAMS.items():
        url = url.replace("{" + key + "}", value)
    return client.request(method, url, headers=headers, params=QUERY.get(path), json={})


def test_every_route_is_in_the_matrix(client):
    unknown = [
        (m, p)
        for m, p in _routes(client.app)
        if _needs(m, p) is None and (m, p) not in PUBLIC and not p.startswith(UNSUBSCRIBE)
    ]
    assert unknown == []


def test_missing_or_wrong_credentials_get_401_on_every_protected_route(client):
    checked = 0
    for method, path in _routes(client.app):
        if _needs(method, path) is None:
            continue
        for headers in ({}, {"Authorization": "Bearer fw_not-a-real-token"},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):  # fmt: skip
            r = _call(client, method, path, headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
        checked += 1
    assert checked >= len(MATRIX)


def test_each_role_gets_403_below_and_passes_at_or_above_what_a_route_needs(client, fleet):
    for method, path in _routes(client.app):
        needs = _needs(method, path)
        if needs is None:
            continue
        least, fleet_wide = needs
        for role in Role:
            r = _call(client, method, path, auth(fleet, role.value))
            if role_allows(role, least):
                assert r.status_code not in (401, 403), (method, path, role, r.text)
            else:
                assert r.status_code == 403, (method, path, role, r.text)
        r = _call(client, method, path, auth(fleet, "customer"))
        if fleet_wide or not role_allows(Role.READ_ONLY, least):
            assert r.status_code == 403, (method, path, "customer", r.text)
        else:
            assert r.status_code not in (401, 403), (method, path, "customer", r.text)


def test_health_and_readiness_need_no_credentials(client):
    assert client.get("/health").json() == {"status": "ok", "broker_connected": True}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"broker": "ok", "database": "ok"}}


def test_a_customer_scoped_token_sees_only_that_customers_devices_tickets_and_emails(client, fleet):
    h = auth(fleet, "customer")
    assert [d["device_id"] for d in client.get("/api/v1/devices", headers=h).json()] == [
        "ty-000001"
    ]
    assert client.get("/api/v1/devices/ty-000002", headers=h).status_code == 404
    assert client.get("/api/v1/devices/ty-000002/telemetry", headers=h,
                      params={"channel": "fr.pressure_kpa"}).status_code == 404  # fmt: skip
    tickets = client.get("/api/v1/tickets", headers=h).json()
    assert {t["device_id"] for t in tickets["items"]} == {"ty-000001"}
    assert tickets["total"] == 1
    other = client.get("/api/v1/tickets", headers=auth(fleet, "admin")).json()["items"]
    foreign = next(t["id"] for t in other if t["device_id"] == "ty-000002")
    assert client.get(f"/api/v1/tickets/{foreign}", headers=h).status_code == 404
    emails = client.get("/api/v1/emails", headers=h).json()
    assert [e["to_addr"] for e in emails] == ["ada@example.com"]
    predictions = client.get("/api/v1/predictions", headers=h).json()
    assert {p["device_id"] for p in predictions} == {"ty-000001"}
    # Everyone else sees both.
    admin = client.get("/api/v1/devices", headers=auth(fleet, "read_only")).json()
    assert len(admin) == 2


def test_revoked_token_is_refused_and_tokens_are_stored_hashed(client, fleet):
    h = auth(fleet, "admin")
    made = client.post("/api/v1/tokens", headers=h, json={"name": "erp", "role": "dispatcher"})
    assert made.status_code == 201
    secret = made.json()["token"]
    assert secret.startswith("fw_")
    listed = client.get("/api/v1/tokens", headers=h).json()
    assert all("token" not in t for t in listed)
    assert secret not in client.get("/api/v1/tokens", headers=h).text
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=mine).json()["role"] == "dispatcher"
    assert client.delete(f"/api/v1/tokens/{made.json()['id']}", headers=h).status_code == 204
    assert client.get("/api/v1/me", headers=mine).status_code == 401
    assert client.delete(f"/api/v1/tokens/{made.json()['id']}", headers=h).status_code == 404


def test_users_api_creates_users_and_refuses_bad_ones(client, fleet):
    h = auth(fleet, "admin")
    new = {"username": "tech-2", "password": PASSWORD, "role": "technician"}
    ok = client.post("/api/v1/users", headers=h, json=new)
    assert ok.status_code == 201
    assert "password" not in ok.json()
    for bad in (
        {"username": "tech-2", "password": PASSWORD, "role": "technician"},  # exists
        {"username": "x y", "password": PASSWORD, "role": "technician"},
        {"username": "short", "password": "123", "role": "technician"},
        {"username": "who", "password": PASSWORD, "role": "superuser"},
        {"username": "who", "password": PASSWORD, "role": "admin", "customer_id": "c-404"},
    ):
        # 422: does not fit the schema; 400: fits, but refused (with the reason).
        assert client.post("/api/v1/users", headers=h, json=bad).status_code in (400, 422), bad


def test_session_cookie_works_for_reads_but_writes_need_the_csrf_header(client, fleet):
    sign_in(client, "dispatcher")
    assert client.get("/api/v1/me").json()["name"] == "dispatcher"
    r = client.post("/api/v1/tickets/1/acknowledge")
    assert r.status_code == 403
    assert "X-CSRF-Token" in r.json()["detail"]
    page = client.get("/tickets")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    ok = client.post("/api/v1/tickets/1/acknowledge", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert ok.json()["acknowledged_ms"] is not None


def test_login_refuses_wrong_passwords_forged_forms_and_foreign_redirects(client, fleet):
    page = client.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    wrong = client.post("/login", data={"username": "admin", "password": "nope-nope-nope",
                        "csrf": csrf}, follow_redirects=False)  # fmt: skip
    assert wrong.status_code == 303
    assert "error=" in wrong.headers["location"]
    assert client.get("/", follow_redirects=False).status_code == 303
    forged = client.post("/login", data={"username": "admin", "password": PASSWORD,
                         "csrf": "forged"}, follow_redirects=False)  # fmt: skip
    assert forged.status_code == 403
    away = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": csrf,
                       "next": "//evil.example/"}, follow_redirects=False)  # fmt: skip
    assert away.headers["location"] == "/"
    assert client.get("/", follow_redirects=False).status_code == 200


def test_disabled_user_loses_the_session(client, fleet):
    sign_in(client, "technician")
    assert client.get("/", follow_redirects=False).status_code == 200
    fleet.service.accounts.set_active("technician", False)
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


def test_passwords_are_salted_scrypt_hashes():
    a, b = hash_password("same password"), hash_password("same password")
    assert a != b
    assert a.startswith("scrypt$")
    assert verify_password("same password", a)
    assert not verify_password("other password", a)
    assert not verify_password("same password", "plain$text")
    assert not verify_password("same password", "scrypt$x$y$z$!!$!!")


def test_session_signer_refuses_tampered_foreign_and_old_cookies():
    signer = SessionSigner(b"k" * 32, max_age_s=60)
    cookie, session = signer.issue(7, now_s=1000)
    assert signer.read(cookie, now_s=1030) == session
    payload, sig = cookie.split(".")
    assert signer.read(payload + "x." + sig, now_s=1030) is None
    assert signer.read(cookie[:-2] + "AA", now_s=1030) is None
    assert signer.read(cookie, now_s=1061) is None
    assert SessionSigner(b"j" * 32).read(cookie, now_s=1030) is None
    for junk in ("", "a.b.c", "no-dot", "." * 600):
        assert signer.read(junk) is None
    assert signer.check_csrf(session.nonce, signer.csrf_token(session.nonce))
    assert not signer.check_csrf(session.nonce, None)
    assert not signer.check_csrf(session.nonce, signer.csrf_token("other"))
    with pytest.raises(ValueError, match="16 bytes"):
        SessionSigner(b"short")


def test_production_refuses_missing_or_default_secrets(monkeypatch):
    monkeypatch.setenv("FOREWARN_ENV", "production")
    for value in (None, "changeme", "too-short"):
        if value is None:
            monkeypatch.delenv("FOREWARN_SECRET_KEY", raising=False)
        else:
            monkeypatch.setenv("FOREWARN_SECRET_KEY", value)
        with pytest.raises(ConfigError, match="FOREWARN_SECRET_KEY"):
            load_settings()
    monkeypatch.setenv("FOREWARN_SECRET_KEY", "z" * 40)
    assert load_settings().env == "production"
    monkeypatch.setenv("FOREWARN_ENV", "staging")
    with pytest.raises(ConfigError, match="FOREWARN_ENV"):
        load_settings()


def test_account_store_refuses_bad_input(fleet):
    accounts = fleet.service.accounts
    with pytest.raises(RejectedInput, match="unknown role"):
        accounts.create_token("t", "root")
    with pytest.raises(RejectedInput, match="token name"):
        accounts.create_token("", Role.ADMIN)
    with pytest.raises(RejectedInput, match="no user"):
        accounts.set_password("ghost", PASSWORD)
    assert accounts.authenticate("ghost", PASSWORD) is None
    assert accounts.authenticate("ADMIN ", PASSWORD) is not None  # names are case-blind
    assert accounts.authenticate_token("not-a-token") is None
    assert accounts.authenticate_token("fw_" + "x" * 200) is None


def test_token_last_use_is_recorded(client, fleet):
    client.get("/api/v1/me", headers=auth(fleet, "technician"))
    used = {t.name: t.last_used_ms for t in fleet.service.accounts.tokens()}
    assert used["technician token"] == fleet.clock.now_ms()
    assert used["read_only token"] is None  # never used
