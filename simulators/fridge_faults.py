"""Planned fridge faults as per-device parameters, and what they do to a fridge at a given time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from simulators.climate import DAY_MS, HOUR_MS
from simulators.types import BoolArray, FloatArray, IntArray

FAULTS: Final = (
    "refrigerant_leak",
    "condenser_fouling",
    "compressor_failure",
    "door_gasket_leak",
    "defrost_heater_failure",
    "sensor_stuck",
    "sensor_drift",
    "power_cut",
)
DEFAULT_WEIGHTS: Final = (0.2, 0.12, 0.13, 0.12, 0.1, 0.05, 0.08, 0.2)
NO_ONSET_MS: Final = int(np.iinfo(np.int64).max // 4)  # healthy devices: a fault that never starts


@dataclass(frozen=True, slots=True)
class FaultEffects:
    """What the planned faults do at one time, per fridge (1 / 0 where there is no fault)."""

    capacity_frac: FloatArray  # cooling capacity left
    current_factor: FloatArray  # running current relative to a healthy compressor
    extra_ua_w_per_k: FloatArray  # heat leaking through a failed door gasket
    sensor_offset_k: FloatArray  # cabinet sensor reads true + offset
    dead: BoolArray  # compressor no longer runs


@dataclass(frozen=True, slots=True)
class FridgePlan:
    """Per-device fault parameters; rates are per millisecond of fault age."""

    onset_ms: IntArray
    capacity_loss_per_ms: FloatArray
    capacity_floor: FloatArray
    current_per_ms: FloatArray
    current_low: FloatArray
    current_high: FloatArray
    stop_ms: IntArray  # compressor stops for good (-1: never)
    gasket_ua_per_ms: FloatArray
    gasket_ua_max: FloatArray
    heater_dead: BoolArray
    drift_k_per_ms: FloatArray
    stuck: BoolArray
    cut_start_ms: IntArray  # mains off from here (-1: no cut)
    cut_end_ms: IntArray

    def subset(self, devices: IntArray) -> FridgePlan:
        """The plan of ``devices`` only, in their order."""
        return FridgePlan(
            **{name: getattr(self, name)[devices] for name in FridgePlan.__dataclass_fields__}
        )

    def effects(self, ts_ms: int) -> FaultEffects:
        """Capacity, current, gasket leak, sensor offset and compressor state at ``ts_ms``."""
        age_ms = np.maximum(ts_ms - self.onset_ms, 0).astype(np.float64)
        capacity = np.maximum(1.0 - self.capacity_loss_per_ms * age_ms, self.capacity_floor)
        current = np.clip(1.0 + self.current_per_ms * age_ms, self.current_low, self.current_high)
        dead = (self.stop_ms >= 0) & (ts_ms >= self.stop_ms)
        extra_ua = np.minimum(self.gasket_ua_per_ms * age_ms, self.gasket_ua_max)
        return FaultEffects(capacity, current, extra_ua, self.drift_k_per_ms * age_ms, dead)


def plan_faults(
    fault: IntArray,
    start_ms: int,
    horizon_ms: int,
    ua_w_per_k: FloatArray,
    rng: np.random.Generator,
) -> FridgePlan:
    """Onsets and parameters of each device's planned fault (``fault`` indexes :data:`FAULTS`).

    Onsets fall between one day into the run and 60 % of its horizon, so slow faults have time
    to develop and fail inside it.
    """
    n = fault.shape[0]

    def has(name: str) -> BoolArray:
        mask: BoolArray = fault == FAULTS.index(name)
        return mask

    latest = max(2 * DAY_MS, int(0.6 * horizon_ms))
    planned = np.asarray(rng.integers(DAY_MS, latest, size=n, endpoint=True), dtype=np.int64)
    planned += start_ms
    onset: IntArray = np.where(fault >= 0, planned, NO_ONSET_MS).astype(np.int64)
    zero = np.zeros(n)
    leak, fouling = has("refrigerant_leak"), has("condenser_fouling")
    wear = has("compressor_failure")
    gasket, heater = has("door_gasket_leak"), has("defrost_heater_failure")
    # Refrigerant leak: capacity falls with the charge to nothing after 4–24 days; a short
    # charge moves less refrigerant, so the motor draws up to a quarter less.
    leak_ms = rng.uniform(4.0, 24.0, size=n) * DAY_MS
    # Condenser fouling: up to 70 % of the capacity lost over 6–18 days, 40 % more current.
    fouling_ms = rng.uniform(6.0, 18.0, size=n) * DAY_MS
    # Defrost heater failure: ice builds on the evaporator; airflow, and so capacity, falls to
    # a tenth over 3–12 days.
    ice_ms = rng.uniform(3.0, 12.0, size=n) * DAY_MS
    capacity_loss = np.where(leak, 1.0 / leak_ms, zero)
    capacity_loss = np.where(fouling, 0.7 / fouling_ms, capacity_loss)
    capacity_loss = np.where(heater, 0.9 / ice_ms, capacity_loss)
    floor = np.where(fouling, 0.3, np.where(heater, 0.1, 0.0))
    # Compressor wear: running current creeps up by 30 % over 2–6 days, then the motor stops.
    wear_ms: IntArray = np.asarray(rng.uniform(2.0, 6.0, size=n) * DAY_MS).astype(np.int64)
    current_rate = np.where(leak, -0.25 / leak_ms, zero)
    current_rate = np.where(fouling, 0.4 / fouling_ms, current_rate)
    current_rate = np.where(wear, 0.3 / wear_ms, current_rate)
    # Door gasket: infiltration grows to 1.5–5 times the cabinet's own heat leak in 4–16 days.
    gasket_max = rng.uniform(1.5, 5.0, size=n) * ua_w_per_k
    gasket_ms = rng.uniform(4.0, 16.0, size=n) * DAY_MS
    # Drifting sensor: reads low by 0.3–1.5 K more each day, so the thermostat lets the cabinet
    # warm while the reading looks right.
    drift_per_ms = -rng.uniform(0.3, 1.5, size=n) / DAY_MS
    cut_h = np.clip(rng.lognormal(np.log(3.0), 0.8, size=n), 0.5, 14.0)
    cut = has("power_cut")
    return FridgePlan(
        onset_ms=onset,
        capacity_loss_per_ms=capacity_loss,
        capacity_floor=floor,
        current_per_ms=current_rate,
        current_low=np.where(leak, 0.75, 1.0),
        current_high=np.where(fouling, 1.4, np.where(wear, 1.3, 1.0)),
        stop_ms=np.where(wear, onset + wear_ms, -1),
        gasket_ua_per_ms=np.where(gasket, gasket_max / gasket_ms, zero),
        gasket_ua_max=np.where(gasket, gasket_max, zero),
        heater_dead=heater,
        drift_k_per_ms=np.where(has("sensor_drift"), drift_per_ms, zero),
        stuck=has("sensor_stuck"),
        cut_start_ms=np.where(cut, onset, -1),
        cut_end_ms=np.where(cut, onset + (cut_h * HOUR_MS).astype(np.int64), -1),
    )
