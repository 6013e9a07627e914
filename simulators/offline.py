"""Run a fleet over simulated days without a broker, a chunk of steps at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from simulators.types import Fleet, StepOutput


class Steppable(Protocol):
    """Anything that advances to ``ts_ms`` and reports one output per product kind."""

    def step(self, ts_ms: int, dt_s: float) -> list[StepOutput]: ...


def generate(
    fleet: Steppable,
    start_ms: int,
    days: float,
    dt_s: float,
    chunk_steps: int | None = None,
) -> Iterator[list[StepOutput]]:
    """Step ``fleet`` from ``start_ms`` over ``days``, yielding ``chunk_steps`` steps at a time.

    Samples are at ``start_ms + k·dt_s`` for ``k = 1 .. round(days·86400 / dt_s)``. Each yielded
    list holds the outputs of consecutive steps in time order (per step, one output per kind);
    only one chunk is held at a time. ``chunk_steps`` defaults to one simulated day.
    """
    if dt_s <= 0:
        raise ValueError(f"dt_s must be positive, got {dt_s}")
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    per_chunk = chunk_steps if chunk_steps is not None else max(1, round(86_400 / dt_s))
    if per_chunk < 1:
        raise ValueError(f"chunk_steps must be >= 1, got {chunk_steps}")
    n_steps = round(days * 86_400 / dt_s)
    chunk: list[StepOutput] = []
    for k in range(1, n_steps + 1):
        chunk.extend(fleet.step(start_ms + round(k * dt_s * 1000), dt_s))
        if k % per_chunk == 0:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class OneKind:
    """One fleet of a single kind, stepped like a mixed fleet (a list with its one output)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def step(self, ts_ms: int, dt_s: float) -> list[StepOutput]:
        return [self.fleet.step(ts_ms, dt_s)]
