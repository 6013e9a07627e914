"""The InfluxDB mirror, against a real VictoriaMetrics speaking the InfluxDB 2 write API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from cloud.batch import TelemetryBatch
from cloud.errors import ConfigError, StoreUnavailable
from cloud.store import TelemetryWriter
from cloud.store.influx import InfluxWriter
from forewarn.broker import free_port
from tests.conftest import VictoriaMetrics

pytestmark = pytest.mark.integration

# VictoriaMetrics drops samples older than its retention (one month by default): stay recent.
T0_MS = (int(time.time() * 1000) // 60_000 - 24 * 60) * 60_000  # a day ago: all in the past
MINUTE_MS = 60_000

Exported = dict[tuple[str, str], tuple[list[float], list[int]]]


def fridge_batch(
    seqs: dict[str, int], n_rows: int = 3, first_minute: int = 0, offset: float = 0.0
) -> TelemetryBatch:
    """Rows of ``n_rows`` readings per device; evap_c of each device's middle row missing."""
    device_ids = tuple(seqs)
    n_devices = len(device_ids)
    row_device = np.repeat(np.arange(n_devices), n_rows)
    minute = np.tile(np.arange(n_rows), n_devices) + first_minute
    values = np.column_stack(
        [
            np.round(3.5 + 0.25 * minute + row_device + offset, 2),
            np.round(-20.0 - 0.5 * minute, 2),
        ]
    )
    values[row_device * n_rows + n_rows // 2 == np.arange(n_devices * n_rows), 1] = np.nan
    return TelemetryBatch(
        kind="fridge",
        device_ids=device_ids,
        channels=("cabinet_c", "evap_c"),
        row_device=row_device.astype(np.int64),
        row_seq=np.array([seqs[d] for d in device_ids], dtype=np.int64)[row_device],
        ts_ms=(T0_MS + minute * MINUTE_MS + 123).astype(np.int64),  # odd ms: precision is ms
        values=values,
    )


def export(url: str, match: str) -> Exported:
    """Every sample of the matching series, by (metric name, device_id)."""
    with httpx.Client(base_url=url, timeout=10) as http:
        http.get("/internal/force_flush").raise_for_status()  # make fresh samples searchable
        response = http.get("/api/v1/export", params={"match[]": match})
    response.raise_for_status()
    found: Exported = {}
    for line in response.text.splitlines():
        series = json.loads(line)
        key = (series["metric"]["__name__"], series["metric"]["device_id"])
        pairs = sorted(zip(series["timestamps"], series["values"], strict=True))
        found[key] = ([float(v) for _, v in pairs], [int(t) for t, _ in pairs])
    return found


def expected_samples(batch: TelemetryBatch) -> Exported:
    """What the mirror must hold for ``batch``: a series per kind_field and device."""
    expected: Exported = {}
    for d, device_id in enumerate(batch.device_ids):
        own = batch.row_device == d
        columns = {c: batch.values[own, i] for i, c in enumerate(batch.channels)}
        columns["seq"] = batch.row_seq[own].astype(np.float64)
        for field, column in columns.items():
            keep = np.isfinite(column)
            expected[(f"{batch.kind}_{field}", device_id)] = (
                column[keep].tolist(),
                batch.ts_ms[own][keep].tolist(),
            )
    return expected


def merge(*parts: Exported) -> Exported:
    merged: Exported = {}
    for part in parts:
        for key, (values, ts_ms) in part.items():
            old_values, old_ts = merged.get(key, ([], []))
            pairs = sorted(zip(old_ts + ts_ms, old_values + values, strict=True))
            merged[key] = ([v for _, v in pairs], [t for t, _ in pairs])
    return merged


def make_writer(url: str, spool_dir: Path, **options: int) -> InfluxWriter:
    settings = dict(max_retries=1, retry_interval_ms=50, max_retry_time_ms=5_000, timeout_ms=2_000)
    settings.update(options)
    return InfluxWriter(url, "test-token", "forewarn", "telemetry", spool_dir=spool_dir, **settings)


def test_rows_land_with_exact_values_and_timestamps(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    first = fridge_batch({"fr-000001": 10, "fr-000002": 3}, n_rows=400)
    second = fridge_batch({"fr-000001": 11}, n_rows=250, first_minute=400)
    # small batches: the rows travel in several requests
    with make_writer(victoria_metrics.url, tmp_path / "spool", batch_size=300) as writer:
        as_port: TelemetryWriter = writer
        assert as_port.write(first) == 800
        assert as_port.write(second) == 250
        writer.flush()
        stats = writer.stats()

    assert (stats.rows_written, stats.rows_failed, stats.batches_failed) == (1050, 0, 0)
    assert stats.rows_pending == 0
    assert stats.last_error is None
    landed = export(victoria_metrics.url, '{__name__=~"fridge_.*"}')
    assert landed == merge(expected_samples(first), expected_samples(second))
    # the missing evap_c reading is absent, not zero
    _, evap_ts = landed[("fridge_evap_c", "fr-000002")]
    assert len(evap_ts) == 399
    assert T0_MS + 200 * MINUTE_MS + 123 not in evap_ts
    assert writer.spool_status().files == 0


def test_channel_names_of_every_kind_survive_line_protocol(
    victoria_metrics: VictoriaMetrics, tmp_path: Path
) -> None:
    batch = TelemetryBatch(
        kind="vending",
        device_ids=("vm-000001",),
        channels=("slot.A1.stock", "slot.J10.vends", "cabinet_c"),
        row_device=np.zeros(2, dtype=np.int64),
        row_seq=np.array([4, 4], dtype=np.int64),
        ts_ms=np.array([T0_MS, T0_MS + 1], dtype=np.int64),
        values=np.array([[12.0, 0.0, np.nan], [11.0, 1.0, np.nan]]),
    )
    with make_writer(victoria_metrics.url, tmp_path / "spool") as writer:
        writer.write(batch)
        writer.flush()

    landed = export(victoria_metrics.url, '{__name__=~"vending_.*"}')

    assert landed == {
        ("vending_slot.A1.stock", "vm-000001"): ([12.0, 11.0], [T0_MS, T0_MS + 1]),
        ("vending_slot.J10.vends", "vm-000001"): ([0.0, 1.0], [T0_MS, T0_MS + 1]),
        ("vending_seq", "vm-000001"): ([4.0, 4.0], [T0_MS, T0_MS + 1]),
    }


def test_server_outage_is_counted_spooled_and_redriven(
    vm_server: VictoriaMetrics, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    before = fridge_batch({"fr-000001": 1, "fr-000002": 1}, n_rows=50)
    during = fridge_batch({"fr-000001": 2, "fr-000002": 2}, n_rows=120, first_minute=50)
    vm_server.start()
    writer = make_writer(vm_server.url, spool_dir, batch_size=100)
    writer.write(before)
    writer.flush()
    assert writer.stats().rows_written == 100

    vm_server.stop()
    assert writer.write(during) == 240  # accepted: the failure comes later, not as a raise
    writer.flush()

    down = writer.stats()
    assert (down.rows_written, down.rows_failed, down.rows_pending) == (100, 240, 0)
    assert down.batches_failed >= 2  # 240 rows in batches of about 100
    assert down.last_error is not None
    assert "refused" in down.last_error.lower()
    assert writer.retries >= down.batches_failed  # the client retried before giving up
    spooled = sorted(spool_dir.glob("*.lp"))
    assert len(spooled) == down.batches_failed
    assert sum(p.read_bytes().count(b"\n") + 1 for p in spooled) == 240

    with pytest.raises(StoreUnavailable, match="still spooled"):
        writer.redrive()  # still down: nothing lost, nothing removed
    assert sorted(spool_dir.glob("*.lp")) == spooled
    writer.close()

    # the process restarts: a new writer finds the spool and redrives it once the server is back
    vm_server.start()
    with make_writer(vm_server.url, spool_dir) as restarted:
        assert restarted.redrive() == 240
        assert restarted.redrive() == 0
        after = restarted.stats()

    assert list(spool_dir.glob("*.lp")) == []
    assert (after.rows_written, after.rows_failed, after.batches_failed) == (240, 0, 0)
    landed = export(vm_server.url, '{__name__=~"fridge_.*"}')
    assert landed == merge(expected_samples(before), expected_samples(during))


def test_full_spool_counts_lost_rows_and_says_so(tmp_path: Path) -> None:
    closed_port_url = f"http://127.0.0.1:{free_port()}"
    batch = fridge_batch({"fr-000001": 1}, n_rows=300)
    with make_writer(
        closed_port_url, tmp_path / "spool", batch_size=100, max_spool_bytes=9_000
    ) as writer:
        writer.write(batch)
        writer.flush()
        stats = writer.stats()
        status = writer.spool_status()
        lost = writer.rows_lost

    assert (stats.rows_failed, stats.batches_failed, stats.rows_pending) == (300, 3, 0)
    assert status.files == 1  # one ~6 kB payload fits, the next ones do not
    assert status.bytes <= 9_000
    assert lost == 200
    assert stats.last_error is not None
    assert "spool full: 100 rows lost" in stats.last_error


def test_bad_configuration_and_bad_batches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http"):
        make_writer("localhost:8086", tmp_path / "spool")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="spool directory"):
        make_writer("http://127.0.0.1:1", tmp_path / "a-file" / "spool")
    with pytest.raises(ConfigError, match="batch_size"):
        make_writer("http://127.0.0.1:1", tmp_path / "spool", batch_size=0)

    writer = make_writer(f"http://127.0.0.1:{free_port()}", tmp_path / "spool")
    good = fridge_batch({"fr-000001": 1})
    malformed = TelemetryBatch(
        "fridge", good.device_ids, good.channels, good.row_device, good.row_seq, good.ts_ms,
        good.values[:, :1],
    )  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        writer.write(malformed)
    assert writer.write(TelemetryBatch.empty("fridge")) == 0
    writer.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        writer.write(good)
    assert writer.stats().rows_pending == 0
