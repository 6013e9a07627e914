"""Channel value ranges from the product profiles, so simulated values always decode."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

import firmware_specs
from simulators.types import FloatArray


def channel_bounds(kind: str, channels: Sequence[str]) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bound of each channel as the profile of ``kind`` allows it.

    Raises ``ValueError`` when a channel is not in the profile, so a simulator cannot emit a
    channel the decoder would reject.
    """
    profile = firmware_specs.load_profile(kind)
    exact: dict[str, tuple[float, float]] = {
        str(c["name"]): (float(c["min"]), float(c["max"])) for c in profile["channels"]
    }
    patterns = [
        (re.compile(_pattern_of(p)), float(p["min"]), float(p["max"]))
        for p in profile.get("channel_patterns", [])
    ]
    low = np.empty(len(channels))
    high = np.empty(len(channels))
    for i, name in enumerate(channels):
        if name in exact:
            low[i], high[i] = exact[name]
            continue
        for regex, lo, hi in patterns:
            if regex.match(name):
                low[i], high[i] = lo, hi
                break
        else:
            raise ValueError(f"channel {name!r} is not in the {kind} profile")
    return low, high


def _pattern_of(entry: dict[str, Any]) -> str:
    for key in ("pattern", "regex", "name"):
        if key in entry:
            return str(entry[key])
    raise ValueError(f"channel pattern entry without a pattern: {entry!r}")


def clip_to(values: FloatArray, low: FloatArray, high: FloatArray) -> FloatArray:
    """Clip each column into its range, in place; NaN (not reported) stays NaN."""
    np.clip(values, low, high, out=values)
    return values
