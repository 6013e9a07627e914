"""Ingest fast paths: group-wise work gives what the message-by-message definitions give."""

from __future__ import annotations

import gc
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from cloud import wire
from cloud.devices import DeviceDirectory
from cloud.errors import DecodeError
from cloud.gc_tuning import GC_GEN0_THRESHOLD, tune_gc_for_ingest
from cloud.store.bench import fridge_batches
from cloud.store.embedded import EmbeddedStore
from cloud.throttle import DeviceThrottle

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN_MS = 60_000
DAY_MS = 86_400_000


def fridge(device: int, seq: int, rows: int = 4, **values: list[Any]) -> wire.RawMessage:
    device_id = f"fr-{device:06d}"
    ts = [NOW_MS - (rows - i) * MIN_MS for i in range(rows)]
    columns: dict[str, list[Any]] = {
        "cabinet_c": [4.0 + 0.1 * i for i in range(rows)],
        "door_open_s": [0] * rows,
    }
    columns.update(values)
    body = {"v": 1, "device_id": device_id, "kind": "fridge", "seq": seq, "sent_ms": ts[-1],
            "ts_ms": ts, "values": columns}  # fmt: skip
    return wire.RawMessage(f"forewarn/v1/fridge/{device_id}/telemetry", orjson.dumps(body), NOW_MS)


def shifted(msg: wire.RawMessage, by_ms: int) -> wire.RawMessage:
    body = orjson.loads(msg.payload)
    body["ts_ms"] = [t + by_ms for t in body["ts_ms"]]
    return wire.RawMessage(msg.topic, orjson.dumps(body), msg.received_ms)


def one_by_one(msgs: list[wire.RawMessage]) -> tuple[list[Any], list[tuple[str, str, int]]]:
    decoded, rejects = [], []
    for m in msgs:
        try:
            decoded.append(wire.decode(m))
        except DecodeError as exc:
            rejects.append((exc.reason, exc.detail, getattr(exc, "rows", 0)))
    return decoded, rejects


def mixed_group(rng: random.Random, n: int) -> list[wire.RawMessage]:
    """Valid telemetry of several channel sets with every kind of late-checked fault mixed in."""
    msgs = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.06:
            msgs.append(fridge(i, i, cabinet_c=[4.0, 99.0, 4.0, 4.0]))  # out of range
        elif roll < 0.09:
            msgs.append(fridge(i, i, evap_c=[-10.0, -11.0, -200.0, -10.0]))  # range, other set
        elif roll < 0.12:
            msgs.append(shifted(fridge(i, i), 2 * DAY_MS))  # future
        elif roll < 0.15:
            msgs.append(shifted(fridge(i, i), -40 * DAY_MS))  # too old
        elif roll < 0.17:  # out of range and in the future: range is checked first
            msgs.append(shifted(fridge(i, i, cabinet_c=[99.0] * 4), 2 * DAY_MS))
        elif roll < 0.19:
            msgs.append(wire.RawMessage("forewarn/v1/fridge/fr-000001/cmd", b"{}", NOW_MS))
        elif roll < 0.5:
            msgs.append(fridge(i, i, evap_c=[-10.0, -11.0, None, -10.0]))
        else:
            msgs.append(fridge(i, i))
    return msgs


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decode_many_matches_decode_message_by_message(seed: int) -> None:
    msgs = mixed_group(random.Random(seed), 300)
    decoded, rejects = wire.decode_many(msgs)
    expected_decoded, expected_rejects = one_by_one(msgs)
    assert len(decoded) == len(expected_decoded)
    assert [(d.device_id, d.seq) for d in decoded if isinstance(d, wire.Telemetry)] == [
        (d.device_id, d.seq) for d in expected_decoded if isinstance(d, wire.Telemetry)
    ]
    for got, want in zip(decoded, expected_decoded, strict=True):
        assert isinstance(got, wire.Telemetry)
        assert isinstance(want, wire.Telemetry)
        assert got.table is not None
        assert got.table.dtype == np.float64
        columns = np.array(list(want.values.values()), dtype=np.float64)  # null → NaN
        np.testing.assert_array_equal(got.table, columns)
    assert any(np.isnan(t.table).any() for t in decoded if isinstance(t, wire.Telemetry)
               and t.table is not None)  # fmt: skip
    assert [(r.reason, r.detail, r.rows) for r in rejects] == expected_rejects
    reasons = {r.reason for r in rejects}
    assert {"range", "future", "too_old", "topic"} <= reasons
    assert len(decoded) + len(rejects) == len(msgs)


def test_decode_many_keeps_arrival_order_of_rejects_found_late() -> None:
    msgs = [
        fridge(1, 1, cabinet_c=[4.0, 99.0, 4.0, 4.0]),
        wire.RawMessage("forewarn/v1/fridge/fr-000002/telemetry", b"not json", NOW_MS),
        shifted(fridge(3, 1), 2 * DAY_MS),
        fridge(4, 1),
    ]
    decoded, rejects = wire.decode_many(msgs)
    assert [d.device_id for d in decoded] == ["fr-000004"]
    assert [(r.reason, r.device_id) for r in rejects] == [
        ("range", "fr-000001"),
        ("json", "fr-000002"),
        ("future", "fr-000003"),
    ]
    assert rejects[0].detail == "cabinet_c[1]=99.0 outside [-40.0, 60.0]"
    assert rejects[2].rows == 4


def test_topic_identity_is_the_same_for_cached_and_rejected_topics() -> None:
    assert wire.topic_identity("forewarn/v1/fridge/fr-000001/telemetry") == ("fr-000001", "fridge")
    # A second call comes from the route cache and must agree.
    assert wire.topic_identity("forewarn/v1/fridge/fr-000001/telemetry") == ("fr-000001", "fridge")
    assert wire.topic_identity("forewarn/v1/fridge/fr-000001/cmd") == ("fr-000001", "fridge")
    assert wire.topic_identity("forewarn/v1/toaster/fr-000001/telemetry") == ("fr-000001", None)
    assert wire.topic_identity("x/y") == (None, None)
    for _ in range(2):  # a rejected topic is never cached as valid
        with pytest.raises(DecodeError) as info:
            wire.decode(wire.RawMessage("forewarn/v1/toaster/t-1/telemetry", b"{}", NOW_MS))
        assert info.value.reason == "topic"


def test_saw_data_many_folds_like_saw_data() -> None:
    rng = random.Random(5)
    updates = [
        ("fridge", f"fr-{rng.randrange(20):06d}", t, t + rng.randrange(1, 5) * MIN_MS, 3)
        for t in (NOW_MS + rng.randrange(-50, 50) * MIN_MS for _ in range(400))
    ]
    one, many = DeviceDirectory(), DeviceDirectory()
    for u in updates:
        one.saw_data(*u)
    many.saw_data_many(updates[:150])
    many.saw_data_many(iter(updates[150:]))
    assert many.all() == one.all()
    assert sum(d.readings for d in many.all()) == 3 * len(updates)


def test_throttle_admits_the_same_after_clock_steps_back() -> None:
    throttle = DeviceThrottle(rate_per_s=1.0, burst=2)
    topic = "forewarn/v1/fridge/fr-000001/telemetry"
    at = [NOW_MS, NOW_MS, NOW_MS - 5000, NOW_MS + 1000, NOW_MS + 1000, NOW_MS + 3000]
    msgs = [wire.RawMessage(topic, b"{}", t) for t in at]
    admission = throttle.admit(msgs)
    # Two from the burst; the one from the past refills nothing; one second refills one token;
    # two more seconds refill two, of which one is used.
    assert [m.received_ms for m in admission.admitted] == [NOW_MS, NOW_MS, NOW_MS + 1000,
                                                           NOW_MS + 3000]  # fmt: skip
    assert admission.throttled == {"fr-000001": 2}
    assert throttle.throttled("fr-000001") == 2


def test_gc_tuning_raises_the_threshold_and_keeps_a_higher_one() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        tune_gc_for_ingest()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
        gc.set_threshold(GC_GEN0_THRESHOLD * 2, 10, 10)
        tune_gc_for_ingest()
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD * 2
    finally:
        gc.set_threshold(*before)


def test_store_checkpoints_on_its_own_thread_and_stops_it_on_close(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    store = EmbeddedStore(path, compress=False)
    size_before = path.stat().st_size
    rng = np.random.default_rng(3)
    for batch in fridge_batches(
        rng, n_batches=4, messages_per_batch=200, rows_per_message=(36, 36)
    ):
        store.write(batch)
    checkpointer = store._checkpointer
    assert checkpointer is not None
    assert checkpointer.is_alive()
    # Far below the writer's own autocheckpoint threshold: only the thread moves the log into
    # the file. Polled with a generous deadline (no timing is asserted).
    deadline = time.monotonic() + 30
    while path.stat().st_size <= size_before + 500_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > size_before + 500_000
    store.close()
    assert not checkpointer.is_alive()
    with EmbeddedStore(path) as reopened:
        assert reopened.rows_stored() == 4 * 200 * 36
