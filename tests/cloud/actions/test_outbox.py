"""Delivering the email outbox exactly once through a real SMTP server, on both databases."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from cloud.actions import (
    ActionService,
    DeliveryResult,
    EmailRenderer,
    SmtpSender,
    create_engine_for,
)
from cloud.actions.email import message_id_for
from cloud.errors import MailUnavailable
from forewarn.broker import free_port
from tests.cloud.actions.conftest import Clock, HangUpAfterData, ServiceFactory, make_decision, seed
from tests.conftest import SmtpSink

MINUTE_MS = 60_000


class WorkerDied(BaseException):
    """Stands for the process being killed: nothing in the relay may catch it."""


class DiesAfterSending:
    """Hands the message to the real server, then the worker dies before recording it."""

    def __init__(self, inner: SmtpSender) -> None:
        self.inner = inner

    def send(self, msg: EmailMessage) -> None:
        self.inner.send(msg)
        raise WorkerDied


@pytest.fixture
def smtp(smtp_server: SmtpSink) -> SmtpSender:
    return SmtpSender(smtp_server.url, timeout_s=5)


@pytest.fixture
def rejecting_smtp() -> Iterator[SmtpSender]:
    class Refuse:
        async def handle_RCPT(self, *args: object) -> str:
            return "550 5.1.1 no such mailbox"

    port = free_port()
    controller = Controller(Refuse(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpSender(f"smtp://127.0.0.1:{port}", timeout_s=5)
    finally:
        controller.stop()


def restart(sink: SmtpSink) -> None:
    """Bring the stopped sink back on the same port (a stopped Controller cannot restart)."""
    sink.controller = Controller(sink.controller.handler, hostname="127.0.0.1", port=sink.port)
    sink.controller.start()


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_deliver_twice_sends_once(
    make_service: ServiceFactory, smtp: SmtpSender, smtp_server: SmtpSink
) -> None:
    service = make_service(smtp)
    decision = make_decision()
    service.apply([decision, decision])
    assert service.deliver_pending().sent == 1
    assert service.deliver_pending().sent == 0
    service.apply([decision])  # a replay after delivery queues nothing new
    assert make_service(smtp).deliver_pending().sent == 0
    [raw] = smtp_server.wait_for(1)
    msg = parse(raw)
    assert msg["Message-ID"] == message_id_for(
        f"email:{decision.decision_id}:opened", "forewarn.invalid"
    )
    assert msg["X-Forewarn-Correlation-Id"] == decision.decision_id
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert smtp_server.envelopes[0][1] == ["ada@example.org"]
    [sent] = service.emails()
    assert (sent.status, sent.subject) == ("sent", msg["Subject"])
    assert service.counts().outbox == {"sent": 1}
    assert len(smtp_server.messages) == 1


def test_server_down_then_up_delivers_exactly_once(
    make_service: ServiceFactory, smtp: SmtpSender, smtp_server: SmtpSink, clock: Clock
) -> None:
    service = make_service(smtp)
    service.apply([make_decision(), make_decision(fault="fridge.door_seal")])
    smtp_server.controller.stop()
    try:
        first = service.deliver_pending()
        assert (first.sent, first.failed, first.parked) == (0, 2, 0)
        assert service.deliver_pending().failed == 0  # not due yet
        clock.advance(MINUTE_MS)
        assert service.deliver_pending().failed == 2
    finally:
        restart(smtp_server)
    rows = make_service(smtp).parked()
    assert rows == []
    assert service.counts().outbox == {"pending": 2}
    assert {e.status for e in service.emails()} == {"queued"}
    assert service.deliver_pending().sent == 0  # the second backoff (2 min) has not passed
    clock.advance(2 * MINUTE_MS)
    assert service.deliver_pending().sent == 2
    assert service.deliver_pending().sent == 0
    assert len(smtp_server.wait_for(2)) == 2
    ids = {parse(raw)["Message-ID"] for raw in smtp_server.messages}
    assert len(ids) == 2
    assert service.counts().emails == {"sent": 2}


def test_attempts_and_backoff_are_recorded(
    make_service: ServiceFactory, clock: Clock, tmp_path: Path
) -> None:
    service = make_service(SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout_s=2))
    service.apply([make_decision()])
    start = clock.now_ms
    service.deliver_pending()
    clock.advance(MINUTE_MS)
    service.deliver_pending()
    [item] = service.outbox()
    assert service.parked() == []
    assert item.state == "pending"
    assert item.attempts == 2
    assert item.next_attempt_ms == start + MINUTE_MS + 2 * MINUTE_MS
    assert item.last_error is not None
    assert "unreachable" in item.last_error


def test_parked_after_max_attempts_and_requeue(
    make_service: ServiceFactory, smtp: SmtpSender, smtp_server: SmtpSink, clock: Clock
) -> None:
    down = make_service(SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout_s=2))
    down.apply([make_decision()])
    results = []
    for _ in range(3):  # max_attempts is 3 in these tests
        results.append(down.deliver_pending())
        clock.advance(60 * MINUTE_MS)
    assert [(r.failed, r.parked) for r in results] == [(1, 0), (1, 0), (0, 1)]
    assert down.deliver_pending() == DeliveryResult()
    [item] = down.parked()
    assert (item.state, item.attempts) == ("parked", 3)
    assert item.last_error is not None
    assert item.last_error.startswith("gave up after 3 attempts")
    assert down.counts().emails == {"parked": 1}
    up = make_service(smtp)
    assert up.requeue(item.id)
    assert not up.requeue(item.id)  # no longer parked
    assert up.deliver_pending().sent == 1
    assert len(smtp_server.wait_for(1)) == 1
    assert up.counts().emails == {"sent": 1}


def test_a_permanent_refusal_parks_at_once(
    make_service: ServiceFactory, rejecting_smtp: SmtpSender
) -> None:
    service = make_service(rejecting_smtp)
    service.apply([make_decision()])
    assert service.deliver_pending().parked == 1
    [item] = service.parked()
    assert item.attempts == 1
    assert item.last_error is not None
    assert "550" in item.last_error


def test_a_template_bug_parks_instead_of_retrying(
    engine: Engine, clock: Clock, smtp: SmtpSender, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    service = ActionService(engine, EmailRenderer(tmp_path), smtp, clock)  # no templates
    seed(service)
    service.apply([make_decision()])
    assert service.deliver_pending().parked == 1
    [item] = service.parked()
    assert item.last_error is not None
    assert "cannot build the message" in item.last_error
    assert smtp_server.messages == []


def test_a_worker_dying_after_the_server_accepted_never_sends_twice(
    make_service: ServiceFactory, smtp: SmtpSender, smtp_server: SmtpSink, clock: Clock
) -> None:
    dying = make_service(DiesAfterSending(smtp))
    dying.apply([make_decision()])
    with pytest.raises(WorkerDied):
        dying.deliver_pending()
    assert len(smtp_server.wait_for(1)) == 1
    restarted = make_service(smtp)
    assert restarted.deliver_pending() == DeliveryResult()  # still claimed
    clock.advance(11 * MINUTE_MS)  # the claim (10 min) expired: outcome unknown
    assert restarted.deliver_pending().parked == 1
    [item] = restarted.parked()
    assert item.last_error is not None
    assert item.last_error.startswith("in doubt")
    clock.advance(24 * 60 * MINUTE_MS)
    assert restarted.deliver_pending().sent == 0
    assert len(smtp_server.messages) == 1


def test_a_stale_worker_cannot_overwrite_the_outcome_of_a_takeover(
    make_service: ServiceFactory, smtp: SmtpSender, smtp_server: SmtpSink, clock: Clock
) -> None:
    b_sent = threading.Event()
    a_recorded = threading.Event()

    class SendsThenWaits:
        def send(self, msg: EmailMessage) -> None:
            smtp.send(msg)
            b_sent.set()
            a_recorded.wait(timeout=10)

    other = make_service(SendsThenWaits())

    class StallsThenFails:
        """Stalls past its claim; an operator requeues, and worker B sends while A still runs."""

        def send(self, msg: EmailMessage) -> None:
            clock.advance(11 * MINUTE_MS)
            assert other.deliver_pending().parked == 1  # in doubt
            [item] = other.parked()
            assert other.requeue(item.id)
            pool.submit(other.deliver_pending)
            assert b_sent.wait(timeout=10)
            raise MailUnavailable("the stalled worker's connection finally timed out")

    stalled = make_service(StallsThenFails())
    stalled.apply([make_decision()])
    with ThreadPoolExecutor(1) as pool:
        assert stalled.deliver_pending() == DeliveryResult(failed=1)
        a_recorded.set()
    [item] = stalled.outbox()
    assert item.state == "sent"  # B's outcome, not A's stale failure
    clock.advance(60 * MINUTE_MS)
    assert make_service(smtp).deliver_pending() == DeliveryResult()
    assert len(smtp_server.wait_for(1)) == 1
    assert stalled.counts().emails == {"sent": 1}


def test_a_line_dropped_after_the_body_parks_in_doubt(
    make_service: ServiceFactory, hangup_server: tuple[str, HangUpAfterData], clock: Clock
) -> None:
    url, handler = hangup_server
    service = make_service(SmtpSender(url, timeout_s=5))
    service.apply([make_decision()])
    assert service.deliver_pending().parked == 1
    clock.advance(24 * 60 * MINUTE_MS)
    assert service.deliver_pending() == DeliveryResult()
    [item] = service.parked()
    assert item.last_error is not None
    assert item.last_error.startswith("in doubt")
    assert len(handler.messages) == 1


def test_two_workers_share_the_outbox_without_sending_twice(
    db_url: str, make_service: ServiceFactory, clock: Clock, smtp_server: SmtpSink
) -> None:
    service = make_service(SmtpSender(smtp_server.url, timeout_s=5))
    for i in range(12):
        service.upsert_device(f"fr-{i:06d}x", "fridge", "c-1", nickname=f"Fridge {i}")
    assert service.apply([make_decision(f"fr-{i:06d}x") for i in range(12)]).emails_queued == 12
    engines = [create_engine_for(db_url) for _ in range(3)]
    try:
        workers = [
            ActionService(e, EmailRenderer(), SmtpSender(smtp_server.url, timeout_s=5), clock)
            for e in engines
        ]
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda w: w.deliver_pending(limit=12), workers))
    finally:
        for e in engines:
            e.dispose()
    assert sum(r.sent for r in results) == 12
    raws = smtp_server.wait_for(12)
    assert len(raws) == 12
    assert len({parse(raw)["Message-ID"] for raw in raws}) == 12
    assert service.counts().outbox == {"sent": 12}
