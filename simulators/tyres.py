"""A fleet of vehicles with four pressure-sensing tyres: trips, tyre heat, gas law, leaks, wear."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from firmware_specs import load_profile
from simulators.climate import DAY_MS, HOUR_MS, SITES, Weather, local_day, site_offsets_h
from simulators.clock import StepClock
from simulators.ids import device_ids
from simulators.labels import FaultBook, assign_faults, fault_weights
from simulators.ranges import channel_bounds, clip_to
from simulators.trips import TripPlanner
from simulators.types import BoolArray, DeviceSpec, FaultLabel, FloatArray, StepOutput

KIND: Final = "tyres"
MODEL: Final = "TPMS-4 Gen2"
POSITIONS: Final = ("fl", "fr", "rl", "rr")
PER_TYRE: Final = ("pressure_kpa", "temp_c", "tread_mm", "battery_v")
CHANNELS: Final = (
    "speed_kmh",
    "odometer_km",
    "ambient_c",
    *(f"{pos}.{name}" for pos in POSITIONS for name in PER_TYRE),
)
FAULTS: Final = ("slow_leak", "valve_leak", "puncture", "tread_wear", "tpms_battery")
DEFAULT_WEIGHTS: Final = (0.3, 0.15, 0.15, 0.25, 0.15)
VEHICLES: Final = (
    "Volkswagen Golf",
    "Toyota Corolla",
    "Ford Focus",
    "Renault Clio",
    "Skoda Octavia",
    "Tesla Model 3",
    "Ford Transit",
    "Honda Civic",
    "Volvo XC60",
    "Hyundai i30",
)

ATMOSPHERE_KPA: Final = 101.325
KELVIN: Final = 273.15
REFERENCE_K: Final = KELVIN + 20.0  # "cold" means at 20 °C
LOW_PRESSURE_SHARE: Final = 0.75  # 25 % under placard
LEGAL_TREAD_MM: Final = 1.6
_PROFILE: Final = load_profile(KIND)
LOW_BATTERY_V: Final = float(_PROFILE["failures"]["sensor_battery"]["low_v"])
DEAD_BATTERY_V: Final = 2.4  # the sensor stops transmitting below this
_VALVE_DRIVING_GAIN: Final = 4.0  # a loose valve core leaks this much faster while driving
_PLACARDS_KPA: Final = np.array([220, 230, 240, 250, 260])
_PLACARD_SHARE: Final = np.array([0.1, 0.2, 0.4, 0.2, 0.1])
_MONTH_MS: Final = 30 * DAY_MS
_HEAT_K_PER_KMH: Final = 0.22
_WARM_UP_S: Final = 12 * 60.0
_COOL_DOWN_S: Final = 35 * 60.0
_NORMAL_WEAR_MM_PER_KM: Final = 8.0 / 50_000.0


class TyreFleet:
    """``n`` vehicles, each with four tyres whose air follows the ideal gas law.

    Each tyre holds a fixed amount of air, expressed as its cold-equivalent gauge pressure
    ``ref_kpa`` (gauge pressure the tyre would show at 20 °C). The reported gauge pressure is
    ``(ref_kpa + p_atm) · T / 293.15 − p_atm`` with ``T`` the tyre's air temperature in kelvin,
    which rises while driving (more for soft tyres and brisk drivers) and falls to ambient when
    parked. Air escapes in proportion to the cold-equivalent gauge pressure: natural diffusion
    loses 1–2 % a month. Tread wears with distance, faster for brisk drivers (``style``). Sensor
    cells lose 0.05–0.15 V a year.

    Planned faults (``fault_weights`` sets their mix): ``slow_leak`` (a nail: a constant extra
    rate that brings the tyre 25 % under placard 3–20 days after its onset), ``valve_leak``
    (6–20 days when parked, up to five times faster while driving), ``puncture`` (within 3–20
    minutes), ``tread_wear`` (2.0–3.5 mm tread that a misaligned axle wears towards 1.6 mm; onset
    = start of the run) and ``tpms_battery`` (one sensor's cell drops below the profile's low
    voltage in 5–30 days; below 2.4 V the sensor stops sending). Failure: a tyre 25 % under
    placard, tread below 1.6 mm, or (for ``tpms_battery``) the cell below its low voltage.
    """

    kind: str = KIND

    def __init__(
        self,
        n: int,
        start_ms: int,
        rng: np.random.Generator,
        fault_share: float,
        horizon_ms: int,
        id_prefix: str = "ty",
        *,
        fault_weights: Mapping[str, float] | None = None,
    ) -> None:
        weights = fault_weights_of(fault_weights)
        self._rng = rng
        self._clock = StepClock()
        ids = device_ids(id_prefix, n)
        site = rng.integers(0, len(SITES), size=n)
        self._offset_h = site_offsets_h(site)
        self._weather = Weather(site, rng)
        self._trips = TripPlanner(self._offset_h, rng)
        self.placard_kpa = rng.choice(_PLACARDS_KPA, size=n, p=_PLACARD_SHARE).astype(np.float64)
        vehicle = rng.integers(0, len(VEHICLES), size=n)
        self.devices = tuple(
            DeviceSpec(
                ids[i],
                KIND,
                MODEL,
                {"placard_kpa": int(self.placard_kpa[i]), "vehicle": VEHICLES[vehicle[i]]},
                SITES[site[i]].tz,
            )
            for i in range(n)
        )
        fill = np.clip(rng.normal(0.995, 0.02, size=(n, 4)), 0.93, 1.05)
        self.ref_kpa = self.placard_kpa[:, None] * fill
        monthly_loss = rng.uniform(0.01, 0.02, size=n)
        self.diffusion_per_ms = -np.log1p(-monthly_loss) / _MONTH_MS
        self.odometer_km = rng.uniform(5_000.0, 150_000.0, size=n)
        self.temp_c = np.zeros((n, 4))  # set from ambient at the first step
        self._started = False
        self.battery_v = rng.uniform(2.85, 3.1, size=(n, 4))
        # Lithium cells lose 0.05–0.15 V a year; a failing one (tpms_battery) far faster.
        self.battery_v_per_ms = -rng.uniform(0.05, 0.15, size=(n, 4)) / (365 * DAY_MS)
        self.tread_mm = rng.uniform(4.0, 8.0, size=n)[:, None] * rng.uniform(0.95, 1.0, size=(n, 4))
        # Driving style: brisk drivers wear tread faster and heat their tyres more.
        self.style = np.clip(rng.lognormal(0.0, 0.25, size=n), 0.6, 2.0)
        self.wear_mm_per_km = (
            _NORMAL_WEAR_MM_PER_KM * rng.uniform(0.8, 1.2, size=(n, 4)) * self.style[:, None]
        )
        self._plan_faults(n, start_ms, rng, fault_share, horizon_ms, ids, weights)
        self._low, self._high = channel_bounds(KIND, CHANNELS)

    def _plan_faults(
        self,
        n: int,
        start_ms: int,
        rng: np.random.Generator,
        fault_share: float,
        horizon_ms: int,
        ids: tuple[str, ...],
        weights: tuple[float, ...],
    ) -> None:
        fault = assign_faults(n, fault_share, weights, rng)
        slow = fault == FAULTS.index("slow_leak")
        valve = fault == FAULTS.index("valve_leak")
        flat = fault == FAULTS.index("puncture")
        worn = fault == FAULTS.index("tread_wear")
        battery = fault == FAULTS.index("tpms_battery")
        latest = max(2 * DAY_MS, int(0.6 * horizon_ms))
        onset = start_ms + rng.integers(HOUR_MS, latest, size=n, endpoint=True)
        onset = np.where(worn, start_ms, onset)
        self.tyre = rng.integers(0, 4, size=n)
        leaks = slow | valve | flat
        self.fault_tyre = np.where(leaks | battery, self.tyre, -1)
        # Leak rate on top of diffusion that reaches 75 % of placard after the chosen time
        # (for a valve leak: when parked; driving makes it faster).
        to_fail_ms = np.where(
            flat,
            rng.uniform(3.0, 20.0, size=n) * 60_000,
            rng.uniform(np.where(valve, 6.0, 3.0), 20.0) * DAY_MS,
        )
        ref0 = self.ref_kpa[np.arange(n), self.tyre]
        total_per_ms = np.log(ref0 / (LOW_PRESSURE_SHARE * self.placard_kpa)) / to_fail_ms
        self.leak_per_ms = np.where(leaks, total_per_ms - self.diffusion_per_ms, 0.0)
        self._valve = valve
        # A failing sensor cell drops from its voltage to below the low-battery level in
        # 5–30 days, then the sensor falls silent at DEAD_BATTERY_V.
        cell = self.battery_v[np.arange(n), self.tyre]
        to_low_ms = rng.uniform(5.0, 30.0, size=n) * DAY_MS
        self.battery_fault_v_per_ms = np.where(battery, -(cell - LOW_BATTERY_V) / to_low_ms, 0.0)
        # Worn tyres: a misaligned axle eats 0.2–0.6 mm per 1000 km from a low start.
        fast_wear = rng.uniform(0.2e-3, 0.6e-3, size=n)
        to_legal_km = rng.uniform(5.0, 50.0, size=n) * self._trips.km_per_day()
        tread0 = np.clip(LEGAL_TREAD_MM + fast_wear * to_legal_km, 2.0, 3.5)
        spread = rng.uniform(0.9, 1.1, size=(n, 4))
        self.tread_mm = np.where(worn[:, None], tread0[:, None] * spread, self.tread_mm)
        self.wear_mm_per_km = np.where(worn[:, None], fast_wear[:, None], self.wear_mm_per_km)
        component = [POSITIONS[t] if t >= 0 else None for t in self.fault_tyre]
        self._battery_fault = battery
        self.book = FaultBook(KIND, ids, FAULTS, fault, onset, component)

    def labels(self) -> list[FaultLabel]:
        return self.book.labels()

    def gauge_kpa(self) -> FloatArray:
        """Gauge pressure of each tyre at its current air temperature (gas law)."""
        hot_abs = (self.ref_kpa + ATMOSPHERE_KPA) * (self.temp_c + KELVIN) / REFERENCE_K
        gauge: FloatArray = hot_abs - ATMOSPHERE_KPA
        return gauge

    def _leak(self, begin_ms: int, ts_ms: int, driving: FloatArray) -> None:
        dt_ms = ts_ms - begin_ms
        leaking_ms = np.clip(ts_ms - self.book.onset_ms, 0, dt_ms).astype(np.float64)
        n = self.ref_kpa.shape[0]
        fault_rate = np.zeros((n, 4))
        gain = np.where(self._valve, 1.0 + _VALVE_DRIVING_GAIN * driving, 1.0)
        rows = np.flatnonzero(self.leak_per_ms > 0)
        fault_rate[rows, self.fault_tyre[rows]] = (self.leak_per_ms * leaking_ms * gain)[rows]
        self.ref_kpa = self.ref_kpa * np.exp(-(self.diffusion_per_ms * dt_ms)[:, None] - fault_rate)

    def step(self, ts_ms: int, dt_s: float) -> StepOutput:
        rng = self._rng
        n = self.ref_kpa.shape[0]
        begin_ms = self._clock.advance(ts_ms, dt_s)
        outdoor_c = self._weather.outdoor_c(ts_ms, dt_s)
        if not self._started:
            self.temp_c = np.repeat(outdoor_c[:, None], 4, axis=1)
            self._started = True
        driven_h, driven_km, speed_kmh = self._trips.advance(begin_ms, ts_ms)
        self.odometer_km = self.odometer_km + driven_km
        self.tread_mm = np.maximum(self.tread_mm - self.wear_mm_per_km * driven_km[:, None], 0.0)
        driving_share = np.clip(driven_h * 3600.0 / dt_s, 0.0, 1.0)
        self._leak(begin_ms, ts_ms, driving_share)
        self._drain_batteries(begin_ms, ts_ms)

        # Tyre air relaxes towards ambient plus driving heat; soft tyres flex and run hotter.
        driving = driving_share[:, None]
        mean_kmh = np.where(driven_h > 0, driven_km / np.maximum(driven_h, 1e-9), 0.0)[:, None]
        softness = np.clip(self.placard_kpa[:, None] / np.maximum(self.ref_kpa, 30.0), 1.0, 2.0)
        heat_k = _HEAT_K_PER_KMH * mean_kmh * softness**1.5 * np.sqrt(self.style)[:, None]
        target_c = outdoor_c[:, None] + driving * heat_k
        tau_s = driving * _WARM_UP_S + (1.0 - driving) * _COOL_DOWN_S
        self.temp_c = target_c + (self.temp_c - target_c) * np.exp(-dt_s / tau_s)

        pressure_kpa = np.maximum(self.gauge_kpa() + rng.normal(0.0, 0.3, size=(n, 4)), 0.0)
        tread = np.where(
            self._first_sample_of_day(begin_ms, ts_ms)[:, None],
            np.round(self.tread_mm + rng.normal(0.0, 0.03, size=(n, 4)), 2),
            np.nan,
        )
        battery_v = np.round(self.battery_v + 0.003 * (self.temp_c - 20.0), 3)
        per_tyre = np.stack(
            (pressure_kpa, self.temp_c + rng.normal(0.0, 0.1, size=(n, 4)), tread, battery_v),
            axis=2,
        )
        # A sensor with a dead cell sends nothing at all.
        per_tyre[self.battery_v < DEAD_BATTERY_V] = np.nan
        values = np.concatenate(
            (
                np.column_stack(
                    (
                        np.round(speed_kmh * rng.uniform(0.7, 1.2, size=n), 1),
                        np.round(self.odometer_km, 1),
                        outdoor_c
                        + np.where(speed_kmh > 0, 1.0, 0.0)
                        + rng.normal(0.0, 0.2, size=n),
                    )
                ),
                per_tyre.reshape(n, -1),
            ),
            axis=1,
        )
        clip_to(values, self._low, self._high)
        self.book.now_ms = ts_ms
        events = self._track_failures(ts_ms)
        return StepOutput(KIND, ts_ms, CHANNELS, values, tuple(events))

    def _drain_batteries(self, begin_ms: int, ts_ms: int) -> None:
        dt_ms = float(ts_ms - begin_ms)
        self.battery_v = self.battery_v + self.battery_v_per_ms * dt_ms
        failing_ms = np.clip(ts_ms - self.book.onset_ms, 0, dt_ms).astype(np.float64)
        rows = np.flatnonzero(self._battery_fault)
        cells = self.fault_tyre[rows]
        drop = self.battery_fault_v_per_ms[rows] * failing_ms[rows]
        self.battery_v[rows, cells] = np.maximum(self.battery_v[rows, cells] + drop, 1.5)

    def _first_sample_of_day(self, begin_ms: int, ts_ms: int) -> BoolArray:
        first: BoolArray = local_day(ts_ms, self._offset_h) != local_day(begin_ms, self._offset_h)
        return first

    def _track_failures(self, ts_ms: int) -> list[tuple[int, dict[str, object]]]:
        low: BoolArray = self.ref_kpa < LOW_PRESSURE_SHARE * self.placard_kpa[:, None]
        bald: BoolArray = self.tread_mm < LEGAL_TREAD_MM
        any_low: BoolArray = np.count_nonzero(low, axis=1) > 0
        any_bald: BoolArray = np.count_nonzero(bald, axis=1) > 0
        flat_cell = self._battery_fault & (self.battery_v.min(axis=1) < LOW_BATTERY_V)
        newly = self.book.mark_failed(any_low | any_bald | flat_cell, ts_ms)
        events: list[tuple[int, dict[str, object]]] = []
        for i in np.flatnonzero(newly & any_low):
            pos = POSITIONS[int(np.argmax(low[i]))]
            detail = f"{pos} pressure more than 25 % under placard"
            alarm = {"ts_ms": ts_ms, "type": "fault", "code": "P01", "severity": "critical"}
            events.append((int(i), {**alarm, "detail": detail}))
        return events


def fault_weights_of(weights: Mapping[str, float] | None) -> tuple[float, ...]:
    return fault_weights(FAULTS, weights, DEFAULT_WEIGHTS)
