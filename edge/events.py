"""Checks on discrete device events (door, power, vend, restock, fault) before they are sealed."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Set
from typing import Final

from edge.errors import ReadingError

Check = Callable[[object], bool]
_SLOT_RE: Final = re.compile(r"^[A-J][0-9]{1,2}$")
_CODE_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_MAX_INT: Final = 9007199254740991


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _bool(value: object) -> bool:
    return isinstance(value, bool)


def _slot(value: object) -> bool:
    return isinstance(value, str) and _SLOT_RE.match(value) is not None


# Per event type: required field -> check, and optional field -> check (event.v1.json).
_REQUIRED: Final[dict[str, dict[str, Check]]] = {
    "door": {"open": _bool},
    "power": {"on": _bool},
    "vend": {
        "slot": _slot,
        "qty": lambda v: _is_int(v, 1, 100),
        "price_cents": lambda v: _is_int(v, 0, 1_000_000),
        "ok": _bool,
    },
    "restock": {"slot": _slot, "level": lambda v: _is_int(v, 0, 200)},
    "fault": {
        "code": lambda v: isinstance(v, str) and _CODE_RE.match(v) is not None,
        "severity": lambda v: v in ("warning", "critical"),
    },
}
_OPTIONAL: Final[dict[str, dict[str, Check]]] = {
    "fault": {"detail": lambda v: isinstance(v, str) and len(v) <= 200},
}


def check_event(event: Mapping[str, object], allowed_types: Set[str]) -> dict[str, object]:
    """A copy of ``event`` if the cloud will accept it; ReadingError saying why not otherwise."""
    if not isinstance(event, Mapping):
        raise ReadingError(f"an event must be a mapping, got {type(event).__name__}")
    kind = event.get("type")
    if kind not in _REQUIRED:
        raise ReadingError(f"unknown event type {kind!r}; known: {', '.join(_REQUIRED)}")
    if kind not in allowed_types:
        raise ReadingError(
            f"event type {kind!r} is not sent by this kind; "
            f"allowed: {', '.join(sorted(allowed_types))}"
        )
    if not _is_int(event.get("ts_ms"), 0, _MAX_INT):
        raise ReadingError(f"{kind} event: ts_ms must be a non-negative integer (UTC ms)")
    required = _REQUIRED[str(kind)]
    optional = _OPTIONAL.get(str(kind), {})
    extra = sorted(set(event) - {"ts_ms", "type"} - set(required) - set(optional))
    if extra:
        raise ReadingError(f"{kind} event: unexpected field(s) {', '.join(extra)}")
    for name, check in required.items():
        if name not in event:
            raise ReadingError(f"{kind} event: missing field {name!r}")
        if not check(event[name]):
            raise ReadingError(f"{kind} event: bad value {event[name]!r} for {name!r}")
    for name, check in optional.items():
        if name in event and not check(event[name]):
            raise ReadingError(f"{kind} event: bad value {event[name]!r} for {name!r}")
    return dict(event)
