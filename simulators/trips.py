"""Daily driving of a vehicle fleet: commutes on weekdays, outings at weekends, errands."""

from __future__ import annotations

from typing import Final

import numpy as np

from simulators.climate import DAY_MS, HOUR_MS, local_day, weekday
from simulators.schedule import overlap_ms
from simulators.types import FloatArray, IntArray

TRIPS_PER_DAY: Final = 3
_MINUTE_MS: Final = 60_000


class TripPlanner:
    """Up to three trips per vehicle and local day, re-planned whenever a vehicle's day changes.

    Trips never cross local midnight, so a sample of at most one day sees only today's and
    yesterday's plans; yesterday's are kept for the sample that straddles midnight.
    """

    def __init__(self, offset_h: FloatArray, rng: np.random.Generator) -> None:
        n = int(offset_h.shape[0])
        self._rng = rng
        self._offset_h = offset_h
        self._offset_ms = (offset_h * HOUR_MS).astype(np.int64)
        self.commute_min: FloatArray = rng.uniform(12.0, 50.0, size=n)
        self.commute_kmh: FloatArray = rng.uniform(35.0, 95.0, size=n)
        self._leave_h = np.clip(rng.normal(7.5, 0.6, size=n), 5.5, 9.5)
        self._return_h = np.clip(rng.normal(17.2, 0.7, size=n), 15.0, 19.5)
        self._day = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        empty = np.zeros((n, 2 * TRIPS_PER_DAY), dtype=np.int64)
        self._start_ms = empty.copy()
        self._end_ms = empty.copy()
        self._kmh = np.zeros((n, 2 * TRIPS_PER_DAY))

    def km_per_day(self) -> FloatArray:
        """Rough mean distance per day, used to size wear."""
        commute_km = 2.0 * self.commute_min / 60.0 * self.commute_kmh
        km: FloatArray = commute_km * 5.0 / 7.0 + 25.0
        return km

    def _plan(self, day: IntArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Trips of each vehicle on local ``day``: start and end (UTC ms) and mean speed."""
        rng = self._rng
        n = day.shape[0]
        workday = weekday(day) < 5
        jitter = rng.normal(0.0, 0.25, size=(n, 2))
        outing_h = rng.uniform(9.0, 13.0, size=n)
        outing_min = rng.uniform(20.0, 120.0, size=n)
        back_h = outing_h + outing_min / 60.0 + rng.uniform(1.0, 4.0, size=n)
        go_h = np.where(workday, self._leave_h + jitter[:, 0], outing_h)
        return_h = np.where(workday, self._return_h + jitter[:, 1], back_h)
        trip_min = np.where(workday, self.commute_min, outing_min)
        kmh_main = np.where(workday, self.commute_kmh, rng.uniform(40.0, 100.0, size=n))
        errand_h = rng.uniform(18.5, 21.0, size=n)
        errand_min = rng.uniform(10.0, 40.0, size=n)
        start_h = np.column_stack((go_h, return_h, errand_h))
        minutes = np.column_stack((trip_min, trip_min, errand_min))
        kmh = np.column_stack((kmh_main, kmh_main, rng.uniform(30.0, 60.0, size=n)))
        taken = rng.random((n, TRIPS_PER_DAY)) < np.column_stack(
            (np.where(workday, 0.92, 0.6), np.where(workday, 0.92, 0.6), np.full(n, 0.3))
        )
        # The return leg of a weekend outing happens only if the vehicle went out.
        taken[:, 1] &= np.where(workday, True, taken[:, 0])
        local0_ms = day * DAY_MS - self._offset_ms
        start_ms = local0_ms[:, None] + (start_h * HOUR_MS).astype(np.int64)
        end_ms = start_ms + (minutes * _MINUTE_MS).astype(np.int64)
        midnight_ms = local0_ms[:, None] + DAY_MS - 1
        end_ms = np.minimum(end_ms, midnight_ms)
        start_ms = np.where(taken, start_ms, -1)
        end_ms = np.where(taken, end_ms, -1)
        return start_ms, end_ms, np.where(taken, kmh, 0.0)

    def advance(self, begin_ms: int, ts_ms: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Driving within ``(begin_ms, ts_ms]``: hours driven, km driven, speed at ``ts_ms``."""
        today = local_day(ts_ms, self._offset_h)
        new_day = today != self._day
        if new_day.any():
            start_ms, end_ms, kmh = self._plan(today)
            k = TRIPS_PER_DAY
            self._start_ms[new_day, k:] = self._start_ms[new_day, :k]
            self._end_ms[new_day, k:] = self._end_ms[new_day, :k]
            self._kmh[new_day, k:] = self._kmh[new_day, :k]
            self._start_ms[new_day, :k] = start_ms[new_day]
            self._end_ms[new_day, :k] = end_ms[new_day]
            self._kmh[new_day, :k] = kmh[new_day]
            self._day = today
        driven_h = overlap_ms(begin_ms, ts_ms, self._start_ms, self._end_ms) / HOUR_MS
        on_trip = (self._start_ms <= ts_ms) & (ts_ms < self._end_ms)
        speed_kmh = (on_trip * self._kmh).sum(axis=1)
        return driven_h.sum(axis=1), (driven_h * self._kmh).sum(axis=1), speed_kmh
