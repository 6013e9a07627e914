"""Parsing of cloud→device commands."""

from __future__ import annotations

import json

import pytest

from edge.channels import catalog
from edge.commands import Command, Intervals, Verdict, decide, parse_command


def command(**fields: object) -> bytes:
    document: dict[str, object] = {
        "v": 1,
        "cmd_id": "cmd-00000001",
        "ts_ms": 1_000,
        "name": "ping",
        "expires_ms": 2_000,
    }
    document.update(fields)
    return json.dumps({k: v for k, v in document.items() if v is not None}).encode()


def test_a_well_formed_command_parses() -> None:
    parsed = parse_command(
        command(name="set_sample_interval", args={"sample_interval_s": 30, "batch_interval_s": 300})
    )
    assert parsed == Command(
        cmd_id="cmd-00000001",
        name="set_sample_interval",
        args={"sample_interval_s": 30, "batch_interval_s": 300},
        ts_ms=1_000,
        expires_ms=2_000,
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"v": 1, "name": "ping"}).encode(),
        command(cmd_id="short"),
        command(cmd_id="has spaces in it"),
        command(cmd_id=12345678),
    ],
)
def test_without_a_readable_cmd_id_there_is_nobody_to_answer(payload: bytes) -> None:
    assert parse_command(payload) is None


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"name": "self_destruct"}, "unknown command"),
        ({"v": 2}, "version"),
        ({"expires_ms": None}, "expires_ms"),
        ({"ts_ms": -1}, "ts_ms"),
        ({"ts_ms": True}, "ts_ms"),
        ({"colour": "red"}, "unknown field"),
        ({"args": {"x": 1}}, "takes no arguments"),
        ({"args": [1]}, "args must be an object"),
        ({"name": "set_sample_interval"}, "needs args.sample_interval_s"),
        ({"name": "set_sample_interval", "args": {"sample_interval_s": 0}}, "1..86400"),
        ({"name": "set_sample_interval", "args": {"sample_interval_s": 1.5}}, "1..86400"),
        ({"name": "set_sample_interval", "args": {"sample_interval_s": 60, "y": 1}}, "unknown arg"),
    ],
)
def test_a_broken_command_with_a_cmd_id_is_rejected(fields: dict[str, object], detail: str) -> None:
    parsed = parse_command(command(**fields))
    assert isinstance(parsed, Verdict)
    assert (parsed.cmd_id, parsed.status) == ("cmd-00000001", "rejected")
    assert detail in parsed.detail


def test_decisions_follow_the_profile_and_the_clock() -> None:
    limits = catalog("fridge")
    current = Intervals(60, 600)

    def decide_on(payload: bytes, now_ms: int = 1_500) -> tuple[Verdict, Intervals | None]:
        parsed = parse_command(payload)
        assert isinstance(parsed, Command)
        return decide(parsed, now_ms, limits, current)

    assert decide_on(command()) == (Verdict("cmd-00000001", "ok", "pong"), None)
    verdict, changed = decide_on(command(), now_ms=2_001)
    assert (verdict.status, changed) == ("expired", None)
    verdict, changed = decide_on(
        command(name="set_sample_interval", args={"sample_interval_s": 900})
    )
    assert (verdict.status, changed) == ("ok", Intervals(900, 600))
    verdict, changed = decide_on(
        command(name="set_sample_interval", args={"sample_interval_s": 901})
    )
    assert (verdict.status, changed) == ("rejected", None)
    verdict, changed = decide_on(
        command(name="set_sample_interval", args={"sample_interval_s": 60, "batch_interval_s": 30})
    )
    assert (verdict.status, changed) == ("rejected", None)
    assert "batch_interval_s 30 outside 60..3600" in verdict.detail
