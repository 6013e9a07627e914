"""Decode MQTT messages of the device contract v1 into typed values, or reject them, saying why."""

from __future__ import annotations

import array
import copy
import functools
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jsonschema_rs
import numpy as np
import orjson

import firmware_specs as specs
from cloud.batch import FloatArray, TelemetryBatch
from cloud.errors import ConfigError, DecodeError
from cloud.messages import (
    CommandAck,
    Decoded,
    DoorEvent,
    Event,
    EventBatch,
    FaultEvent,
    PowerEvent,
    RawMessage,
    Reject,
    RestockEvent,
    Status,
    Telemetry,
    VendEvent,
)

MAX_PAYLOAD_BYTES: Final = 65536
FUTURE_TOLERANCE_MS: Final = 300_000  # device clocks run ahead; beyond this the clock is wrong
MAX_AGE_MS: Final = 30 * 86_400_000  # the outbox TTL; anything older is not worth storing
REASONS: Final = (
    "size",
    "encoding",
    "json",
    "schema",
    "topic",
    "channel",
    "range",
    "order",
    "future",
    "too_old",
    "duplicate",
)
_DETAIL_MAX_CHARS: Final = 300  # a hostile topic or value must not bloat the dead-letter store
_SCHEMA_OF_SUFFIX: Final = {
    "telemetry": "telemetry",
    "event": "event",
    "status": "status",
    "cmd/ack": "command_ack",
}


__all__ = [
    "FUTURE_TOLERANCE_MS",
    "MAX_AGE_MS",
    "MAX_PAYLOAD_BYTES",
    "REASONS",
    "CommandAck",
    "Decoded",
    "DoorEvent",
    "Event",
    "EventBatch",
    "FaultEvent",
    "PowerEvent",
    "RawMessage",
    "Reject",
    "RestockEvent",
    "Status",
    "Telemetry",
    "VendEvent",
    "decode",
    "decode_many",
    "to_batches",
    "topic_identity",
]


class _Rejection(DecodeError):
    """A ``DecodeError`` that also knows how many readings the message carried."""

    def __init__(self, reason: str, detail: str, rows: int = 0) -> None:
        super().__init__(reason, detail[:_DETAIL_MAX_CHARS])
        self.rows = rows


# --- the schema as the single source of truth --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ItemRule:
    """An array-item subschema (``type``, ``minimum``, ``maximum``) checked on a whole array."""

    types: frozenset[type]  # exact Python types; type(True) is bool, so booleans never pass
    integral: bool  # "integer": floats must be whole (JSON Schema counts 2.0 as an integer)
    type_names: str
    minimum: float
    maximum: float

    _PY_TYPES: ClassVar[Mapping[str, tuple[type, ...]]] = {
        "integer": (int, float),
        "number": (int, float),
        "null": (type(None),),
    }

    @classmethod
    def from_schema(cls, item: Mapping[str, Any], where: str) -> _ItemRule:
        unknown = set(item) - {"type", "minimum", "maximum", "description"}
        if unknown:
            raise ConfigError(
                f"{where} uses {sorted(unknown)}, which the vectorized item check does not "
                "implement; extend cloud.wire._ItemRule before changing the schema"
            )
        names = [item["type"]] if isinstance(item["type"], str) else list(item["type"])
        return cls(
            frozenset(t for name in names for t in cls._PY_TYPES[name]),
            "integer" in names and "number" not in names,
            " or ".join(names),
            float(item.get("minimum", -np.inf)),
            float(item.get("maximum", np.inf)),
        )

    def accepts(self, items: list[Any]) -> bool:
        """True if every item passes as it is (the fast, usual case)."""
        found = set(map(type, items))
        return found <= self.types and not (self.integral and float in found)

    def normalized(self, items: list[Any], where: str, rows: int) -> list[Any]:
        """``items`` if they pass (whole floats turned into ints for an integer rule)."""
        if self.accepts(items):
            return items
        for at, item in enumerate(items):
            if type(item) not in self.types or (
                self.integral and type(item) is float and not item.is_integer()
            ):
                detail = f"{where}[{at}] must be {self.type_names}, got {item!r}"
                raise _Rejection("schema", detail, rows)
        return [int(x) if type(x) is float else x for x in items]


def _int(value: Any) -> int:
    """A schema-checked integer; JSON Schema also accepts whole floats such as ``42.0``."""
    return value if type(value) is int else int(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _compile(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    """A validator for one contract schema (draft 2020-12, compiled once, in Rust)."""
    validator = jsonschema_rs.validator_for(dict(schema))

    def validate(instance: Any) -> None:
        if not validator.is_valid(instance):
            error = next(validator.iter_errors(instance))
            where = "data" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path
            )
            raise _SchemaViolation(f"{where}: {error.message}")

    return validate


class _SchemaViolation(ValueError):
    """A payload does not satisfy its contract schema (mapped to the reason ``schema``)."""


_VALIDATORS: Final = {
    suffix: _compile(specs.load_schema(n)) for suffix, n in _SCHEMA_OF_SUFFIX.items()
}


def _split_telemetry_schema() -> tuple[Callable[[Any], Any], _ItemRule, _ItemRule]:
    """The whole telemetry schema, plus its item rules for normalising the arrays it accepted."""
    schema = specs.load_schema("telemetry")
    ts_items = copy.deepcopy(schema["properties"]["ts_ms"]["items"])
    value_items = copy.deepcopy(schema["properties"]["values"]["additionalProperties"]["items"])
    value_rule = _ItemRule.from_schema(value_items, "telemetry values items")
    if value_rule.integral:
        raise ConfigError("telemetry values items must be numbers: the decoder keeps them as sent")
    return _compile(schema), _ItemRule.from_schema(ts_items, "telemetry ts_ms items"), value_rule


_TELEMETRY_SCHEMA, _TS_RULE, _VALUE_RULE = _split_telemetry_schema()


# --- the product profiles ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Channels:
    """Bounds of one channel-name set of one kind, ready for a vectorized range check."""

    min_col: FloatArray  # (n_channels, 1)
    max_col: FloatArray


class _KindRules:
    """What the profile of one kind allows: channel names, ranges and event types."""

    _CACHE_LIMIT: ClassVar[int] = 4096

    def __init__(self, kind: str) -> None:
        profile = specs.load_profile(kind)
        self.kind = kind
        self.order = tuple(c["name"] for c in profile["channels"])
        self.bounds = {c["name"]: (float(c["min"]), float(c["max"])) for c in profile["channels"]}
        self.patterns = [
            (re.compile(p["pattern"]), float(p["min"]), float(p["max"]))
            for p in profile["channel_patterns"]
        ]
        self.event_types = frozenset(profile["event_types"])
        self._sets: dict[tuple[str, ...], _Channels] = {}

    def bounds_of(self, name: str) -> tuple[float, float] | None:
        exact = self.bounds.get(name)
        if exact is not None:
            return exact
        for regex, low, high in self.patterns:
            if regex.fullmatch(name):
                return low, high
        return None

    def channels(self, names: tuple[str, ...], rows: int) -> _Channels:
        known = self._sets.get(names)
        if known is not None:
            return known
        lows, highs = [], []
        for name in names:
            bounds = self.bounds_of(name)
            if bounds is None:
                raise _Rejection("channel", f"{self.kind} has no channel {name!r}", rows)
            lows.append(bounds[0])
            highs.append(bounds[1])
        if len(self._sets) >= self._CACHE_LIMIT:
            self._sets.clear()
        made = _Channels(np.array(lows)[:, None], np.array(highs)[:, None])
        self._sets[names] = made
        return made

    def column_order(self, present: Iterable[str]) -> tuple[str, ...]:
        """Profile channels in profile order, then pattern channels by name."""
        found = set(present)
        return tuple(c for c in self.order if c in found) + tuple(sorted(found - set(self.order)))


_RULES: Final = {kind: _KindRules(kind) for kind in specs.KINDS}


# --- decoding ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 16)  # a fleet's topics repeat with every message
def _route(topic: str) -> tuple[str, str, str]:
    parts = specs.parse_topic(topic)
    if parts is None:
        raise _Rejection("topic", f"{topic!r} is not a {specs.TOPIC_ROOT}/kind/device_id/... topic")
    kind, device_id, suffix = parts
    if kind not in _RULES:
        raise _Rejection("topic", f"unknown product kind {kind!r}")
    if not specs.DEVICE_ID_RE.fullmatch(device_id):
        raise _Rejection("topic", f"device id {device_id!r} does not match the device id pattern")
    if suffix not in _VALIDATORS:
        raise _Rejection(
            "topic", f"{suffix!r} flows from the cloud to the device; ingest ignores it"
        )
    if topic != f"{specs.TOPIC_ROOT}/{kind}/{device_id}/{suffix}":
        raise _Rejection("topic", f"{topic!r} is not a canonical topic")
    return kind, device_id, suffix


def _parse(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _Rejection("size", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(payload).decode("utf-8")
        except UnicodeDecodeError as utf8_exc:
            raise _Rejection("encoding", f"not UTF-8: {utf8_exc}") from utf8_exc
        raise _Rejection("json", f"not JSON: {exc}") from exc
    if type(obj) is not dict:
        raise _Rejection("json", f"payload is a JSON {type(obj).__name__}, not an object")
    return obj


def _validate(validate: Callable[[Any], Any], obj: dict[str, Any], rows: int = 0) -> None:
    try:
        validate(obj)
    except _SchemaViolation as exc:
        raise _Rejection("schema", str(exc), rows) from exc


def _check_identity(obj: dict[str, Any], kind: str, device_id: str, rows: int = 0) -> None:
    if obj["device_id"] != device_id or obj["kind"] != kind:
        raise _Rejection(
            "topic",
            f"payload says {obj['kind']}/{obj['device_id']} on the topic of {kind}/{device_id}",
            rows,
        )


def _check_times(first_ms: int, last_ms: int, received_ms: int, rows: int = 0) -> None:
    if last_ms > received_ms + FUTURE_TOLERANCE_MS:
        ahead_s = (last_ms - received_ms) / 1000
        raise _Rejection("future", f"ts_ms {last_ms} is {ahead_s:.0f} s after receipt", rows)
    if first_ms < received_ms - MAX_AGE_MS:
        age_d = (received_ms - first_ms) / 86_400_000
        hint = " (seconds instead of milliseconds?)" if first_ms < 10**11 else ""
        raise _Rejection("too_old", f"ts_ms {first_ms} is {age_d:.1f} days old{hint}", rows)


def _decode_telemetry(
    obj: dict[str, Any], kind: str, device_id: str, now_ms: int, *, checked: bool = True
) -> Telemetry:
    """A telemetry message; ``checked=False`` leaves the range and time checks to the caller."""
    ts: Any = obj.get("ts_ms")
    rows = len(ts) if type(ts) is list else 0
    _validate(_TELEMETRY_SCHEMA, obj, rows)
    values: dict[str, list[Any]] = obj["values"]
    # JSON Schema counts 42.0 as an integer: keep ts_ms as ints from here on.
    ts = _TS_RULE.normalized(ts, "data.ts_ms", rows)
    flat: list[Any] = []
    for column in values.values():
        flat += column
    _check_identity(obj, kind, device_id, rows)
    for name, column in values.items():
        if len(column) != rows:
            raise _Rejection("channel", f"{name} has {len(column)} values for {rows} ts_ms", rows)
    names = tuple(values)
    channels = _RULES[kind].channels(names, rows)
    if not all(map(operator.lt, ts, ts[1:])):
        at = next(i for i in range(1, rows) if ts[i] <= ts[i - 1])
        raise _Rejection("order", f"ts_ms[{at}]={ts[at]} is not after ts_ms[{at - 1}]", rows)
    table = _float_table(flat).reshape(len(names), rows)
    if checked:
        _check_range(names, table, channels, rows)
        _check_times(ts[0], ts[-1], now_ms, rows)
    return Telemetry(device_id, kind, _int(obj["seq"]), _int(obj["sent_ms"]), ts, values, table)


def _float_table(flat: list[Any]) -> FloatArray:
    """The values as float64; a C double array converts plain numbers fastest, nulls become NaN."""
    try:
        return np.frombuffer(array.array("d", flat), dtype=np.float64)
    except TypeError:  # a null (None) among the values
        return np.array(flat, dtype=np.float64)


def _check_range(names: tuple[str, ...], table: FloatArray, channels: _Channels, rows: int) -> None:
    outside = (table < channels.min_col) | (table > channels.max_col)
    if outside.any():
        c, r = (int(i[0]) for i in np.nonzero(outside))
        low, high = channels.min_col[c, 0], channels.max_col[c, 0]
        raise _Rejection("range", f"{names[c]}[{r}]={table[c, r]} outside [{low}, {high}]", rows)


def _event(item: dict[str, Any]) -> Event:
    match item["type"]:
        case "door":
            return DoorEvent(_int(item["ts_ms"]), item["open"])
        case "power":
            return PowerEvent(_int(item["ts_ms"]), item["on"])
        case "vend":
            qty, price_cents = _int(item["qty"]), _int(item["price_cents"])
            return VendEvent(_int(item["ts_ms"]), item["slot"], qty, price_cents, item["ok"])
        case "restock":
            return RestockEvent(_int(item["ts_ms"]), item["slot"], _int(item["level"]))
        case _:
            detail = item.get("detail")
            return FaultEvent(_int(item["ts_ms"]), item["code"], item["severity"], detail)


def _decode_events(obj: dict[str, Any], kind: str, device_id: str, now_ms: int) -> EventBatch:
    _validate(_VALIDATORS["event"], obj)
    _check_identity(obj, kind, device_id)
    items: list[dict[str, Any]] = obj["events"]
    allowed = _RULES[kind].event_types
    for i, item in enumerate(items):
        if item["type"] not in allowed:
            raise _Rejection("channel", f"events[{i}]: {kind} sends no {item['type']!r} events")
    for i in range(1, len(items)):
        if items[i]["ts_ms"] < items[i - 1]["ts_ms"]:
            raise _Rejection("order", f"events[{i}].ts_ms is before events[{i - 1}].ts_ms")
    _check_times(items[0]["ts_ms"], items[-1]["ts_ms"], now_ms)
    events = tuple(_event(item) for item in items)
    return EventBatch(device_id, kind, _int(obj["seq"]), _int(obj["sent_ms"]), events)


def _decode_status(obj: dict[str, Any], kind: str, device_id: str) -> Status:
    # No clock checks: a retained birth is legitimately as old as the connection it announces.
    _validate(_VALIDATORS["status"], obj)
    _check_identity(obj, kind, device_id)
    get = obj.get
    visits = (get("attributes") or {}).get("visits")
    if isinstance(visits, dict):
        _check_zone(visits["tz"], "attributes.visits.tz")
    return Status(
        device_id,
        kind,
        obj["state"],
        _optional_int(get("ts_ms")),
        get("reason"),
        get("fw"),
        get("model"),
        _optional_int(get("sample_interval_s")),
        _optional_int(get("batch_interval_s")),
        get("attributes") or {},
    )


def _check_zone(name: str, where: str) -> None:
    """An IANA time zone the platform knows; the schema can only check its shape."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _Rejection("schema", f"{where}: unknown time zone {name!r}") from exc


def _decode_ack(obj: dict[str, Any], kind: str, device_id: str, now_ms: int) -> CommandAck:
    _validate(_VALIDATORS["cmd/ack"], obj)
    _check_identity(obj, kind, device_id)
    _check_times(obj["ts_ms"], obj["ts_ms"], now_ms)
    seq, ts_ms = _int(obj["seq"]), _int(obj["ts_ms"])
    return CommandAck(device_id, kind, seq, obj["cmd_id"], ts_ms, obj["status"], obj.get("detail"))


def decode(msg: RawMessage) -> Decoded:
    """Decode one message, or raise ``DecodeError`` whose ``reason`` is one of ``REASONS``.

    The checks run in this order and the first failing one gives the reason: topic, size,
    encoding, json, schema, topic (payload identity), channel, order, range, future, too_old.
    ``duplicate`` is never raised here: finding repeated ``seq`` needs state (see ingest).
    """
    kind, device_id, suffix = _route(msg.topic)
    obj = _parse(msg.payload)
    if suffix == "telemetry":
        return _decode_telemetry(obj, kind, device_id, msg.received_ms)
    if suffix == "event":
        return _decode_events(obj, kind, device_id, msg.received_ms)
    if suffix == "status":
        return _decode_status(obj, kind, device_id)
    return _decode_ack(obj, kind, device_id, msg.received_ms)


def topic_identity(topic: str) -> tuple[str | None, str | None]:
    """Device id and kind named by a topic, each ``None`` if the topic does not name a valid one."""
    try:
        kind, device_id, _ = _route(topic)  # the usual case, cached: a valid ingest topic
    except _Rejection:
        pass
    else:
        return device_id, kind
    parts = specs.parse_topic(topic)
    if parts is None:
        return None, None
    kind, device_id, _ = parts
    return (
        device_id if specs.DEVICE_ID_RE.fullmatch(device_id) else None,
        kind if kind in _RULES else None,
    )


def decode_many(msgs: Iterable[RawMessage]) -> tuple[list[Decoded], list[Reject]]:
    """Decode every message; bad ones become ``Reject`` values, never exceptions.

    Gives what ``decode`` gives message by message (same reasons and details, both lists in
    arrival order), but checks telemetry ranges once per kind and channel set of the whole
    group instead of once per message; only a set holding an out-of-range value is then
    checked message by message.
    """
    decoded: list[Decoded | None] = []
    sources: list[tuple[int, RawMessage]] = []  # arrival position and message of each decoded
    rejects: list[tuple[int, Reject]] = []
    sets: dict[tuple[str, tuple[str, ...]], list[int]] = {}  # telemetry positions by channel set
    for at, msg in enumerate(msgs):
        try:
            kind, device_id, suffix = _route(msg.topic)
            if suffix == "telemetry":
                obj = _parse(msg.payload)
                item = _decode_telemetry(obj, kind, device_id, msg.received_ms, checked=False)
                sets.setdefault((kind, tuple(item.values)), []).append(len(decoded))
                decoded.append(item)
            else:
                decoded.append(decode(msg))
            sources.append((at, msg))
        except DecodeError as exc:
            rejects.append((at, _reject(msg, exc)))
    late = len(rejects)
    for (kind, names), members in sets.items():
        _check_group(decoded, sources, kind, names, members, rejects)
    if len(rejects) > late:
        rejects.sort(key=operator.itemgetter(0))
    return [d for d in decoded if d is not None], [r for _, r in rejects]


def _check_group(
    decoded: list[Decoded | None],
    sources: list[tuple[int, RawMessage]],
    kind: str,
    names: tuple[str, ...],
    members: list[int],
    rejects: list[tuple[int, Reject]],
) -> None:
    """Range and time checks of telemetry sharing one channel set; failures become rejects."""
    items = [cast(Telemetry, decoded[i]) for i in members]
    channels = _RULES[kind].channels(names, 0)
    block = np.concatenate([cast(FloatArray, t.table) for t in items], axis=1)
    in_range = not ((block < channels.min_col) | (block > channels.max_col)).any()
    for i, item in zip(members, items, strict=True):
        at, msg = sources[i]
        rows = len(item.ts_ms)
        try:
            if not in_range:
                _check_range(names, cast(FloatArray, item.table), channels, rows)
            _check_times(item.ts_ms[0], item.ts_ms[-1], msg.received_ms, rows)
        except _Rejection as exc:
            decoded[i] = None
            rejects.append((at, _reject(msg, exc)))


def _reject(msg: RawMessage, exc: DecodeError) -> Reject:
    device_id, kind = topic_identity(msg.topic)
    rows = exc.rows if isinstance(exc, _Rejection) else 0
    return Reject(
        msg.topic, bytes(msg.payload), msg.received_ms, exc.reason, exc.detail, device_id, kind,
        rows,
    )  # fmt: skip


def to_batches(items: Sequence[Telemetry]) -> dict[str, TelemetryBatch]:
    """Columnar batches per kind; NaN where a device sent null or did not report a channel.

    Rows keep their arrival order unless a device's rows would go back in time (a back-filled
    message after a newer one); then the batch is ordered by device and time.
    """
    by_kind: dict[str, list[Telemetry]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    return {kind: _batch(kind, group) for kind, group in by_kind.items()}


def _batch(kind: str, group: list[Telemetry]) -> TelemetryBatch:
    device_index: dict[str, int] = {}
    ts_flat: list[int] = []
    row_counts: list[int] = []
    members_of: dict[tuple[str, ...], list[int]] = {}  # messages by their channel-name tuple
    for i, item in enumerate(group):
        device_index.setdefault(item.device_id, len(device_index))
        ts_flat += item.ts_ms
        row_counts.append(len(item.ts_ms))
        members_of.setdefault(tuple(item.values), []).append(i)
    channels = _RULES[kind].column_order(set().union(*members_of))
    column_of = {name: c for c, name in enumerate(channels)}
    counts = np.array(row_counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    values = np.full((len(ts_flat), len(channels)), np.nan)
    for names, members in members_of.items():
        # One conversion and one scatter per distinct channel set, not per message: the
        # members' columns are joined as Python lists first (cheap), then converted once.
        tables = [group[i].table for i in members]
        if all(t is not None for t in tables):
            block = np.concatenate(tables, axis=1)
        else:
            joined: list[list[Any]] = [[] for _ in names]
            for i in members:
                for acc, column in zip(joined, group[i].values.values(), strict=True):
                    acc += column
            block = np.array(joined, dtype=np.float64).reshape(len(names), -1)
        index = np.array(members, dtype=np.int64)
        n = counts[index]
        rows = np.repeat(starts[index] - (np.cumsum(n) - n), n) + np.arange(block.shape[1])
        cols = np.array([column_of[name] for name in names], dtype=np.int64)
        values[rows[:, None], cols[None, :]] = block.T
    row_device = np.repeat(np.array([device_index[t.device_id] for t in group], np.int64), counts)
    row_seq = np.repeat(np.array([t.seq for t in group], dtype=np.int64), counts)
    ts_ms = np.array(ts_flat, dtype=np.int64)
    order = np.lexsort((ts_ms, row_device))
    if not np.all((np.diff(order) > 0) | (np.diff(row_device[order]) != 0)):
        row_device, row_seq, ts_ms, values = (
            a[order] for a in (row_device, row_seq, ts_ms, values)
        )
    return TelemetryBatch(
        kind=kind,
        device_ids=tuple(device_index),
        channels=channels,
        row_device=row_device,
        row_seq=row_seq,
        ts_ms=ts_ms,
        values=values,
    )
