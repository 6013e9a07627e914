"""Fleet snapshots: exact round trip, atomic replacement, refusal of foreign or stale files,
and snapshot plus replay of the store equal to never having stopped."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud import snapshot
from cloud.batch import TelemetryBatch
from cloud.core import fleet
from cloud.decisions import PolicyState, UnitEpisode, decide
from cloud.devices import DeviceDirectory
from cloud.store.embedded import EmbeddedStore

T0 = 1_767_225_600_000
STEP_MS = 600_000


def fridge_batch(
    devices: list[str], start: int, n: int, seq0: int, warm_from: int
) -> TelemetryBatch:
    """``n`` rows per device; from row ``warm_from`` on the first device's cabinet warms up."""
    rows = []
    for i in range(n):
        for d, _ in enumerate(devices):
            step = start + i
            cabinet = 4.0 + (1.5 * (step - warm_from) if d == 0 and step >= warm_from else 0.0)
            rows.append((d, seq0 + i, T0 + step * STEP_MS, [cabinet, 0.45, 1.0]))
    rows.sort(key=lambda r: (r[0], r[2]))
    return TelemetryBatch(
        kind="fridge",
        device_ids=tuple(devices),
        channels=("cabinet_c", "compressor_on", "mains_ok"),
        row_device=np.array([r[0] for r in rows], dtype=np.int64),
        row_seq=np.array([r[1] for r in rows], dtype=np.int64),
        ts_ms=np.array([r[2] for r in rows], dtype=np.int64),
        values=np.array([r[3] for r in rows], dtype=np.float64),
    )


def run(state: fleet.FleetState, policy: PolicyState, batches: list[TelemetryBatch]) -> Any:
    decisions = []
    for batch in batches:
        state, conditions = fleet.update(state, batch)
        policy, out = decide(policy, batch.kind, state.device_ids(batch.kind), conditions)
        decisions.extend(out)
    return state, policy, decisions


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert a.dtype == b.dtype, where
        assert a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, float) and np.isnan(a):
        assert isinstance(b, float), where
        assert np.isnan(b), where
    else:
        assert a == b, where


def test_a_snapshot_restores_state_policy_and_devices_exactly(tmp_path: Path) -> None:
    devices = ["fr-000001", "fr-000002", "fr-000003"]
    state, policy, decisions = run(
        fleet.FleetState.empty(), PolicyState(), [fridge_batch(devices, 0, 60, 0, warm_from=40)]
    )
    assert decisions, "the warming fridge should have opened an episode"
    directory = DeviceDirectory()
    directory.saw_data("fridge", "fr-000001", T0, T0 + 3_600_000, 60)
    taken = snapshot.Snapshot(state, policy, tuple(directory.all()), 42, T0)
    path = tmp_path / "snap" / snapshot.FILE_NAME
    size = snapshot.save(path, taken)
    assert size == path.stat().st_size
    assert not list(path.parent.glob(".*.tmp")), "the temporary file is renamed away"
    loaded = snapshot.load(path)
    assert loaded is not None
    assert loaded.high_water == 42
    assert loaded.taken_ms == T0
    assert_same(taken.state, loaded.state)
    assert_same(taken.policy, loaded.policy)
    assert loaded.devices == taken.devices
    # The restored state goes on exactly as the original would have.
    more = [fridge_batch(devices, 60, 20, 60, warm_from=40)]
    a = run(state, policy, more)
    b = run(loaded.state, loaded.policy, more)
    assert_same(a[0], b[0])
    assert [d.decision_id for d in a[2]] == [d.decision_id for d in b[2]]


def test_no_snapshot_is_none_and_a_bad_one_is_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / snapshot.FILE_NAME
    assert snapshot.load(path) is None
    path.write_bytes(b"not a zip file")
    with pytest.raises(snapshot.SnapshotUnreadable, match="unreadable"):
        snapshot.load(path)
    taken = snapshot.Snapshot(fleet.FleetState.empty(), PolicyState(), (), 0, T0)
    snapshot.save(path, taken)

    def rewrite(change: Any) -> None:
        with np.load(path) as npz:
            entries = {k: npz[k] for k in npz.files}
        tree = json.loads(entries["meta"].tobytes())
        change(tree)
        entries["meta"] = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
        np.savez(path, **entries)

    rewrite(lambda t: t.update(version=99))
    with pytest.raises(snapshot.SnapshotUnreadable, match="format version 99"):
        snapshot.load(path)
    snapshot.save(path, taken)
    rewrite(lambda t: t["state"]["f"]["fridge"]["f"].pop("duty"))  # the core gained a field
    with pytest.raises(snapshot.SnapshotUnreadable, match="has changed"):
        snapshot.load(path)
    snapshot.save(path, taken)
    rewrite(lambda t: t["state"].update({"$dc": "os:system"}))
    with pytest.raises(snapshot.SnapshotUnreadable, match="foreign type"):
        snapshot.load(path)
    with zipfile.ZipFile(path, "w") as zf:  # an archive whose description is broken
        zf.writestr("meta.npy", b"\x93NUMPY broken")
    with pytest.raises(snapshot.SnapshotUnreadable):
        snapshot.load(path)


def test_values_the_format_cannot_hold_are_refused_when_saving(tmp_path: Path) -> None:
    bad = PolicyState(units={("fridge.cooling", 1): UnitEpisode(eta_ms=object())})  # type: ignore[arg-type]
    taken = snapshot.Snapshot(fleet.FleetState.empty(), bad, (), 0, T0)
    with pytest.raises(TypeError, match="cannot save"):
        snapshot.save(tmp_path / snapshot.FILE_NAME, taken)
    assert not (tmp_path / snapshot.FILE_NAME).exists()


def test_snapshot_plus_replay_of_the_store_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    devices = ["fr-000001", "fr-000002"]
    batches = [fridge_batch(devices, i * 12, 12, i * 12, warm_from=50) for i in range(6)]
    with EmbeddedStore(tmp_path / "telemetry.db") as store:
        state, policy = fleet.FleetState.empty(), PolicyState()
        for batch in batches[:3]:
            store.write(batch)
            state, policy, _ = run(state, policy, [batch])
        mark = store.high_water()
        saved = snapshot.Snapshot(state, policy, (), mark, T0)
        for batch in batches[3:]:
            store.write(batch)
        # A redelivered message stored again changes nothing.
        store.write(batches[4])
        replayed = list(snapshot.replay_batches(store, mark, messages_per_batch=5))
        assert sum(b.n_rows for b in replayed) == sum(b.n_rows for b in batches[3:])
        restored = run(saved.state, saved.policy, replayed)
        straight = run(fleet.FleetState.empty(), PolicyState(), batches)
        assert_same(straight[0], restored[0])
        # Decision ids follow update boundaries (the actions database treats a second id of an
        # open root cause as evidence); what is decided about which device must agree.
        faults = {(d.device_id, d.fault) for d in restored[2]}
        assert faults == {(d.device_id, d.fault) for d in straight[2]}
        assert ("fr-000001", "fridge.cooling") in faults, "the warming began after the mark"
        assert list(snapshot.replay_batches(store, store.high_water())) == []
