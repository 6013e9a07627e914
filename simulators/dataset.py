"""Offline mode: a labelled dataset on disk, written a chunk of steps at a time.

``python -m simulators.dataset OUT --devices 1000 --days 30 --dt 60 --seed 1`` writes::

    OUT/manifest.json              what was generated, channels per kind, chunk files
    OUT/devices.jsonl              one device per line: id, kind, model, attributes, tz
    OUT/{kind}/chunk-00000.npz     ts_ms[t], values[t, device, channel] (float32, NaN = absent)
    OUT/{kind}/events.jsonl        {"device_id": ..., "event": {...}} per event
    OUT/labels.jsonl, labels.csv   ground truth: every fault and stock-out with its times

Memory stays bounded by one chunk (``chunk_steps`` steps of every kind; by default a day, or
fewer steps so that a chunk's values stay near 64 MiB).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from simulators import fridge, tyres, vending
from simulators.fleet import MixedFleet
from simulators.offline import generate
from simulators.truth import write_labels_csv, write_labels_jsonl
from simulators.types import DeviceSpec, StepOutput


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What :func:`write_dataset` wrote."""

    out_dir: Path
    steps: int
    chunks: int
    readings: int  # device samples over all kinds
    events: int
    labels: int
    bytes_written: int


def write_dataset(
    fleet: MixedFleet,
    out_dir: Path,
    start_ms: int,
    days: float,
    dt_s: float,
    chunk_steps: int | None = None,
    *,
    compress: bool = True,
) -> DatasetSummary:
    """Step ``fleet`` over ``days`` and write telemetry, events and labels under ``out_dir``.

    ``out_dir`` must not hold a dataset already (its ``manifest.json``); it is created if needed.
    ``compress=False`` writes plain ``.npz`` files: larger, several times faster to write.
    """
    if not dt_s > 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    save = np.savez_compressed if compress else np.savez
    if chunk_steps is None:
        chunk_steps = default_chunk_steps(fleet, dt_s)
    if (out_dir / "manifest.json").exists():
        raise FileExistsError(f"{out_dir} already holds a dataset (manifest.json)")
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = fleet.devices()
    ids = {kind: [d.device_id for d in specs if d.kind == kind] for kind in _kinds(specs)}
    with (out_dir / "devices.jsonl").open("w", encoding="utf-8") as device_file:
        for spec in specs:
            device_file.write(json.dumps(dataclasses.asdict(spec), separators=(",", ":")) + "\n")
    for kind in ids:
        (out_dir / kind).mkdir(exist_ok=True)
    event_files = {
        kind: (out_dir / kind / "events.jsonl").open("w", encoding="utf-8") for kind in ids
    }
    channels: dict[str, list[str]] = {}
    chunk_files: dict[str, list[str]] = {kind: [] for kind in ids}
    steps = readings = events = 0
    try:
        for number, chunk in enumerate(generate(fleet, start_ms, days, dt_s, chunk_steps)):
            by_kind: dict[str, list[StepOutput]] = {}
            for out in chunk:
                by_kind.setdefault(out.kind, []).append(out)
            for kind, outs in by_kind.items():
                channels.setdefault(kind, list(outs[0].channels))
                name = f"chunk-{number:05d}.npz"
                save(
                    out_dir / kind / name,
                    ts_ms=np.array([o.ts_ms for o in outs], dtype=np.int64),
                    values=np.stack([o.values for o in outs]).astype(np.float32),
                )
                chunk_files[kind].append(f"{kind}/{name}")
                readings += sum(o.values.shape[0] for o in outs)
                kind_ids = ids[kind]
                lines = [
                    json.dumps({"device_id": kind_ids[d], "event": e}, separators=(",", ":"))
                    for o in outs
                    for d, e in o.events
                ]
                events += len(lines)
                event_files[kind].write("".join(line + "\n" for line in lines))
            steps += len(by_kind[next(iter(by_kind))]) if by_kind else 0
    finally:
        for events_file in event_files.values():
            events_file.close()
    labels = fleet.labels()
    write_labels_jsonl(labels, out_dir / "labels.jsonl")
    write_labels_csv(labels, out_dir / "labels.csv")
    manifest: dict[str, Any] = {
        "format": 1,
        "start_ms": start_ms,
        "days": days,
        "dt_s": dt_s,
        "steps": steps,
        "devices": {kind: len(v) for kind, v in ids.items()},
        "channels": channels,
        "chunks": chunk_files,
        "values": "float32 array [t, device, channel]; device order as in devices.jsonl",
        "labels": len(labels),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    size = sum(p.stat().st_size for p in out_dir.rglob("*") if p.is_file())
    return DatasetSummary(
        out_dir, steps, max(map(len, chunk_files.values()), default=0), readings, events,
        len(labels), size,
    )  # fmt: skip


CHUNK_BYTES: Final = 64 * 2**20
_CHANNELS: Final = {
    "fridge": len(fridge.CHANNELS), "vending": len(vending.CHANNELS), "tyres": len(tyres.CHANNELS),
}  # fmt: skip


def default_chunk_steps(fleet: MixedFleet, dt_s: float) -> int:
    """Steps per chunk: one simulated day, or fewer so a chunk's values stay near 64 MiB."""
    per_step = 8 * sum(len(f.devices) * _CHANNELS[f.kind] for f in fleet.fleets)
    day = max(1, round(86_400 / dt_s))
    return max(1, min(day, CHUNK_BYTES // max(per_step, 1)))


def _kinds(specs: Sequence[DeviceSpec]) -> list[str]:
    seen: list[str] = []
    for spec in specs:
        if spec.kind not in seen:
            seen.append(spec.kind)
    return seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.dataset", description="Write a labelled offline dataset."
    )
    parser.add_argument("out", type=Path, help="output directory (must not hold a dataset)")
    parser.add_argument("--devices", type=int, default=300, help="devices of all kinds (300)")
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (30)")
    parser.add_argument("--dt", type=float, default=60.0, help="sample interval in s (60)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--fault-share", type=float, default=0.15, help="faulty share (0.15)")
    parser.add_argument("--start-ms", type=int, default=1_767_225_600_000, help="UTC start")
    parser.add_argument(
        "--chunk-steps", type=int, default=None, help="steps per chunk (a day, at most ~64 MiB)"
    )
    parser.add_argument("--no-compress", action="store_true", help="plain .npz (faster)")
    args = parser.parse_args(argv)
    try:
        fleet = MixedFleet(
            args.devices, args.start_ms, args.seed, fault_share=args.fault_share,
            horizon_days=args.days,
        )  # fmt: skip
        summary = write_dataset(
            fleet, args.out, args.start_ms, args.days, args.dt, args.chunk_steps,
            compress=not args.no_compress,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(
        f"{summary.steps} steps, {summary.readings} readings, {summary.events} events, "
        f"{summary.labels} labels in {summary.chunks} chunks, "
        f"{summary.bytes_written / 1e6:.1f} MB under {summary.out_dir}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
