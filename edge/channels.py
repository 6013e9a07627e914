"""Channel names and ranges of a product kind, read from its profile in ``firmware_specs``."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from edge.errors import ReadingError
from firmware_specs import load_profile


@dataclass(frozen=True, slots=True)
class ChannelRange:
    min: float
    max: float


class ChannelCatalog:
    """Which channels a kind may send, and the range the cloud accepts for each."""

    def __init__(self, kind: str) -> None:
        try:
            profile = load_profile(kind)
        except (ValueError, OSError) as exc:
            raise ReadingError(f"no product profile for kind {kind!r}: {exc}") from exc
        self.kind = kind
        self._exact = {
            str(c["name"]): ChannelRange(float(c["min"]), float(c["max"]))
            for c in profile.get("channels", [])
        }
        self._patterns = [
            (re.compile(str(p["pattern"])), ChannelRange(float(p["min"]), float(p["max"])))
            for p in profile.get("channel_patterns", [])
        ]
        self._matched: dict[str, ChannelRange | None] = {}
        self.event_types = frozenset(str(t) for t in profile.get("event_types", []))
        interval = profile.get("sample_interval_s", {})
        self.sample_interval_min_s = int(interval.get("min", 1))
        self.sample_interval_max_s = int(interval.get("max", 86400))
        batch = profile.get("batch_interval_s", {})
        self.batch_interval_min_s = int(batch.get("min", 1))
        self.batch_interval_max_s = int(batch.get("max", 86400))
        self.batch_max_rows = int(profile.get("batch_max_rows", 720))

    def range_of(self, channel: str) -> ChannelRange:
        """The accepted range of ``channel``; ReadingError if the kind has no such channel."""
        found = self._exact.get(channel)
        if found is not None:
            return found
        if channel not in self._matched:
            self._matched[channel] = next(
                (rng for pattern, rng in self._patterns if pattern.match(channel)), None
            )
        matched = self._matched[channel]
        if matched is None:
            raise ReadingError(
                f"{channel!r} is not a {self.kind} channel (see firmware_specs/profiles/"
                f"{self.kind}.json)"
            )
        return matched

    def clean(self, values: Mapping[str, object]) -> tuple[dict[str, float | None], int]:
        """Check one row's values; out-of-range and non-finite numbers become ``None``.

        Returns the cleaned row and how many values were nulled. A value the cloud would reject
        would make it drop the whole message, so one bad sensor reading must not cost a batch.
        """
        if not isinstance(values, Mapping) or not values:
            raise ReadingError("a reading needs a non-empty mapping of channel -> value")
        cleaned: dict[str, float | None] = {}
        nulled = 0
        for channel, value in values.items():
            rng = self.range_of(channel)
            if value is None:
                cleaned[channel] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ReadingError(f"channel {channel!r}: {value!r} is not a number or None")
            number = float(value)
            if not math.isfinite(number) or not rng.min <= number <= rng.max:
                cleaned[channel] = None
                nulled += 1
            else:
                cleaned[channel] = value  # keep ints as ints: shorter JSON
        return cleaned, nulled


@cache
def catalog(kind: str) -> ChannelCatalog:
    """The shared catalog of ``kind`` (profiles are immutable data)."""
    return ChannelCatalog(kind)
