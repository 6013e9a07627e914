"""Email previews and the public one-click unsubscribe endpoint, over real HTTP requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud.actions import ActionService, EmlDirSender, create_engine_for, init_schema
from cloud.actions.branding import load_brand
from cloud.actions.consent import UnsubscribeTokens
from cloud.actions.customer_mail import CustomerMail
from cloud.actions.email import EmailRenderer
from cloud.actions.reminders import Reminders
from cloud.api.messages import consent_router, preview_router, unsubscribe_router

T0_MS = 1_767_276_000_000  # 2026-01-01T14:00:00Z
TOKENS = UnsubscribeTokens(b"api-test-key-" * 3)
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def mail(tmp_path: Path) -> Iterator[CustomerMail]:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'actions.db'}")
    init_schema(engine)
    renderer = EmailRenderer(brand=load_brand(), tokens=TOKENS)
    actions = ActionService(engine, renderer, EmlDirSender(tmp_path / "out"), lambda: T0_MS)
    actions.upsert_customer("c-1", "Ada Lovelace", "ada@example.org", locale="de-DE")
    actions.upsert_customer("c-2", "Grace Hopper", "grace@example.org")
    yield CustomerMail(engine, renderer, lambda: T0_MS)
    engine.dispose()


@pytest.fixture
def client(mail: CustomerMail) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.customer_mail = mail
    app.state.reminders = Reminders(mail.engine, mail.renderer.brand, lambda: T0_MS)
    app.include_router(preview_router)
    app.include_router(consent_router)
    app.include_router(unsubscribe_router)
    with TestClient(app) as test_client:
        yield test_client


def subscribed(mail: CustomerMail, customer_id: str) -> dict[str, bool]:
    return {c.category: c.subscribed for c in mail.consents(customer_id)}


def test_kinds_are_listed_with_their_consent_class(client: TestClient) -> None:
    reply = client.get("/api/v1/email/kinds")
    assert reply.status_code == 200
    kinds = {k["kind"]: k for k in reply.json()}
    assert kinds["offer"]["class"] == "marketing"
    assert kinds["visit_booked"]["locales"] == ["en", "de", "fr"]


def test_preview_renders_html_and_text(client: TestClient) -> None:
    html = client.get("/api/v1/email/preview/visit_booked", params={"locale": "fr"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "script-src" not in html.headers["content-security-policy"]
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert "Un technicien passera le" in html.text
    text = client.get("/api/v1/email/preview/advice", params={"locale": "en", "format": "text"})
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text.startswith("Subject: Please check your front-left tyre (FW-000123)\n\n")


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/email/preview/newsletter", {}, 404),
        ("/api/v1/email/preview/advice", {"locale": "../../etc"}, 422),
        ("/api/v1/email/preview/advice", {"format": "pdf"}, 422),
    ],
)
def test_bad_preview_requests(
    client: TestClient, path: str, params: dict[str, str], status: int
) -> None:
    assert client.get(path, params=params).status_code == status


def test_the_confirmation_page_changes_nothing(client: TestClient, mail: CustomerMail) -> None:
    mail.set_consent("c-1", "offers", opted_in=True)
    token = TOKENS.sign("c-1", "offers")
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert "Angebote und Neuigkeiten" in page.text  # the customer's language
    assert f'action="/u/{token}"' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert subscribed(mail, "c-1")["offers"] is True


def test_one_click_post_unsubscribes_at_once(client: TestClient, mail: CustomerMail) -> None:
    token = TOKENS.sign("c-2", "reminders")
    reply = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert reply.status_code == 200
    assert "no longer receive reminders" in reply.text
    assert subscribed(mail, "c-2") == {
        "safety": True, "service": True, "reminders": False, "offers": False,
    }  # fmt: skip
    again = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status_code == 200


def test_one_click_as_multipart_form_data(client: TestClient, mail: CustomerMail) -> None:
    token = TOKENS.sign("c-2", "service")
    reply = client.post(f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")})
    assert reply.status_code == 200
    assert subscribed(mail, "c-2")["service"] is False


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ("", ONE_CLICK),
        ("List-Unsubscribe=Yes", ONE_CLICK),
        ("List-Unsubscribe=One-Click" + "&x=" + "a" * 20_000, ONE_CLICK),
    ],
)
def test_a_post_without_one_click_changes_nothing(
    client: TestClient, mail: CustomerMail, body: str, headers: dict[str, str]
) -> None:
    token = TOKENS.sign("c-2", "service")
    assert client.post(f"/u/{token}", content=body, headers=headers).status_code == 400
    assert subscribed(mail, "c-2")["service"] is True


@pytest.mark.parametrize(
    "token",
    [
        TOKENS.sign("c-404", "offers"),  # a customer deleted since
        TOKENS.sign("c-2", "safety"),  # safety notices cannot be left
        UnsubscribeTokens(b"someone else's key!").sign("c-2", "service"),
        "v1.garbage.token",
    ],
)
def test_invalid_links_are_not_found(client: TestClient, mail: CustomerMail, token: str) -> None:
    assert client.get(f"/u/{token}").status_code == 404
    reply = client.post(f"/u/{token}", content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert reply.status_code == 404
    assert "not valid" in reply.text
    assert subscribed(mail, "c-2")["service"] is True


def test_routes_without_customer_mail_say_so() -> None:
    app = FastAPI()
    app.include_router(preview_router)
    with TestClient(app) as client:
        assert client.get("/api/v1/email/preview/advice").status_code == 503


def test_staff_record_consent_and_send_a_campaign(client: TestClient) -> None:
    assert client.get("/api/v1/email/consent/c-2").json()[3] == {
        "category": "offers", "message_class": "marketing", "subscribed": False,
        "source": None, "changed_ms": None,
    }  # fmt: skip
    body = {"customer_ids": ["c-1", "c-2", "c-2"]}
    assert client.post("/api/v1/email/campaigns/spring", json=body).json() == {
        "queued": 0, "skipped": 2,
    }  # fmt: skip
    opt_in = {"opted_in": True, "source": "shop-counter"}
    change = client.put("/api/v1/email/consent/c-2/offers", json=opt_in)
    assert change.json() == {"suppressed": 0}
    assert client.post("/api/v1/email/campaigns/spring", json=body).json()["queued"] == 1
    assert client.post("/api/v1/email/campaigns/spring", json=body).json()["queued"] == 0
    optout = client.put("/api/v1/email/consent/c-2/offers", json={"opted_in": False})
    assert optout.json() == {"suppressed": 1}  # queued and not sent yet: it never will be


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("get", "/api/v1/email/consent/c-404", None, 404),
        ("put", "/api/v1/email/consent/c-1/spam", {"opted_in": True}, 422),
        ("put", "/api/v1/email/consent/c-1/safety", {"opted_in": False}, 422),
        ("put", "/api/v1/email/consent/c-1/offers", {"opted_in": True, "source": ""}, 422),
        ("post", "/api/v1/email/campaigns/spring sale", {"customer_ids": ["c-1"]}, 422),
        ("post", "/api/v1/email/campaigns/spring", {"customer_ids": []}, 422),
        ("post", "/api/v1/email/reminders", {"customer_id": "c-1", "kind": "birthday",
                                              "due_on": "2026-05-01"}, 422),
        ("post", "/api/v1/email/reminders", {"customer_id": "c-404", "kind": "service_due",
                                              "due_on": "2026-05-01"}, 422),
    ],
)  # fmt: skip
def test_bad_staff_requests_are_refused(
    client: TestClient, method: str, path: str, body: object, status: int
) -> None:
    reply = client.request(method.upper(), path, json=body)
    assert reply.status_code == status, reply.text


def test_staff_register_a_reminder(client: TestClient) -> None:
    body = {"customer_id": "c-2", "kind": "service_due", "due_on": "2026-06-30",
            "repeat_months": 6}  # fmt: skip
    created = client.post("/api/v1/email/reminders", json=body)
    assert created.status_code == 201
    assert created.json()["lead_days"] == 14
    [listed] = client.get("/api/v1/email/reminders/c-2").json()
    assert listed["due_on"] == "2026-06-30"
    assert listed["repeat_months"] == 6
