"""Date-based reminders: queued once per occurrence, at the right local time, then sent."""

from __future__ import annotations

import email
import email.policy
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from cloud.actions import ActionService, EmailRenderer, EmlDirSender
from cloud.actions.email import Brand
from cloud.actions.reminders import Reminders, add_months
from cloud.errors import RejectedInput
from tests.cloud.actions.conftest import Clock, seed

NEW_YORK = ZoneInfo("America/New_York")


def local_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=NEW_YORK).timestamp() * 1000)  # type: ignore[misc]


@pytest.fixture
def service(engine: Engine, clock: Clock, tmp_path: Path) -> ActionService:
    svc = ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path / "outbox"), clock)
    seed(svc)
    return svc


@pytest.fixture
def reminders(engine: Engine, clock: Clock, service: ActionService) -> Reminders:
    return Reminders(engine, Brand(), clock)


def test_a_reminder_is_queued_once_at_nine_local_time_and_then_repeats(
    service: ActionService, reminders: Reminders, clock: Clock, tmp_path: Path
) -> None:
    added = reminders.add(
        "c-2", "insurance_renewal", date(2026, 2, 1), device_id="ty-000001", repeat_months=12
    )
    assert added.send_after_ms == local_ms(2026, 1, 2, 9)  # 30 days before, 09:00 New York
    assert reminders.due_reminders(local_ms(2026, 1, 2, 8, 59)) == 0
    clock.now_ms = local_ms(2026, 1, 2, 9)
    assert reminders.due_reminders(clock.now_ms) == 1
    assert reminders.due_reminders(clock.now_ms) == 0  # a second pass, or a second worker
    [after] = reminders.reminders("c-2")
    assert (after.due_on, after.last_queued_for, after.active) == ("2027-02-01", "2026-02-01", True)
    assert service.deliver_pending().sent == 1
    [path] = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    # A subject this long is folded onto its own line; the stdlib keeps the fold's space.
    assert msg["Subject"].strip() == (
        "Reminder: the insurance for your Blue van renews on Sunday 1 February 2026"
    )
    assert msg["To"].addresses[0].addr_spec == "grace@example.org"


def test_an_occurrence_missed_while_nothing_ran_is_skipped_not_sent_late(
    reminders: Reminders, service: ActionService
) -> None:
    reminders.add("c-1", "service_due", date(2026, 1, 10), device_id="fr-000001")
    assert reminders.due_reminders(local_ms(2026, 1, 20, 12)) == 0
    [after] = reminders.reminders("c-1")
    assert after.active is False
    assert service.deliver_pending().sent == 0


def test_a_customer_who_left_reminders_gets_none(
    reminders: Reminders, service: ActionService, engine: Engine, clock: Clock
) -> None:
    from cloud.actions.customer_mail import CustomerMail

    CustomerMail(engine, EmailRenderer(), clock).set_consent("c-1", "reminders", opted_in=False)
    reminders.add("c-1", "service_due", date(2026, 3, 1), lead_days=0)
    assert reminders.due_reminders(local_ms(2026, 3, 1, 12)) == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("c-404", "service_due", date(2026, 1, 1)), "unknown customer"),
        (("c-1", "birthday", date(2026, 1, 1)), "reminder kind"),
    ],
)
def test_bad_reminders_are_refused(
    reminders: Reminders, args: tuple[str, str, date], match: str
) -> None:
    with pytest.raises(RejectedInput, match=match):
        reminders.add(*args)


def test_a_device_of_another_customer_is_refused(reminders: Reminders) -> None:
    with pytest.raises(RejectedInput, match="not this customer's"):
        reminders.add("c-1", "insurance_renewal", date(2026, 5, 1), device_id="ty-000001")
    with pytest.raises(RejectedInput, match="lead_days"):
        reminders.add("c-1", "service_due", date(2026, 5, 1), lead_days=-1)


def test_months_are_added_like_a_calendar() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)
