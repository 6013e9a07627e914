"""Device ids of simulated fleets: ``{prefix}-{number:06d}``."""

from __future__ import annotations

from firmware_specs import DEVICE_ID_PATTERN, DEVICE_ID_RE


def device_ids(prefix: str, n: int) -> tuple[str, ...]:
    """``n`` device ids ``prefix-000001`` ... valid under the contract's device id pattern."""
    if n < 0:
        raise ValueError(f"a fleet cannot have {n} devices")
    ids = tuple(f"{prefix}-{i:06d}" for i in range(1, n + 1))
    if ids and not (DEVICE_ID_RE.match(ids[0]) and DEVICE_ID_RE.match(ids[-1])):
        raise ValueError(f"id prefix {prefix!r} gives ids that do not match {DEVICE_ID_PATTERN}")
    return ids
