"""``forewarn bench sim``: a month of a 10,000-fridge fleet at one-minute resolution.

The measured path is :class:`simulators.fridge.FridgeFleet` stepping the whole fleet at once,
through :func:`simulators.offline.generate` in chunks of an hour of steps (the values of every
device and channel are produced and summed, then dropped with their chunk). The baseline, run
in the same process on a sample of the same fleet, is the same model written as a per-device
Python loop over plain floats (:class:`ScalarFridges`): weather, defrost, door arrivals,
fault effects, the exact hysteresis thermostat and the sensor readings, device by device.
"""

from __future__ import annotations

import math
import platform
import random
import resource
import time
from typing import Any, Final

import numpy as np

from simulators.climate import DAY_MS, SITES
from simulators.fridge import FridgeFleet
from simulators.fridge_doors import DOOR_RATE_PER_H
from simulators.offline import OneKind, generate

START_MS: Final = 1_767_225_600_000  # 2026-01-01T00:00Z
CHUNK_STEPS: Final = 60
_OFFSET_H: Final = [s.utc_offset_h for s in SITES]
_NEVER: Final = 1e15


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_sim_bench(
    fridges: int, days: float, dt_s: float, baseline_fridges: int, baseline_days: float, seed: int
) -> dict[str, Any]:
    """Generate the fleet, then the baseline on a sample; return the figures."""
    horizon_ms = round(days * DAY_MS)
    rss0 = _maxrss_bytes()
    t0 = time.perf_counter()
    fleet = FridgeFleet(fridges, START_MS, np.random.default_rng(seed), 0.15, horizon_ms)
    setup_s = time.perf_counter() - t0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    checksum = 0.0
    steps = 0
    for chunk in generate(OneKind(fleet), START_MS, days, dt_s, CHUNK_STEPS):
        for out in chunk:
            checksum += float(out.values[:, 0].sum())
        steps += len(chunk)
    wall_s = time.perf_counter() - wall0
    cpu_s = time.process_time() - cpu0
    peak_bytes = _maxrss_bytes() - rss0
    device_days = fridges * days

    sample = FridgeFleet(baseline_fridges, START_MS, np.random.default_rng(seed), 0.15, horizon_ms)
    scalar = ScalarFridges(sample, seed)
    base_steps = round(baseline_days * 86_400 / dt_s)
    b_wall0 = time.perf_counter()
    for k in range(1, base_steps + 1):
        scalar.step(START_MS + round(k * dt_s * 1000), dt_s)
    base_wall_s = time.perf_counter() - b_wall0
    base_rate = baseline_fridges * baseline_days / base_wall_s
    rate = device_days / wall_s
    return {
        "fridges": fridges,
        "days": days,
        "dt_s": dt_s,
        "steps": steps,
        "device_samples": fridges * steps,
        "setup_s": round(setup_s, 2),
        "wall_s": round(wall_s, 2),
        "cpu_s": round(cpu_s, 2),
        "device_days_per_s": round(rate, 1),
        "device_samples_per_s": round(fridges * steps / wall_s),
        "peak_rss_delta_mb": round(peak_bytes / 2**20, 1),
        "target_wall_s": 60.0,
        "baseline": "per-device Python loop of the same model (floats, math, random)",
        "baseline_fridges": baseline_fridges,
        "baseline_days": baseline_days,
        "baseline_wall_s": round(base_wall_s, 2),
        "baseline_device_days_per_s": round(base_rate, 2),
        "speedup": round(rate / base_rate, 1),
        "mean_cabinet_c": round(checksum / max(fridges * steps, 1), 3),
        "machine": f"{platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}",
    }


class ScalarFridges:
    """The fridge model of :class:`FridgeFleet`, one device at a time in plain Python.

    Parameters are copied from a vectorized fleet so both run the same fridges; random draws
    come from :mod:`random`, so the two runs agree in distribution, not sample by sample.
    """

    def __init__(self, fleet: FridgeFleet, seed: int) -> None:
        self.rnd = random.Random(seed)
        plan = fleet.plan
        self.n = n = len(fleet.devices)

        def floats(a: np.ndarray) -> list[float]:
            return [float(x) for x in a]

        p = {k: floats(v) for k, v in fleet.parameters().items()}
        self.site = [int(s) for s in p["site"]]
        self.variant = [int(v) for v in p["variant"]]
        self.room_c = p["room_c"]
        self.ua = p["ua_w_per_k"]
        self.heat = p["heat_capacity_j_per_k"]
        self.cap_w = p["capacity_w"]
        self.current_a = p["run_current_a"]
        self.setpoint = floats(fleet.setpoint_c)
        self.cut_in = p["cut_in_c"]
        self.cut_out = p["cut_out_c"]
        self.limit_c = floats(fleet.limit_c)
        self.limit_ms = floats(fleet.limit_ms)
        self.phase = p["defrost_phase_ms"]
        self.period = p["defrost_period_ms"]
        self.on_ms = p["defrost_on_ms"]
        self.heater_w = p["defrost_cabinet_w"]
        self.door_ua = p["door_ua_w_per_k"]
        self.door_mean = p["door_open_mean_s"]
        self.bump_max = p["door_bump_max_k"]
        self.evap_delta = p["evap_delta_k"]
        self.heater_dead = [bool(x) for x in plan.heater_dead]
        self.onset = floats(plan.onset_ms)
        self.loss = floats(plan.capacity_loss_per_ms)
        self.floor = floats(plan.capacity_floor)
        self.cur_rate = floats(plan.current_per_ms)
        self.cur_lo = floats(plan.current_low)
        self.cur_hi = floats(plan.current_high)
        self.stop = floats(plan.stop_ms)
        self.gasket_rate = floats(plan.gasket_ua_per_ms)
        self.gasket_max = floats(plan.gasket_ua_max)
        self.drift = floats(plan.drift_k_per_ms)
        self.cut_start = floats(plan.cut_start_ms)
        self.cut_end = floats(plan.cut_end_ms)
        self.cabinet = floats(fleet.cabinet_c)
        self.relay = [bool(x) for x in fleet.relay_on]
        self.integrated = [0.0] * n
        self.next_door = [self.rnd.expovariate(1.0) for _ in range(n)]
        self.above_ms = [0.0] * n
        self.was_above = [False] * n
        self.anomaly = [self.rnd.gauss(0.0, 2.5) for _ in SITES]
        self.last_ms = START_MS

    def _defrost_done(self, i: int, t_ms: float) -> float:
        shifted = t_ms - self.phase[i]
        whole = math.floor(shifted / self.period[i])
        return whole * self.on_ms[i] + min(shifted - whole * self.period[i], self.on_ms[i])

    def step(self, ts_ms: int, dt_s: float) -> list[tuple[float, ...]]:
        rnd = self.rnd
        begin = float(self.last_ms)
        self.last_ms = ts_ms
        dt_ms = ts_ms - begin
        keep = math.exp(-dt_s / (3.0 * 86_400.0))
        site_c = []
        for s, site in enumerate(SITES):
            self.anomaly[s] = keep * self.anomaly[s] + math.sqrt(1 - keep * keep) * 2.5 * (
                rnd.gauss(0.0, 1.0)
            )
            doy = (ts_ms / DAY_MS) % 365.25
            season = math.cos(2 * math.pi * (doy - 201.0) / 365.25) * (
                -1.0 if site.southern else 1.0
            )
            hour = (ts_ms / 3_600_000 + _OFFSET_H[s]) % 24.0
            outdoor = (
                site.mean_c
                + site.seasonal_amp_c * season
                + site.daily_amp_c * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
                + self.anomaly[s]
            )
            site_c.append(
                (0.2 * (outdoor - 12.0) + 0.8 * math.cos(2 * math.pi * (hour - 18.0) / 24.0), hour)
            )
        rows: list[tuple[float, ...]] = []
        for i in range(self.n):
            site_term, hour = site_c[self.site[i]]
            ambient = self.room_c[i] + site_term
            outage = max(min(ts_ms, self.cut_end[i]) - max(begin, self.cut_start[i]), 0.0)
            mains = 1.0 - outage / dt_ms if self.cut_start[i] >= 0 else 1.0
            done = self._defrost_done(i, ts_ms) - self._defrost_done(i, begin)
            defrost = min(done / dt_ms, mains)
            rate = DOOR_RATE_PER_H[self.variant[i], int(hour)] / 3600.0
            self.integrated[i] += rate * dt_s
            openings = 0
            while self.integrated[i] >= self.next_door[i]:
                openings += 1
                self.next_door[i] += rnd.expovariate(1.0)
            door_s = min(rnd.gammavariate(openings, self.door_mean[i]), dt_s) if openings else 0.0
            age = max(ts_ms - self.onset[i], 0.0)
            dead = self.stop[i] >= 0 and ts_ms >= self.stop[i]
            capacity = 0.0 if dead else max(1.0 - self.loss[i] * age, self.floor[i])
            current = min(max(1.0 + self.cur_rate[i] * age, self.cur_lo[i]), self.cur_hi[i])
            ua = self.ua[i] + min(self.gasket_rate[i] * age, self.gasket_max[i])
            offset = self.drift[i] * age
            cab = self.cabinet[i]
            cap_w = (
                min(max(1.0 - 0.012 * (ambient - 25.0), 0.5), 1.2)
                * min(max(1.0 + 0.04 * (cab - self.setpoint[i]), 0.0), 1.5)
                * self.cap_w[i]
                * capacity
            )
            load = ua * (ambient - cab) + self.heater_w[i] * defrost
            load += self.door_ua[i] * (ambient - cab) * door_s / dt_s
            cab, on, calls = _thermostat(
                cab,
                self.relay[i],
                self.cut_in[i] - offset,
                self.cut_out[i] - offset,
                load,
                cap_w,
                self.heat[i],
                mains - defrost,
                dt_s,
            )
            self.cabinet[i], self.relay[i] = cab, on
            reading = cab + offset + rnd.gauss(0.0, 0.05) + min(door_s / 40.0, self.bump_max[i])
            running = 0.0 if dead else calls
            coil_run = cab - self.evap_delta[i] * (0.4 + 0.6 * capacity)
            coil_defrost = coil_run if self.heater_dead[i] else 6.0
            evap = (
                running * coil_run
                + (1.0 - running - defrost) * (cab - 1.0)
                + defrost * coil_defrost
                + rnd.gauss(0.0, 0.05)
            )
            amps = self.current_a[i] * (1 + 0.01 * (ambient - 25.0)) * current
            above = cab > self.limit_c[i]
            self.above_ms[i] = (self.above_ms[i] + dt_ms) if above and self.was_above[i] else 0.0
            self.was_above[i] = above
            ambient_reading = ambient + rnd.gauss(0.0, 0.1)
            amps = amps if running else 0.0
            rows.append(
                (reading, evap, ambient_reading, calls, amps, round(door_s, 1), defrost, mains)
            )
        return rows


def _thermostat(
    temp: float,
    on: bool,
    cut_in: float,
    cut_out: float,
    load: float,
    cap: float,
    heat: float,
    may_run: float,
    dt_s: float,
) -> tuple[float, bool, float]:
    """:func:`simulators.cooling.thermostat` for one cabinet."""
    warm = load / heat
    cool = (cap - load) / heat
    temp += warm * (1.0 - may_run) * dt_s
    on = (on or temp > cut_in) and not temp < cut_out
    free = may_run * dt_s
    end = temp - cool * free if on else temp + warm * free
    if (on and end >= cut_out) or (not on and end <= cut_in):
        return end, on, (free if on else 0.0) / dt_s
    first = (temp - cut_out) / cool if on else (cut_in - temp) / warm
    span = cut_in - cut_out
    on_leg = span / cool if cool > 0 else _NEVER
    off_leg = span / warm if warm > 0 else _NEVER
    rest = max(free - first, 0.0)
    cycles = math.floor(rest / max(on_leg + off_leg, 1e-9))
    left = rest - cycles * (on_leg + off_leg)
    called = (first if on else 0.0) + cycles * on_leg
    if not on:  # now on, from cut-in
        if left <= on_leg:
            return cut_in - cool * left, True, (called + left) / dt_s
        return cut_out + warm * (left - on_leg), False, (called + on_leg) / dt_s
    if left <= off_leg:
        return cut_out + warm * left, False, called / dt_s
    return cut_in - cool * (left - off_leg), True, (called + left - off_leg) / dt_s
