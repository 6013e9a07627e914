"""The contract files agree with each other, and the golden examples with the decoder."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import yaml

import firmware_specs as specs
from cloud import wire
from cloud.errors import DecodeError

SPECS = Path(specs.__file__).resolve().parent
SCHEMA_NAMES = ("telemetry", "event", "status", "command", "command_ack")
CASE_KEYS = {"description", "topic", "received_ms", "reason", "before"}
PAYLOAD_KEYS = {"payload", "payload_utf8", "payload_b64"}
MAX_SAFE_INT = 2**53 - 1
TOPICS: dict[str, Any] = json.loads((SPECS / "topics.json").read_text(encoding="utf-8"))
SUFFIX_INFO = {entry["suffix"]: entry for entry in TOPICS["suffixes"]}


def _cases(folder: str) -> list[Any]:
    paths = sorted((SPECS / folder).glob("*.json"))
    return [pytest.param(json.loads(p.read_text(encoding="utf-8")), id=p.stem) for p in paths]


VALID = _cases("valid")
INVALID = _cases("invalid")
VALID_TELEMETRY = [p for p in VALID if p.values[0]["topic"].endswith("/telemetry")]
INVALID_SCHEMA = [p for p in INVALID if p.values[0]["reason"] == "schema"]


def _payload_bytes(case: dict[str, Any]) -> bytes:
    if "payload_utf8" in case:
        return str(case["payload_utf8"]).encode("utf-8")
    if "payload_b64" in case:
        return base64.b64decode(case["payload_b64"], validate=True)
    return orjson.dumps(case["payload"])


def _message(case: dict[str, Any], received_ms: int | None = None) -> wire.RawMessage:
    when = case["received_ms"] if received_ms is None else received_ms
    return wire.RawMessage(case["topic"], _payload_bytes(case), when)


def _suffix(topic: str) -> str:
    parsed = specs.parse_topic(topic)
    assert parsed is not None, topic
    return parsed[2]


def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = specs.load_schema(schema_name)
    return jsonschema.Draft202012Validator(schema)


# --- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = specs.load_schema(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:forewarn:schema:v1:{name}"
    assert schema["additionalProperties"] is False
    assert schema["description"]
    assert schema["properties"]["v"]["const"] == 1


def test_schemas_carry_the_documented_bounds() -> None:
    telemetry = specs.load_schema("telemetry")["properties"]
    assert (telemetry["ts_ms"]["minItems"], telemetry["ts_ms"]["maxItems"]) == (1, 720)
    assert telemetry["seq"]["minimum"] == 0
    assert telemetry["seq"]["maximum"] == MAX_SAFE_INT
    assert telemetry["values"]["additionalProperties"]["items"] == {"type": ["number", "null"]}
    events = specs.load_schema("event")["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, 200)
    fault = specs.load_schema("event")["$defs"]["fault"]["properties"]
    assert fault["detail"]["maxLength"] == 200
    command = specs.load_schema("command")["properties"]
    assert command["cmd_id"]["pattern"] == "^[A-Za-z0-9-]{8,64}$"
    assert set(command["name"]["enum"]) == {"ping", "set_sample_interval", "reboot"}
    ack = specs.load_schema("command_ack")["properties"]
    assert set(ack["status"]["enum"]) == {"ok", "rejected", "failed", "expired"}
    for name in ("telemetry", "event", "status", "command_ack"):
        props = specs.load_schema(name)["properties"]
        assert props["device_id"]["pattern"] == specs.DEVICE_ID_PATTERN
        assert tuple(props["kind"]["enum"]) == specs.KINDS


# --- golden examples ----------------------------------------------------------------------------


def test_there_are_enough_golden_examples() -> None:
    assert len(VALID) >= 10
    assert len(INVALID) >= 14


@pytest.mark.parametrize("case", VALID + INVALID)
def test_case_file_uses_the_documented_format(case: dict[str, Any]) -> None:
    keys = set(case)
    assert len(keys & PAYLOAD_KEYS) == 1, "exactly one of payload, payload_utf8, payload_b64"
    assert keys - PAYLOAD_KEYS <= CASE_KEYS
    assert {"description", "topic", "received_ms"} <= keys
    assert isinstance(case["received_ms"], int)
    for earlier in case.get("before", []):
        assert set(earlier) == {"topic", "payload"}


def test_every_reject_reason_has_a_golden_example() -> None:
    reasons = {param.values[0]["reason"] for param in INVALID}
    assert reasons == set(wire.REASONS)
    assert all("reason" not in param.values[0] for param in VALID)


@pytest.mark.parametrize("case", VALID)
def test_valid_example_matches_its_schema(case: dict[str, Any]) -> None:
    schema_name = SUFFIX_INFO[_suffix(case["topic"])]["schema"]
    payload = json.loads(_payload_bytes(case))
    errors = [e.message for e in _validator(schema_name).iter_errors(payload)]
    assert errors == []
    assert len(_payload_bytes(case)) <= TOPICS["max_payload_bytes"]


@pytest.mark.parametrize("case", VALID)
def test_valid_example_decodes(case: dict[str, Any]) -> None:
    kind, device_id, suffix = specs.parse_topic(case["topic"]) or ("", "", "")
    if SUFFIX_INFO[suffix]["direction"] == "cloud_to_device":
        # A command is for the device; ingest refuses to decode its own commands.
        with pytest.raises(DecodeError) as info:
            wire.decode(_message(case))
        assert info.value.reason == "topic"
        return
    decoded = wire.decode(_message(case))
    expected = {
        "telemetry": wire.Telemetry,
        "event": wire.EventBatch,
        "status": wire.Status,
        "cmd/ack": wire.CommandAck,
    }[suffix]
    assert isinstance(decoded, expected)
    assert (decoded.device_id, decoded.kind) == (device_id, kind)
    if isinstance(decoded, wire.Telemetry):
        assert decoded.ts_ms == case["payload"]["ts_ms"]
        assert decoded.values == case["payload"]["values"]


@pytest.mark.parametrize("case", INVALID)
def test_invalid_example_is_rejected_with_its_reason(case: dict[str, Any]) -> None:
    seen: set[tuple[str, int]] = set()
    for earlier in case.get("before", []):
        first = wire.decode(_message({**earlier, "received_ms": case["received_ms"]}))
        assert isinstance(first, wire.Telemetry | wire.EventBatch | wire.CommandAck)
        seen.add((first.device_id, first.seq))
    if case["reason"] != "duplicate":
        with pytest.raises(DecodeError) as info:
            wire.decode(_message(case))
        assert info.value.reason == case["reason"], info.value.detail
        return
    # Only state (the deduplicator) can find a duplicate; the stateless decoder accepts it.
    decoded = wire.decode(_message(case))
    assert isinstance(decoded, wire.Telemetry | wire.EventBatch | wire.CommandAck)
    assert (decoded.device_id, decoded.seq) in seen


@pytest.mark.parametrize("case", INVALID_SCHEMA)
def test_invalid_schema_example_also_fails_the_reference_validator(case: dict[str, Any]) -> None:
    """A `schema` case is invalid by the schema itself, not only by the decoder's fast path."""
    schema_name = SUFFIX_INFO[_suffix(case["topic"])]["schema"]
    assert not _validator(schema_name).is_valid(case["payload"])


def test_oversized_example_is_really_oversized() -> None:
    (case,) = [p.values[0] for p in INVALID if p.values[0]["reason"] == "size"]
    assert len(_payload_bytes(case)) > TOPICS["max_payload_bytes"]
    # The only thing wrong with it is its size: a firmware that splits it is right.
    payload = json.loads(_payload_bytes(case))
    assert _validator("telemetry").is_valid(payload)


# --- profiles -----------------------------------------------------------------------------------


def _resolves(profile: dict[str, Any], channel: str) -> bool:
    names = {c["name"] for c in profile["channels"]}
    patterns = [p["pattern"] for p in profile["channel_patterns"]]
    return channel in names or any(re.fullmatch(p, channel) for p in patterns)


@pytest.mark.parametrize("case", VALID_TELEMETRY)
def test_valid_telemetry_channels_exist_in_their_profile(case: dict[str, Any]) -> None:
    kind, _, _ = specs.parse_topic(case["topic"]) or ("", "", "")
    profile = specs.load_profile(kind)
    unknown = [ch for ch in case["payload"]["values"] if not _resolves(profile, ch)]
    assert unknown == []


@pytest.mark.parametrize("kind", specs.KINDS)
def test_profile_is_consistent(kind: str) -> None:
    profile = specs.load_profile(kind)
    assert profile["kind"] == kind
    assert profile["version"] == 1
    names = [c["name"] for c in profile["channels"]]
    assert len(names) == len(set(names))
    for entry in profile["channels"] + profile["channel_patterns"]:
        assert entry["min"] < entry["max"]
        assert entry["unit"]
        assert entry["description"]
    name_rule = specs.load_schema("telemetry")["properties"]["values"]["propertyNames"]["pattern"]
    assert all(re.fullmatch(name_rule, n) for n in names)
    for entry in profile["channel_patterns"]:
        assert entry["pattern"].startswith("^")
        assert entry["pattern"].endswith("$")
        assert not any(re.fullmatch(entry["pattern"], n) for n in names)
    for interval in ("sample_interval_s", "batch_interval_s"):
        bounds = profile[interval]
        assert bounds["min"] <= bounds["default"] <= bounds["max"]
    assert profile["sample_interval_s"]["default"] <= profile["batch_interval_s"]["default"]
    ts_items = specs.load_schema("telemetry")["properties"]["ts_ms"]["maxItems"]
    assert profile["batch_max_rows"] == ts_items
    assert profile["offline_after_s"] == (
        profile["offline_after_batch_intervals"] * profile["batch_interval_s"]["default"]
    )
    event_types = set(specs.load_schema("event")["$defs"]["event"]["properties"]["type"]["enum"])
    assert set(profile["event_types"]) <= event_types
    assert profile["failures"]
    assert all(failure["description"] for failure in profile["failures"].values())


def test_fridge_profile_matches_the_contract() -> None:
    profile = specs.load_profile("fridge")
    bounds = {c["name"]: (c["min"], c["max"]) for c in profile["channels"]}
    assert bounds == {
        "cabinet_c": (-40, 60),
        "evap_c": (-50, 40),
        "ambient_c": (-30, 60),
        "compressor_on": (0, 1),
        "compressor_a": (0, 30),
        "door_open_s": (0, 3600),
        "defrost_on": (0, 1),
        "mains_ok": (0, 1),
    }
    limits = {
        name: (v["setpoint_c"], v["limit_c"], v["limit_minutes"])
        for name, v in profile["variants"].items()
    }
    assert limits == {
        "household": (4, 5, 120),
        "commercial": (3, 5, 60),
        "freezer": (-18, -15, 120),
    }
    assert profile["default_variant"] in profile["variants"]
    status = specs.load_schema("status")["$defs"]["fridge_attributes"]["properties"]
    assert set(status["variant"]["enum"]) == set(profile["variants"])
    assert set(profile["event_types"]) == {"door", "power", "fault"}


def test_vending_profile_matches_the_contract() -> None:
    profile = specs.load_profile("vending")
    assert [c["name"] for c in profile["channels"]] == [
        "cabinet_c",
        "ambient_c",
        "compressor_on",
        "door_open_s",
        "card_auths",
        "card_declines",
    ]
    ranges = {c["name"]: (c["min"], c["max"]) for c in profile["channels"]}
    assert ranges["card_auths"] == ranges["card_declines"] == (0, 1000)
    patterns = {p["pattern"]: (p["min"], p["max"]) for p in profile["channel_patterns"]}
    assert patterns == {
        r"^slot\.[A-J][0-9]{1,2}\.stock$": (0, 200),
        r"^slot\.[A-J][0-9]{1,2}\.vends$": (0, 500),
        r"^slot\.[A-J][0-9]{1,2}\.fails$": (0, 500),
    }
    slot = profile["slot_pattern"]
    assert specs.load_schema("event")["$defs"]["slot"]["pattern"] == slot
    status_slots = specs.load_schema("status")["$defs"]["vending_attributes"]["properties"]
    assert status_slots["slots"]["items"]["properties"]["slot"]["pattern"] == slot
    for good in ("A1", "J12", "B4"):
        assert re.fullmatch(slot, good)
    for bad in ("K1", "A123", "a1", "A"):
        assert not re.fullmatch(slot, bad)
    assert {"vend", "restock"} <= set(profile["event_types"])


def test_tyres_profile_matches_the_contract() -> None:
    profile = specs.load_profile("tyres")
    bounds = {c["name"]: (c["min"], c["max"]) for c in profile["channels"]}
    expected = {"speed_kmh": (0, 300), "odometer_km": (0, 2000000), "ambient_c": (-40, 60)}
    for pos in ("fl", "fr", "rl", "rr"):
        expected |= {
            f"{pos}.pressure_kpa": (0, 600),
            f"{pos}.temp_c": (-40, 150),
            f"{pos}.tread_mm": (0, 20),
            f"{pos}.battery_v": (0, 4),
        }
    assert bounds == expected
    assert profile["placard_kpa"]["default"] == 240
    assert profile["failures"]["underinflation"]["below_placard_fraction"] == 0.25
    assert profile["failures"]["tread"]["legal_min_mm"] == 1.6
    assert profile["failures"]["tread"]["advice_mm"] == 3.0
    assert "vend" not in profile["event_types"]


# --- topics and AsyncAPI ------------------------------------------------------------------------


def _acl_allows(acl_topic: str, client_id: str, topic: str) -> bool:
    levels = acl_topic.replace("%c", client_id).split("/")
    parts = topic.split("/")
    return len(levels) == len(parts) and all(
        a in ("+", b) for a, b in zip(levels, parts, strict=True)
    )


def test_topics_json_matches_the_topic_helpers() -> None:
    assert TOPICS["version"] == specs.CONTRACT_VERSION
    assert TOPICS["root"] == specs.TOPIC_ROOT
    assert tuple(TOPICS["kinds"]) == specs.KINDS
    assert tuple(SUFFIX_INFO) == specs.SUFFIXES
    assert TOPICS["device_id_pattern"] == specs.DEVICE_ID_PATTERN
    assert TOPICS["max_payload_bytes"] == wire.MAX_PAYLOAD_BYTES
    for kind in specs.KINDS:
        for suffix, info in SUFFIX_INFO.items():
            name = specs.topic(kind, "dev-001", suffix)
            assert TOPICS["template"].format(kind=kind, device_id="dev-001", suffix=suffix) == name
            assert specs.parse_topic(name) == (kind, "dev-001", suffix)
            assert _acl_allows(info["acl"].split()[-1], "dev-001", name)
            assert not _acl_allows(info["acl"].split()[-1], "dev-002", name)


def test_topics_json_directions_qos_and_schemas() -> None:
    for suffix, info in SUFFIX_INFO.items():
        assert info["qos"] == 1
        assert info["retain"] is (suffix == "status")
        assert info["seq"] is (suffix in ("telemetry", "event", "cmd/ack"))
        specs.load_schema(info["schema"])
        access = "read" if info["direction"] == "cloud_to_device" else "write"
        assert info["acl"].split()[:2] == ["pattern", access]
    assert SUFFIX_INFO["cmd"]["direction"] == "cloud_to_device"
    upstream = [s for s, info in SUFFIX_INFO.items() if info["direction"] != "cloud_to_device"]
    assert TOPICS["cloud"]["ingest_subscriptions"] == [f"forewarn/+/+/+/{s}" for s in upstream]
    assert TOPICS["cloud"]["ingest_shared_group_prefix"] == "$share/forewarn-ingest/"


def test_the_cloud_subscribes_to_what_topics_json_says() -> None:
    from cloud.mqtt import INGEST_TOPICS

    assert list(INGEST_TOPICS) == TOPICS["cloud"]["ingest_subscriptions"]


def test_asyncapi_describes_every_topic_and_schema() -> None:
    doc = yaml.safe_load((SPECS / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert doc["asyncapi"] == "2.6.0"
    template = TOPICS["template"].replace("{suffix}", "")
    assert set(doc["channels"]) == {template + s for s in SUFFIX_INFO}
    params = doc["components"]["parameters"]
    assert tuple(params["kind"]["schema"]["enum"]) == specs.KINDS
    assert params["device_id"]["schema"]["pattern"] == specs.DEVICE_ID_PATTERN
    referenced = set()
    for suffix, info in SUFFIX_INFO.items():
        channel = doc["channels"][template + suffix]
        assert set(channel["parameters"]) == {"kind", "device_id"}
        # Operations are written from the device's side: it publishes what flows to the cloud.
        verb = "subscribe" if info["direction"] == "cloud_to_device" else "publish"
        operation = channel[verb]
        mqtt = operation["bindings"]["mqtt"]
        assert (mqtt["qos"], mqtt["retain"]) == (info["qos"], info["retain"])
        message_ref = operation["message"]["$ref"]
        message = doc["components"]["messages"][message_ref.rsplit("/", 1)[-1]]
        schema_ref = message["payload"]["$ref"]
        assert schema_ref == f"schemas/{info['schema']}.v1.json"
        assert (SPECS / schema_ref).is_file()
        referenced.add(info["schema"])
    assert referenced == set(SCHEMA_NAMES)
