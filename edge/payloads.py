"""JSON payloads of the device contract v1 (``firmware_specs/schemas``), built with the stdlib."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from edge.errors import ReadingError

CONTRACT_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 65536
# A seq this wide sizes a payload before its real seq is known (JSON max safe integer).
_WIDEST_SEQ: Final = 9007199254740991

Row = tuple[int, Mapping[str, float | None]]
T = TypeVar("T")


def encode(document: Mapping[str, object]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (JSON has no such numbers)."""
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise ReadingError(f"cannot encode payload: {exc}") from exc


def telemetry(device_id: str, kind: str, seq: int, sent_ms: int, rows: Sequence[Row]) -> bytes:
    """One telemetry message: rows become columns; a channel missing from a row is ``null``."""
    channels: dict[str, list[float | None]] = {}
    for index, (_, values) in enumerate(rows):
        for channel, value in values.items():
            column = channels.get(channel)
            if column is None:
                column = channels[channel] = [None] * len(rows)
            column[index] = value
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "seq": seq,
            "sent_ms": sent_ms,
            "ts_ms": [ts_ms for ts_ms, _ in rows],
            "values": channels,
        }
    )


def events(
    device_id: str, kind: str, seq: int, sent_ms: int, items: Sequence[Mapping[str, object]]
) -> bytes:
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "seq": seq,
            "sent_ms": sent_ms,
            "events": list(items),
        }
    )


def command_ack(
    device_id: str, kind: str, seq: int, cmd_id: str, ts_ms: int, status: str, detail: str
) -> bytes:
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "seq": seq,
            "cmd_id": cmd_id,
            "ts_ms": ts_ms,
            "status": status,
            "detail": detail[:200],
        }
    )


def birth(
    device_id: str,
    kind: str,
    ts_ms: int,
    *,
    fw: str,
    model: str,
    sample_interval_s: int,
    batch_interval_s: int,
    attributes: Mapping[str, object],
) -> bytes:
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "state": "online",
            "ts_ms": ts_ms,
            "fw": fw,
            "model": model,
            "sample_interval_s": sample_interval_s,
            "batch_interval_s": batch_interval_s,
            "attributes": dict(attributes),
        }
    )


def last_will(device_id: str, kind: str) -> bytes:
    """Composed at connect time, so it carries no ts_ms; the broker publishes it."""
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "state": "offline",
            "reason": "lost",
        }
    )


def shutdown(device_id: str, kind: str, ts_ms: int) -> bytes:
    return encode(
        {
            "v": CONTRACT_VERSION,
            "device_id": device_id,
            "kind": kind,
            "state": "offline",
            "reason": "shutdown",
            "ts_ms": ts_ms,
        }
    )


def split_to_fit(items: Sequence[T], build: Callable[[int, Sequence[T]], bytes]) -> list[list[T]]:
    """Cut ``items`` into consecutive chunks whose payload ``build(seq, chunk)`` fits the limit.

    Sizes are measured with the widest possible seq, so the real seq never pushes a chunk over.
    A single item that alone is too large cannot be sent and raises ReadingError.
    """
    if len(build(_WIDEST_SEQ, items)) <= MAX_PAYLOAD_BYTES:
        return [list(items)]
    if len(items) == 1:
        raise ReadingError(f"one row or event alone encodes to more than {MAX_PAYLOAD_BYTES} bytes")
    middle = len(items) // 2
    return split_to_fit(items[:middle], build) + split_to_fit(items[middle:], build)
