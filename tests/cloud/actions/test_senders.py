"""SMTP and .eml folder senders against real servers and a real folder."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from cloud.actions.email import Brand, RenderedEmail, build_message
from cloud.actions.senders import EmlDirSender, MailOutcomeUnknown, MailRejected, SmtpSender
from cloud.errors import ConfigError, MailUnavailable
from forewarn.broker import free_port
from tests.cloud.actions.conftest import HangUpAfterData
from tests.conftest import SmtpSink


def message(message_id: str = "<m1@forewarn.invalid>") -> email.message.EmailMessage:
    return build_message(
        brand=Brand(),
        to_name="Ada Lovelace",
        to_addr="ada@example.org",
        rendered=RenderedEmail(subject="Hello", text="text body", html="<p>html body</p>"),
        message_id=message_id,
        correlation_id="corr-1",
        date_ms=1_767_225_600_000,
    )


class RefusingHandler:
    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        return self.reply


@pytest.fixture
def refusing_server(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    controller = Controller(RefusingHandler(request.param), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def test_smtp_sender_delivers_to_the_envelope_recipient(smtp_server: SmtpSink) -> None:
    SmtpSender(smtp_server.url, timeout_s=5).send(message())
    raw = smtp_server.wait_for(1)
    assert len(raw) == 1
    parsed = email.message_from_bytes(raw[0], policy=email.policy.default)
    assert parsed["Message-ID"] == "<m1@forewarn.invalid>"
    assert smtp_server.envelopes == [("service@forewarn.invalid", ["ada@example.org"])]


def test_smtp_sender_maps_a_closed_port_to_mail_unavailable() -> None:
    sender = SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(MailUnavailable) as caught:
        sender.send(message())
    assert not isinstance(caught.value, MailOutcomeUnknown)


@pytest.mark.parametrize("refusing_server", ["550 5.1.1 no such mailbox"], indirect=True)
def test_permanent_refusal_is_mail_rejected(refusing_server: str) -> None:
    with pytest.raises(MailRejected, match="550"):
        SmtpSender(refusing_server, timeout_s=5).send(message())


@pytest.mark.parametrize("refusing_server", ["451 4.3.0 try again later"], indirect=True)
def test_temporary_refusal_is_retryable(refusing_server: str) -> None:
    with pytest.raises(MailUnavailable, match="451") as caught:
        SmtpSender(refusing_server, timeout_s=5).send(message())
    assert not isinstance(caught.value, MailOutcomeUnknown)


def test_line_dropped_after_the_body_is_outcome_unknown(
    hangup_server: tuple[str, HangUpAfterData],
) -> None:
    url, handler = hangup_server
    with pytest.raises(MailOutcomeUnknown):
        SmtpSender(url, timeout_s=5).send(message())
    assert len(handler.messages) == 1  # the server did get it: resending would duplicate


@pytest.mark.parametrize(
    "url", ["http://mail.example:25", "smtp://", "smtp://host:notaport", "mailpit:1025"]
)
def test_bad_smtp_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        SmtpSender(url)


def test_smtp_url_parts() -> None:
    sender = SmtpSender("smtps://user:p%40ss@mail.example")
    assert (sender.host, sender.port) == ("mail.example", 465)
    assert SmtpSender("smtp+starttls://mail.example").port == 587
    assert SmtpSender("smtp://mail.example").port == 25


def test_eml_dir_writes_one_file_per_message_id(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    sender = EmlDirSender(folder)
    sender.send(message())
    sender.send(message())
    sender.send(message("<m2@forewarn.invalid>"))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["m1@forewarn.invalid.eml", "m2@forewarn.invalid.eml"]
    parsed = email.message_from_bytes(
        (folder / "m1@forewarn.invalid.eml").read_bytes(), policy=email.policy.default
    )
    assert parsed["Message-ID"] == "<m1@forewarn.invalid>"
    assert parsed.get_body(("html",)) is not None


def test_eml_dir_keeps_the_first_copy(tmp_path: Path) -> None:
    sender = EmlDirSender(tmp_path)
    sender.send(message())
    target = tmp_path / "m1@forewarn.invalid.eml"
    first = target.read_bytes()
    sender.send(message())  # a new MIME boundary, same message
    assert target.read_bytes() == first


def test_eml_dir_refuses_a_message_id_that_is_not_a_file_name(tmp_path: Path) -> None:
    with pytest.raises(MailRejected):
        EmlDirSender(tmp_path).path_for("<../../etc@x>")


def test_eml_dir_maps_an_unwritable_folder_to_mail_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailUnavailable):
        EmlDirSender(blocker / "outbox").send(message())
