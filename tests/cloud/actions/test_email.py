"""Rendering customer emails and building their MIME messages."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import pytest

from cloud.actions.email import (
    Brand,
    EmailFacts,
    EmailRenderer,
    RenderedEmail,
    UnsafeHeaderValue,
    build_message,
    email_context,
    message_id_for,
)
from cloud.errors import RejectedInput, RenderError

ETA_MS = 1_767_322_800_000  # 2026-01-02T03:00:00Z: still 1 January in New York


def facts(**changes: object) -> EmailFacts:
    base = EmailFacts(
        kind="dispatch_opened",
        locale="en",
        tz="Europe/Berlin",
        to_name="Ada Lovelace",
        to_addr="ada@example.org",
        nickname="Kitchen fridge",
        product_kind="fridge",
        fault="fridge.cooling_loss",
        summary="The cabinet is warming up although the compressor runs.",
        ticket_ref="FW-000042",
        correlation_id="6d1f0a52-0000-5000-8000-000000000001",
        message_id=message_id_for("email:x:opened", "forewarn.invalid"),
        eta_ms=ETA_MS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def build(rendered: RenderedEmail, **changes: object) -> email.message.EmailMessage:
    args: dict[str, object] = {
        "brand": Brand(),
        "to_name": "Ada Lovelace",
        "to_addr": "ada@example.org",
        "rendered": rendered,
        "message_id": "<abc@forewarn.invalid>",
        "correlation_id": "corr-1",
        "date_ms": ETA_MS,
    }
    args.update(changes)
    return build_message(**args)  # type: ignore[arg-type]


def test_dispatch_email_is_personal() -> None:
    out = EmailRenderer().render(facts())
    assert out.subject == "Your Kitchen fridge needs a service visit (FW-000042)"
    for part in (out.text, out.html):
        assert "Ada Lovelace" in part
        assert "Kitchen fridge" in part
        assert "FW-000042" in part
        assert "Friday 2 January 2026" in part
    assert "max-width:600px" in out.html
    assert "\n" not in out.subject


def test_predicted_day_is_in_the_customer_time_zone() -> None:
    out = EmailRenderer().render(facts(tz="America/New_York"))
    assert "Thursday 1 January 2026" in out.text
    assert "Friday 2 January" not in out.text


def test_interval_is_spelled_as_a_window() -> None:
    out = EmailRenderer().render(
        facts(eta_lo_ms=ETA_MS - 86_400_000, eta_hi_ms=ETA_MS + 86_400_000)
    )
    assert "between Thursday 1 January 2026 and Saturday 3 January 2026" in out.text


def test_no_eta_says_no_date() -> None:
    out = EmailRenderer().render(facts(eta_ms=None))
    assert "stop working" not in out.text
    assert "technician will contact you" in out.text


def test_tyre_advice_names_the_tyre() -> None:
    out = EmailRenderer().render(
        facts(kind="advice", product_kind="tyres", fault="tyres.slow_leak.fl", nickname="Blue van")
    )
    assert out.subject == "Please check your front-left tyre (FW-000042)"
    assert "Blue van" in out.text
    assert "inflate" in out.text
    assert "technician" not in out.text


def test_html_escapes_a_hostile_nickname() -> None:
    out = EmailRenderer().render(facts(nickname="<script>alert(1)</script>"))
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out.html
    # The text part is not markup: it shows what the customer typed.
    assert "<script>alert(1)</script>" in out.text


def test_missing_variable_is_a_render_error() -> None:
    context = email_context(facts(), Brand())
    EmailRenderer().render_template("dispatch_opened", "en", context)  # complete: renders
    del context["ticket_ref"]
    with pytest.raises(RenderError, match="ticket_ref"):
        EmailRenderer().render_template("dispatch_opened", "en", context)


def test_template_with_unknown_variable_fails_at_render_time(tmp_path: Path) -> None:
    (tmp_path / "note.en.subject").write_text("Hi {{ customer_name }}")
    (tmp_path / "note.en.txt").write_text("{{ customer_name }} {{ not_in_context }}")
    (tmp_path / "note.en.html").write_text("<p>{{ customer_name }}</p>")
    with pytest.raises(RenderError, match="not_in_context"):
        EmailRenderer(tmp_path).render_template("note", "en", {"customer_name": "Ada"})


@pytest.mark.parametrize("kind", ["no_such_kind", "../etc/passwd", "Dispatch"])
def test_unknown_kind_is_a_render_error(kind: str) -> None:
    with pytest.raises(RenderError):
        EmailRenderer().render_template(kind, "en", {})


def test_locale_file_wins_and_missing_parts_fall_back_to_english(tmp_path: Path) -> None:
    (tmp_path / "note.de.subject").write_text("Hallo {{ name }}")
    for ext in ("subject", "txt", "html"):
        (tmp_path / f"note.en.{ext}").write_text(f"Hello {{{{ name }}}} ({ext})")
    out = EmailRenderer(tmp_path).render_template("note", "de", {"name": "Ada"})
    assert out.subject == "Hallo Ada"
    assert out.text == "Hello Ada (txt)"
    out_ch = EmailRenderer(tmp_path).render_template("note", "de-CH", {"name": "Ada"})
    assert out_ch.subject == "Hallo Ada"
    out_fr = EmailRenderer(tmp_path).render_template("note", "fr", {"name": "Ada"})
    assert out_fr.subject == "Hello Ada (subject)"


def test_unknown_time_zone_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="Mars/Olympus"):
        EmailRenderer().render(facts(tz="Mars/Olympus"))


def test_facts_survive_the_json_payload() -> None:
    original = facts(details=(("tyre", "fl"),), eta_lo_ms=1, eta_hi_ms=2)
    assert EmailFacts.from_payload(original.to_payload()) == original
    with pytest.raises(RenderError):
        EmailFacts.from_payload({"kind": "advice"})


def test_message_has_text_and_html_and_forewarn_headers() -> None:
    rendered = EmailRenderer().render(facts())
    msg = build(rendered, references=["<root@forewarn.invalid>"])
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Message-ID"] == "<abc@forewarn.invalid>"
    assert parsed["X-Forewarn-Correlation-Id"] == "corr-1"
    assert parsed["References"] == "<root@forewarn.invalid>"
    assert parsed["In-Reply-To"] == "<root@forewarn.invalid>"
    assert parsed["To"].addresses[0].addr_spec == "ada@example.org"
    assert parsed["From"].addresses[0].addr_spec == "service@forewarn.invalid"
    assert parsed["Subject"] == rendered.subject
    assert parsed["Date"].datetime.timestamp() * 1000 == ETA_MS
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert "Kitchen fridge" in plain.get_content()


@pytest.mark.parametrize(
    "changes",
    [
        {"to_name": "Ada\r\nBcc: evil@x.example"},
        {"to_name": "Ada\nBcc: evil@x.example"},
        {"to_addr": "ada@example.org\r\nBcc: evil@x.example"},
        {"correlation_id": "c\rBcc: evil@x.example"},
        {"message_id": "<a@b>\r\nBcc: evil@x.example"},
        {"references": ["<a@b> <c@d>"]},
        {"to_addr": "not an address"},
    ],
)
def test_header_injection_is_refused(changes: dict[str, object]) -> None:
    rendered = RenderedEmail(subject="Subject", text="t", html="<p>h</p>")
    with pytest.raises(UnsafeHeaderValue):
        build(rendered, **changes)


def test_injection_through_the_subject_is_refused() -> None:
    rendered = EmailRenderer().render(facts(nickname="fridge\r\nBcc: evil@x.example"))
    with pytest.raises(RejectedInput):
        build(rendered)


def test_awkward_names_stay_inside_one_header() -> None:
    rendered = RenderedEmail(subject='Zoë, "the boss" <x@y>', text="t", html="h")
    msg = build(rendered, to_name='Zoë, "the boss" <evil@x.example>')
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ada@example.org"]
    assert parsed["To"].addresses[0].display_name == 'Zoë, "the boss" <evil@x.example>'
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == 'Zoë, "the boss" <x@y>'


def test_message_id_is_stable_and_distinct_per_key() -> None:
    first = message_id_for("email:d1:opened", "forewarn.invalid")
    assert first == message_id_for("email:d1:opened", "forewarn.invalid")
    assert first != message_id_for("email:d2:opened", "forewarn.invalid")
    assert re.fullmatch(r"<[0-9a-f]{32}@forewarn\.invalid>", first)


def test_templates_ship_inside_the_package() -> None:
    folder = files("cloud.actions").joinpath("templates", "email")
    for kind in ("dispatch_opened", "advice"):
        for ext in ("subject", "txt", "html"):
            assert folder.joinpath(f"{kind}.en.{ext}").is_file()


def test_long_unsubscribe_links_reach_the_wire_verbatim() -> None:
    from email.policy import SMTP

    from cloud.actions.consent import UnsubscribeTokens

    brand = Brand(
        public_url="https://customer-care.forewarn-example-company.example.com",
        unsubscribe_mailto="unsubscribe-requests@forewarn-example-company.example.com",
    )
    renderer = EmailRenderer(brand=brand, tokens=UnsubscribeTokens(b"k" * 32))
    rendered = renderer.render(facts(customer_id="customer-" + "x" * 55))
    raw = build(rendered, brand=brand).as_bytes(policy=SMTP)  # as the senders write it
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = re.search(r"^List-Unsubscribe: (.*?)\r\n(?=\S)", head, re.M | re.S)
    assert unfolded is not None
    links = unfolded[1].replace("\r\n ", " ")
    assert "=?" not in links
    https, mailto = (link.strip(" <>") for link in links.split(","))
    assert https == dict(rendered.headers)["List-Unsubscribe"].split(",")[0].strip("<>")
    assert mailto.startswith("mailto:unsubscribe-requests@forewarn-example-company")
    assert all(len(line) <= 998 for line in head.split("\r\n"))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
