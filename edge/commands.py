"""Parsing and checking of cloud→device commands (``firmware_specs/schemas/command.v1.json``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from edge.channels import ChannelCatalog

AckStatus = Literal["ok", "rejected", "failed", "expired"]
COMMAND_NAMES: Final = ("ping", "set_sample_interval", "reboot")
CMD_ID_RE: Final = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_FIELDS: Final = frozenset({"v", "cmd_id", "ts_ms", "name", "args", "expires_ms"})
_INTERVAL_ARGS: Final = frozenset({"sample_interval_s", "batch_interval_s"})
_MAX_INT: Final = 9007199254740991


@dataclass(frozen=True, slots=True)
class Command:
    cmd_id: str
    name: str
    args: Mapping[str, int]
    ts_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the device answers one command (the body of its ``cmd/ack``)."""

    cmd_id: str
    status: AckStatus
    detail: str


def parse_command(payload: bytes) -> Command | Verdict | None:
    """A well-formed command, a ``rejected`` verdict, or ``None`` when no cmd_id can be read.

    Without a readable cmd_id the device cannot say which command it refuses, so such a message
    is only counted.
    """
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    cmd_id = document.get("cmd_id")
    if not isinstance(cmd_id, str) or not CMD_ID_RE.match(cmd_id):
        return None
    problem = _problem(document)
    if problem is not None:
        return Verdict(cmd_id, "rejected", problem)
    return Command(
        cmd_id=cmd_id,
        name=document["name"],
        args=dict(document.get("args", {})),
        ts_ms=document["ts_ms"],
        expires_ms=document["expires_ms"],
    )


@dataclass(frozen=True, slots=True)
class Intervals:
    """The settings ``set_sample_interval`` changes (reported in the birth message)."""

    sample_interval_s: int
    batch_interval_s: int


def decide(
    command: Command, now_ms: int, limits: ChannelCatalog, current: Intervals
) -> tuple[Verdict, Intervals | None]:
    """The answer to a well-formed command, and the new intervals if it changes them."""
    if command.expires_ms < now_ms:
        detail = f"expired at {command.expires_ms}, received at {now_ms}"
        return Verdict(command.cmd_id, "expired", detail), None
    if command.name == "ping":
        return Verdict(command.cmd_id, "ok", "pong"), None
    if command.name == "reboot":
        return Verdict(command.cmd_id, "ok", "reboot requested"), None
    sample_s = command.args["sample_interval_s"]
    batch_s = command.args.get("batch_interval_s", current.batch_interval_s)
    if not limits.sample_interval_min_s <= sample_s <= limits.sample_interval_max_s:
        detail = (
            f"sample_interval_s {sample_s} outside {limits.sample_interval_min_s}.."
            f"{limits.sample_interval_max_s} for {limits.kind}"
        )
        return Verdict(command.cmd_id, "rejected", detail), None
    if "batch_interval_s" in command.args and not (
        limits.batch_interval_min_s <= batch_s <= limits.batch_interval_max_s
    ):
        detail = (
            f"batch_interval_s {batch_s} outside {limits.batch_interval_min_s}.."
            f"{limits.batch_interval_max_s} for {limits.kind}"
        )
        return Verdict(command.cmd_id, "rejected", detail), None
    detail = f"sample_interval_s={sample_s} batch_interval_s={batch_s}"
    return Verdict(command.cmd_id, "ok", detail), Intervals(sample_s, batch_s)


def _is_int(value: object, low: int = 0, high: int = _MAX_INT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _problem(document: Mapping[str, object]) -> str | None:
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        return f"unknown field(s): {', '.join(unknown)}"
    if document.get("v") != 1:
        return f"unsupported contract version {document.get('v')!r}; this device speaks v1"
    for field in ("ts_ms", "expires_ms"):
        if not _is_int(document.get(field)):
            return f"{field} must be a non-negative integer (UTC ms)"
    name = document.get("name")
    if name not in COMMAND_NAMES:
        return f"unknown command {name!r}; known: {', '.join(COMMAND_NAMES)}"
    args = document.get("args", {})
    if not isinstance(args, dict):
        return "args must be an object"
    if name != "set_sample_interval":
        return f"{name} takes no arguments" if args else None
    unknown = sorted(set(args) - _INTERVAL_ARGS)
    if unknown:
        return f"unknown argument(s): {', '.join(unknown)}"
    if "sample_interval_s" not in args:
        return "set_sample_interval needs args.sample_interval_s"
    for field in sorted(_INTERVAL_ARGS & set(args)):
        if not _is_int(args[field], 1, 86400):
            return f"args.{field} must be an integer 1..86400"
    return None
