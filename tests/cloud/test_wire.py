"""The decoder: typed values for good messages, one stable reason for each bad one."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

import firmware_specs as specs
from cloud import wire
from cloud.errors import DecodeError

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN_MS = 60_000
DAY_MS = 86_400_000
FRIDGE = "forewarn/v1/fridge/fr-000001/telemetry"
SPECS = Path(specs.__file__).resolve().parent


def fridge(
    seq: int = 1, rows: int = 3, device_id: str = "fr-000001", **extra: Any
) -> dict[str, Any]:
    ts_ms = [NOW_MS - (rows - i) * MIN_MS for i in range(rows)]
    payload: dict[str, Any] = {
        "v": 1,
        "device_id": device_id,
        "kind": "fridge",
        "seq": seq,
        "sent_ms": NOW_MS,
        "ts_ms": ts_ms,
        "values": {
            "cabinet_c": [4.0 + 0.1 * i for i in range(rows)],
            "compressor_on": [0.5] * rows,
            "door_open_s": [0] * rows,
        },
    }
    payload.update(extra)
    return payload


def raw(payload: Any, topic: str = FRIDGE, received_ms: int = NOW_MS) -> wire.RawMessage:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return wire.RawMessage(topic, body, received_ms)


def reason_of(msg: wire.RawMessage) -> str:
    with pytest.raises(DecodeError) as info:
        wire.decode(msg)
    assert info.value.reason in wire.REASONS
    return info.value.reason


# --- telemetry ----------------------------------------------------------------------------------


def test_telemetry_decodes_to_what_was_sent() -> None:
    payload = fridge(seq=7)
    payload["values"]["door_open_s"][1] = None
    decoded = wire.decode(raw(payload))
    assert isinstance(decoded, wire.Telemetry)
    assert (decoded.device_id, decoded.kind, decoded.seq, decoded.sent_ms) == (
        "fr-000001",
        "fridge",
        7,
        NOW_MS,
    )
    assert decoded.ts_ms == payload["ts_ms"]
    assert decoded.values == payload["values"]
    assert decoded.values["door_open_s"][1] is None
    batch = wire.to_batches([decoded])["fridge"]
    assert math.isnan(batch.channel("door_open_s")[1])
    assert batch.channel("door_open_s")[0] == 0.0


def test_pattern_channels_are_accepted_and_checked() -> None:
    topic = "forewarn/v1/vending/vm-000001/telemetry"
    payload = {
        "v": 1,
        "device_id": "vm-000001",
        "kind": "vending",
        "seq": 1,
        "sent_ms": NOW_MS,
        "ts_ms": [NOW_MS - MIN_MS],
        "values": {"slot.J12.stock": [200], "slot.A1.fails": [0]},
    }
    assert isinstance(wire.decode(raw(payload, topic)), wire.Telemetry)
    for bad in ("slot.K1.stock", "slot.A123.stock", "slot.A1.stock.x", "slot.a1.stock"):
        assert reason_of(raw({**payload, "values": {bad: [1]}}, topic)) == "channel"
    assert reason_of(raw({**payload, "values": {"slot.B2.stock": [201]}}, topic)) == "range"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(-40, True), (60, True), (60.000001, False), (-40.5, False), (1e300, False), (None, True)],
)
def test_range_bounds_are_inclusive(value: float | None, accepted: bool) -> None:
    payload = fridge()
    payload["values"]["cabinet_c"][0] = value
    if accepted:
        assert isinstance(wire.decode(raw(payload)), wire.Telemetry)
    else:
        assert reason_of(raw(payload)) == "range"


@pytest.mark.parametrize(
    ("received_ms", "reason"),
    [
        (NOW_MS - MIN_MS - wire.FUTURE_TOLERANCE_MS, None),  # newest row exactly 300 s ahead
        (NOW_MS - MIN_MS - wire.FUTURE_TOLERANCE_MS - 1, "future"),
        (NOW_MS - 3 * MIN_MS + 30 * DAY_MS, None),  # oldest row exactly 30 days old
        (NOW_MS - 3 * MIN_MS + 30 * DAY_MS + 1, "too_old"),
    ],
)
def test_clock_limits_are_relative_to_receipt(received_ms: int, reason: str | None) -> None:
    msg = raw(fridge(), received_ms=received_ms)
    if reason is None:
        assert isinstance(wire.decode(msg), wire.Telemetry)
    else:
        assert reason_of(msg) == reason


def test_size_limit_is_65536_bytes_exactly() -> None:
    body = orjson.dumps(fridge())
    padded = body + b" " * (wire.MAX_PAYLOAD_BYTES - len(body))  # JSON allows trailing spaces
    assert isinstance(wire.decode(raw(padded)), wire.Telemetry)
    assert reason_of(raw(padded + b" ")) == "size"


def _mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = fridge()
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return payload


BAD_TELEMETRY = [
    # (what, path, value, reason)
    ("value as string", ("values", "cabinet_c", 0), "1.5", "schema"),
    ("value as boolean", ("values", "compressor_on", 2), True, "schema"),
    ("value false", ("values", "door_open_s", 0), False, "schema"),
    ("nested value", ("values", "cabinet_c", 1), [4.0], "schema"),
    ("object value", ("values", "cabinet_c", 1), {"c": 4.0}, "schema"),
    ("ts as string", ("ts_ms", 0), "1767225420000", "schema"),
    ("ts as boolean", ("ts_ms", 0), True, "schema"),
    ("ts with fraction", ("ts_ms", 0), NOW_MS - 3 * MIN_MS + 0.5, "schema"),
    ("ts negative", ("ts_ms", 0), -1, "schema"),
    ("ts above 2^53", ("ts_ms", 2), 2**53, "schema"),
    ("seq as string", ("seq",), "1", "schema"),
    ("seq as boolean", ("seq",), True, "schema"),
    ("seq negative", ("seq",), -1, "schema"),
    ("seq above 2^53", ("seq",), 2**53, "schema"),
    ("v is true", ("v",), True, "schema"),
    ("v is 2", ("v",), 2, "schema"),
    ("missing values", ("values",), KeyError, "schema"),
    ("missing seq", ("seq",), KeyError, "schema"),
    ("extra field", ("rssi_dbm",), -70, "schema"),
    ("no channels", ("values",), {}, "schema"),
    ("column not an array", ("values", "cabinet_c"), 4.0, "schema"),
    ("empty column", ("values", "cabinet_c"), [], "schema"),
    ("channel name with a space", ("values", "cabinet c"), [1, 2, 3], "schema"),
    ("721 rows", ("ts_ms",), list(range(NOW_MS - 721, NOW_MS)), "schema"),
    ("no rows", ("ts_ms",), [], "schema"),
    ("device id differs", ("device_id",), "fr-000002", "topic"),
    ("kind differs", ("kind",), "vending", "topic"),
    ("unknown channel", ("values", "temperature"), [1, 2, 3], "channel"),
    ("tyres channel on a fridge", ("values", "fl.pressure_kpa"), [1, 2, 3], "channel"),
    ("short column", ("values", "cabinet_c"), [4.0, 4.1], "channel"),
    ("long column", ("values", "cabinet_c"), [4.0, 4.1, 4.2, 4.3], "channel"),
    ("repeated ts", ("ts_ms", 2), NOW_MS - 2 * MIN_MS, "order"),
    ("ts going back", ("ts_ms", 0), NOW_MS, "order"),
    ("value above max", ("values", "compressor_on", 0), 1.01, "range"),
    ("value below min", ("values", "door_open_s", 0), -1, "range"),
    ("huge integer", ("values", "door_open_s", 0), 2**64 - 1, "range"),
]


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [pytest.param(p, v, r, id=what) for what, p, v, r in BAD_TELEMETRY],
)
def test_bad_telemetry_is_rejected_with_its_reason(
    path: tuple[Any, ...], value: Any, reason: str
) -> None:
    assert reason_of(raw(_mutate(path, value))) == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe{}", "encoding"),
        ('{"v":1,"note":"4\xb0C"}'.encode("latin-1"), "encoding"),
        (b"", "json"),
        (b"{", "json"),
        (b"cabinet_c=4.1", "json"),
        (b'{"v":1,"x":NaN}', "json"),
        (b"\xef\xbb\xbf{}", "json"),
        (b"[1,2]", "json"),
        (b"42", "json"),
        (b"null", "json"),
        (b'"text"', "json"),
        (b"{}", "schema"),
    ],
)
def test_bytes_that_are_not_a_json_object(body: bytes, reason: str) -> None:
    assert reason_of(raw(body)) == reason


@pytest.mark.parametrize(
    "topic",
    [
        "forewarn/v1/fridge/fr-000001/cmd",  # cloud → device: not for ingest
        "forewarn/v1/toaster/fr-000001/telemetry",
        "forewarn/v1/fridge/FR-000001/telemetry",
        "forewarn/v1/fridge/fr/telemetry",
        "forewarn/v1/fridge/fr-000001/telemetry\n",
        "forewarn/v1/fridge/fr-000001\n/telemetry",
        "forewarn/v1/fridge/fr-000001/telemetry/extra",
        "forewarn/v1/fridge/fr-000001/logs",
        "forewarn/v2/fridge/fr-000001/telemetry",
        "/forewarn/v1/fridge/fr-000001/telemetry",
        "",
    ],
)
def test_topics_outside_the_contract(topic: str) -> None:
    assert reason_of(raw(fridge(), topic)) == "topic"


def test_topic_is_checked_before_the_payload() -> None:
    assert reason_of(raw(b"\xff" * 70_000, "forewarn/v1/toaster/x-01/telemetry")) == "topic"


def test_whole_floats_count_as_integers_like_in_json_schema() -> None:
    payload = fridge(seq=42.0, sent_ms=float(NOW_MS))
    payload["ts_ms"] = [float(t) for t in payload["ts_ms"]]
    decoded = wire.decode(raw(payload))
    assert isinstance(decoded, wire.Telemetry)
    assert (decoded.seq, decoded.sent_ms) == (42, NOW_MS)
    assert all(type(v) is int for v in [decoded.seq, decoded.sent_ms, *decoded.ts_ms])
    assert wire.to_batches([decoded])["fridge"].ts_ms.tolist() == fridge()["ts_ms"]


# --- the decoder agrees with the reference validator --------------------------------------

# The reference implementation of draft 2020-12, independent of the decoder's validator.
FULL_TELEMETRY_SCHEMA = jsonschema.Draft202012Validator(specs.load_schema("telemetry"))
ODD_VALUES: list[Any] = [
    "1.5", "", True, False, None, [], [1.0], {}, {"a": 1}, 0, -1, 2**53, 2**53 - 1, 2**63,
    2**64 - 1, 1.5, -0.0, 1e308, NOW_MS, NOW_MS + 0.0,
]  # fmt: skip


def test_decoder_agrees_with_the_reference_validator_on_random_mutations() -> None:
    rng = random.Random(20260101)
    base = fridge(rows=5)
    disagreements = []
    for _ in range(600):
        payload = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            column = rng.choice(["ts_ms", *payload["values"]])
            target = payload["ts_ms"] if column == "ts_ms" else payload["values"][column]
            target[rng.randrange(len(target))] = rng.choice(ODD_VALUES)
        schema_ok = FULL_TELEMETRY_SCHEMA.is_valid(payload)
        try:
            wire.decode(raw(payload, received_ms=2**53))
            reason = None
        except DecodeError as exc:
            reason = exc.reason
        if schema_ok == (reason == "schema"):
            disagreements.append((payload, reason))
    assert disagreements == []


# --- events, status, acks -----------------------------------------------------------------------


def test_events_decode_to_one_class_per_type() -> None:
    payload = {
        "v": 1,
        "device_id": "vm-000001",
        "kind": "vending",
        "seq": 9,
        "sent_ms": NOW_MS,
        "events": [
            {"ts_ms": NOW_MS - 5000, "type": "door", "open": True},
            {"ts_ms": NOW_MS - 5000, "type": "power", "on": False},
            {
                "ts_ms": NOW_MS - 4000,
                "type": "vend",
                "slot": "A1",
                "qty": 2,
                "price_cents": 150,
                "ok": True,
            },
            {"ts_ms": NOW_MS - 3000, "type": "restock", "slot": "B4", "level": 12},
            {"ts_ms": NOW_MS - 2000, "type": "fault", "code": "E07", "severity": "warning"},
        ],
    }
    decoded = wire.decode(raw(payload, "forewarn/v1/vending/vm-000001/event"))
    assert isinstance(decoded, wire.EventBatch)
    assert decoded.seq == 9
    assert decoded.events == (
        wire.DoorEvent(NOW_MS - 5000, open=True),
        wire.PowerEvent(NOW_MS - 5000, on=False),
        wire.VendEvent(NOW_MS - 4000, "A1", qty=2, price_cents=150, ok=True),
        wire.RestockEvent(NOW_MS - 3000, "B4", level=12),
        wire.FaultEvent(NOW_MS - 2000, "E07", "warning", detail=None),
    )
    assert [e.type for e in decoded.events] == ["door", "power", "vend", "restock", "fault"]


@pytest.mark.parametrize(
    ("events", "reason"),
    [
        ([], "schema"),
        ([{"ts_ms": NOW_MS, "type": "door"}], "schema"),
        ([{"ts_ms": NOW_MS, "type": "door", "open": 1}], "schema"),
        ([{"ts_ms": NOW_MS, "type": "fault", "code": "E1", "severity": "fatal"}], "schema"),
        (
            [
                {
                    "ts_ms": NOW_MS,
                    "type": "fault",
                    "code": "E1",
                    "severity": "warning",
                    "detail": "x" * 201,
                }
            ],
            "schema",
        ),
        ([{"ts_ms": NOW_MS, "type": "restock", "slot": "A1", "level": 3}], "channel"),
        ([{"ts_ms": NOW_MS, "type": "door", "open": True}] * 201, "schema"),
        (
            [
                {"ts_ms": NOW_MS, "type": "door", "open": True},
                {"ts_ms": NOW_MS - 1, "type": "door", "open": False},
            ],
            "order",
        ),
        ([{"ts_ms": NOW_MS + 301_000, "type": "power", "on": True}], "future"),
        ([{"ts_ms": NOW_MS - 31 * DAY_MS, "type": "power", "on": True}], "too_old"),
    ],
)
def test_bad_events(events: list[dict[str, Any]], reason: str) -> None:
    payload = {"v": 1, "device_id": "fr-000001", "kind": "fridge", "seq": 1, "sent_ms": NOW_MS}
    msg = raw({**payload, "events": events}, "forewarn/v1/fridge/fr-000001/event")
    assert reason_of(msg) == reason


def test_status_birth_and_last_will() -> None:
    topic = "forewarn/v1/tyres/car-000001/status"
    will = wire.decode(
        raw(
            {
                "v": 1,
                "device_id": "car-000001",
                "kind": "tyres",
                "state": "offline",
                "reason": "lost",
            },
            topic,
        )
    )
    assert will == wire.Status(
        "car-000001", "tyres", "offline", None, "lost", None, None, None, None, {}
    )
    birth = {
        "v": 1,
        "device_id": "car-000001",
        "kind": "tyres",
        "state": "online",
        "ts_ms": NOW_MS - 90 * DAY_MS,  # retained births are as old as the connection
        "fw": "1.0.0",
        "model": "TPMS",
        "sample_interval_s": 60,
        "batch_interval_s": 600,
        "attributes": {"placard_kpa": 250},
    }
    decoded = wire.decode(raw(birth, topic))
    assert isinstance(decoded, wire.Status)
    assert (decoded.state, decoded.fw, decoded.sample_interval_s) == ("online", "1.0.0", 60)
    assert decoded.attributes == {"placard_kpa": 250}
    assert reason_of(raw({**birth, "attributes": {"variant": "freezer"}}, topic)) == "schema"
    assert reason_of(raw({**birth, "reason": "lost"}, topic)) == "schema"
    assert reason_of(raw({**birth, "device_id": "car-000002"}, topic)) == "topic"


def test_a_vending_birth_carries_its_planned_visits_in_a_known_time_zone() -> None:
    topic = "forewarn/v1/vending/vm-000001/status"
    visits = {"days": ["mon", "thu"], "hour": 9, "tz": "Europe/Berlin"}
    birth = {
        "v": 1,
        "device_id": "vm-000001",
        "kind": "vending",
        "state": "online",
        "ts_ms": NOW_MS,
        "fw": "2.1.0",
        "model": "VendMax 30",
        "sample_interval_s": 300,
        "batch_interval_s": 900,
        "attributes": {"slots": [{"slot": "A1", "capacity": 8}], "route": "r2", "visits": visits},
    }
    decoded = wire.decode(raw(birth, topic))
    assert isinstance(decoded, wire.Status)
    assert decoded.attributes["visits"] == visits

    def with_visits(**change: object) -> wire.RawMessage:
        attrs = {**birth["attributes"], "visits": {**visits, **change}}  # type: ignore[dict-item]
        return raw({**birth, "attributes": attrs}, topic)

    for bad in ({"tz": "Mars/Olympus_Mons"}, {"days": ["someday"]}, {"days": []}, {"hour": 24},
                {"days": ["mon", "mon"]}):  # fmt: skip
        assert reason_of(with_visits(**bad)) == "schema", bad
    with pytest.raises(wire.DecodeError, match="unknown time zone 'Mars/Olympus_Mons'"):
        wire.decode(with_visits(tz="Mars/Olympus_Mons"))


def test_command_ack() -> None:
    topic = "forewarn/v1/fridge/fr-000001/cmd/ack"
    ack = {
        "v": 1,
        "device_id": "fr-000001",
        "kind": "fridge",
        "seq": 12,
        "cmd_id": "c-0000000001",
        "ts_ms": NOW_MS,
        "status": "expired",
    }
    assert wire.decode(raw(ack, topic)) == wire.CommandAck(
        "fr-000001", "fridge", 12, "c-0000000001", NOW_MS, "expired", None
    )
    assert reason_of(raw({**ack, "cmd_id": "short"}, topic)) == "schema"
    assert reason_of(raw({**ack, "ts_ms": NOW_MS + 3_600_000}, topic)) == "future"


# --- decode_many --------------------------------------------------------------------------------


def test_decode_many_splits_good_from_bad_and_keeps_order() -> None:
    bad_order = fridge(seq=2)
    bad_order["ts_ms"][1] = bad_order["ts_ms"][0]
    msgs = [
        raw(fridge(seq=1)),
        raw(bad_order),
        raw(b"not json"),
        raw(fridge(seq=3), "forewarn/v1/toaster/fr-000001/telemetry"),
        raw(fridge(seq=4, device_id="fr-000002"), "forewarn/v1/fridge/fr-000002/telemetry"),
        raw(fridge(seq=5, rows=4, sent_ms="late")),
    ]
    decoded, rejects = wire.decode_many(msgs)
    assert [d.seq for d in decoded if isinstance(d, wire.Telemetry)] == [1, 4]
    assert [(r.reason, r.device_id, r.kind, r.rows) for r in rejects] == [
        ("order", "fr-000001", "fridge", 3),
        ("json", "fr-000001", "fridge", 0),
        ("topic", "fr-000001", None, 0),
        ("schema", "fr-000001", "fridge", 4),
    ]
    assert rejects[1].payload == b"not json"
    assert rejects[1].received_ms == NOW_MS
    assert all(r.detail for r in rejects)


def test_decode_many_never_raises_on_arbitrary_bytes() -> None:
    rng = random.Random(7)
    good = orjson.dumps(fridge())
    topics = [FRIDGE, "x/y", ""] + [
        f"{FRIDGE[:-9]}{s}" for s in ("event", "status", "cmd", "cmd/ack")
    ]
    msgs = []
    for _ in range(1500):
        if rng.random() < 0.5:
            body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        else:  # a valid payload with a few bytes flipped, the most realistic corruption
            flipped = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.getrandbits(8)
            body = bytes(flipped)
        msgs.append(wire.RawMessage(rng.choice(topics), body, NOW_MS))
    decoded, rejects = wire.decode_many(msgs)
    assert len(decoded) + len(rejects) == len(msgs)
    assert {r.reason for r in rejects} <= set(wire.REASONS)
    assert {"encoding", "json", "topic"} <= {r.reason for r in rejects}
    assert all(len(r.detail) <= 300 for r in rejects)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [path] + [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def test_decode_many_never_raises_on_mutated_golden_messages() -> None:
    rng = random.Random(11)
    golden = [orjson.loads(p.read_bytes()) for p in sorted((SPECS / "valid").glob("*.json"))]
    msgs = []
    for _ in range(1500):
        case = rng.choice(golden)
        payload = copy.deepcopy(case["payload"])
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(_leaves(payload)[1:])
            target = payload
            for key in path[:-1]:
                target = target[key]
            if isinstance(target, dict) and rng.random() < 0.2:
                del target[path[-1]]
            else:
                target[path[-1]] = rng.choice(ODD_VALUES)
        msgs.append(wire.RawMessage(case["topic"], orjson.dumps(payload), case["received_ms"]))
    decoded, rejects = wire.decode_many(msgs)
    assert len(decoded) + len(rejects) == len(msgs)
    assert {r.reason for r in rejects} <= set(wire.REASONS)
    assert len(rejects) > len(msgs) // 2


# --- to_batches ---------------------------------------------------------------------------------


def _tyres(
    seq: int, device_id: str, ts_ms: list[int], values: dict[str, list[Any]]
) -> wire.Telemetry:
    return wire.Telemetry(device_id, "tyres", seq, ts_ms[-1], ts_ms, values)


def test_to_batches_makes_one_columnar_batch_per_kind() -> None:
    msgs = [
        raw(fridge(seq=1, rows=2)),
        raw(
            {
                **fridge(seq=5, rows=1, device_id="fr-000002"),
                "values": {"evap_c": [-20.0], "cabinet_c": [None]},
            },
            "forewarn/v1/fridge/fr-000002/telemetry",
        ),
        raw(fridge(seq=2, rows=2, ts_ms=[NOW_MS + 1, NOW_MS + 2])),
    ]
    decoded, rejects = wire.decode_many(msgs)
    assert rejects == []
    telemetry = [d for d in decoded if isinstance(d, wire.Telemetry)]
    tyres = _tyres(3, "car-000001", [NOW_MS], {"fl.pressure_kpa": [240.0], "speed_kmh": [50]})
    batches = wire.to_batches([*telemetry, tyres])
    assert set(batches) == {"fridge", "tyres"}
    batch = batches["fridge"]
    assert batch.kind == "fridge"
    assert batch.device_ids == ("fr-000001", "fr-000002")
    # Profile order, only channels somebody reported.
    assert batch.channels == ("cabinet_c", "evap_c", "compressor_on", "door_open_s")
    assert batch.values.shape == (5, 4)
    assert batch.row_device.tolist() == [0, 0, 1, 0, 0]
    assert batch.row_seq.tolist() == [1, 1, 5, 2, 2]
    assert batch.ts_ms.tolist() == [
        NOW_MS - 2 * MIN_MS,
        NOW_MS - MIN_MS,
        NOW_MS - MIN_MS,
        NOW_MS + 1,
        NOW_MS + 2,
    ]
    assert batch.ts_ms.dtype == np.int64
    assert batch.values.dtype == np.float64
    np.testing.assert_allclose(batch.channel("cabinet_c"), [4.0, 4.1, np.nan, 4.0, 4.1])
    np.testing.assert_allclose(batch.channel("evap_c"), [np.nan, np.nan, -20.0, np.nan, np.nan])
    np.testing.assert_allclose(batch.channel("compressor_on"), [0.5, 0.5, np.nan, 0.5, 0.5])
    assert np.isnan(batch.channel("mains_ok")).all()
    assert batches["tyres"].channels == ("speed_kmh", "fl.pressure_kpa")
    assert batches["tyres"].values.tolist() == [[50.0, 240.0]]


def test_to_batches_orders_back_filled_rows_by_time_per_device() -> None:
    newer = _tyres(9, "car-000001", [NOW_MS, NOW_MS + 1000], {"speed_kmh": [1, 2]})
    other = _tyres(4, "car-000002", [NOW_MS - 5000], {"speed_kmh": [7]})
    older = _tyres(8, "car-000001", [NOW_MS - 2000, NOW_MS - 1000], {"speed_kmh": [3, None]})
    batch = wire.to_batches([newer, other, older])["tyres"]
    assert batch.device_ids == ("car-000001", "car-000002")
    for device in (0, 1):
        ts = batch.ts_ms[batch.row_device == device]
        assert (np.diff(ts) > 0).all()
    rows = sorted(
        zip(
            batch.row_device.tolist(),
            batch.ts_ms.tolist(),
            batch.row_seq.tolist(),
            batch.values[:, 0].tolist(),
            strict=True,
        )
    )
    assert rows[:4] == [
        (0, NOW_MS - 2000, 8, 3.0),
        (0, NOW_MS - 1000, 8, rows[1][3]),
        (0, NOW_MS, 9, 1.0),
        (0, NOW_MS + 1000, 9, 2.0),
    ]
    assert math.isnan(rows[1][3])
    assert rows[4] == (1, NOW_MS - 5000, 4, 7.0)


def test_to_batches_puts_every_value_in_its_row_and_column() -> None:
    rng = random.Random(3)
    msgs = []
    for seq in range(40):
        payload = fridge(seq=seq, rows=rng.randint(1, 6), device_id=f"fr-{seq % 3:06d}")
        payload["ts_ms"] = [t + seq * 10 * MIN_MS for t in payload["ts_ms"]]
        if seq % 4 == 0:
            del payload["values"]["compressor_on"]
        if seq % 5 == 0:
            payload["values"]["mains_ok"] = [rng.choice([0, 1, None]) for _ in payload["ts_ms"]]
        topic = f"forewarn/v1/fridge/{payload['device_id']}/telemetry"
        msgs.append(raw(payload, topic, NOW_MS + 400 * MIN_MS))
    decoded, rejects = wire.decode_many(msgs)
    assert rejects == []
    telemetry = [t for t in decoded if isinstance(t, wire.Telemetry)]
    batch = wire.to_batches(telemetry)["fridge"]
    assert batch.channels == ("cabinet_c", "compressor_on", "door_open_s", "mains_ok")
    assert batch.n_rows == sum(len(t.ts_ms) for t in telemetry)
    expected = {}
    for t in telemetry:
        for row, ts in enumerate(t.ts_ms):
            key = (batch.device_ids.index(t.device_id), ts)
            expected[key] = (
                t.seq,
                [t.values.get(c, [None] * len(t.ts_ms))[row] for c in batch.channels],
            )
    for r in range(batch.n_rows):
        seq, row_values = expected[(int(batch.row_device[r]), int(batch.ts_ms[r]))]
        assert batch.row_seq[r] == seq
        want = [np.nan if v is None else v for v in row_values]
        np.testing.assert_array_equal(batch.values[r], want)


def test_to_batches_of_nothing_is_empty() -> None:
    assert wire.to_batches([]) == {}


def test_batching_from_decoded_tables_equals_batching_from_plain_values() -> None:
    decoded = [
        wire.decode(raw(fridge(rows=4, seq=s, device_id=d), f"forewarn/v1/fridge/{d}/telemetry"))
        for s, d in ((1, "fr-000001"), (2, "fr-000002"), (3, "fr-000001"))
    ]
    assert all(isinstance(d, wire.Telemetry) and d.table is not None for d in decoded)
    plain = [replace(d, table=None) for d in decoded if isinstance(d, wire.Telemetry)]
    a = wire.to_batches([d for d in decoded if isinstance(d, wire.Telemetry)])["fridge"]
    b = wire.to_batches(plain)["fridge"]
    assert a.channels == b.channels
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.ts_ms, b.ts_ms)
    np.testing.assert_array_equal(a.row_seq, b.row_seq)
