"""Consent classes, unsubscribe tokens, quiet hours and frequency caps."""

from __future__ import annotations

import os
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from cloud.actions import EmailRenderer, EmlDirSender
from cloud.actions.consent import (
    CATEGORIES,
    KINDS,
    SendPolicy,
    UnsubscribeTokens,
    load_or_create_secret,
    local_day_bounds,
)
from cloud.actions.customer_mail import CustomerMail
from cloud.actions.service import ActionService
from cloud.errors import ConfigError, RejectedInput
from tests.cloud.actions.conftest import Clock, seed

BERLIN = ZoneInfo("Europe/Berlin")
TOKENS = UnsubscribeTokens(b"0123456789abcdef0123456789abcdef")


def berlin_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=BERLIN).timestamp() * 1000)  # type: ignore[misc]


def as_berlin(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, tz=BERLIN)


# -- catalogue ------------------------------------------------------------------------------


def test_every_kind_has_a_category_and_exactly_one_marketing_category() -> None:
    assert {k.category for k in KINDS.values()} <= set(CATEGORIES)
    assert [c.name for c in CATEGORIES.values() if c.message_class == "marketing"] == ["offers"]
    assert KINDS["safety_alert"].critical
    assert not KINDS["dispatch_opened"].critical
    assert not CATEGORIES["safety"].unsubscribable


# -- tokens ---------------------------------------------------------------------------------


def test_a_token_names_its_customer_and_category() -> None:
    token = TOKENS.sign("c-1", "offers")
    assert TOKENS.verify(token).customer_id == "c-1"
    assert TOKENS.verify(token).category == "offers"
    assert token != TOKENS.sign("c-1", "service")
    assert token != TOKENS.sign("c-2", "offers")
    assert len(token.rsplit(".", 1)[1]) >= 21  # a 128-bit tag


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # tag changed
        lambda t: t.replace(t.split(".")[1], TOKENS.sign("c-2", "offers").split(".")[1]),
        lambda t: "v2" + t[2:],
        lambda t: t + ".x",
        lambda t: "",
        lambda t: "v1.!!!.???",
        lambda t: "v1." + "A" * 700 + ".B",
    ],
)
def test_a_forged_or_damaged_token_is_refused(mangle: object) -> None:
    token = TOKENS.sign("c-1", "offers")
    with pytest.raises(RejectedInput):
        TOKENS.verify(mangle(token))  # type: ignore[operator]


def test_a_token_of_another_key_is_refused() -> None:
    other = UnsubscribeTokens(b"another key of at least 16 bytes")
    with pytest.raises(RejectedInput, match="not valid"):
        TOKENS.verify(other.sign("c-1", "offers"))
    with pytest.raises(ConfigError):
        UnsubscribeTokens(b"short")


def test_the_development_key_is_created_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "email-token.key"
    first = load_or_create_secret(path)
    assert load_or_create_secret(path) == first
    assert os.stat(path).st_mode & 0o777 == 0o600
    path.write_bytes(b"short")
    with pytest.raises(ConfigError, match="shorter"):
        load_or_create_secret(path)


# -- quiet hours and caps -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ((2026, 1, 1, 20, 59), (2026, 1, 1, 20, 59)),  # before quiet hours: now
        ((2026, 1, 1, 21, 0), (2026, 1, 2, 8, 0)),  # quiet from 21:00
        ((2026, 1, 2, 3, 0), (2026, 1, 2, 8, 0)),  # after midnight, same quiet night
        ((2026, 1, 2, 8, 0), (2026, 1, 2, 8, 0)),  # quiet until 08:00, exclusive
        ((2026, 3, 28, 23, 0), (2026, 3, 29, 8, 0)),  # the night clocks go forward
        ((2026, 10, 25, 2, 30), (2026, 10, 25, 8, 0)),  # the night clocks go back
    ],
)
def test_quiet_hours_in_the_customer_zone(at: tuple[int, ...], expected: tuple[int, ...]) -> None:
    policy = SendPolicy(quiet_from=time(21), quiet_until=time(8))
    out = policy.leave_quiet_hours(berlin_ms(*at), BERLIN)
    assert out == berlin_ms(*expected)


def test_quiet_hours_inside_one_day_and_none() -> None:
    lunch = SendPolicy(quiet_from=time(12), quiet_until=time(14))
    assert as_berlin(lunch.leave_quiet_hours(berlin_ms(2026, 1, 1, 13), BERLIN)).hour == 14
    assert lunch.leave_quiet_hours(berlin_ms(2026, 1, 1, 23), BERLIN) == berlin_ms(2026, 1, 1, 23)
    never = SendPolicy(quiet_from=time(0), quiet_until=time(0))
    assert never.leave_quiet_hours(berlin_ms(2026, 1, 1, 3), BERLIN) == berlin_ms(2026, 1, 1, 3)


def test_the_cap_moves_to_the_first_local_day_with_room() -> None:
    policy = SendPolicy(daily_cap=2, quiet_from=time(21), quiet_until=time(8))
    full_days = {berlin_ms(2026, 1, 1), berlin_ms(2026, 1, 2)}
    seen: list[tuple[int, int]] = []

    def count(start_ms: int, end_ms: int) -> int:
        seen.append((start_ms, end_ms))
        return 2 if start_ms in full_days else 1

    out = policy.schedule(berlin_ms(2026, 1, 1, 10), BERLIN, count)
    assert out == berlin_ms(2026, 1, 3, 8)
    assert seen[0] == (berlin_ms(2026, 1, 1), berlin_ms(2026, 1, 2))


def test_a_local_day_is_23_hours_when_clocks_go_forward() -> None:
    start, end = local_day_bounds(berlin_ms(2026, 3, 29, 12), BERLIN)
    assert (end - start) // 3_600_000 == 23


def test_the_default_policy_restricts_nothing_and_a_cap_below_one_is_an_error() -> None:
    assert SendPolicy().schedule(berlin_ms(2026, 1, 1, 3), BERLIN, lambda a, b: 99) == berlin_ms(
        2026, 1, 1, 3
    )
    with pytest.raises(ConfigError):
        SendPolicy(daily_cap=0)


# -- stored consent (both databases) --------------------------------------------------------


@pytest.fixture
def mail(engine: Engine, clock: Clock, tmp_path: Path) -> CustomerMail:
    seed(ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path), clock))
    return CustomerMail(engine, EmailRenderer(tokens=TOKENS), clock)


def test_service_is_opt_out_and_marketing_is_opt_in(mail: CustomerMail, clock: Clock) -> None:
    before = {c.category: c.subscribed for c in mail.consents("c-1")}
    assert before == {"safety": True, "service": True, "reminders": True, "offers": False}
    mail.set_consent("c-1", "offers", opted_in=True, source="signup-form")
    mail.set_consent("c-1", "reminders", opted_in=False, source="preferences")
    after = {c.category: (c.subscribed, c.source, c.changed_ms) for c in mail.consents("c-1")}
    assert after["offers"] == (True, "signup-form", clock.now_ms)
    assert after["reminders"] == (False, "preferences", clock.now_ms)
    assert after["safety"] == (True, None, None)


def test_one_click_unsubscribe_is_idempotent(mail: CustomerMail) -> None:
    mail.set_consent("c-1", "offers", opted_in=True)
    token = TOKENS.sign("c-1", "offers")
    first = mail.unsubscribe(token)
    assert (first.category, first.already) == ("offers", False)
    assert mail.unsubscribe(token).already is True
    assert {c.category: c.subscribed for c in mail.consents("c-1")}["offers"] is False


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.set_consent("c-404", "offers", opted_in=True), "unknown customer"),
        (lambda m: m.set_consent("c-1", "spam", opted_in=True), "unknown email category"),
        (lambda m: m.set_consent("c-1", "offers", opted_in=True, source="x\n"), "source"),
        (lambda m: m.unsubscribe(TOKENS.sign("c-404", "offers")), "no known customer"),
        (lambda m: m.unsubscribe(TOKENS.sign("c-1", "safety")), "no category"),
        (lambda m: m.consents("c-404"), "unknown customer"),
        (lambda m: m.queue_offer("spring sale", ["c-1"]), "campaign"),
        (lambda m: m.queue_offer("spring", ["c-404"]), "unknown customer"),
        (lambda m: m.queue_offer("spring", ["c-1"], kind="advice"), "not a marketing kind"),
    ],
)
def test_bad_consent_input_is_refused(mail: CustomerMail, call: object, match: str) -> None:
    with pytest.raises(RejectedInput, match=match):
        call(mail)  # type: ignore[operator]
