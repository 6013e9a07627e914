"""Outgoing webhooks against a real local HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from cloud.actions import (
    ActionService,
    EmailRenderer,
    EmlDirSender,
    OutboxItem,
    RetryPolicy,
    create_engine_for,
)
from cloud.actions.webhooks import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    UrllibPoster,
    sign,
    verify_signature,
)
from cloud.errors import RejectedInput
from forewarn.broker import free_port
from tests.cloud.actions.conftest import HOUR_MS, Clock, ServiceFactory, make_decision

SECRET = "whsec-0123456789abcdef"


@dataclass
class Receiver:
    """A mirror system: verifies signatures, answers ``fail_first`` requests with ``fail_status``,
    and applies each idempotency key once."""

    port: int
    secret: str = SECRET
    fail_first: int = 0
    fail_status: int = 503
    now_s: int = 0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    applied: dict[str, dict[str, object]] = field(default_factory=dict)
    bad_signatures: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/forewarn"

    def handle(self, headers: Mapping[str, str], body: bytes) -> int:
        self.requests.append((dict(headers), body))
        if len(self.requests) <= self.fail_first:
            return self.fail_status
        ok = verify_signature(
            self.secret, body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], self.now_s
        )
        if not ok:
            self.bad_signatures += 1
            return 401
        self.applied.setdefault(headers[IDEMPOTENCY_HEADER], json.loads(body))
        return 204

    def events(self) -> list[str]:
        return [str(body["event"]) for body in self.applied.values()]


@pytest.fixture
def receiver(clock: Clock) -> Iterator[Receiver]:
    state = Receiver(port=free_port(), now_s=clock.now_ms // 1000)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.handle({k: v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def service(make_service: ServiceFactory, tmp_path: Path) -> ActionService:
    svc = make_service(EmlDirSender(tmp_path / "eml"))
    svc.upsert_device("fr-000003", "fridge", None, region="north")  # no customer: no email
    return svc


def webhook_items(service: ActionService, state: str | None = None) -> list[OutboxItem]:
    return [i for i in service.outbox(state=state, limit=1000) if i.kind == "webhook"]


def test_every_ticket_event_reaches_the_subscriber_signed_and_once(
    service: ActionService, receiver: Receiver, make_service: ServiceFactory, tmp_path: Path
) -> None:
    hook = service.webhooks.add(receiver.url, secret=SECRET, description="service desk")
    assert hook.secret == SECRET
    assert [h.secret for h in service.webhooks.list()] == [None]
    service.technicians.upsert("t-ann", "Ann", "north", ["refrigeration"])
    decision = make_decision("fr-000003")
    service.apply([decision, decision])
    ticket = service.ticket_by_correlation(decision.decision_id)
    assert ticket is not None
    service.move(ticket.id, "en_route", actor="t-ann")
    restarted = make_service(EmlDirSender(tmp_path / "eml"))  # a replay after a restart
    assert restarted.apply([decision]).unchanged == 1
    result = restarted.deliver_pending()
    assert (result.sent, result.failed, result.parked) == (3, 0, 0)
    assert receiver.events() == ["ticket.opened", "ticket.status_changed", "ticket.status_changed"]
    assert len(receiver.requests) == 3
    assert receiver.bad_signatures == 0
    headers, body = receiver.requests[-1]
    assert headers["Content-Type"] == "application/json"
    assert headers["Forewarn-Event"] == "ticket.status_changed"
    doc = json.loads(body)
    assert doc["id"] == headers[IDEMPOTENCY_HEADER]
    assert doc["actor"] == "t-ann"
    assert doc["change"] == {"from": "assigned", "to": "en_route"}
    assert doc["ticket"]["reference"] == ticket.reference
    assert doc["ticket"]["status"] == "en_route"
    assert "customer" not in body.decode()
    assert "ada@" not in body.decode()
    assert restarted.deliver_pending().sent == 0  # nothing left, nothing sent twice


def test_a_tampered_body_or_an_old_timestamp_does_not_verify() -> None:
    body = b'{"event":"ticket.opened"}'
    header = sign(SECRET, 1_000, body)
    assert verify_signature(SECRET, body, "1000", header, now_s=1_100)
    assert not verify_signature(SECRET, body.replace(b"opened", b"closed"), "1000", header, 1_100)
    assert not verify_signature("another-secret-value", body, "1000", header, 1_100)
    assert not verify_signature(SECRET, body, "1000", header, now_s=1_000 + 301)
    assert not verify_signature(SECRET, body, "not-a-number", header, now_s=1_000)


def test_a_receiver_that_fails_first_gets_the_same_key_again_and_applies_it_once(
    service: ActionService, receiver: Receiver, clock: Clock
) -> None:
    receiver.fail_first = 2
    hook = service.webhooks.add(receiver.url, ["ticket.opened"], secret=SECRET)
    service.apply([make_decision("fr-000003")])
    assert service.deliver_pending().failed == 1
    [item] = webhook_items(service)
    assert (item.state, item.attempts, item.last_error) == (
        "pending", 1, "webhook receiver answered HTTP 503",
    )  # fmt: skip
    assert service.deliver_pending().failed == 0  # not due before its backoff
    clock.advance(60_000)
    assert service.deliver_pending().failed == 1
    clock.advance(120_000)  # the backoff doubles
    receiver.now_s = clock.now_ms // 1000
    rotated = service.webhooks.rotate_secret(hook.id)  # calls still queued use the new secret
    assert rotated is not None
    assert rotated.secret is not None
    receiver.secret = rotated.secret
    assert service.webhooks.rotate_secret(999_999) is None
    assert service.deliver_pending().sent == 1
    keys = {headers[IDEMPOTENCY_HEADER] for headers, _ in receiver.requests}
    assert len({body for _, body in receiver.requests}) == 1  # the same bytes every time
    assert len(receiver.requests) == 3
    assert len(keys) == 1
    assert receiver.events() == ["ticket.opened"]


class CrashAfterPost(UrllibPoster):
    """The worker dies after the receiver got the request, before the outcome is recorded."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        super().post(url, body, headers)
        raise SystemError("worker killed")


def test_a_worker_dying_after_the_post_is_retried_and_the_receiver_applies_it_once(
    engine: Engine, clock: Clock, receiver: Receiver, make_service: ServiceFactory, tmp_path: Path
) -> None:
    retry = RetryPolicy(max_attempts=3, backoff_base_ms=60_000, claim_ms=10 * 60_000)
    doomed = ActionService(
        engine,
        EmailRenderer(),
        EmlDirSender(tmp_path / "eml"),
        clock,
        retry=retry,
        webhook_poster=CrashAfterPost(),
    )
    doomed.upsert_device("fr-000003", "fridge", None, region="north")
    doomed.webhooks.add(receiver.url, secret=SECRET)
    doomed.apply([make_decision("fr-000003")])
    with pytest.raises(SystemError):
        doomed.deliver_pending()
    assert [i.state for i in webhook_items(doomed)] == ["sending"]
    restarted = make_service(EmlDirSender(tmp_path / "eml"))
    assert restarted.deliver_pending().sent == 0  # the claim has not expired yet
    clock.advance(10 * 60_000)
    receiver.now_s = clock.now_ms // 1000
    assert restarted.deliver_pending().sent == 1
    assert len(receiver.requests) == 2
    assert receiver.events() == ["ticket.opened"]
    [item] = webhook_items(restarted)
    assert (item.state, item.attempts) == ("sent", 2)


def test_a_receiver_that_keeps_failing_is_parked_visible_and_can_be_requeued(
    service: ActionService, receiver: Receiver, clock: Clock
) -> None:
    receiver.fail_first, receiver.fail_status = 10**6, 500
    service.webhooks.add(receiver.url, ["ticket.opened"], secret=SECRET)
    service.apply([make_decision("fr-000003")])
    for _ in range(3):
        service.deliver_pending()
        clock.advance(HOUR_MS)
    [parked] = [i for i in service.parked() if i.kind == "webhook"]
    assert parked.attempts == 3
    assert parked.last_error == "gave up after 3 attempts: webhook receiver answered HTTP 500"
    assert parked.payload["event"] == "ticket.opened"
    assert service.counts().outbox.get("parked") == 1
    receiver.fail_first = 0
    receiver.now_s = clock.now_ms // 1000
    assert service.requeue(parked.id)
    assert service.deliver_pending().sent == 1
    assert receiver.events() == ["ticket.opened"]


def test_refusals_and_paused_subscriptions_park_at_once(
    service: ActionService, receiver: Receiver
) -> None:
    receiver.fail_first, receiver.fail_status = 1, 410
    refused = service.webhooks.add(receiver.url, ["ticket.opened"], secret=SECRET)
    paused = service.webhooks.add(receiver.url + "?b", ["ticket.opened"], secret=SECRET)
    service.webhooks.set_active(paused.id, False)
    service.apply([make_decision("fr-000003")])
    assert [i.payload["subscription_id"] for i in webhook_items(service)] == [refused.id]
    service.webhooks.set_active(paused.id, True)
    service.apply([make_decision("fr-000001")])  # both are subscribed now
    assert service.webhooks.set_active(paused.id, False)
    assert not service.webhooks.set_active(999_999, False)
    service.deliver_pending()
    errors = sorted(str(i.last_error) for i in webhook_items(service, "parked"))
    assert errors == [
        f"refused: subscription {paused.id} removed or paused",
        "refused: webhook receiver refused with HTTP 410",
    ]
    assert sorted(i.state for i in webhook_items(service)) == ["parked", "parked", "sent"]
    assert receiver.events() == ["ticket.opened"]


def test_an_unreachable_receiver_is_retried_later(service: ActionService) -> None:
    service.webhooks.add(f"http://127.0.0.1:{free_port()}/gone", secret=SECRET)
    service.apply([make_decision("fr-000003")])
    assert service.deliver_pending().failed == 1
    [item] = webhook_items(service)
    assert item.state == "pending"
    assert str(item.last_error).startswith("webhook receiver unreachable")


@pytest.mark.parametrize(
    ("url", "events", "secret", "match"),
    [
        ("ftp://example.org/x", ["*"], None, "must look like https://host/path"),
        ("https://user:pw@example.org/x", ["*"], None, "must not carry credentials"),
        ("https://example.org/a b", ["*"], None, "printable"),
        ("https://example.org/x", [], None, "at least one event"),
        ("https://example.org/x", ["ticket.deleted"], None, "unknown webhook events"),
        ("https://example.org/x", ["*"], "short", "secret must be"),
    ],
)
def test_bad_subscriptions_are_refused(
    service: ActionService, url: str, events: list[str], secret: str | None, match: str
) -> None:
    with pytest.raises(RejectedInput, match=match):
        service.webhooks.add(url, events, secret=secret)
    assert service.webhooks.list() == []


def test_two_services_racing_on_the_same_decisions_queue_each_webhook_once(
    db_url: str, clock: Clock, tmp_path: Path
) -> None:
    engines = [create_engine_for(db_url) for _ in range(2)]
    try:
        services = [
            ActionService(e, EmailRenderer(), EmlDirSender(tmp_path), clock) for e in engines
        ]
        services[0].upsert_device("fr-000003", "fridge", None, region="north")
        services[0].technicians.upsert("t-ann", "Ann", "north", ["refrigeration"], work_days=[4])
        services[0].webhooks.add("https://desk.example/hooks", secret=SECRET)
        decisions = [make_decision("fr-000003", f"fridge.cooling_{i}") for i in range(6)]

        def run(service: ActionService) -> int:
            return sum(
                service.apply(decisions[i:] + decisions[:i] * 2).tickets_opened for i in range(3)
            )

        with ThreadPoolExecutor(2) as pool:
            assert sum(pool.map(run, services)) == 6
        items = webhook_items(services[1])
        assert len(items) == 12  # opened + auto-assigned, per ticket
        assert sorted({i.payload["event"] for i in items}) == [
            "ticket.opened",
            "ticket.status_changed",
        ]
        assert len({i.idempotency_key for i in items}) == 12
        assert services[1].counts().tickets == {"assigned": 6}
    finally:
        for e in engines:
            e.dispose()
