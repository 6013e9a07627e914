"""Per-device rate limiting at ingest: one flooding device cannot crowd out the fleet.

Each device has a token bucket of ``burst`` messages that refills at ``rate_per_s``, measured on
the messages' receive time. A message over the limit is dropped and counted against its device;
the first one of each flood (and one a minute while it lasts) is kept as a dead letter with the
reason ``throttled``, so that the evidence is there without a flood filling the database. The
defaults sit well above what an agent sends, including its replay after an outage (50 messages
a second by default), so only a misbehaving or cloned device is ever throttled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cloud.messages import RawMessage
from cloud.wire import topic_identity

DEFAULT_RATE_PER_S: Final = 100.0
DEFAULT_BURST: Final = 1000
SAMPLE_EVERY_MS: Final = 60_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    last_ms: int
    throttled: int = 0
    sampled_ms: int = -(2**62)


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: list[RawMessage]
    throttled: dict[str, int]  # device id → messages dropped in this group
    samples: list[RawMessage]  # throttled messages to keep as dead letters


class DeviceThrottle:
    """Token buckets per device id; used under the pipeline's lock (not thread-safe itself)."""

    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate_per_ms = rate_per_s / 1000.0
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    def admit(self, messages: Sequence[RawMessage]) -> Admission:
        """Split a group into what may be processed and what exceeds its device's rate.

        Messages whose topic names no device are admitted: the decoder rejects them anyway.
        """
        admitted: list[RawMessage] = []
        throttled: dict[str, int] = {}
        samples: list[RawMessage] = []
        buckets, rate_per_ms, burst = self._buckets, self.rate_per_ms, self.burst
        for message in messages:
            device_id = topic_identity(message.topic)[0]
            if device_id is None:
                admitted.append(message)
                continue
            now_ms = message.received_ms
            bucket = buckets.get(device_id)
            if bucket is None:
                bucket = buckets[device_id] = _Bucket(burst, now_ms)
            elif now_ms > bucket.last_ms:  # refill; a message from the past refills nothing
                tokens = bucket.tokens + (now_ms - bucket.last_ms) * rate_per_ms
                bucket.tokens = tokens if tokens < burst else burst
                bucket.last_ms = now_ms
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                admitted.append(message)
                continue
            bucket.throttled += 1
            throttled[device_id] = throttled.get(device_id, 0) + 1
            if now_ms - bucket.sampled_ms >= SAMPLE_EVERY_MS:
                bucket.sampled_ms = now_ms
                samples.append(message)
        return Admission(admitted, throttled, samples)

    def throttled(self, device_id: str) -> int:
        """Messages of ``device_id`` dropped since start."""
        bucket = self._buckets.get(device_id)
        return bucket.throttled if bucket is not None else 0
