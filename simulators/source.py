"""One simulated device as a live sensor source for a real edge agent (``sim:SEED``)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

import numpy as np

from simulators.fridge import FridgeFleet
from simulators.types import Fleet
from simulators.tyres import TyreFleet
from simulators.vending import VendingFleet

DAY_MS: Final = 86_400_000
_FLEETS: Final[dict[str, Callable[..., Fleet]]] = {
    "fridge": FridgeFleet,
    "vending": VendingFleet,
    "tyres": TyreFleet,
}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SimulatedDeviceSource:
    """A one-device fleet of ``kind`` whose samples come due as a live sensor's would.

    The simulation starts ``history_days`` before the first read and runs ``speed`` times faster
    than the clock until it has caught up with the present, then at the clock's pace, so
    timestamps never run ahead of the clock that reads them. ``fault_share=1`` gives the device a
    fault in its planning horizon (useful to see a ticket).
    """

    def __init__(
        self,
        kind: str,
        seed: int,
        *,
        sample_interval_s: int = 300,
        speed: float = 1.0,
        history_days: float = 7.0,
        fault_share: float = 0.0,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        if kind not in _FLEETS:
            raise ValueError(f"unknown product kind {kind!r}; known: {', '.join(_FLEETS)}")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed}")
        if not 1 <= sample_interval_s <= 86_400:
            raise ValueError(f"sample_interval_s must be 1..86400, got {sample_interval_s}")
        self._clock = clock_ms
        self._step_ms = sample_interval_s * 1000
        now = clock_ms()
        self._sim_start_ms = (now - int(history_days * DAY_MS)) // self._step_ms * self._step_ms
        self._wall_start_ms: int | None = None
        self.speed = speed
        horizon_ms = int(max(history_days, 1.0) * 2 * DAY_MS)
        self._fleet = _FLEETS[kind](
            1, self._sim_start_ms, np.random.default_rng(seed), fault_share, horizon_ms
        )
        self._next_ts_ms = self._sim_start_ms + self._step_ms
        first = self._fleet.step(self._next_ts_ms, float(sample_interval_s))
        self._pending = first
        self.channels: tuple[str, ...] = first.channels

    @property
    def sample_interval_s(self) -> float:
        return self._step_ms / 1000

    @property
    def model(self) -> str:
        return self._fleet.devices[0].model

    @property
    def attributes(self) -> dict[str, object]:
        return dict(self._fleet.devices[0].attributes)

    @property
    def exhausted(self) -> bool:
        return False

    def _sim_now_ms(self, now_ms: int) -> int:
        if self._wall_start_ms is None:
            self._wall_start_ms = now_ms
        fast = self._sim_start_ms + int((now_ms - self._wall_start_ms) * self.speed)
        return min(fast, now_ms)

    def next_due_ms(self) -> int | None:
        now = self._clock()
        sim_now = self._sim_now_ms(now)
        if self._next_ts_ms <= sim_now:
            return now
        if sim_now >= now:  # caught up: real time
            return self._next_ts_ms
        return now + math.ceil((self._next_ts_ms - sim_now) / self.speed)

    def read(self, now_ms: int) -> list[tuple[int, dict[str, float | None]]]:
        sim_now = self._sim_now_ms(now_ms)
        rows: list[tuple[int, dict[str, float | None]]] = []
        while self._next_ts_ms <= sim_now:
            out = self._pending
            row = out.values[0].tolist()
            values = {c: v for c, v in zip(out.channels, row, strict=True) if v == v}
            rows.append((out.ts_ms, dict(values)))
            self._next_ts_ms += self._step_ms
            self._pending = self._fleet.step(self._next_ts_ms, self._step_ms / 1000)
        return rows
