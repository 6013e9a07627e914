"""InfluxDB line protocol for telemetry batches: one line per reading, millisecond timestamps."""

from __future__ import annotations

import numpy as np

from cloud.batch import TelemetryBatch

SEQ_FIELD = "seq"


def escape_measurement(name: str) -> str:
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def escape_key(name: str) -> str:
    """Escape a tag key, tag value or field key."""
    return name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def batch_lines(batch: TelemetryBatch) -> list[bytes]:
    """One line per row of ``batch``, in row order.

    ``{kind},device_id={device_id} {channel}={value},...,seq={seq}i {ts_ms}``: the measurement
    is the product kind, each channel a float field and the message's ``seq`` an integer
    field, so that a mirror can be checked against the embedded history.
    Non-finite values (NaN: not reported) are left out of their line; a row without any
    value still carries its ``seq`` field.

    Examples
    --------
    >>> b = TelemetryBatch("fridge", ("fr-1",), ("cabinet_c", "evap_c"), np.array([0]),
    ...                    np.array([7]), np.array([1767225600000]), np.array([[3.9, np.nan]]))
    >>> batch_lines(b)
    [b'fridge,device_id=fr-1 cabinet_c=3.9,seq=7i 1767225600000']
    """
    measurement = escape_measurement(batch.kind)
    prefixes = [f"{measurement},device_id={escape_key(d)} " for d in batch.device_ids]
    keys = [f"{escape_key(c)}=" for c in batch.channels]
    seq_key = f"{SEQ_FIELD}="
    values = np.where(np.isfinite(batch.values), batch.values, np.nan).tolist()
    lines = []
    for device, seq, ts_ms, row in zip(
        batch.row_device.tolist(), batch.row_seq.tolist(), batch.ts_ms.tolist(), values, strict=True
    ):
        fields = [key + repr(value) for key, value in zip(keys, row, strict=True) if value == value]
        fields.append(f"{seq_key}{seq}i")
        lines.append(f"{prefixes[device]}{','.join(fields)} {ts_ms}".encode())
    return lines


def count_lines(payload: bytes) -> int:
    """Readings in a line-protocol payload (lines joined by newlines, no trailing newline)."""
    stripped = payload.strip(b"\n")
    return stripped.count(b"\n") + 1 if stripped else 0
