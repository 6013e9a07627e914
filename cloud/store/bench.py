"""Write-throughput measurement of the embedded store, for ``forewarn bench`` to call and print."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.store.embedded import EmbeddedStore

FRIDGE_CHANNELS = (
    "cabinet_c",
    "evap_c",
    "ambient_c",
    "compressor_on",
    "compressor_a",
    "door_open_s",
    "defrost_on",
    "mains_ok",
)


@dataclass(frozen=True, slots=True)
class WriteThroughput:
    rows: int
    messages: int
    batches: int
    elapsed_s: float
    cpu_s: float  # this process's CPU time: steadier than elapsed_s on a busy machine
    file_bytes: int

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else float("inf")

    @property
    def rows_per_cpu_s(self) -> float:
        return self.rows / self.cpu_s if self.cpu_s > 0 else float("inf")


def fridge_batches(
    rng: np.random.Generator,
    *,
    n_devices: int = 2_000,
    messages_per_batch: int = 200,
    n_batches: int = 50,
    rows_per_message: tuple[int, int] = (12, 60),
    start_ms: int = 1_767_225_600_000,
    sample_interval_ms: int = 60_000,
) -> list[TelemetryBatch]:
    """Fridge telemetry as ingest hands it over: each batch a mix of devices' messages.

    Values look like decoded JSON (two decimals, on/off flags, rare missing sensors), so that
    compression sees what production sees.
    """
    next_seq = np.zeros(n_devices, dtype=np.int64)
    next_ts = np.full(n_devices, start_ms, dtype=np.int64)
    device_ids = tuple(f"fr-{i:06d}" for i in range(n_devices))
    batches = []
    for _ in range(n_batches):
        devices = rng.choice(n_devices, size=messages_per_batch, replace=False)
        lengths = rng.integers(rows_per_message[0], rows_per_message[1] + 1, messages_per_batch)
        n_rows = int(lengths.sum())
        row_device = np.repeat(devices, lengths).astype(np.int64)
        row_seq = np.repeat(next_seq[devices], lengths)
        offsets = np.arange(n_rows) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        ts_ms = np.repeat(next_ts[devices], lengths) + offsets * sample_interval_ms
        next_seq[devices] += 1
        next_ts[devices] += lengths * sample_interval_ms
        values = np.column_stack(
            [
                np.round(4.0 + rng.normal(0.0, 0.4, n_rows), 2),
                np.round(-20.0 + rng.normal(0.0, 1.5, n_rows), 2),
                np.round(21.0 + rng.normal(0.0, 0.8, n_rows), 2),
                np.round(rng.uniform(0.0, 1.0, n_rows), 2),
                np.round(rng.uniform(0.0, 3.0, n_rows), 2),
                rng.integers(0, 40, n_rows).astype(np.float64),
                (rng.uniform(size=n_rows) < 0.03).astype(np.float64),
                np.ones(n_rows),
            ]
        )
        values[rng.uniform(size=values.shape) < 0.002] = np.nan
        batches.append(
            TelemetryBatch(
                kind="fridge",
                device_ids=device_ids,
                channels=FRIDGE_CHANNELS,
                row_device=row_device,
                row_seq=row_seq,
                ts_ms=ts_ms.astype(np.int64),
                values=values,
            )
        )
    return batches


def measure_embedded_write(
    path: Path, batches: list[TelemetryBatch], *, compress: bool = True
) -> WriteThroughput:
    """Write ``batches`` into a new store at ``path`` (must not exist) and time it."""
    if path.exists():
        raise FileExistsError(f"{path} exists; the measurement needs a new file")
    with EmbeddedStore(path, compress=compress) as store:
        started, started_cpu = time.perf_counter(), time.process_time()
        rows = sum(store.write(batch) for batch in batches)
        elapsed_s = time.perf_counter() - started
        cpu_s = time.process_time() - started_cpu
        store.flush()
    messages = sum(np.unique(np.stack((b.row_device, b.row_seq)), axis=1).shape[1] for b in batches)
    return WriteThroughput(
        rows=rows,
        messages=messages,
        batches=len(batches),
        elapsed_s=elapsed_s,
        cpu_s=cpu_s,
        file_bytes=path.stat().st_size + _size(path.with_name(path.name + "-wal")),
    )


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
