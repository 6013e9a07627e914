"""The simulated clock of one fleet: samples go forward, one interval at a time."""

from __future__ import annotations

from typing import Final

MAX_STEP_S: Final = 86_400.0


class StepClock:
    """Checks that each step covers ``(ts_ms - dt_s, ts_ms]`` after the previous step."""

    def __init__(self) -> None:
        self.last_ms: int | None = None

    def advance(self, ts_ms: int, dt_s: float) -> int:
        """Accept the next sample time and return the start of its interval in ms."""
        if not 0.0 < dt_s <= MAX_STEP_S:
            raise ValueError(f"dt_s must be within (0, {MAX_STEP_S:g}] seconds, got {dt_s}")
        if self.last_ms is not None and ts_ms <= self.last_ms:
            raise ValueError(f"ts_ms {ts_ms} is not after the previous sample {self.last_ms}")
        self.last_ms = ts_ms
        return ts_ms - round(dt_s * 1000)
