"""Simulator output, packed as devices would send it, passes the cloud's decoder unrejected."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

import firmware_specs
from cloud.wire import RawMessage, Telemetry, decode_many
from simulators import MixedFleet, StepOutput

START_MS = 1_767_225_600_000
ROWS_PER_MESSAGE = 6


def telemetry(
    kind: str,
    device_id: str,
    seq: int,
    rows: list[tuple[int, np.ndarray]],
    channels: tuple[str, ...],
) -> RawMessage:
    values = {
        name: [None if math.isnan(v[c]) else float(v[c]) for _, v in rows]
        for c, name in enumerate(channels)
    }
    payload = {
        "v": 1,
        "device_id": device_id,
        "kind": kind,
        "seq": seq,
        "sent_ms": rows[-1][0],
        "ts_ms": [ts for ts, _ in rows],
        "values": values,
    }
    topic = firmware_specs.topic(kind, device_id, "telemetry")
    return RawMessage(topic, json.dumps(payload).encode(), rows[-1][0] + 1000)


def event_ms(event: dict[str, object]) -> int:
    ts_ms = event["ts_ms"]
    assert isinstance(ts_ms, int)
    return ts_ms


NEW_FAULTS = {
    "door_gasket_leak": 1, "defrost_heater_failure": 1, "sensor_stuck": 1, "sensor_drift": 1,
    "payment_reader": 1, "valve_leak": 1, "tpms_battery": 1,
}  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [{}, {"fault_weights": NEW_FAULTS, "vending_demand_scale": 10.0}],
    ids=["default-mix", "new-faults-busy-vending"],
)
def test_telemetry_events_and_births_decode(options: dict[str, Any]) -> None:
    fleet = MixedFleet(60, START_MS, seed=12, fault_share=1.0, horizon_days=3, **options)
    steps: list[list[StepOutput]] = [
        fleet.step(START_MS + k * 600_000, 600.0) for k in range(1, 3 * 144 + 1)
    ]
    messages: list[RawMessage] = []
    seq = 0
    last_ms = START_MS + 3 * 144 * 600_000
    for spec in fleet.devices():
        birth = {
            "v": 1,
            "device_id": spec.device_id,
            "kind": spec.kind,
            "state": "online",
            "ts_ms": START_MS,
            "fw": "1.0.0",
            "model": spec.model,
            "sample_interval_s": 600,
            "batch_interval_s": 3600,
            "attributes": spec.attributes,
        }
        topic = firmware_specs.topic(spec.kind, spec.device_id, "status")
        messages.append(RawMessage(topic, json.dumps(birth).encode(), START_MS))
    n_telemetry = 0
    for kind_index in range(3):
        outputs = [step[kind_index] for step in steps]
        kind = outputs[0].kind
        specs = [d for d in fleet.devices() if d.kind == kind]
        for i, spec in enumerate(specs):
            for first in range(0, len(outputs), ROWS_PER_MESSAGE):
                rows = [(o.ts_ms, o.values[i]) for o in outputs[first : first + ROWS_PER_MESSAGE]]
                messages.append(telemetry(kind, spec.device_id, seq, rows, outputs[0].channels))
                seq += 1
                n_telemetry += 1
            events = sorted((e for o in outputs for d, e in o.events if d == i), key=event_ms)
            for first in range(0, len(events), 200):
                payload = {
                    "v": 1,
                    "device_id": spec.device_id,
                    "kind": kind,
                    "seq": seq,
                    "sent_ms": last_ms,
                    "events": events[first : first + 200],
                }
                topic = firmware_specs.topic(kind, spec.device_id, "event")
                messages.append(RawMessage(topic, json.dumps(payload).encode(), last_ms + 1000))
                seq += 1
    decoded, rejects = decode_many(messages)
    assert rejects == []
    assert sum(isinstance(d, Telemetry) for d in decoded) == n_telemetry
    event_types = {type(d).__name__ for d in decoded}
    assert {"Telemetry", "EventBatch", "Status"} <= event_types
