"""A fleet of household, commercial and freezer fridges as a lumped thermal model per sample."""

from __future__ import annotations

from typing import Final

import numpy as np

from firmware_specs import load_profile
from simulators.climate import DAY_MS, HOUR_MS, SITES, Weather, local_hour, site_offsets_h
from simulators.clock import StepClock
from simulators.cooling import cool
from simulators.ids import device_ids
from simulators.labels import FaultBook, assign_faults
from simulators.ranges import channel_bounds, clip_to
from simulators.schedule import overlap_ms, periodic_on_ms
from simulators.types import DeviceSpec, FaultLabel, FloatArray, StepOutput

KIND: Final = "fridge"
CHANNELS: Final = (
    "cabinet_c",
    "evap_c",
    "ambient_c",
    "compressor_on",
    "compressor_a",
    "door_open_s",
    "defrost_on",
    "mains_ok",
)
VARIANTS: Final = ("household", "commercial", "freezer")
MODELS: Final = ("CoolHome 300", "ProChill 700", "DeepFrost 250")
FAULTS: Final = ("refrigerant_leak", "condenser_fouling", "compressor_failure", "power_cut")

# Per variant (household, commercial, freezer); lumped parameters of cabinet plus contents.
_SHARE: Final = np.array([0.6, 0.25, 0.15])
_UA_W_PER_K: Final = np.array([0.9, 3.0, 0.7])
_HEAT_CAPACITY_J_PER_K: Final = np.array([120e3, 350e3, 130e3])
_CAPACITY_W: Final = np.array([70.0, 280.0, 80.0])  # at 25 °C ambient
_RUN_CURRENT_A: Final = np.array([0.9, 3.5, 1.1])
_EVAP_DELTA_K: Final = np.array([14.0, 10.0, 12.0])
_DOOR_HEAT_W: Final = np.array([500.0, 1500.0, 400.0])  # while the door stands open
_DOOR_OPEN_MEAN_S: Final = np.array([12.0, 8.0, 10.0])
_DOOR_BUMP_MAX_K: Final = np.array([0.3, 0.8, 1.0])
_BAND_K: Final = np.array([0.5, 0.8, 1.0])  # thermostat half band
_DEFROST_PERIOD_H: Final = np.array([8.0, 6.0, 8.0])
_DEFROST_HEATER_W: Final = np.array([150.0, 400.0, 250.0])
_DEFROST_TO_CABINET: Final = 0.15  # most heater energy melts ice; the rest warms the cabinet
_KITCHEN_EXTRA_C: Final = np.array([0.0, 3.0, -1.0])
_CAPACITY_PER_K: Final = 0.012  # capacity lost per kelvin of ambient above 25 °C
_CURRENT_PER_K: Final = 0.01
_SENSOR_NOISE_C: Final = 0.05

# Door openings per hour by local hour: breakfast and dinner in homes, service hours in kitchens.
_DOOR_RATE_PER_H: Final = np.array(
    [
        [0.1, 0.05, 0, 0, 0, 0.1, 1.5, 3.0, 2.5, 1.0, 0.8, 0.8, 1.5, 1.2, 0.8, 0.8, 1.2, 2.5, 4.0,
         3.5, 2.0, 1.2, 0.6, 0.3],
        [0.5, 0.2, 0.1, 0.1, 0.1, 0.2, 1.0, 3.0, 5.0, 6.0, 8.0, 10.0, 14.0, 12.0, 7.0, 5.0, 6.0,
         10.0, 14.0, 14.0, 11.0, 8.0, 4.0, 1.5],
        [0.02, 0, 0, 0, 0, 0, 0.1, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.2, 0.1, 0.1, 0.2, 0.5, 0.8,
         0.5, 0.3, 0.2, 0.1, 0.05],
    ]
)  # fmt: skip


class FridgeFleet:
    """``n`` fridges, each a cabinet whose compressor duty follows its heat load.

    Per sample the heat load is ``UA·(ambient − cabinet)`` plus door openings and the part of the
    defrost heat that reaches the cabinet. The compressor removes up to its capacity during the
    time it may run (mains present, not defrosting). ``compressor_on`` is the fraction of the
    sample the controller switched the compressor on; ``compressor_a`` the mean current while
    switched on (0 when it never was, and 0 from a compressor that no longer runs). While the
    duty is below saturation the thermostat holds the cabinet within its band around the
    setpoint; once the duty saturates the cabinet warms with its thermal mass.

    Planned faults: ``refrigerant_leak`` (capacity falls with the charge, to nothing in 4–24
    days),
    ``condenser_fouling`` (slower capacity loss, higher current), ``compressor_failure`` (running
    current creeps up for 2–6 days from the onset, then the compressor stops while mains stay on)
    and ``power_cut`` (mains off for 0.5–14 h; a failure only if the cabinet got too warm for too
    long). A fault fails when the reported cabinet temperature stays above the variant's limit
    for its limit minutes; ``failure_ms`` is the sample at which that duration is reached.
    """

    kind: str = KIND

    def __init__(
        self,
        n: int,
        start_ms: int,
        rng: np.random.Generator,
        fault_share: float,
        horizon_ms: int,
        id_prefix: str = "fr",
    ) -> None:
        self._rng = rng
        self._clock = StepClock()
        ids = device_ids(id_prefix, n)
        variant = rng.choice(3, size=n, p=_SHARE)
        self.variant = variant
        site = rng.integers(0, len(SITES), size=n)
        self._offset_h = site_offsets_h(site)
        self._weather = Weather(site, rng)
        limits = load_profile(KIND)["variants"]
        self.setpoint_c = np.array([float(limits[VARIANTS[v]]["setpoint_c"]) for v in variant])
        self.limit_c = np.array([float(limits[VARIANTS[v]]["limit_c"]) for v in variant])
        self.limit_ms = np.array(
            [int(limits[VARIANTS[v]]["limit_minutes"]) * 60_000 for v in variant], dtype=np.int64
        )
        spread = rng.lognormal(0.0, 0.12, size=(4, n))
        self._ua = _UA_W_PER_K[variant] * spread[0]
        self._heat_capacity = _HEAT_CAPACITY_J_PER_K[variant] * spread[1]
        self._capacity_w = _CAPACITY_W[variant] * spread[2]
        self._run_current_a = _RUN_CURRENT_A[variant] * spread[3]
        self._room_offset_c = rng.normal(0.0, 1.0, size=n) + _KITCHEN_EXTRA_C[variant]
        period_ms = (_DEFROST_PERIOD_H[variant] * HOUR_MS).astype(np.int64)
        self._defrost_period_ms = period_ms
        self._defrost_phase_ms = (rng.random(n) * period_ms).astype(np.int64)
        self._defrost_on_ms = rng.integers(20 * 60_000, 30 * 60_000, size=n)
        self.devices = tuple(
            DeviceSpec(
                device_id=ids[i],
                kind=KIND,
                model=MODELS[variant[i]],
                attributes={
                    "variant": VARIANTS[variant[i]],
                    "setpoint_c": float(self.setpoint_c[i]),
                },
                tz=SITES[site[i]].tz,
            )
            for i in range(n)
        )
        self._plan_faults(n, start_ms, rng, fault_share, horizon_ms, ids)
        self.cabinet_c = self.setpoint_c.copy()
        self._above_since_ms = np.full(n, -1, dtype=np.int64)
        self._alarmed = np.zeros(n, dtype=np.bool_)
        self._low, self._high = channel_bounds(KIND, CHANNELS)

    def _plan_faults(
        self,
        n: int,
        start_ms: int,
        rng: np.random.Generator,
        fault_share: float,
        horizon_ms: int,
        ids: tuple[str, ...],
    ) -> None:
        fault = assign_faults(n, fault_share, (0.35, 0.2, 0.2, 0.25), rng)
        latest = max(2 * DAY_MS, int(0.6 * horizon_ms))
        onset = start_ms + rng.integers(DAY_MS, latest, size=n, endpoint=True)
        self.book = FaultBook(KIND, ids, FAULTS, fault, onset)
        # Refrigerant leak: capacity falls with the charge, to nothing after 4–24 days; the
        # compressor saturates at about three quarters of that.
        self._leak_scale_ms = rng.uniform(4.0, 24.0, size=n) * DAY_MS
        self._fouling_ms = rng.uniform(6.0, 18.0, size=n) * DAY_MS
        self._wear_ms = (rng.uniform(2.0, 6.0, size=n) * DAY_MS).astype(np.int64)
        self.compressor_stop_ms = np.where(
            self.book.has("compressor_failure"), onset + self._wear_ms, -1
        )
        cut_h = np.clip(rng.lognormal(np.log(3.0), 0.8, size=n), 0.5, 14.0)
        is_cut = self.book.has("power_cut")
        self.cut_start_ms = np.where(is_cut, onset, -1)
        self.cut_end_ms = np.where(is_cut, onset + (cut_h * HOUR_MS).astype(np.int64), -1)

    def labels(self) -> list[FaultLabel]:
        return self.book.labels()

    def _health(self, ts_ms: int) -> tuple[FloatArray, FloatArray]:
        """Remaining cooling capacity (fraction) and running-current factor of each compressor."""
        age_ms = np.maximum(ts_ms - self.book.onset_ms, 0).astype(np.float64)
        active = self.book.active(ts_ms)
        capacity = np.ones_like(age_ms)
        current = np.ones_like(age_ms)
        leak = active & self.book.has("refrigerant_leak")
        leak_health = np.clip(1.0 - age_ms / self._leak_scale_ms, 0.0, 1.0)
        capacity = np.where(leak, leak_health, capacity)
        # A short charge moves less refrigerant: the motor works less hard.
        current = np.where(leak, 1.0 - 0.25 * (1.0 - leak_health), current)
        fouling = active & self.book.has("condenser_fouling")
        progress = np.minimum(age_ms / self._fouling_ms, 1.0)
        capacity = np.where(fouling, 1.0 - 0.7 * progress, capacity)
        current = np.where(fouling, 1.0 + 0.4 * progress, current)
        wearing = active & self.book.has("compressor_failure")
        stopped = wearing & (ts_ms >= self.compressor_stop_ms)
        wear = np.minimum(age_ms / self._wear_ms, 1.0)
        current = np.where(wearing, 1.0 + 0.3 * wear, current)
        capacity = np.where(stopped, 0.0, capacity)
        current = np.where(stopped, 0.0, current)
        return capacity, current

    def step(self, ts_ms: int, dt_s: float) -> StepOutput:
        rng = self._rng
        n = self.cabinet_c.shape[0]
        begin_ms = self._clock.advance(ts_ms, dt_s)
        dt_ms = ts_ms - begin_ms
        v = self.variant
        hour = local_hour(ts_ms, self._offset_h)
        outdoor_c = self._weather.outdoor_c(ts_ms, dt_s)
        evening = np.cos(2.0 * np.pi * (hour - 18.0) / 24.0)
        ambient_c = 20.5 + 0.2 * (outdoor_c - 12.0) + 0.8 * evening + self._room_offset_c

        mains = 1.0 - overlap_ms(begin_ms, ts_ms, self.cut_start_ms, self.cut_end_ms) / dt_ms
        defrost = periodic_on_ms(
            begin_ms, ts_ms, self._defrost_phase_ms, self._defrost_period_ms, self._defrost_on_ms
        )
        defrost = np.minimum(defrost / dt_ms, mains)
        openings = rng.poisson(_DOOR_RATE_PER_H[v, hour.astype(np.int64)] * dt_s / 3600.0)
        door_s = np.minimum(rng.gamma(openings, _DOOR_OPEN_MEAN_S[v]), dt_s)

        capacity_frac, current_factor = self._health(ts_ms)
        capacity_w = (
            self._capacity_w
            * np.clip(1.0 - _CAPACITY_PER_K * (ambient_c - 25.0), 0.5, 1.2)
            * capacity_frac
        )
        load_w = (
            self._ua * (ambient_c - self.cabinet_c)
            + _DOOR_HEAT_W[v] * door_s / dt_s
            + _DEFROST_TO_CABINET * _DEFROST_HEATER_W[v] * defrost
        )
        may_run = np.clip(mains - defrost, 0.0, 1.0)
        cooled = cool(
            self.cabinet_c, self.setpoint_c, load_w, capacity_w, self._heat_capacity, may_run, dt_s
        )
        self.cabinet_c = cooled.cabinet_c
        calls, running, holding = cooled.calls, cooled.running, cooled.holding

        band = np.where(holding, rng.uniform(-1.0, 1.0, size=n) * _BAND_K[v], 0.0)
        bump = np.minimum(door_s / 40.0, _DOOR_BUMP_MAX_K[v])
        reading_c = self.cabinet_c + band + bump + rng.normal(0.0, _SENSOR_NOISE_C, size=n)
        evap_run = reading_c - _EVAP_DELTA_K[v] * (0.4 + 0.6 * capacity_frac)
        idle = np.clip(1.0 - running - defrost, 0.0, 1.0)
        evap_c = running * evap_run + idle * (reading_c - 1.0) + defrost * 6.0
        run_current_a = self._run_current_a * (1.0 + _CURRENT_PER_K * (ambient_c - 25.0))
        current_a = np.where(calls > 0.0, run_current_a * current_factor, 0.0)

        values = np.column_stack(
            (
                reading_c,
                evap_c + rng.normal(0.0, _SENSOR_NOISE_C, size=n),
                ambient_c + rng.normal(0.0, 0.1, size=n),
                calls,
                current_a,
                np.round(door_s, 1),
                defrost,
                mains,
            )
        )
        clip_to(values, self._low, self._high)
        events = self._events(begin_ms, ts_ms, values[:, 0])
        self.book.now_ms = ts_ms
        return StepOutput(KIND, ts_ms, CHANNELS, values, tuple(events))

    def _events(
        self, begin_ms: int, ts_ms: int, reading_c: FloatArray
    ) -> list[tuple[int, dict[str, object]]]:
        """Power events, the high-temperature alarm, and failure bookkeeping for this sample."""
        events: list[tuple[int, dict[str, object]]] = []
        above = reading_c > self.limit_c
        starts = above & (self._above_since_ms < 0)
        self._above_since_ms = np.where(above, np.where(starts, ts_ms, self._above_since_ms), -1)
        too_long = above & (ts_ms - self._above_since_ms >= self.limit_ms)
        self.book.mark_failed(too_long, ts_ms)
        for i in np.flatnonzero((self.cut_start_ms > begin_ms) & (self.cut_start_ms <= ts_ms)):
            events.append(
                (int(i), {"ts_ms": int(self.cut_start_ms[i]), "type": "power", "on": False})
            )
        for i in np.flatnonzero((self.cut_end_ms > begin_ms) & (self.cut_end_ms <= ts_ms)):
            events.append((int(i), {"ts_ms": int(self.cut_end_ms[i]), "type": "power", "on": True}))
        stops = (self.compressor_stop_ms > begin_ms) & (self.compressor_stop_ms <= ts_ms)
        for i in np.flatnonzero(stops):
            detail = "compressor draws no current while cooling is called for"
            events.append(
                (
                    int(i),
                    {
                        "ts_ms": ts_ms,
                        "type": "fault",
                        "code": "E07",
                        "severity": "critical",
                        "detail": detail,
                    },
                )
            )
        # The controller's own alarm: the limit was exceeded for the limit duration.
        raise_alarm = too_long & ~self._alarmed
        self._alarmed = too_long
        for i in np.flatnonzero(raise_alarm):
            detail = f"cabinet above {self.limit_c[i]:g} °C for {self.limit_ms[i] // 60_000} min"
            alarm = {"ts_ms": ts_ms, "type": "fault", "code": "E01", "severity": "critical"}
            events.append((int(i), {**alarm, "detail": detail}))
        return events
