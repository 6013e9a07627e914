"""The cloud's exception tree, grouped by how a caller recovers.

::

    ForewarnError
    ├── ConfigError            bad settings: stop start-up and say what to fix
    ├── RejectedInput          bad data from outside: count it, dead-letter it, go on
    │   └── DecodeError        a message that breaks the device contract (has a ``reason``)
    ├── TransientError         a server is away: retry with backoff, lose nothing
    │   ├── StoreUnavailable   telemetry store (embedded file database or InfluxDB)
    │   ├── DatabaseUnavailable  tickets / outbox database
    │   └── MailUnavailable    SMTP relay
    └── RenderError            a template could not be rendered completely (a bug, not a retry)

Third-party errors are mapped onto this tree at the adapter that calls the library, so that no
caller above an adapter ever catches ``paho``, ``sqlalchemy`` or ``smtplib`` exceptions.
"""

from __future__ import annotations


class ForewarnError(Exception):
    """Root of every error forewarn raises on purpose."""


class ConfigError(ForewarnError):
    """The configuration is wrong; the message says which setting and how to fix it."""


class RejectedInput(ForewarnError):
    """Input from outside that forewarn refuses; it is counted and kept, never fatal."""


class DecodeError(RejectedInput):
    """A message that breaks the device contract in ``firmware_specs/``.

    ``reason`` is a short stable code (``"schema"``, ``"range"``, ``"topic"`` ...) that is
    counted per reason; ``detail`` is for humans.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(ForewarnError):
    """A dependency is unavailable for now; retry with backoff."""


class StoreUnavailable(TransientError):
    """The telemetry store refused or failed a write."""


class DatabaseUnavailable(TransientError):
    """The tickets/outbox database could not be reached."""


class MailUnavailable(TransientError):
    """The SMTP server could not be reached or refused the message temporarily."""


class RenderError(ForewarnError):
    """A template referenced something the context does not have."""
