"""Snapshots of the fleet state, the decision policy and the device directory, for fast restarts.

A snapshot is one ``.npz`` file: every array of the state under a key of its own, plus one
``meta`` entry holding a JSON tree that names each value's place (dataclass fields, tuples,
dicts, scalars) and the telemetry store's *high-water mark* when the snapshot was taken. The
state already holds every stored message up to that mark; after a restart the service loads
the snapshot and replays the messages stored after the mark (``replay_batches``), so the
restored state equals the state before the crash.

Files are written to a temporary name, fsynced and renamed over the old snapshot, so a crash
while writing leaves the previous snapshot whole. A file of another format version, or one
whose dataclasses no longer have the fields the code has now (the core changed between
releases), is refused with ``SnapshotUnreadable``; the service then rebuilds the state by
replaying the whole store instead.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core.fleet import FleetState
from cloud.decisions import PolicyState
from cloud.devices import DeviceInfo
from cloud.errors import ForewarnError
from cloud.store.embedded import EmbeddedStore, StoredMessage

FORMAT_VERSION: Final = 1
FILE_NAME: Final = "fleet-snapshot.npz"
_META: Final = "meta"
# Only the service's own value types may be rebuilt from a file.
_ALLOWED_MODULES: Final = ("cloud.",)
REPLAY_MESSAGES: Final = 2000  # messages per replayed batch


def wall_clock_ms() -> int:
    """UTC milliseconds since the Unix epoch (when a snapshot was taken)."""
    return time.time_ns() // 1_000_000


class SnapshotUnreadable(ForewarnError):
    """A snapshot file that cannot be used: missing parts, corrupt, or of another layout."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: FleetState
    policy: PolicyState
    devices: tuple[DeviceInfo, ...]
    high_water: int  # telemetry store position: every message up to it is in ``state``
    taken_ms: int  # wall-clock time of the snapshot (UTC ms)


# -- encoding: a value tree → JSON tree + named arrays --------------------------------------


class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray[Any, Any]] = {}

    def encode(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                raise TypeError("arrays of Python objects cannot be saved")
            key = f"a{len(self.arrays)}"
            self.arrays[key] = value
            return {"$a": key}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = type(value)
            return {
                "$dc": f"{cls.__module__}:{cls.__qualname__}",
                "f": {f.name: self.encode(getattr(value, f.name)) for f in dataclasses.fields(cls)},
            }
        if isinstance(value, np.generic):
            return value.item()
        if value is None or isinstance(value, bool | int | float | str):
            return value
        if isinstance(value, tuple):
            return {"$t": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, dict):
            return {"$d": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        raise TypeError(f"cannot save a value of type {type(value).__name__}")


def _class_of(name: str) -> type[Any]:
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith(_ALLOWED_MODULES) or not qualname:
        raise SnapshotUnreadable(f"snapshot names a foreign type {name!r}")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise SnapshotUnreadable(f"snapshot names an unknown type {name!r}") from exc
    if not (isinstance(obj, type) and dataclasses.is_dataclass(obj)):
        raise SnapshotUnreadable(f"snapshot type {name!r} is not a value type")
    return obj


def _decode(node: Any, arrays: dict[str, np.ndarray[Any, Any]]) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "$a" in node:
        try:
            return arrays[node["$a"]]
        except KeyError as exc:
            raise SnapshotUnreadable(f"snapshot array {node['$a']} is missing") from exc
    if "$t" in node:
        return tuple(_decode(v, arrays) for v in node["$t"])
    if "$d" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["$d"]}
    if "$dc" in node:
        cls = _class_of(str(node["$dc"]))
        saved = node["f"]
        names = {f.name for f in dataclasses.fields(cls)}
        if set(saved) != names:
            raise SnapshotUnreadable(
                f"{cls.__qualname__} has changed since the snapshot was taken "
                f"(fields now {sorted(names)}, saved {sorted(saved)})"
            )
        return cls(**{k: _decode(v, arrays) for k, v in saved.items()})
    raise SnapshotUnreadable("snapshot holds an unknown node")


# -- files ---------------------------------------------------------------------------------


def save(path: Path, snapshot: Snapshot) -> int:
    """Write ``snapshot`` to ``path`` atomically; return the file's size in bytes."""
    encoder = _Encoder()
    tree = {
        "version": FORMAT_VERSION,
        "high_water": snapshot.high_water,
        "taken_ms": snapshot.taken_ms,
        "state": encoder.encode(snapshot.state),
        "policy": encoder.encode(snapshot.policy),
        "devices": encoder.encode(snapshot.devices),
    }
    meta = np.frombuffer(json.dumps(tree).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    entries: dict[str, Any] = {_META: meta, **encoder.arrays}
    np.savez(buffer, **entries)
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a power cut
    finally:
        os.close(dir_fd)
    return len(data)


def load(path: Path) -> Snapshot | None:
    """Read a snapshot; ``None`` if there is none, ``SnapshotUnreadable`` if it cannot be used."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise SnapshotUnreadable(f"snapshot {path} is unreadable: {exc}") from exc
    try:
        tree = json.loads(arrays.pop(_META).tobytes())
    except (KeyError, ValueError) as exc:
        raise SnapshotUnreadable(f"snapshot {path} has no readable description") from exc
    version = tree.get("version") if isinstance(tree, dict) else None
    if version != FORMAT_VERSION:
        raise SnapshotUnreadable(
            f"snapshot {path} has format version {version}, this program reads {FORMAT_VERSION}"
        )
    try:
        state = _decode(tree["state"], arrays)
        policy = _decode(tree["policy"], arrays)
        devices = _decode(tree["devices"], arrays)
        high_water, taken_ms = int(tree["high_water"]), int(tree["taken_ms"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotUnreadable(f"snapshot {path} is incomplete: {exc}") from exc
    if not (isinstance(state, FleetState) and isinstance(policy, PolicyState)):
        raise SnapshotUnreadable(f"snapshot {path} does not hold a fleet state")
    if not (isinstance(devices, tuple) and all(isinstance(d, DeviceInfo) for d in devices)):
        raise SnapshotUnreadable(f"snapshot {path} does not hold device records")
    return Snapshot(state, policy, devices, high_water, taken_ms)


# -- replay --------------------------------------------------------------------------------


def replay_batches(
    store: EmbeddedStore, after: int, messages_per_batch: int = REPLAY_MESSAGES
) -> Iterator[TelemetryBatch]:
    """The telemetry stored after position ``after``, as batches in store order.

    Consecutive messages of one kind form one batch (at most ``messages_per_batch`` messages),
    so the core sees every device's rows in the order they were stored.
    """
    position = after
    while True:
        messages = store.messages_after(position, messages_per_batch)
        if not messages:
            return
        position = messages[-1].position
        run: list[StoredMessage] = []
        for message in messages:
            if run and message.kind != run[0].kind:
                yield _batch(run)
                run = []
            run.append(message)
        if run:
            yield _batch(run)


def _batch(messages: list[StoredMessage]) -> TelemetryBatch:
    device_ids = tuple(dict.fromkeys(m.device_id for m in messages))
    device_pos = {d: i for i, d in enumerate(device_ids)}
    channels = tuple(dict.fromkeys(c for m in messages for c in m.chunk.channels))
    column = {c: i for i, c in enumerate(channels)}
    n_rows = sum(int(m.chunk.ts_ms.shape[0]) for m in messages)
    values = np.full((n_rows, len(channels)), np.nan)
    row_device = np.empty(n_rows, dtype=np.int64)
    row_seq = np.empty(n_rows, dtype=np.int64)
    ts_parts = []
    start = 0
    for m in messages:
        end = start + int(m.chunk.ts_ms.shape[0])
        cols = [column[c] for c in m.chunk.channels]
        values[start:end, cols] = m.chunk.values
        row_device[start:end] = device_pos[m.device_id]
        row_seq[start:end] = m.seq
        ts_parts.append(m.chunk.ts_ms)
        start = end
    ts_ms = np.concatenate(ts_parts) if ts_parts else np.zeros(0, dtype=np.int64)
    # A back-filled message stored after a newer one: each device's rows go in time order.
    order = np.lexsort((ts_ms, row_device))
    return TelemetryBatch(
        messages[0].kind, device_ids, channels,
        row_device[order], row_seq[order], ts_ms[order], values[order],
    )  # fmt: skip
