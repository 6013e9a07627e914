"""The device contract as data: topics, JSON Schemas, product profiles and golden examples.

This package holds no logic beyond locating and loading its own files with the standard library,
so that both the edge agent (stdlib only) and the cloud read the same contract.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Final

SPEC_DIR: Final = Path(__file__).resolve().parent
CONTRACT_VERSION: Final = 1
TOPIC_ROOT: Final = "forewarn/v1"
KINDS: Final = ("fridge", "vending", "tyres")
SUFFIXES: Final = ("telemetry", "event", "status", "cmd", "cmd/ack")
# The pattern as JSON Schemas write it (ECMA-262, where "$" is the end of the string); Python's
# "$" would also match before a trailing newline, so the compiled form ends in \Z.
DEVICE_ID_PATTERN: Final = "^[a-z0-9][a-z0-9-]{2,47}$"
DEVICE_ID_RE: Final = re.compile(DEVICE_ID_PATTERN[:-1] + r"\Z")
_TOPIC_RE: Final = re.compile(
    r"^forewarn/v1/(?P<kind>[^/]+)/(?P<device_id>[^/]+)/(?P<suffix>telemetry|event|status|cmd|cmd/ack)\Z"
)


def topic(kind: str, device_id: str, suffix: str) -> str:
    """The MQTT topic of one device's stream, e.g. ``forewarn/v1/fridge/fr-0001/telemetry``."""
    if kind not in KINDS:
        raise ValueError(f"unknown product kind {kind!r}; known: {', '.join(KINDS)}")
    if not DEVICE_ID_RE.match(device_id):
        raise ValueError(f"device id {device_id!r} does not match {DEVICE_ID_PATTERN}")
    if suffix not in SUFFIXES:
        raise ValueError(f"unknown topic suffix {suffix!r}; known: {', '.join(SUFFIXES)}")
    return f"{TOPIC_ROOT}/{kind}/{device_id}/{suffix}"


def parse_topic(name: str) -> tuple[str, str, str] | None:
    """Split a topic into ``(kind, device_id, suffix)``; ``None`` if it is not a forewarn topic.

    The kind and device id are returned as found; callers check them against ``KINDS`` and
    ``DEVICE_ID_RE`` so that they can say which part was wrong.
    """
    match = _TOPIC_RE.match(name)
    if match is None:
        return None
    return match["kind"], match["device_id"], match["suffix"]


@cache
def load_json(relative: str) -> Any:
    """Load one JSON file of the contract, e.g. ``schemas/telemetry.v1.json``."""
    return json.loads((SPEC_DIR / relative).read_text(encoding="utf-8"))


def load_profile(kind: str) -> dict[str, Any]:
    """The product profile of ``kind``: channels, units, ranges, sample rates."""
    if kind not in KINDS:
        raise ValueError(f"unknown product kind {kind!r}; known: {', '.join(KINDS)}")
    profile: dict[str, Any] = load_json(f"profiles/{kind}.json")
    return profile


def load_schema(name: str) -> dict[str, Any]:
    """A JSON Schema by message name: telemetry, event, status, command, command_ack."""
    schema: dict[str, Any] = load_json(f"schemas/{name}.v{CONTRACT_VERSION}.json")
    return schema
