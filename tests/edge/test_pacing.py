"""Token bucket."""

from __future__ import annotations

import pytest

from edge.pacing import TokenBucket


class FakeMonotonic:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(rate_per_s=10, burst=5, monotonic_s=clock)
    assert bucket.take(20) == 5
    assert bucket.take(1) == 0
    assert bucket.seconds_until_token() == pytest.approx(0.1)
    clock.now_s += 0.35
    assert bucket.take(20) == 3
    clock.now_s += 100  # refills no further than the burst
    assert bucket.take(20) == 5


def test_bucket_takes_back_unused_tokens_up_to_the_burst() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(rate_per_s=1, burst=4, monotonic_s=clock)
    assert bucket.take(4) == 4
    bucket.give_back(3)
    assert bucket.take(10) == 3
    bucket.give_back(10)
    assert bucket.take(10) == 4


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate_per_s=0, burst=1)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(rate_per_s=1, burst=0)
