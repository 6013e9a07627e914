"""A fleet of household, commercial and freezer fridges as a lumped thermal model per sample."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from firmware_specs import load_profile
from simulators.climate import HOUR_MS, SITES, Weather, site_hours, site_offsets_h
from simulators.clock import StepClock
from simulators.cooling import ALWAYS_C, NEVER_C, thermostat
from simulators.fridge_doors import Doors
from simulators.fridge_faults import DEFAULT_WEIGHTS, FAULTS, NO_ONSET_MS, plan_faults
from simulators.fridge_state import AboveLimit, Effects, TimedEvents
from simulators.ids import device_ids
from simulators.labels import FaultBook, assign_faults, fault_weights
from simulators.noise import NoiseTable
from simulators.ranges import channel_bounds
from simulators.schedule import PeriodicWindows, overlap_ms
from simulators.types import DeviceSpec, FaultLabel, FloatArray, StepOutput

__all__ = ["CHANNELS", "FAULTS", "KIND", "MODELS", "VARIANTS", "FridgeFleet"]

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

# Per variant (household, commercial, freezer); lumped parameters of cabinet plus contents.
_SHARE: Final = (0.6, 0.25, 0.15)
_UA_W_PER_K: Final = np.array([0.9, 3.0, 0.7])
_HEAT_CAPACITY_J_PER_K: Final = np.array([120e3, 350e3, 130e3])
_CAPACITY_W: Final = np.array([70.0, 280.0, 80.0])  # at 25 °C ambient
_RUN_CURRENT_A: Final = np.array([0.9, 3.5, 1.1])
_EVAP_DELTA_K: Final = np.array([14.0, 10.0, 12.0])
# Warm air exchanged while the door stands open (about 500, 1500 and 400 W at the usual
# room-to-cabinet difference).
_DOOR_UA_W_PER_K: Final = np.array([30.0, 75.0, 10.0])
_DOOR_BUMP_MAX_K: Final = np.array([0.3, 0.8, 1.0])
_BAND_K: Final = np.array([0.5, 0.8, 1.0])  # thermostat half band
_DEFROST_PERIOD_H: Final = np.array([8.0, 6.0, 8.0])
_DEFROST_HEATER_W: Final = np.array([150.0, 400.0, 250.0])
_DEFROST_TO_CABINET: Final = 0.15  # most heater energy melts ice; the rest warms the cabinet
_DEFROST_EVAP_C: Final = 6.0  # a working heater warms the coil above melting
_KITCHEN_EXTRA_C: Final = np.array([0.0, 3.0, -1.0])
_CAPACITY_PER_K: Final = 0.012  # capacity lost per kelvin of ambient above 25 °C
_CAPACITY_PER_COLD_K: Final = 0.04  # capacity lost per kelvin of cabinet below setpoint
_CURRENT_PER_K: Final = 0.01
# The hot per-device state is float32: half the memory traffic, ample precision for kelvins
# and watts; times stay int64 / float64.
F32: Final = np.float32
EFFECTS_EVERY_MS: Final = 600_000  # fault effects and room temperature on capacity
_SENSOR_NOISE_C: Final = 0.05
_AMBIENT_NOISE_C: Final = 0.1

Events = list[tuple[int, dict[str, object]]]


class FridgeFleet:
    """``n`` fridges, each a cabinet cooled by an on/off thermostat with hysteresis.

    Per sample the heat load is ``(UA + gasket leak)·(ambient − cabinet)`` plus the warm air of
    door openings and the part of the defrost heat that reaches the cabinet. The thermostat
    switches the compressor on above ``setpoint + band`` and off below ``setpoint − band`` (as
    its cabinet sensor reads it), solved exactly within the sample
    (:func:`simulators.cooling.thermostat`); it cannot run during a power cut or a defrost.
    ``compressor_on`` is the fraction of the sample the thermostat called for cooling;
    ``compressor_a`` the mean current while called (0 from a compressor that no longer runs).
    Door openings are a Poisson process whose rate follows the local hour (household meals,
    commercial service hours).

    Planned faults (see ``docs/simulators.md``): ``refrigerant_leak``, ``condenser_fouling``,
    ``compressor_failure`` (current creeps up, then the motor stops), ``door_gasket_leak``,
    ``defrost_heater_failure``, ``sensor_stuck``, ``sensor_drift`` and ``power_cut``. A fault
    fails when the true cabinet temperature (:attr:`cabinet_c`, not the possibly faulty
    reading) stays above the variant's limit for its limit minutes; ``failure_ms`` is the sample
    at which that duration is reached.

    ``fault_weights`` sets the mix of faults among the faulty share (names of :data:`FAULTS`,
    missing ones weigh 0); ``variant_shares`` the household / commercial / freezer mix.
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
        *,
        fault_weights: Mapping[str, float] | None = None,
        variant_shares: Sequence[float] = _SHARE,
    ) -> None:
        weights = _fault_mix(fault_weights)
        shares = _variant_shares(variant_shares)
        self._rng = rng
        self._clock = StepClock()
        ids = device_ids(id_prefix, n)
        variant = rng.choice(3, size=n, p=shares)
        self.variant = variant
        site = rng.integers(0, len(SITES), size=n)
        self._site = site
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
        self._room_c = (20.5 + rng.normal(0.0, 1.0, size=n) + _KITCHEN_EXTRA_C[variant]).astype(F32)
        period_ms = (_DEFROST_PERIOD_H[variant] * HOUR_MS).astype(np.int64)
        self._defrost_period_ms = period_ms.astype(np.float64)
        self._defrost_phase_ms = np.floor(rng.random(n) * period_ms)
        self._defrost_on_ms = rng.integers(20 * 60_000, 30 * 60_000, size=n).astype(np.float64)
        band = _BAND_K[variant]
        self._cut_in_c = self.setpoint_c + band
        self._cut_out_c = self.setpoint_c - band
        self._door_ua_w_per_k = _DOOR_UA_W_PER_K[variant]
        self._bump_max_k = _DOOR_BUMP_MAX_K[variant]
        self._evap_delta_k = _EVAP_DELTA_K[variant]
        self._defrost_cabinet_w = _DEFROST_TO_CABINET * _DEFROST_HEATER_W[variant]
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
        fault = assign_faults(n, fault_share, weights, rng)
        self.plan = plan_faults(fault, start_ms, horizon_ms, self._ua, rng)
        self.book = FaultBook(KIND, ids, FAULTS, fault, self.plan.onset_ms)
        self.compressor_stop_ms = self.plan.stop_ms
        self.cut_start_ms = self.plan.cut_start_ms
        self.cut_end_ms = self.plan.cut_end_ms
        self._stuck_devices = np.flatnonzero(self.plan.stuck)
        self._stuck_c = np.full(self._stuck_devices.shape[0], np.nan)
        self._doors = Doors(variant, site, rng)
        self._sensor_noise = NoiseTable(rng, _SENSOR_NOISE_C, dtype=F32)
        self._ambient_noise = NoiseTable(rng, _AMBIENT_NOISE_C, dtype=F32)
        self._defrost = PeriodicWindows(
            self._defrost_phase_ms, self._defrost_period_ms, self._defrost_on_ms, start_ms
        )
        # The thermostat starts each fridge at a random point of its cycle.
        self.cabinet_c = (self.setpoint_c + rng.uniform(-1.0, 1.0, size=n) * band).astype(F32)
        self.relay_on = rng.random(n) < 0.3
        # Last readings of the stuck-sensor devices (a stuck sensor freezes at its last value).
        self._stuck_last_c = self.cabinet_c[self._stuck_devices].astype(np.float64)
        self._above = AboveLimit(self.limit_c.astype(F32), self.limit_ms)
        self._alarm = AboveLimit(self.limit_c, self.limit_ms)
        self._alarmed = np.zeros(n, dtype=np.bool_)
        self._cut_devices = np.flatnonzero(self.plan.cut_start_ms >= 0)
        self._faulty_devices = np.flatnonzero(fault >= 0)
        self._faulty_plan = self.plan.subset(self._faulty_devices)
        self._effects_now = Effects(self._evap_delta_k.astype(F32))
        self._effects_due_ms = -1
        self._capacity_now_w = self._capacity_w.astype(F32)
        self._cold_ref = (1.0 - _CAPACITY_PER_COLD_K * self.setpoint_c).astype(F32)
        self._cut_in_now = self._cut_in_c.astype(F32)
        self._cut_out_now = self._cut_out_c.astype(F32)
        self._next_stuck_ms = (
            int(self.plan.onset_ms[self._stuck_devices].min())
            if self._stuck_devices.size
            else NO_ONSET_MS
        )
        self._ua_now = self._ua.astype(F32)
        self._faulty_ua = self._ua[self._faulty_devices]
        # Defrost heaters work until a defrost_heater_failure starts (set in _refresh).
        self._heater_dead = np.zeros(n, dtype=np.bool_)
        self._heater_cabinet_w = self._defrost_cabinet_w.astype(F32)
        self._current_base_a = (self._run_current_a * (1.0 - 25.0 * _CURRENT_PER_K)).astype(F32)
        self._current_per_k_a = (self._run_current_a * _CURRENT_PER_K).astype(F32)
        self._heat32 = self._heat_capacity.astype(F32)
        self._limit32_c = self.limit_c.astype(F32)
        self._low, self._high = channel_bounds(KIND, CHANNELS)
        self._timed = TimedEvents(self.plan.cut_start_ms, self.plan.cut_end_ms, self.plan.stop_ms)

    def labels(self) -> list[FaultLabel]:
        return self.book.labels()

    def parameters(self) -> dict[str, FloatArray]:
        """Per-device model parameters (copies), e.g. to run the same fridges elsewhere."""
        params = {
            "site": self._site,
            "variant": self.variant,
            "room_c": self._room_c,
            "ua_w_per_k": self._ua,
            "heat_capacity_j_per_k": self._heat_capacity,
            "capacity_w": self._capacity_w,
            "run_current_a": self._run_current_a,
            "cut_in_c": self._cut_in_c,
            "cut_out_c": self._cut_out_c,
            "defrost_phase_ms": self._defrost_phase_ms,
            "defrost_period_ms": self._defrost_period_ms,
            "defrost_on_ms": self._defrost_on_ms,
            "defrost_cabinet_w": self._defrost_cabinet_w,
            "door_ua_w_per_k": self._door_ua_w_per_k,
            "door_open_mean_s": self._doors.mean_open_s,
            "door_bump_max_k": self._bump_max_k,
            "evap_delta_k": self._evap_delta_k,
        }
        return {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def _freeze_stuck_sensors(self, ts_ms: int) -> None:
        """Freeze the readings of stuck sensors whose fault starts by ``ts_ms``."""
        stuck = self._stuck_devices
        fresh = (self.plan.onset_ms[stuck] <= ts_ms) & np.isnan(self._stuck_c)
        self._stuck_c[fresh] = self._stuck_last_c[fresh]
        later = self.plan.onset_ms[stuck][np.isnan(self._stuck_c)]
        self._next_stuck_ms = int(later.min()) if later.size else NO_ONSET_MS

    def _thresholds(self) -> None:
        """Cut-in and cut-out in true cabinet temperature, as the (maybe faulty) sensor sees it."""
        offset_k = self._effects_now.sensor_offset_k
        np.subtract(self._cut_in_c, offset_k, out=self._cut_in_now)
        np.subtract(self._cut_out_c, offset_k, out=self._cut_out_now)
        frozen = ~np.isnan(self._stuck_c)
        who = self._stuck_devices[frozen]
        held = self._stuck_c[frozen]
        # A frozen reading above cut-in calls for cooling forever, below cut-out never;
        # in between the relay keeps whatever state it was in.
        self._cut_in_now[who] = np.where(held > self._cut_in_c[who], ALWAYS_C, NEVER_C)
        self._cut_out_now[who] = np.where(held < self._cut_out_c[who], NEVER_C, ALWAYS_C)

    def step(self, ts_ms: int, dt_s: float) -> StepOutput:
        # Written for speed: a 10,000-fridge step is a few dozen operations on whole arrays;
        # np.where and boolean-mask writes over the whole fleet are avoided (they cost several
        # plain arithmetic operations each), and sparse things (doors, faults) touch only
        # the devices concerned.
        n = self.cabinet_c.shape[0]
        begin_ms = self._clock.advance(ts_ms, dt_s)
        dt_ms = float(ts_ms - begin_ms)
        plan = self.plan
        hours = site_hours(ts_ms)
        site_c = 0.2 * (self._weather.site_outdoor_c(ts_ms, dt_s) - 12.0) + 0.8 * np.cos(
            2.0 * np.pi * (hours - 18.0) / 24.0
        )
        ambient_c = self._room_c + site_c.astype(F32).take(self._site)

        mains = np.ones(n, dtype=F32)
        cuts = self._cut_devices
        if cuts.size:
            outage = overlap_ms(begin_ms, ts_ms, plan.cut_start_ms[cuts], plan.cut_end_ms[cuts])
            mains[cuts] = 1.0 - outage / dt_ms
        defrosting, defrost_ms = self._defrost.on_ms(begin_ms, ts_ms)
        defrost = np.zeros(n, dtype=F32)
        defrost[defrosting] = np.minimum(defrost_ms / dt_ms, mains[defrosting])
        defrost_now = defrost[defrosting]
        opened, door_s = self._doors.advance(hours, dt_s)

        stops = self._timed.due(2, begin_ms, ts_ms)
        if stops or ts_ms >= self._effects_due_ms:
            self._refresh(ts_ms, ambient_c)
        if ts_ms >= self._next_stuck_ms:
            self._freeze_stuck_sensors(ts_ms)
            self._thresholds()
        effects = self._effects_now
        # A colder cabinet (evaporator) lowers the capacity, which also keeps a compressor that
        # never stops from cooling without bound.
        capacity_w = self._capacity_now_w * np.maximum(
            self._cold_ref + _CAPACITY_PER_COLD_K * self.cabinet_c, 0.0
        )
        load_w = self._ua_now * (ambient_c - self.cabinet_c)
        load_w[defrosting] += self._heater_cabinet_w[defrosting] * defrost_now
        load_w[opened] += (
            self._door_ua_w_per_k[opened]
            * (ambient_c[opened] - self.cabinet_c[opened])
            * (door_s / dt_s)
        )
        cooled = thermostat(
            self.cabinet_c,
            self.relay_on,
            self._cut_in_now,
            self._cut_out_now,
            load_w,
            capacity_w,
            self._heat32,
            mains - defrost,
            dt_s,
        )
        self.cabinet_c = cabinet_c = cooled.cabinet_c
        self.relay_on = cooled.on
        calls = cooled.calls

        out = np.empty((len(CHANNELS), n))
        reading = out[0]
        np.add(cabinet_c, effects.sensor_offset_k, out=reading)
        reading += self._sensor_noise.normal(n)
        reading[opened] += np.minimum(door_s / 40.0, self._bump_max_k[opened])
        if self._stuck_devices.size:
            frozen = ~np.isnan(self._stuck_c)
            reading[self._stuck_devices[frozen]] = self._stuck_c[frozen]
        self._stuck_last_c = reading[self._stuck_devices]
        running = calls * effects.alive
        # The coil runs below the cabinet while cooling, sits a little below it when idle and
        # is heated above melting while defrosting (or stays frozen without a heater).
        coil_run = cabinet_c - effects.coil_drop_k
        evap = out[1]
        np.multiply(running, coil_run - (cabinet_c - 1.0), out=evap)
        evap += cabinet_c - 1.0
        d = defrosting
        evap[d] += defrost_now * (
            np.where(self._heater_dead[d], coil_run[d], _DEFROST_EVAP_C) - (cabinet_c[d] - 1.0)
        )
        evap += self._sensor_noise.normal(n)
        np.add(ambient_c, self._ambient_noise.normal(n), out=out[2])
        out[3] = calls
        current = self._current_base_a + self._current_per_k_a * ambient_c
        np.multiply(current * effects.current_factor, running > 0.0, out=out[4])
        out[5] = 0.0
        out[5][opened] = np.round(door_s, 1)
        out[6] = defrost
        out[7] = mains
        # float32 rounding must not let duty and defrost add up to more than the sample.
        np.minimum(out[3], out[7] - out[6], out=out[3])
        # The physics keeps every channel in its contract range except door time, which a
        # sample longer than an hour could exceed.
        np.clip(out[5], self._low[5], self._high[5], out=out[5])
        values = out.T
        events = self._events(begin_ms, ts_ms, dt_ms, reading, stops)
        self.book.now_ms = ts_ms
        return StepOutput(KIND, ts_ms, CHANNELS, values, tuple(events))

    def _refresh(self, ts_ms: int, ambient_c: FloatArray) -> None:
        """Re-evaluate the slow things: fault effects and the room's effect on capacity.

        Degradation takes days, so every ``EFFECTS_EVERY_MS`` is often enough; a compressor
        stop is applied at its own sample.
        """
        self._effects_due_ms = ts_ms + EFFECTS_EVERY_MS
        faulty = self._faulty_devices
        part = self._faulty_plan.effects(ts_ms)
        e = self._effects_now
        e.capacity_frac[faulty] = part.capacity_frac * ~part.dead
        e.coil_drop_k[faulty] = self._evap_delta_k[faulty] * (0.4 + 0.6 * part.capacity_frac)
        e.current_factor[faulty] = part.current_factor
        e.sensor_offset_k[faulty] = part.sensor_offset_k
        e.alive[faulty] = ~part.dead
        self._ua_now[faulty] = self._faulty_ua + part.extra_ua_w_per_k
        heater_dead = self._faulty_plan.heater_dead & (self._faulty_plan.onset_ms <= ts_ms)
        self._heater_dead[faulty] = heater_dead
        self._heater_cabinet_w[faulty] = self._defrost_cabinet_w[faulty] * ~heater_dead
        # A warmer room heats the condenser and lowers the capacity.
        room = np.clip(1.0 - _CAPACITY_PER_K * (ambient_c - 25.0), 0.5, 1.2)
        self._capacity_now_w = (room * self._capacity_w * e.capacity_frac).astype(F32)
        self._thresholds()

    def _events(
        self,
        begin_ms: int,
        ts_ms: int,
        dt_ms: float,
        reading_c: FloatArray,
        stops: list[tuple[int, int]],
    ) -> Events:
        """Power and compressor events, the controller's alarm, and failure bookkeeping."""
        self.book.mark_failed_devices(self._above.update(self.cabinet_c, dt_ms), ts_ms)
        events: Events = []
        for i, at_ms in self._timed.due(0, begin_ms, ts_ms):
            events.append((i, {"ts_ms": at_ms, "type": "power", "on": False}))
        for i, at_ms in self._timed.due(1, begin_ms, ts_ms):
            events.append((i, {"ts_ms": at_ms, "type": "power", "on": True}))
        for i, _ in stops:
            detail = "compressor draws no current while cooling is called for"
            stop = {"ts_ms": ts_ms, "type": "fault", "code": "E07", "severity": "critical"}
            events.append((i, {**stop, "detail": detail}))
        # The controller's own alarm sees only its sensor: the limit exceeded long enough.
        alarm_now = self._alarm.update(reading_c, dt_ms)
        raise_alarm = alarm_now[~self._alarmed[alarm_now]]
        self._alarmed[:] = False
        self._alarmed[alarm_now] = True
        for i in raise_alarm.tolist():
            detail = f"cabinet above {self.limit_c[i]:g} °C for {self.limit_ms[i] // 60_000} min"
            alarm = {"ts_ms": ts_ms, "type": "fault", "code": "E01", "severity": "critical"}
            events.append((i, {**alarm, "detail": detail}))
        return events


def _fault_mix(weights: Mapping[str, float] | None) -> tuple[float, ...]:
    return fault_weights(FAULTS, weights, DEFAULT_WEIGHTS)


def _variant_shares(shares: Sequence[float]) -> FloatArray:
    p = np.asarray(shares, dtype=np.float64)
    if p.shape != (3,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.sum() <= 0:
        raise ValueError(
            f"variant_shares must be three non-negative shares (household, commercial, freezer) "
            f"with a positive sum, got {shares}"
        )
    shares_p: FloatArray = p / p.sum()
    return shares_p
