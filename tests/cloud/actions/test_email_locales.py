"""Every kind in every language: complete, personal, readable on a phone, in local time."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from cloud.actions.branding import load_brand
from cloud.actions.consent import KINDS, UnsubscribeTokens
from cloud.actions.customer_mail import preview_kinds, render_preview
from cloud.actions.email import EmailFacts, EmailRenderer
from cloud.actions.email_locales import LANGUAGES
from cloud.errors import RenderError

BRAND = load_brand()
# Words each language's emails use and the others do not: the right files were picked.
MARKERS = {"en": "Hello Alex Example,", "de": "Guten Tag Alex Example,", "fr": "Bonjour Alex"}


@pytest.mark.parametrize("locale", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_renders_in_every_language(kind: str, locale: str) -> None:
    out = render_preview(kind, locale, BRAND)
    assert out.subject
    assert "\n" not in out.subject
    for part in (out.text, out.html):
        assert MARKERS[locale] in part
        assert "{{" not in part
        assert "None" not in part  # an unset value printed instead of left out
    for other, marker in MARKERS.items():
        if other != locale:
            assert marker not in out.text
    assert f'<html lang="{locale}">' in out.html
    # Readable on a phone: a viewport, one column of at most 600 px, inline styles only.
    assert 'name="viewport"' in out.html
    assert "max-width:600px" in out.html
    assert "<style" not in out.html
    assert "<table" not in out.html
    assert BRAND.postal_address in out.text


def test_personal_facts_in_the_customer_language_and_zone() -> None:
    tyre = render_preview("advice", "de", BRAND)
    assert tyre.subject == "Bitte prüfen: Reifen vorne links (FW-000123)"
    assert "Ihr Fahrzeug „Family car“" in tyre.text
    assert "Reifenwerkstatt" in tyre.text
    visit = render_preview("visit_booked", "fr", BRAND)
    # 2026-03-11 09:00Z is 10:00 in Berlin (the sample customer's zone).
    assert "le mercredi 11 mars 2026, de 10 h 00 à 12 h 00" in visit.text
    visit_en = render_preview("visit_booked", "en", BRAND)
    assert "on Wednesday 11 March 2026, 10:00–12:00." in visit_en.text
    renewal = render_preview("insurance_renewal", "de", BRAND)
    assert "am Mittwoch, 1. April 2026" in renewal.text
    dispatch = render_preview("dispatch_opened", "fr", BRAND)
    assert "entre le jeudi 12 mars 2026 et le samedi 14 mars 2026" in dispatch.text


def test_a_regional_locale_falls_back_to_its_language_then_english() -> None:
    assert render_preview("ticket_resolved", "de-AT", BRAND).text.startswith("Guten Tag")
    assert render_preview("ticket_resolved", "it", BRAND).text.startswith("Hello")


def test_unsubscribe_link_and_reason_in_the_footer() -> None:
    tokens = UnsubscribeTokens(b"k" * 32)
    out = render_preview("offer", "fr", BRAND, EmailRenderer(brand=BRAND, tokens=tokens))
    url = dict(out.headers)["List-Unsubscribe"].split(",")[0].strip("<>")
    assert url.startswith("http://127.0.0.1:8000/u/v1.")
    assert f'href="{url}"' in out.html
    assert f"Se désabonner des offres et nouveautés : {url}" in out.text
    assert "car vous avez accepté de recevoir nos offres" in out.text
    safety = render_preview("safety_alert", "en", BRAND)
    assert "List-Unsubscribe" not in dict(safety.headers)
    assert "sent whatever your email preferences" in safety.text


def test_a_follow_up_keeps_the_thread_subject() -> None:
    tokens = UnsubscribeTokens(b"k" * 32)
    renderer = EmailRenderer(brand=BRAND, tokens=tokens)
    root = render_preview("dispatch_opened", "de", BRAND, renderer)
    facts = EmailFacts(
        kind="ticket_resolved", locale="de", tz="Europe/Berlin", to_name="Alex Example",
        to_addr="alex@example.org", nickname="Kitchen fridge", product_kind="fridge",
        fault="fridge.cooling", summary="", ticket_ref="FW-000123", correlation_id="c",
        message_id="<b@x.example>", customer_id="c-1", thread_kind="dispatch_opened",
        references=("<a@x.example>",),
    )  # fmt: skip
    follow_up = renderer.render(facts)
    assert follow_up.subject == root.subject
    assert "Serviceauftrag FW-000123 ist abgeschlossen" in follow_up.text
    assert ("In-Reply-To", "<a@x.example>") in follow_up.headers


def test_a_visit_email_without_a_slot_is_an_error_not_a_blank() -> None:
    facts = EmailFacts(
        kind="visit_booked", locale="en", tz="UTC", to_name="Ada", to_addr="ada@example.org",
        nickname=None, product_kind="fridge", fault="", summary="", ticket_ref="FW-1",
        correlation_id="c", message_id="<m@x.example>",
    )  # fmt: skip
    with pytest.raises(RenderError, match="slot"):
        EmailRenderer().render(facts)
    with pytest.raises(RenderError, match="due date"):
        EmailRenderer().render(replace(facts, kind="service_due", due_on="next week"))
    with pytest.raises(RenderError, match="unknown email kind"):
        EmailRenderer().render(replace(facts, kind="newsletter"))


def test_the_kind_list_says_what_consent_each_needs() -> None:
    listed = {k["kind"]: (k["category"], k["class"]) for k in preview_kinds()}
    assert listed["offer"] == ("offers", "marketing")
    assert listed["safety_alert"] == ("safety", "safety")
    assert listed["insurance_renewal"] == ("reminders", "service")
    assert all(re.fullmatch(r"[a-z_]+", kind) for kind in listed)
