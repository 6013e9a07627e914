"""Offline generation: chunks, order and equality with stepping by hand."""

from __future__ import annotations

import numpy as np
import pytest

from simulators import MixedFleet, generate

START_MS = 1_767_225_600_000


def test_chunks_hold_a_day_of_steps_in_order() -> None:
    fleet = MixedFleet(30, START_MS, seed=6)
    chunks = list(generate(fleet, START_MS, days=2.5, dt_s=3600.0))
    assert [len(c) for c in chunks] == [72, 72, 36]  # 24 steps x 3 kinds per day
    ts = [o.ts_ms for chunk in chunks for o in chunk[::3]]
    assert ts == [START_MS + k * 3_600_000 for k in range(1, 61)]


def test_generate_equals_stepping_by_hand() -> None:
    by_hand = MixedFleet(30, START_MS, seed=7)
    expected = [by_hand.step(START_MS + k * 600_000, 600.0) for k in range(1, 13)]
    fleet = MixedFleet(30, START_MS, seed=7)
    got = [
        o
        for chunk in generate(fleet, START_MS, 12 * 600 / 86_400, 600.0, chunk_steps=5)
        for o in chunk
    ]
    flat = [o for step in expected for o in step]
    assert len(got) == len(flat) == 36
    for a, b in zip(got, flat, strict=True):
        assert a.ts_ms == b.ts_ms
        assert np.array_equal(a.values, b.values, equal_nan=True)
        assert a.events == b.events
    assert fleet.labels() == by_hand.labels()


def test_generation_is_lazy() -> None:
    fleet = MixedFleet(10, START_MS, seed=1)
    chunks = generate(fleet, START_MS, days=365, dt_s=600.0)
    first = next(chunks)
    assert len(first) == 144 * 3
    assert fleet.fridges._clock.last_ms == START_MS + 144 * 600_000


@pytest.mark.parametrize(
    ("days", "dt_s", "chunk_steps", "match"),
    [(1, 0.0, None, "dt_s"), (-1, 60.0, None, "days"), (1, 60.0, 0, "chunk_steps")],
)
def test_bad_arguments_are_rejected(
    days: float, dt_s: float, chunk_steps: int | None, match: str
) -> None:
    fleet = MixedFleet(3, START_MS, seed=1)
    with pytest.raises(ValueError, match=match):
        next(generate(fleet, START_MS, days, dt_s, chunk_steps))
