"""A simulated device as a live sensor source."""

from __future__ import annotations

import itertools
import json

import pytest

from cloud.wire import RawMessage, decode_many
from simulators.source import SimulatedDeviceSource

DAY_MS = 86_400_000


class FakeClock:
    """Time passed in by the test (the source reads no clock of its own here)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


@pytest.mark.parametrize("kind", ["fridge", "vending", "tyres"])
def test_rows_replay_history_fast_then_never_run_ahead_of_the_clock(kind):
    clock = FakeClock(1_767_225_600_000)
    src = SimulatedDeviceSource(
        kind, 5, sample_interval_s=600, speed=3600.0, history_days=2, clock_ms=clock
    )
    assert src.attributes
    assert src.channels
    first = src.read(clock.now_ms)
    assert first == []  # nothing due at the very first instant
    clock.now_ms += 10_000  # 10 s at 3600× = 10 simulated hours
    rows = src.read(clock.now_ms)
    assert len(rows) == 60
    ts = [t for t, _ in rows]
    assert all(b - a == 600_000 for a, b in itertools.pairwise(ts))
    clock.now_ms += 3600_000  # far more than needed to catch up
    rows += src.read(clock.now_ms)
    assert max(t for t, _ in rows) <= clock.now_ms
    assert len(rows) == 2 * 144 + 6  # two days of history, then the hour that passed
    assert src.next_due_ms() == rows[-1][0] + 600_000  # real time from now on


def test_simulated_rows_satisfy_the_device_contract():
    clock = FakeClock(1_767_225_600_000)
    src = SimulatedDeviceSource("fridge", 1, speed=1e6, history_days=1, clock_ms=clock)
    assert src.read(clock.now_ms) == []
    clock.now_ms += 1000
    rows = src.read(clock.now_ms)
    channels = sorted({c for _, v in rows for c in v})
    body = {
        "v": 1, "device_id": "fr-000009", "kind": "fridge", "seq": 0, "sent_ms": rows[-1][0],
        "ts_ms": [t for t, _ in rows], "values": {c: [v.get(c) for _, v in rows] for c in channels},
    }  # fmt: skip
    msg = RawMessage(
        "forewarn/v1/fridge/fr-000009/telemetry", json.dumps(body).encode(), clock.now_ms
    )
    decoded, rejects = decode_many([msg])
    assert rejects == []
    assert len(decoded) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="unknown product kind"):
        SimulatedDeviceSource("toaster", 1)
    with pytest.raises(ValueError, match="speed"):
        SimulatedDeviceSource("fridge", 1, speed=0)
