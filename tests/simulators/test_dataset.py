"""Offline datasets on disk: layout, round trips, bounded chunks, and ground truth files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simulators import MixedFleet
from simulators.arrivals import Arrivals
from simulators.dataset import main, write_dataset
from simulators.noise import NoiseTable
from simulators.schedule import PeriodicWindows, periodic_on_ms
from simulators.truth import read_labels_jsonl, write_labels_csv, write_labels_jsonl
from simulators.types import FaultLabel

START_MS = 1_767_225_600_000


def test_dataset_holds_every_reading_event_and_label(tmp_path: Path) -> None:
    fleet = MixedFleet(30, START_MS, seed=8, fault_share=1.0, horizon_days=2)
    summary = write_dataset(fleet, tmp_path / "ds", START_MS, 2, 1800.0, chunk_steps=24)
    root = tmp_path / "ds"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["steps"] == summary.steps == 96
    assert manifest["devices"] == {"fridge": 12, "vending": 9, "tyres": 9}
    assert summary.chunks == 4
    assert summary.readings == 96 * 30
    devices = [json.loads(line) for line in (root / "devices.jsonl").read_text().splitlines()]
    assert [d["device_id"] for d in devices] == [d.device_id for d in fleet.devices()]
    ts = []
    for name in manifest["chunks"]["fridge"]:
        with np.load(root / name) as chunk:
            assert chunk["values"].shape == (24, 12, len(manifest["channels"]["fridge"]))
            assert chunk["values"].dtype == np.float32
            ts.extend(chunk["ts_ms"].tolist())
    assert ts == [START_MS + k * 1_800_000 for k in range(1, 97)]
    events = (root / "vending" / "events.jsonl").read_text().splitlines()
    assert (
        sum(len((root / k / "events.jsonl").read_text().splitlines()) for k in manifest["devices"])
        == summary.events
    )
    assert all(json.loads(e)["device_id"].startswith("vm-") for e in events)
    labels = read_labels_jsonl(root / "labels.jsonl")
    assert labels == fleet.labels()
    assert len(labels) == summary.labels > 0
    assert (root / "labels.csv").read_text().splitlines()[0].startswith("device_id,kind,fault")
    with pytest.raises(FileExistsError):
        write_dataset(fleet, root, START_MS, 1, 1800.0)


def test_dataset_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "d"), "--devices", "6", "--days", "0.5", "--dt", "3600"]) == 0
    assert "12 steps, 72 readings" in capsys.readouterr().out
    plain = ["--devices", "6", "--days", "0.5", "--dt", "3600", "--no-compress"]
    assert main([str(tmp_path / "p"), *plain]) == 0
    with np.load(tmp_path / "p" / "fridge" / "chunk-00000.npz") as chunk:
        assert chunk["values"].shape == (12, 2, 8)
    assert main([str(tmp_path / "d"), "--devices", "6", "--days", "0.5"]) == 2
    assert main([str(tmp_path / "e"), "--devices", "6", "--dt", "0"]) == 2


def test_labels_round_trip_and_bad_lines(tmp_path: Path) -> None:
    labels = [
        FaultLabel("fr-000001", "fridge", "refrigerant_leak", 10, 20),
        FaultLabel("vm-000001", "vending", "stockout", 5, 5, "B4", 9),
    ]
    assert write_labels_jsonl(labels, tmp_path / "l.jsonl") == 2
    assert read_labels_jsonl(tmp_path / "l.jsonl") == labels
    assert write_labels_csv(labels, tmp_path / "l.csv") == 2
    assert (tmp_path / "l.csv").read_text().splitlines()[
        1
    ] == "fr-000001,fridge,refrigerant_leak,10,20,,"
    (tmp_path / "bad.jsonl").write_text('{"device_id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: missing kind, fault, onset_ms"):
        read_labels_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "worse.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"worse.jsonl:1: not a fault label"):
        read_labels_jsonl(tmp_path / "worse.jsonl")


def test_arrivals_are_poisson_with_the_integrated_rate() -> None:
    arrivals = Arrivals(20_000, np.random.default_rng(1))
    counts = np.zeros(20_000)
    for hour in range(48):
        rate = np.full(20_000, (3.0 if hour % 24 in (7, 8, 18) else 0.2) / 3600.0)
        who, n = arrivals.advance(rate, 3600.0)
        counts[who] += n
    expected = 2 * (3 * 3.0 + 21 * 0.2)
    assert counts.mean() == pytest.approx(expected, rel=0.02)
    assert counts.var() == pytest.approx(expected, rel=0.05)  # Poisson: variance = mean


def test_noise_table_has_the_asked_spread_and_moves_between_calls() -> None:
    noise = NoiseTable(np.random.default_rng(2), 0.5)
    a, b = noise.normal(10_000), noise.normal(10_000)
    assert a.std() == pytest.approx(0.5, rel=0.05)
    assert abs(a.mean()) < 0.02
    assert not np.array_equal(a, b)
    assert noise.normal(1 << 20).shape == (1 << 20,)  # longer than the table: drawn fresh
    with pytest.raises(ValueError, match="at least 2"):
        NoiseTable(np.random.default_rng(2), 1.0, size=1)


def test_periodic_windows_agree_with_the_closed_form_over_gaps_and_long_samples() -> None:
    rng = np.random.default_rng(0)
    period = rng.uniform(6, 8, 300) * 3.6e6
    on = rng.uniform(20, 30, 300) * 6e4
    phase = np.floor(rng.random(300) * period)
    windows = PeriodicWindows(phase, period, on, START_MS)
    t = START_MS
    for dt in [60_000] * 900 + [600_000] * 100 + [86_400_000] * 2 + [60_000] * 300:
        who, done = windows.on_ms(t, t + dt)
        got = np.zeros(300)
        got[who] = done
        assert np.allclose(got, periodic_on_ms(t, t + dt, phase, period, on), atol=0.01)
        t += dt
