"""Chunk codec: a telemetry batch as one compressed columnar record per (device, seq) message."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud.batch import FloatArray, IntArray, TelemetryBatch

CODEC_RAW = 0  # ts_ms and values as native little-endian bytes
CODEC_ZLIB = 1  # ts_ms as first value + deltas, both columns zlib-compressed (level 1)
CHANNEL_SEP = ","  # channel names never contain it (firmware_specs profiles)
ZLIB_LEVEL = 1  # level 1 keeps ~2/3 of level 9's saving at a fraction of the time
COMPRESS_MIN_ROWS = 24  # messages with fewer rows are stored raw

# device_id, seq, kind, ts_first_ms, ts_last_ms, n_rows, channels, codec, ts_blob, values_blob
ChunkRecord = tuple[str, int, str, int, int, int, str, int, bytes, bytes]


@dataclass(frozen=True, slots=True)
class DecodedChunk:
    ts_ms: IntArray  # (n_rows,)
    values: FloatArray  # (n_rows, n_channels), row-major
    channels: tuple[str, ...]


def check_batch(batch: TelemetryBatch) -> None:
    """Raise ``ValueError`` if the batch's arrays disagree in shape or index out of range."""
    n_rows = batch.n_rows
    n_channels = len(batch.channels)
    if batch.row_device.shape != (n_rows,) or batch.row_seq.shape != (n_rows,):
        raise ValueError("row_device, row_seq and ts_ms must have one entry per row")
    if batch.values.shape != (n_rows, n_channels):
        raise ValueError(
            f"values has shape {batch.values.shape}, expected ({n_rows}, {n_channels})"
        )
    if n_rows and (batch.row_device.min() < 0 or batch.row_device.max() >= len(batch.device_ids)):
        raise ValueError("row_device indexes outside device_ids")
    if n_rows and batch.row_seq.min() < 0:
        raise ValueError("seq must be >= 0")


def group_rows(batch: TelemetryBatch) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Row order and group bounds that put each (device, seq) message together, in time order.

    Returns ``(order, indptr)``: rows ``order[indptr[g]:indptr[g + 1]]`` form message ``g``.
    A row repeated within the batch (same device, seq and ts_ms: a message delivered twice
    before ingest could deduplicate it) is left out of ``order``.
    """
    device = batch.row_device
    seq = batch.row_seq
    ts_ms = batch.ts_ms
    order = np.lexsort((ts_ms, seq, device))
    d, s, t = device[order], seq[order], ts_ms[order]
    same_message = (d[1:] == d[:-1]) & (s[1:] == s[:-1])
    repeated = same_message & (t[1:] == t[:-1])
    if repeated.any():
        keep = np.concatenate(([True], ~repeated))
        order = order[keep]
        d, s = d[keep], s[keep]
        same_message = (d[1:] == d[:-1]) & (s[1:] == s[:-1])
    starts = np.flatnonzero(np.concatenate(([True], ~same_message)))
    indptr = np.append(starts, order.shape[0])
    return order, indptr


def encode_batch(batch: TelemetryBatch, *, compress: bool = True) -> list[ChunkRecord]:
    """One record per (device, seq) message of ``batch``, holding only the channels it reported.

    A channel counts as reported by a message when at least one of its rows has a value.
    """
    check_batch(batch)
    if batch.n_rows == 0:
        return []
    order, indptr = group_rows(batch)
    starts = indptr[:-1]
    ts_ms = np.ascontiguousarray(batch.ts_ms[order], dtype="<i8")
    values = np.ascontiguousarray(batch.values[order], dtype="<f8")
    present = np.logical_or.reduceat(~np.isnan(values), starts, axis=0)
    group_device = batch.row_device[order][starts].tolist()
    group_seq = batch.row_seq[order][starts].tolist()
    firsts = ts_ms[starts].tolist()
    lasts = ts_ms[indptr[1:] - 1].tolist()
    if compress:
        ts_column = ts_ms.copy()
        ts_column[1:] -= ts_ms[:-1]
        ts_column[starts] = ts_ms[starts]
    else:
        ts_column = ts_ms
    layouts = _Layouts(batch.channels)
    records: list[ChunkRecord] = []
    bounds = indptr.tolist()
    for g in range(len(bounds) - 1):
        lo, hi = bounds[g], bounds[g + 1]
        columns, names = layouts.get(present[g])
        block = values[lo:hi] if columns is None else values[lo:hi, columns]
        # Small messages gain little from zlib and most of the write time goes to it.
        if compress and hi - lo >= COMPRESS_MIN_ROWS:
            codec = CODEC_ZLIB
            ts_bytes = zlib.compress(ts_column[lo:hi].tobytes(), ZLIB_LEVEL)
            value_bytes = zlib.compress(block.tobytes(), ZLIB_LEVEL)
        else:
            codec = CODEC_RAW
            ts_bytes = ts_ms[lo:hi].tobytes()
            value_bytes = block.tobytes()
        records.append(
            (
                batch.device_ids[group_device[g]],
                group_seq[g],
                batch.kind,
                firsts[g],
                lasts[g],
                hi - lo,
                names,
                codec,
                ts_bytes,
                value_bytes,
            )
        )
    return records


def decode_chunk(
    channels: str, codec: int, n_rows: int, ts_blob: bytes, values_blob: bytes
) -> DecodedChunk:
    """Inverse of one record of :func:`encode_batch`; ``ValueError`` for an unreadable chunk."""
    names = tuple(channels.split(CHANNEL_SEP)) if channels else ()
    if codec == CODEC_ZLIB:
        try:
            ts_blob = zlib.decompress(ts_blob)
            values_blob = zlib.decompress(values_blob)
        except zlib.error as exc:
            raise ValueError(f"corrupt chunk: {exc}") from exc
        ts_ms = np.cumsum(np.frombuffer(ts_blob, dtype="<i8")).astype(np.int64)
    elif codec == CODEC_RAW:
        ts_ms = np.frombuffer(ts_blob, dtype="<i8").astype(np.int64)
    else:
        raise ValueError(f"unknown chunk codec {codec}")
    values = np.frombuffer(values_blob, dtype="<f8").astype(np.float64)
    if ts_ms.shape[0] != n_rows or values.shape[0] != n_rows * len(names):
        raise ValueError("corrupt chunk: column lengths disagree")
    return DecodedChunk(ts_ms=ts_ms, values=values.reshape(n_rows, len(names)), channels=names)


class _Layouts:
    """Column indexes and channel text per presence mask, computed once per distinct mask."""

    def __init__(self, channels: tuple[str, ...]) -> None:
        self._channels = channels
        self._all = CHANNEL_SEP.join(channels)
        self._cache: dict[bytes, tuple[npt.NDArray[np.intp] | None, str]] = {}

    def get(self, mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp] | None, str]:
        key = mask.tobytes()
        found = self._cache.get(key)
        if found is None:
            if mask.all():
                found = (None, self._all)
            else:
                columns = np.flatnonzero(mask)
                found = (columns, CHANNEL_SEP.join(self._channels[c] for c in columns))
            self._cache[key] = found
        return found
