"""Sites, local time and outdoor weather shared by every fleet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from simulators.types import FloatArray, IntArray

DAY_MS: Final = 86_400_000
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True, slots=True)
class Site:
    """A place devices live: its time zone and a coarse climate.

    ``utc_offset_h`` is the standard-time offset; the daily rhythm ignores daylight saving time.
    """

    tz: str
    utc_offset_h: float
    mean_c: float
    seasonal_amp_c: float
    daily_amp_c: float
    southern: bool = False


SITES: Final = (
    Site("Europe/London", 0.0, 11.0, 6.0, 4.0),
    Site("Europe/Berlin", 1.0, 10.0, 9.0, 5.0),
    Site("Europe/Madrid", 1.0, 15.0, 8.0, 6.0),
    Site("Europe/Stockholm", 1.0, 7.0, 10.0, 4.0),
    Site("America/New_York", -5.0, 13.0, 12.0, 5.0),
    Site("America/Chicago", -6.0, 11.0, 14.0, 6.0),
    Site("America/Los_Angeles", -8.0, 18.0, 5.0, 6.0),
    Site("Australia/Sydney", 10.0, 18.0, 5.0, 4.0, southern=True),
)

_OFFSET_H: Final = np.array([s.utc_offset_h for s in SITES])
_MEAN_C: Final = np.array([s.mean_c for s in SITES])
_SEASONAL_C: Final = np.array([s.seasonal_amp_c for s in SITES])
_DAILY_C: Final = np.array([s.daily_amp_c for s in SITES])
_SEASON_SIGN: Final = np.array([-1.0 if s.southern else 1.0 for s in SITES])
_WARMEST_DOY: Final = 201.0  # around 20 July in the northern hemisphere
_WARMEST_HOUR: Final = 15.0
_WEATHER_SIGMA_C: Final = 2.5
_WEATHER_MEMORY_S: Final = 3.0 * 86_400.0


def site_offsets_h(site: IntArray) -> FloatArray:
    """UTC offsets in hours of each device's site."""
    return _OFFSET_H[site]


def site_hours(ts_ms: int) -> FloatArray:
    """Local hour of day in ``[0, 24)`` at each site of :data:`SITES`."""
    return local_hour(ts_ms, _OFFSET_H)


def local_hour(ts_ms: int, offset_h: FloatArray) -> FloatArray:
    """Local hour of day in ``[0, 24)`` for each offset."""
    hours = ts_ms / HOUR_MS + offset_h
    return np.mod(hours, 24.0)


def local_day(ts_ms: int, offset_h: FloatArray) -> IntArray:
    """Local calendar day as whole days since 1970-01-01."""
    return np.floor((ts_ms / HOUR_MS + offset_h) / 24.0).astype(np.int64)


WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # the names of weekday()


def weekday(day: IntArray) -> IntArray:
    """Monday = 0 ... Sunday = 6 for days since 1970-01-01 (a Thursday)."""
    return np.mod(day + 3, 7)


class Weather:
    """Outdoor air temperature at each device's site: season, daily cycle and a random anomaly.

    The anomaly is one AR(1) process per site (devices at one site share their weather), so a
    step costs a few operations on the handful of sites and one gather over the devices.
    """

    def __init__(self, site: IntArray, rng: np.random.Generator) -> None:
        self._site = site
        self._rng = rng
        self._anomaly_c = rng.normal(0.0, _WEATHER_SIGMA_C, size=len(SITES))

    def site_outdoor_c(self, ts_ms: int, dt_s: float) -> FloatArray:
        """Advance the weather anomaly by ``dt_s`` and return the outdoor temperature per site."""
        keep = np.exp(-dt_s / _WEATHER_MEMORY_S)
        noise = self._rng.normal(0.0, 1.0, size=len(SITES))
        self._anomaly_c = keep * self._anomaly_c + np.sqrt(1.0 - keep**2) * _WEATHER_SIGMA_C * noise
        day_of_year = np.mod(ts_ms / DAY_MS, 365.25)
        season = np.cos(2.0 * np.pi * (day_of_year - _WARMEST_DOY) / 365.25) * _SEASON_SIGN
        hour = local_hour(ts_ms, _OFFSET_H)
        daily = np.cos(2.0 * np.pi * (hour - _WARMEST_HOUR) / 24.0)
        temp_c: FloatArray = _MEAN_C + _SEASONAL_C * season + _DAILY_C * daily + self._anomaly_c
        return temp_c

    def outdoor_c(self, ts_ms: int, dt_s: float) -> FloatArray:
        """Advance the weather anomaly by ``dt_s`` and return the outdoor temperature per device."""
        by_site: FloatArray = self.site_outdoor_c(ts_ms, dt_s)[self._site]
        return by_site
