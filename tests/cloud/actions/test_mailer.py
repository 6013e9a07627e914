"""Customer emails end to end: real SMTP server, SQLite and PostgreSQL, the real relay.

One email per root cause under duplicates and replays, one thread per ticket, quiet hours,
frequency caps, safety notices, consent and one-click unsubscribe.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Callable
from datetime import datetime, time
from email.message import EmailMessage
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from cloud.actions import ActionService, RetryPolicy, SmtpSender
from cloud.actions.consent import SendPolicy, UnsubscribeTokens
from cloud.actions.customer_mail import CustomerMail
from cloud.actions.db import EmailRow, OutboxRow, TicketRow
from cloud.actions.email import Brand, EmailRenderer
from cloud.actions.mailer import queue_ticket_email
from cloud.api.messages import unsubscribe_router
from cloud.decision_types import Action, Severity
from cloud.errors import RejectedInput
from tests.cloud.actions.conftest import DAY_MS, HOUR_MS, T0_MS, Clock, make_decision, seed
from tests.conftest import SmtpSink

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NOON_MS = T0_MS + 15 * HOUR_MS  # 16:00 in Berlin, 10:00 in New York: nobody's quiet hours
BRAND = Brand(
    public_url="https://forewarn.example",
    unsubscribe_mailto="unsubscribe@forewarn.example",
    message_id_domain="mail.forewarn.example",
    sending=SendPolicy(daily_cap=2, quiet_from=time(21), quiet_until=time(8)),
)
TOKENS = UnsubscribeTokens(b"test-key-" * 4)


def local_ms(zone: ZoneInfo, *args: int) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp() * 1000)  # type: ignore[misc]


@pytest.fixture
def renderer() -> EmailRenderer:
    return EmailRenderer(brand=BRAND, tokens=TOKENS)


Factory = Callable[[], ActionService]


@pytest.fixture
def make(engine: Engine, clock: Clock, renderer: EmailRenderer, smtp_server: SmtpSink) -> Factory:
    """A new service on the test database, as after a restart; the clock at NOON_MS."""
    clock.now_ms = NOON_MS

    def build() -> ActionService:
        retry = RetryPolicy(max_attempts=3, backoff_base_ms=60_000)
        svc = ActionService(engine, renderer, SmtpSender(smtp_server.url), clock, retry=retry)
        seed(svc)
        return svc

    return build


@pytest.fixture
def service(make: Factory) -> ActionService:
    return make()


@pytest.fixture
def mail(engine: Engine, renderer: EmailRenderer, clock: Clock) -> CustomerMail:
    return CustomerMail(engine, renderer, clock)


def received(sink: SmtpSink) -> list[EmailMessage]:
    return [
        email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
        for raw in sink.messages
    ]


def statuses(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(EmailRow.kind, EmailRow.category, EmailRow.status))
        return sorted((str(k), str(c), str(s)) for k, c, s in rows)


def test_duplicate_and_replayed_decisions_send_one_email(
    make: Factory, engine: Engine, clock: Clock, smtp_server: SmtpSink
) -> None:
    first = make()
    decision = make_decision(ts_ms=NOON_MS)
    assert first.apply([decision, decision]).emails_queued == 1
    assert first.apply([decision]).emails_queued == 0
    restarted = make()
    assert restarted.apply([decision]).emails_queued == 0  # a replay after a restart
    clock.advance(HOUR_MS)
    later = make_decision(ts_ms=NOON_MS + HOUR_MS)  # new evidence, same root cause
    assert restarted.apply([later]).emails_queued == 0
    assert first.deliver_pending().sent + restarted.deliver_pending().sent == 1
    [msg] = received(smtp_server)
    assert msg["Subject"] == "Your Kitchen fridge needs a service visit (FW-000001)"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert re.fullmatch(r"<[0-9a-f]{32}@mail\.forewarn\.example>", msg["Message-ID"])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = (link.strip(" <>") for link in msg["List-Unsubscribe"].split(","))
    assert https.startswith("https://forewarn.example/u/v1.")
    assert mailto.startswith("mailto:unsubscribe@forewarn.example?subject=unsubscribe")
    assert TOKENS.verify(https.rsplit("/", 1)[1]).category == "service"
    assert msg["In-Reply-To"] is None
    assert statuses(engine) == [("dispatch_opened", "service", "sent")]


def test_one_thread_follows_the_ticket(
    service: ActionService, clock: Clock, smtp_server: SmtpSink
) -> None:
    service.apply([make_decision(ts_ms=NOON_MS)])
    ticket = service.tickets()[0]
    service.technicians.upsert("t-1", "Tom Tech", "north", ["refrigeration"])
    start_ms = local_ms(BERLIN, 2026, 1, 6, 10)  # Tuesday 10-12 in the customer's zone
    for _ in range(2):  # the same booking twice is one email
        service.assign(
            ticket.id, "t-1", actor="desk", booked_start_ms=start_ms,
            booked_end_ms=start_ms + 2 * HOUR_MS,
        )  # fmt: skip
    assert service.deliver_pending().sent == 2
    clock.now_ms = start_ms + HOUR_MS  # the visit
    service.move(ticket.id, "en_route", actor="t-1")
    service.move(ticket.id, "on_site", actor="t-1")
    service.move(ticket.id, "resolved", actor="t-1", closure_code="fault_confirmed")
    assert service.deliver_pending().sent == 1
    opened, booked, resolved = received(smtp_server)
    root = opened["Message-ID"]
    assert len({root, booked["Message-ID"], resolved["Message-ID"]}) == 3
    for follow_up in (booked, resolved):
        assert follow_up["In-Reply-To"] == root
        assert follow_up["References"] == root
        assert follow_up["Subject"] == opened["Subject"]
        assert follow_up["X-Forewarn-Correlation-Id"] == opened["X-Forewarn-Correlation-Id"]
    booked_text = booked.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Tuesday 6 January 2026, 10:00–12:00" in booked_text
    resolved_text = resolved.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "is closed" in resolved_text


def test_quiet_hours_defer_and_do_not_drop(
    service: ActionService, clock: Clock, engine: Engine, smtp_server: SmtpSink
) -> None:
    clock.now_ms = local_ms(BERLIN, 2026, 1, 1, 22, 30)
    service.apply([make_decision(ts_ms=clock.now_ms)])
    assert service.deliver_pending().sent == 0
    with engine.connect() as conn:
        scheduled = conn.scalar(sa.select(EmailRow.scheduled_ms))
    assert scheduled == local_ms(BERLIN, 2026, 1, 2, 8)
    clock.now_ms = scheduled - 60_000
    assert service.deliver_pending().sent == 0
    clock.now_ms = scheduled
    assert service.deliver_pending().sent == 1
    [msg] = received(smtp_server)
    assert msg["Date"].datetime == datetime(2026, 1, 2, 8, tzinfo=BERLIN)  # not 22:30


def test_daily_cap_moves_the_extra_email_to_the_next_day(
    service: ActionService, clock: Clock, smtp_server: SmtpSink
) -> None:
    faults = ("fridge.cooling", "fridge.door", "fridge.defrost")
    service.apply([make_decision(fault=f, ts_ms=NOON_MS) for f in faults])
    assert service.deliver_pending().sent == 2  # the cap
    clock.now_ms = local_ms(BERLIN, 2026, 1, 2, 7, 59)  # next day, still quiet
    assert service.deliver_pending().sent == 0
    clock.now_ms = local_ms(BERLIN, 2026, 1, 2, 8)
    assert service.deliver_pending().sent == 1
    assert len(smtp_server.messages) == 3


def test_a_puncture_bypasses_quiet_hours_and_the_cap(
    service: ActionService, clock: Clock, smtp_server: SmtpSink
) -> None:
    clock.now_ms = local_ms(NEW_YORK, 2026, 1, 1, 3)  # the middle of the night
    slow = [
        make_decision("ty-000001", f"tyres.tread.{unit}", kind="tyres", action=Action.ADVICE,
                      ts_ms=clock.now_ms)
        for unit in ("fl", "fr", "rl")
    ]  # fmt: skip
    puncture = make_decision(
        "ty-000001", "tyres.pressure.fl", kind="tyres", action=Action.ADVICE,
        severity=Severity.CRITICAL, ts_ms=clock.now_ms,
    )  # fmt: skip
    service.apply([*slow, puncture])
    assert service.deliver_pending().sent == 1
    [msg] = received(smtp_server)
    assert msg["Subject"].startswith("Safety notice: check your front-left tyre now")
    assert msg["List-Unsubscribe"] is None  # nobody can opt out of safety notices


def test_marketing_goes_only_to_opted_in_customers_and_one_click_stops_it(
    service: ActionService, mail: CustomerMail, clock: Clock, engine: Engine,
    smtp_server: SmtpSink,
) -> None:  # fmt: skip
    assert mail.queue_offer("spring", ["c-1", "c-2"]) == 0  # nobody opted in
    mail.set_consent("c-1", "offers", opted_in=True, source="signup-form")
    assert mail.queue_offer("spring", ["c-1", "c-2"]) == 1
    assert mail.queue_offer("spring", ["c-1"]) == 0  # a campaign runs once per customer
    assert service.deliver_pending().sent == 1
    [offer] = received(smtp_server)
    assert offer["To"].addresses[0].addr_spec == "ada@example.org"
    link = offer["List-Unsubscribe"].split(",")[0].strip(" <>")
    assert TOKENS.verify(link.rsplit("/", 1)[1]).category == "offers"

    # A second offer is queued in quiet hours (deferred), then the customer clicks.
    clock.now_ms = local_ms(BERLIN, 2026, 1, 1, 23)
    assert mail.queue_offer("summer", ["c-1"]) == 1
    app = FastAPI()
    app.state.customer_mail = mail
    app.include_router(unsubscribe_router)
    with TestClient(app) as client:
        reply = client.post(
            urlsplit(link).path,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert reply.status_code == 200
    clock.now_ms = local_ms(BERLIN, 2026, 1, 2, 9)
    assert service.deliver_pending().sent == 0  # the queued offer was suppressed
    assert mail.queue_offer("autumn", ["c-1"]) == 0
    assert ("offer", "offers", "suppressed") in statuses(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(OutboxRow.state).where(OutboxRow.idempotency_key.like(
            "%summer%"))) == "suppressed"  # fmt: skip
    # Service messages were not touched by leaving the offers.
    service.apply([make_decision(ts_ms=clock.now_ms)])
    assert service.deliver_pending().sent == 1
    assert len(smtp_server.messages) == 2


def test_service_opt_out_stops_ticket_emails_but_not_safety_notices(
    service: ActionService, mail: CustomerMail, smtp_server: SmtpSink
) -> None:
    mail.set_consent("c-2", "service", opted_in=False, source="preferences")
    advice = make_decision(
        "ty-000001", "tyres.tread.fl", kind="tyres", action=Action.ADVICE, ts_ms=NOON_MS
    )
    puncture = make_decision(
        "ty-000001", "tyres.pressure.rr", kind="tyres", action=Action.ADVICE,
        severity=Severity.CRITICAL, ts_ms=NOON_MS,
    )  # fmt: skip
    result = service.apply([advice, puncture])
    assert (result.tickets_opened, result.emails_queued) == (2, 1)
    assert service.deliver_pending().sent == 1
    assert received(smtp_server)[0]["Subject"].startswith("Safety notice")
    with pytest.raises(RejectedInput, match="safety"):
        mail.set_consent("c-2", "safety", opted_in=False)


def test_customer_data_cannot_inject_headers_or_markup(
    service: ActionService, smtp_server: SmtpSink
) -> None:
    with pytest.raises(RejectedInput):
        service.upsert_customer("c-9", "Eve\r\nBcc: evil@x.example", "eve@example.org")
    with pytest.raises(RejectedInput):
        service.upsert_customer("c-9", "Eve", "eve@example.org\nBcc: evil@x.example")
    with pytest.raises(RejectedInput):
        service.upsert_device("fr-000009", "fridge", "c-1", nickname="x\r\nBcc: evil@x.example")
    # An encoded word decodes to "Bcc: evil@x.example" (the stdlib decodes it when the header
    # is set): such a message is parked for a human, never sent.
    encoded = "=?utf-8?q?Bcc=3A_evil=40x=2Eexample?="
    service.upsert_customer("c-2", encoded, "grace@example.org", tz="America/New_York")
    service.apply([make_decision("ty-000001", "tyres.tread.fl", kind="tyres",
                                 action=Action.ADVICE, ts_ms=NOON_MS)])  # fmt: skip
    assert service.deliver_pending().parked == 1
    assert smtp_server.messages == []
    [parked] = service.parked()
    assert "encoded word" in (parked.last_error or "")

    service.upsert_device("fr-000001", "fridge", "c-1", nickname="<script>alert(1)</script>")
    service.apply([make_decision(ts_ms=NOON_MS)])
    assert service.deliver_pending().sent == 1
    [msg] = received(smtp_server)
    assert smtp_server.envelopes[0][1] == ["ada@example.org"]
    assert msg["Bcc"] is None
    assert msg["Cc"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_no_personal_data_in_logs(
    service: ActionService, mail: CustomerMail, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud")
    clock.now_ms = local_ms(BERLIN, 2026, 1, 1, 23)  # deferred: the mailer logs that
    service.apply([make_decision(ts_ms=clock.now_ms)])
    mail.set_consent("c-1", "offers", opted_in=True)
    mail.queue_offer("spring", ["c-1"])
    mail.unsubscribe(TOKENS.sign("c-1", "offers"))
    clock.now_ms += DAY_MS
    service.deliver_pending()
    # The test SMTP server logs whole messages; forewarn's own loggers are under "cloud".
    ours = [r for r in caplog.records if r.name.startswith("cloud")]
    assert ours, "nothing logged, so the test would prove nothing"
    text = "\n".join(f"{r.getMessage()} {r.args}" for r in ours)
    for secret in ("Ada", "Lovelace", "ada@example.org", "Kitchen fridge", "c-1"):
        assert secret not in text


def test_a_slow_leak_that_becomes_a_puncture_sends_a_safety_notice_in_the_thread(
    service: ActionService, engine: Engine, clock: Clock, smtp_server: SmtpSink
) -> None:
    clock.now_ms = local_ms(NEW_YORK, 2026, 1, 1, 20, 30)
    service.apply([make_decision("ty-000001", "tyres.pressure.fl", kind="tyres",
                                 action=Action.ADVICE, ts_ms=clock.now_ms)])  # fmt: skip
    clock.now_ms = local_ms(NEW_YORK, 2026, 1, 1, 23)  # quiet hours: no matter for safety
    with Session(engine) as session, session.begin():
        row = session.scalars(sa.select(TicketRow)).one()
        assert queue_ticket_email(session, row, "safety_alert", clock.now_ms) is not None
        assert queue_ticket_email(session, row, "safety_alert", clock.now_ms) is None
        with pytest.raises(RejectedInput):
            queue_ticket_email(session, row, "offer", clock.now_ms)
    assert service.deliver_pending().sent == 2
    advice, safety = received(smtp_server)
    assert safety["In-Reply-To"] == advice["Message-ID"]
    assert safety["Subject"].startswith("Safety notice: check your front-left tyre now")


def test_evidence_that_turns_an_advice_ticket_critical_sends_one_safety_notice(
    service: ActionService, clock: Clock, smtp_server: SmtpSink
) -> None:
    clock.now_ms = local_ms(NEW_YORK, 2026, 1, 1, 12)
    leak = dict(kind="tyres", action=Action.ADVICE)
    service.apply([make_decision("ty-000001", "tyres.pressure.fl", ts_ms=clock.now_ms, **leak)])
    for minutes, severity in ((10, Severity.WARNING), (20, Severity.CRITICAL),
                              (30, Severity.CRITICAL)):  # fmt: skip
        service.apply([make_decision("ty-000001", "tyres.pressure.fl", severity=severity,
                                     ts_ms=clock.now_ms + minutes * 60_000, **leak)])  # fmt: skip
    assert service.deliver_pending().sent == 2
    advice, safety = received(smtp_server)
    assert safety["In-Reply-To"] == advice["Message-ID"]
    assert safety["Subject"].startswith("Safety notice")
    assert len(service.tickets()) == 1


def test_requeueing_a_parked_offer_after_an_opt_out_does_not_send_it(
    service: ActionService, mail: CustomerMail, engine: Engine, smtp_server: SmtpSink
) -> None:
    mail.set_consent("c-1", "offers", opted_in=True, source="signup-form")
    assert mail.queue_offer("spring", ["c-1"]) == 1
    with engine.begin() as conn:  # as after repeated delivery failures
        outbox_id = conn.scalar(sa.select(OutboxRow.id))
        conn.execute(sa.update(OutboxRow).values(state="parked"))
    mail.set_consent("c-1", "offers", opted_in=False, source="one-click")
    assert service.requeue(outbox_id)
    assert service.deliver_pending().sent == 0
    assert smtp_server.messages == []
    with engine.connect() as conn:
        assert conn.scalar(sa.select(OutboxRow.state)) == "suppressed"
    # With consent, a requeued item goes out as before.
    mail.set_consent("c-1", "offers", opted_in=True, source="signup-form")
    assert mail.queue_offer("summer", ["c-1"]) == 1
    assert service.deliver_pending().sent == 1
