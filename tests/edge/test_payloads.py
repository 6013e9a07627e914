"""Payload building, size splitting, channel ranges and event checks."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from edge import payloads
from edge.channels import catalog
from edge.errors import ReadingError
from edge.events import check_event

from .conftest import T0_MS, validate


def test_rows_become_columns_with_null_for_a_missing_channel() -> None:
    rows: list[payloads.Row] = [
        (T0_MS, {"cabinet_c": 4.0, "door_open_s": 0}),
        (T0_MS + 60_000, {"cabinet_c": 4.5}),
    ]
    document = json.loads(payloads.telemetry("fr-0001", "fridge", 7, T0_MS + 61_000, rows))
    validate("telemetry", document)
    assert document["ts_ms"] == [T0_MS, T0_MS + 60_000]
    assert document["values"] == {"cabinet_c": [4.0, 4.5], "door_open_s": [0, None]}


def test_a_big_batch_is_split_into_messages_under_the_size_limit() -> None:
    channels = [
        f"{pos}.{name}"
        for pos in ("fl", "fr", "rl", "rr")
        for name in ("pressure_kpa", "temp_c", "tread_mm", "battery_v")
    ]
    rows: list[payloads.Row] = [
        (T0_MS + i * 1000, {name: 123.456789 + i for name in channels}) for i in range(720)
    ]

    def build(seq: int, chunk: Sequence[payloads.Row]) -> bytes:
        return payloads.telemetry("ty-0001", "tyres", seq, T0_MS, chunk)

    assert len(build(0, rows)) > payloads.MAX_PAYLOAD_BYTES
    chunks = payloads.split_to_fit(rows, build)
    assert len(chunks) > 1
    assert [row for chunk in chunks for row in chunk] == rows
    for chunk in chunks:
        encoded = build(2**53 - 1, chunk)
        assert len(encoded) <= payloads.MAX_PAYLOAD_BYTES
        validate("telemetry", json.loads(encoded))


def test_a_single_oversized_item_cannot_be_sent() -> None:
    with pytest.raises(ReadingError, match="more than 65536"):
        payloads.split_to_fit(["x" * 70_000], lambda seq, items: "".join(items).encode())


def test_non_finite_numbers_are_refused_by_the_encoder() -> None:
    with pytest.raises(ReadingError, match="cannot encode"):
        payloads.encode({"x": float("nan")})


def test_status_and_ack_payloads_follow_the_contract() -> None:
    validate("status", json.loads(payloads.last_will("fr-0001", "fridge")))
    validate("status", json.loads(payloads.shutdown("fr-0001", "fridge", T0_MS)))
    validate(
        "status",
        json.loads(
            payloads.birth(
                "vm-0001",
                "vending",
                T0_MS,
                fw="1.2.3",
                model="VX-9",
                sample_interval_s=300,
                batch_interval_s=900,
                attributes={"slots": [{"slot": "A1", "capacity": 10}], "route": "r1"},
            )
        ),
    )
    ack = payloads.command_ack("fr-0001", "fridge", 3, "cmd-00000001", T0_MS, "ok", "d" * 300)
    document = json.loads(ack)
    validate("command_ack", document)
    assert len(document["detail"]) == 200


def test_channel_catalog_knows_names_patterns_and_ranges() -> None:
    fridge = catalog("fridge")
    assert fridge.range_of("cabinet_c").max == 60
    with pytest.raises(ReadingError, match="not a fridge channel"):
        fridge.range_of("slot.A1.stock")
    assert catalog("vending").range_of("slot.A1.stock").max == 200
    with pytest.raises(ReadingError, match="not a vending channel"):
        catalog("vending").range_of("slot.Z1.stock")


def test_out_of_range_and_non_finite_values_become_null_and_are_counted() -> None:
    cleaned, nulled = catalog("fridge").clean(
        {"cabinet_c": 99.0, "evap_c": float("inf"), "ambient_c": 20, "mains_ok": None}
    )
    assert cleaned == {"cabinet_c": None, "evap_c": None, "ambient_c": 20, "mains_ok": None}
    assert nulled == 2


@pytest.mark.parametrize("values", [{}, {"cabinet_c": "4.0"}, {"cabinet_c": True}, [1.0]])
def test_values_that_are_not_numbers_are_refused(values: object) -> None:
    with pytest.raises(ReadingError):
        catalog("fridge").clean(values)  # type: ignore[arg-type]


def test_events_are_checked_against_the_contract_and_the_kind() -> None:
    vending = catalog("vending").event_types
    vend = {"ts_ms": T0_MS, "type": "vend", "slot": "A1", "qty": 1, "price_cents": 150, "ok": True}
    assert check_event(vend, vending) == vend
    fault = {"ts_ms": T0_MS, "type": "fault", "code": "E07", "severity": "warning", "detail": "x"}
    assert check_event(fault, vending) == fault
    with pytest.raises(ReadingError, match="not sent by this kind"):
        check_event(vend, catalog("fridge").event_types)
    with pytest.raises(ReadingError, match="missing field 'ok'"):
        check_event({k: v for k, v in vend.items() if k != "ok"}, vending)
    with pytest.raises(ReadingError, match="unexpected field"):
        check_event({**vend, "colour": "red"}, vending)
    with pytest.raises(ReadingError, match="bad value"):
        check_event({**vend, "slot": "Z9"}, vending)
    with pytest.raises(ReadingError, match="unknown event type"):
        check_event({"ts_ms": T0_MS, "type": "alien"}, vending)
    with pytest.raises(ReadingError, match="ts_ms"):
        check_event({"ts_ms": -5, "type": "door", "open": True}, vending)
