"""Load the brand folder: ``brand.toml``, an optional logo file and template overrides.

A brand folder is edited by marketing, not by developers, so every mistake in it stops start-up
with a message naming the file and the key (``ConfigError``). Unknown keys are mistakes too:
a misspelt key would otherwise be ignored in silence.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import time
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from cloud.actions.consent import SendPolicy, UnsubscribeTokens, load_or_create_secret
from cloud.actions.email import Brand, EmailRenderer, Logo
from cloud.errors import ConfigError

DEFAULT_BRAND_DIR: Final = Path(__file__).resolve().parent / "brand"
BRAND_FILE: Final = "brand.toml"
MAX_LOGO_BYTES: Final = 200_000
_COLOUR_RE: Final = re.compile(r"^#[0-9a-fA-F]{6}$")
_DOMAIN_RE: Final = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)*[A-Za-z0-9-]{1,63}$")
_QUIET_RE: Final = re.compile(r"^(\d{2}:\d{2})-(\d{2}:\d{2})$")
_LOGO_TYPES: Final = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif"}


class _Reader:
    """Typed access to one table of brand.toml, with errors that name ``[table] key``."""

    def __init__(self, data: Mapping[str, Any], table: str, where: Path) -> None:
        value = data.get(table, {})
        self.table, self.where = table, where
        if not isinstance(value, dict):
            raise self.error("", "must be a table")
        self.values: dict[str, Any] = value
        self.used: set[str] = set()

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: [{self.table}] {key} {problem}".replace("]  ", "] "))

    def text(self, key: str, default: str, check: Callable[[str], bool] | None = None) -> str:
        self.used.add(key)
        value = self.values.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be text, got {value!r}")
        if any(ch in value for ch in "\r\n\x00"):
            raise self.error(key, "must be on one line")
        if value and check is not None and not check(value):
            raise self.error(key, f"is not valid: {value!r}")
        return value

    def number(self, key: str, default: int) -> int:
        self.used.add(key)
        value = self.values.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(key, f"must be a whole number of at least 1, got {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.values) - self.used)
        if unknown:
            raise self.error(
                unknown[0], f"is not a known key (known: {', '.join(sorted(self.used))})"
            )


def load_brand(folder: Path | None = None) -> Brand:
    """The brand in ``folder`` (default: the one shipped with forewarn)."""
    folder = folder or DEFAULT_BRAND_DIR
    path = folder / BRAND_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"brand folder {folder} has no {BRAND_FILE}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    known = ("sender", "look", "footer", "links", "sending")
    for table in data:
        if table not in known:
            raise ConfigError(f"{path}: [{table}] is not a known table (known: {', '.join(known)})")
    sender, look, footer, links, sending = (_Reader(data, t, path) for t in known)
    brand = Brand(
        name=sender.text("name", "forewarn service") or "forewarn service",
        from_addr=sender.text("address", "service@forewarn.invalid", _is_address),
        reply_to=sender.text("reply_to", "", _is_address) or None,
        message_id_domain=sender.text("message_id_domain", "forewarn.invalid", _is_domain),
        logo_url=look.text("logo_url", "", _is_web_url) or None,
        logo=_logo(folder, look),
        primary_colour=look.text("primary_colour", "#0b5cad", _is_colour),
        text_colour=look.text("text_colour", "#1d2329", _is_colour),
        background_colour=look.text("background_colour", "#f4f5f7", _is_colour),
        company=footer.text("company", "forewarn"),
        postal_address=footer.text("postal_address", ""),
        support_url=footer.text("support_url", "", _is_web_url) or None,
        public_url=links.text("public_url", "http://127.0.0.1:8000", _is_web_url),
        unsubscribe_mailto=links.text("unsubscribe_mailto", "", _is_address) or None,
        sending=_policy(sending),
        template_dir=folder / "templates" if (folder / "templates").is_dir() else None,
    )
    if not brand.from_addr:
        raise sender.error("address", "must be set")
    if not brand.public_url:
        raise links.error("public_url", "must be set: unsubscribe links point there")
    for reader in (sender, look, footer, links, sending):
        reader.finish()
    return brand


def _logo(folder: Path, look: _Reader) -> Logo | None:
    name = look.text("logo_file", "")
    if not name:
        return None
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents:
        raise look.error("logo_file", f"must name a file inside the brand folder, got {name!r}")
    subtype = _LOGO_TYPES.get(path.suffix.lower())
    if subtype is None:
        raise look.error("logo_file", f"must be {', '.join(_LOGO_TYPES)}, got {name!r}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise look.error("logo_file", f"cannot be read: {exc}") from exc
    if len(data) > MAX_LOGO_BYTES:
        raise look.error("logo_file", f"is larger than {MAX_LOGO_BYTES // 1000} kB")
    return Logo(data, subtype)


def _policy(sending: _Reader) -> SendPolicy:
    quiet = sending.text("quiet_hours", "21:00-08:00")
    match = _QUIET_RE.match(quiet)
    try:
        if match is None:
            raise ValueError(quiet)
        quiet_from, quiet_until = time.fromisoformat(match[1]), time.fromisoformat(match[2])
    except ValueError as exc:
        raise sending.error("quiet_hours", f"must look like 21:00-08:00, got {quiet!r}") from exc
    at = sending.text("reminder_time", "09:00")
    try:
        reminder_at = time.fromisoformat(at)
    except ValueError as exc:
        raise sending.error("reminder_time", f"must look like 09:00, got {at!r}") from exc
    return SendPolicy(
        daily_cap=sending.number("daily_cap", 3),
        quiet_from=quiet_from,
        quiet_until=quiet_until,
        reminder_at=reminder_at,
    )


def _is_colour(value: str) -> bool:
    return bool(_COLOUR_RE.match(value))


def _is_domain(value: str) -> bool:
    return bool(_DOMAIN_RE.match(value))


def _is_web_url(value: str) -> bool:
    parts = urlsplit(value)
    plain = value.isascii() and not any(ch in value for ch in '"<>, ')
    return plain and parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_address(value: str) -> bool:
    if not value.isascii():  # it goes into mailto: links and envelopes verbatim
        return False
    try:
        Address(addr_spec=value)
    except (ValueError, IndexError):
        return False
    return "@" in value


def email_renderer(
    brand_dir: Path | None,
    *,
    email_from: str | None,
    secret_key: str | None,
    key_file: Path,
) -> EmailRenderer:
    """The renderer a deployment sends with: its brand, and unsubscribe tokens signed by its key.

    Without a brand folder the shipped brand is used with ``email_from`` as the sender. Without
    ``secret_key`` (development) tokens are signed by a random key kept in ``key_file``.
    """
    brand = load_brand(brand_dir)
    if brand_dir is None and email_from:
        name, addr = parseaddr(email_from)
        if not _is_address(addr):
            raise ConfigError(f"FOREWARN_EMAIL_FROM {email_from!r} has no usable address")
        brand = replace(brand, name=name or brand.name, from_addr=addr)
    secret = secret_key.encode() if secret_key else load_or_create_secret(key_file)
    return EmailRenderer(brand=brand, tokens=UnsubscribeTokens(secret))
