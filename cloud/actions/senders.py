"""Where emails go: an SMTP relay, or a folder of ``.eml`` files (the embedded default).

Senders tell the outbox what happened through the error tree:

- ``MailUnavailable``: the message was certainly not handed over; retry later.
- ``MailOutcomeUnknown``: the connection broke after the message body was sent, so the server
  may have accepted it; the outbox parks it rather than risk a second copy.
- ``MailRejected``: the server refused the message for good (5xx); retrying cannot help.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

from cloud.errors import ConfigError, MailUnavailable, RejectedInput

DEFAULT_TIMEOUT_S: Final = 30.0
_SAFE_FILE_RE: Final = re.compile(r"^<([A-Za-z0-9._-]+@[A-Za-z0-9.-]+)>$")


class MailOutcomeUnknown(MailUnavailable):
    """The server may or may not have accepted the message."""


class MailRejected(RejectedInput):
    """The server refused the message permanently (e.g. no such mailbox)."""


class EmailSender(Protocol):
    def send(self, msg: EmailMessage) -> None:
        """Hand ``msg`` over for delivery, or raise one of the errors above."""


class SmtpSender:
    """Send through an SMTP server given as a URL.

    ``smtp://[user:pass@]host[:25]`` (plain), ``smtp+starttls://...[:587]`` (upgraded),
    ``smtps://...[:465]`` (TLS from the start). One connection per message.
    """

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        defaults = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
        if parts.scheme not in defaults or not parts.hostname:
            raise ConfigError(
                f"SMTP URL {url!r}: use smtp://, smtp+starttls:// or smtps://host:port"
            )
        try:
            port = parts.port or defaults[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"SMTP URL {url!r} has a bad port") from exc
        self.host: str = parts.hostname
        self.port: int = port
        self._scheme = parts.scheme
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._timeout_s = timeout_s

    def send(self, msg: EmailMessage) -> None:
        sender = msg["From"].addresses[0].addr_spec
        recipients = [addr.addr_spec for addr in msg["To"].addresses]
        data = msg.as_bytes(policy=SMTP)
        try:
            client = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            raise MailUnavailable(f"SMTP {self.host}:{self.port} unreachable: {exc}") from exc
        with contextlib.closing(client):
            try:
                self._start(client)
                _expect(client.mail(sender), (250,), "MAIL FROM")
                for rcpt in recipients:
                    _expect(client.rcpt(rcpt), (250, 251), f"RCPT TO {rcpt}")
            except (OSError, smtplib.SMTPException) as exc:
                raise MailUnavailable(f"SMTP {self.host}:{self.port}: {exc}") from exc
            try:
                code, reply = client.data(data)
            except smtplib.SMTPDataError as exc:  # a definite answer to DATA: not accepted
                raise _refusal(exc.smtp_code, exc.smtp_error, "DATA") from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise MailOutcomeUnknown(f"SMTP connection lost during DATA: {exc}") from exc
            _expect((code, reply), (250,), "DATA")
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()  # the message is accepted; a failing goodbye changes nothing

    def _connect(self) -> smtplib.SMTP:
        if self._scheme == "smtps":
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self._timeout_s, context=ssl.create_default_context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self._timeout_s)

    def _start(self, client: smtplib.SMTP) -> None:
        client.ehlo_or_helo_if_needed()
        if self._scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
            client.ehlo()
        if self._user is not None:
            client.login(self._user, self._password or "")


def _expect(answer: tuple[int, bytes], ok: tuple[int, ...], step: str) -> None:
    code, reply = answer
    if code not in ok:
        raise _refusal(code, reply, step)


def _refusal(code: int, reply: bytes | str, step: str) -> MailUnavailable | MailRejected:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    if 500 <= code < 600:
        return MailRejected(f"SMTP {step} refused: {code} {text}")
    return MailUnavailable(f"SMTP {step} deferred: {code} {text}")


class EmlDirSender:
    """Write each message to ``folder/<message-id>.eml``; a second send of it changes nothing.

    The file appears atomically (written under a temporary name, then linked into place), so a
    reader never sees half a message and two writers of one Message-ID leave one file.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, message_id: str) -> Path:
        match = _SAFE_FILE_RE.match(message_id)
        if match is None:
            raise MailRejected(f"Message-ID {message_id!r} cannot name a file")
        return self.folder / f"{match[1]}.eml"

    def send(self, msg: EmailMessage) -> None:
        target = self.path_for(str(msg["Message-ID"]))
        if target.exists():
            return
        data = msg.as_bytes(policy=SMTP)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                with contextlib.suppress(FileExistsError):
                    os.link(tmp_name, target)  # unlike rename, never replaces a finished file
            finally:
                os.unlink(tmp_name)
        except OSError as exc:
            raise MailUnavailable(
                f"cannot write {target.name} to the outbox folder: {exc}"
            ) from exc
