"""Fridge door openings: a Poisson process whose rate follows the local hour, and their length."""

from __future__ import annotations

from typing import Final

import numpy as np

from simulators.arrivals import Arrivals
from simulators.climate import SITES
from simulators.types import FloatArray, IntArray

# Door openings per hour by local hour: breakfast and dinner in homes, service hours in kitchens.
DOOR_RATE_PER_H: Final = np.array(
    [
        [0.1, 0.05, 0, 0, 0, 0.1, 1.5, 3.0, 2.5, 1.0, 0.8, 0.8, 1.5, 1.2, 0.8, 0.8, 1.2, 2.5, 4.0,
         3.5, 2.0, 1.2, 0.6, 0.3],
        [0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 1.0, 3.0, 5.0, 6.0, 8.0, 10.0, 14.0, 12.0, 7.0, 5.0, 6.0,
         10.0, 14.0, 14.0, 11.0, 8.0, 4.0, 1.5],
        [0.02, 0, 0, 0, 0, 0, 0.1, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.2, 0.5, 0.8,
         0.5, 0.3, 0.2, 0.1, 0.05],
    ]
)  # fmt: skip
# Mean length of one opening per variant (household, commercial, freezer).
DOOR_OPEN_MEAN_S: Final = np.array([12.0, 8.0, 10.0])


class Doors:
    """Door openings of a fridge fleet, per variant and site."""

    def __init__(self, variant: IntArray, site: IntArray, rng: np.random.Generator) -> None:
        self._rng = rng
        self._combo = variant * len(SITES) + site
        self.mean_open_s: FloatArray = DOOR_OPEN_MEAN_S[variant]
        self._arrivals = Arrivals(variant.shape[0], rng)
        self._hours = np.full(len(SITES), -1, dtype=np.int64)
        self._rate_per_s = np.zeros(variant.shape[0])

    def advance(self, site_hours: FloatArray, dt_s: float) -> tuple[IntArray, FloatArray]:
        """Fridges whose door opened during the sample, and for how many seconds in total."""
        opened, openings = self._arrivals.advance(self._rate(site_hours), dt_s)
        rng = self._rng
        # The sum of k exponential lengths: one exponential plus a gamma(k - 1) for the rest.
        open_s: FloatArray = np.asarray(rng.standard_exponential(opened.shape[0]))
        more = np.flatnonzero(openings > 1)
        if more.size:
            open_s[more] += rng.standard_gamma(openings[more] - 1.0)
        seconds: FloatArray = np.minimum(open_s * self.mean_open_s[opened], dt_s)
        return opened, seconds

    def _rate(self, site_hours: FloatArray) -> FloatArray:
        """Openings per second of each fridge at this local hour (cached per hour)."""
        key = site_hours.astype(np.int64)
        if not np.array_equal(key, self._hours):
            self._hours = key
            self._rate_per_s = (DOOR_RATE_PER_H[:, key] / 3600.0).ravel()[self._combo]
        return self._rate_per_s
