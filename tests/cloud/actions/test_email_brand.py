"""The brand folder: brand.toml, logo file, template overrides, and what a mistake says."""

from __future__ import annotations

import email
import email.policy
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from cloud.actions.branding import DEFAULT_BRAND_DIR, email_renderer, load_brand
from cloud.actions.consent import UnsubscribeTokens
from cloud.actions.customer_mail import render_preview
from cloud.actions.email import EmailFacts, EmailRenderer, build_message
from cloud.errors import ConfigError, RenderError


def png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x0b\x5c\xad")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "brand"
    shutil.copytree(DEFAULT_BRAND_DIR, target)
    return target


def edit(folder: Path, old: str, new: str) -> None:
    path = folder / "brand.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_shipped_brand_loads() -> None:
    brand = load_brand()
    assert brand.from_addr == "service@forewarn.invalid"
    assert brand.sending.daily_cap == 3
    assert brand.template_dir is None


def test_marketing_edits_show_up_in_the_email(folder: Path) -> None:
    edit(folder, 'company = "forewarn"', 'company = "Kühl & Co GmbH"')
    edit(folder, 'primary_colour = "#0b5cad"', 'primary_colour = "#aa0000"')
    edit(folder, 'logo_file = ""', 'logo_file = "logo.png"')
    edit(folder, "daily_cap = 3", "daily_cap = 5")
    (folder / "logo.png").write_bytes(png_1x1())
    brand = load_brand(folder)
    assert brand.sending.daily_cap == 5
    rendered = render_preview("dispatch_opened", "en", brand)
    assert "Kühl &amp; Co GmbH" in rendered.html
    assert "#aa0000" in rendered.html
    assert 'src="cid:logo@forewarn.invalid"' in rendered.html
    msg = build_message(
        brand=brand, to_name="Ada", to_addr="ada@example.org", rendered=rendered,
        message_id="<m@forewarn.invalid>", correlation_id="c", date_ms=0,
    )  # fmt: skip
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    html_part = parsed.get_body(("related",))
    assert html_part is not None
    [logo] = [p for p in html_part.iter_parts() if p.get_content_type() == "image/png"]
    assert logo["Content-ID"] == "<logo@forewarn.invalid>"
    assert logo.get_content() == png_1x1()


def test_template_overrides_win_file_by_file(folder: Path) -> None:
    (folder / "templates").mkdir()
    (folder / "templates" / "offer.en.subject").write_text("Spring sale for {{ customer_name }}")
    brand = load_brand(folder)
    offer = render_preview("offer", "en", brand)
    assert offer.subject == "Spring sale for Alex Example"
    assert "seasonal check-up" in offer.text  # the body is still the built-in one


def test_a_broken_override_fails_at_render_time_not_blank(folder: Path) -> None:
    (folder / "templates").mkdir()
    (folder / "templates" / "offer.en.txt").write_text("Hi {{ customer_nmae }}")
    with pytest.raises(RenderError, match="customer_nmae"):
        render_preview("offer", "en", load_brand(folder))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('primary_colour = "#0b5cad"', 'primary_colour = "red;x:expression()"',
         r"\[look\] primary_colour is not valid"),
        ('address = "service@forewarn.invalid"', 'address = "not an address"',
         r"\[sender\] address is not valid"),
        ("daily_cap = 3", 'daily_cap = "three"', r"\[sending\] daily_cap must be a whole number"),
        ('quiet_hours = "21:00-08:00"', 'quiet_hours = "late"', r"\[sending\] quiet_hours"),
        ('reminder_time = "09:00"', 'reminder_time = "9am"', r"\[sending\] reminder_time"),
        ('public_url = "http://127.0.0.1:8000"', 'public_url = "javascript:alert(1)"',
         r"\[links\] public_url is not valid"),
        ('logo_file = ""', 'logo_file = "../../etc/passwd"', r"\[look\] logo_file must name"),
        ('logo_file = ""', 'logo_file = "missing.png"', r"\[look\] logo_file cannot be read"),
        ('logo_file = ""', 'logo_file = "logo.svg"', r"\[look\] logo_file must be"),
        ('company = "forewarn"', 'compnay = "forewarn"', r"\[footer\] compnay is not a known key"),
        ("[sending]", "[sendng]", r"\[sendng\] is not a known table"),
        ("[sending]", "[sending", "not valid TOML"),
        ('name = "forewarn service"', "name = 42", r"\[sender\] name must be text"),
    ],
)  # fmt: skip
def test_a_mistake_in_brand_toml_names_the_key(
    folder: Path, old: str, new: str, message: str
) -> None:
    edit(folder, old, new)
    with pytest.raises(ConfigError, match=message):
        load_brand(folder)


def test_a_folder_without_brand_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no brand\.toml"):
        load_brand(tmp_path)


def test_the_deployment_renderer_signs_links_and_uses_email_from(tmp_path: Path) -> None:
    renderer = email_renderer(
        None, email_from="Fleet care <care@fleet.example>", secret_key=None,
        key_file=tmp_path / "k",
    )  # fmt: skip
    assert (renderer.brand.name, renderer.brand.from_addr) == ("Fleet care", "care@fleet.example")
    assert renderer.tokens is not None
    again = email_renderer(None, email_from=None, secret_key=None, key_file=tmp_path / "k")
    token = renderer.tokens.sign("c-1", "offers")
    assert again.tokens is not None
    assert again.tokens.verify(token).customer_id == "c-1"  # the same key after a restart
    with pytest.raises(ConfigError, match="FOREWARN_EMAIL_FROM"):
        email_renderer(None, email_from="nobody", secret_key=None, key_file=tmp_path / "k")


def test_marketing_cannot_be_rendered_without_an_unsubscribe_link() -> None:
    facts = EmailFacts(
        kind="offer", locale="en", tz="UTC", to_name="Ada", to_addr="ada@example.org",
        nickname=None, product_kind="fridge", fault="", summary="", ticket_ref="",
        correlation_id="campaign-spring", message_id="<m@x.example>", customer_id="c-1",
    )  # fmt: skip
    with pytest.raises(RenderError, match="unsubscribe link"):
        EmailRenderer().render(facts)
    signed = EmailRenderer(tokens=UnsubscribeTokens(b"k" * 32)).render(facts)
    assert dict(signed.headers)["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
