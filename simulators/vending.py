"""A fleet of vending machines: per-slot Poisson demand, weekly restock routes, a cooled cabinet."""

from __future__ import annotations

from typing import Final

import numpy as np

from firmware_specs import load_profile
from simulators.climate import (
    DAY_MS,
    HOUR_MS,
    SITES,
    Weather,
    local_day,
    local_hour,
    site_offsets_h,
    weekday,
)
from simulators.clock import StepClock
from simulators.cooling import cool
from simulators.ids import device_ids
from simulators.labels import FaultBook, assign_faults
from simulators.ranges import channel_bounds, clip_to
from simulators.types import BoolArray, DeviceSpec, FaultLabel, FloatArray, IntArray, StepOutput

KIND: Final = "vending"
MODEL: Final = "VendMax 30"
# Every machine uses the same slot grid; a machine with fewer slots reports NaN for the others.
SLOT_ROWS: Final = "ABCDE"
SLOT_COLS: Final = 6
SLOTS: Final = tuple(f"{row}{col}" for row in SLOT_ROWS for col in range(1, SLOT_COLS + 1))
BASE_CHANNELS: Final = ("cabinet_c", "ambient_c", "compressor_on", "door_open_s")
CHANNELS: Final = BASE_CHANNELS + tuple(
    f"slot.{slot}.{what}" for slot in SLOTS for what in ("stock", "vends", "fails")
)
FAULTS: Final = ("jammed_coil", "cooling_failure")
SETPOINT_C: Final = 4.0
_FAILURE: Final = load_profile(KIND)["failures"]["warm_cabinet"]
LIMIT_C: Final = float(_FAILURE["limit_c"])
LIMIT_MS: Final = int(_FAILURE["limit_minutes"]) * 60_000

PRODUCTS: Final = (
    ("Cola 0.33l", 150, 1.6),
    ("Cola Zero 0.33l", 150, 1.3),
    ("Orange soda 0.33l", 140, 0.8),
    ("Sparkling water 0.5l", 120, 1.0),
    ("Still water 0.5l", 110, 1.2),
    ("Iced tea 0.5l", 180, 0.9),
    ("Energy drink 0.25l", 220, 1.1),
    ("Apple juice 0.25l", 160, 0.6),
    ("Cold brew coffee 0.25l", 250, 0.7),
    ("Chocolate bar", 130, 1.4),
    ("Peanut bar", 140, 0.8),
    ("Salted crisps", 120, 1.2),
    ("Paprika crisps", 120, 0.9),
    ("Gummy bears", 110, 0.8),
    ("Granola bar", 150, 0.7),
    ("Sandwich", 390, 0.9),
    ("Pretzels", 130, 0.5),
    ("Mints", 90, 0.4),
)
_PRICE_CENTS: Final = np.array([p[1] for p in PRODUCTS], dtype=np.int64)
_POPULARITY: Final = np.array([p[2] for p in PRODUCTS])

LOCATIONS: Final = ("office", "transit", "gym")
_LOCATION_SHARE: Final = np.array([0.5, 0.3, 0.2])
_HOUR_WEIGHT: Final = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0.1, 0.5, 1.5, 2.0, 2.2, 2.0, 2.8, 2.6, 2.2, 2.4, 2.0, 1.2, 0.4, 0.1,
         0, 0, 0, 0],
        [0.2, 0.1, 0, 0, 0.1, 0.4, 1.2, 2.4, 2.2, 1.2, 0.9, 1.0, 1.3, 1.2, 1.0, 1.1, 1.6, 2.4, 2.3,
         1.4, 0.9, 0.7, 0.4, 0.3],
        [0, 0, 0, 0, 0, 0.2, 0.9, 1.3, 1.0, 0.8, 0.8, 1.0, 1.3, 1.0, 0.8, 0.9, 1.3, 2.2, 2.6, 2.3,
         1.6, 0.9, 0.2, 0],
    ]
)  # fmt: skip
_HOUR_WEIGHT_NORM: Final = _HOUR_WEIGHT / _HOUR_WEIGHT.mean(axis=1, keepdims=True)
_WEEK_WEIGHT: Final = np.array(
    [
        [1.1, 1.15, 1.15, 1.1, 0.9, 0.15, 0.1],
        [1.05, 1.05, 1.05, 1.05, 1.1, 0.9, 0.8],
        [1.05, 1.0, 1.05, 1.0, 0.85, 1.1, 0.95],
    ]
)

_UA_W_PER_K: Final = 2.0
_HEAT_CAPACITY_J_PER_K: Final = 200e3
_CAPACITY_W: Final = 250.0
_DOOR_HEAT_W: Final = 400.0  # service door open during a restock visit


class VendingFleet:
    """``n`` vending machines with 10–30 slots each.

    Every machine reports the same channels: the slot grid A1..E6 (rows A–E, columns 1–6), of
    which a machine fills the first 2–5 rows and 5–6 columns; slots it lacks read NaN. Its
    birth attributes list only the slots it has.

    Demand per slot is a Poisson count whose rate follows the hour of day and the day of week of
    the machine's location (offices are quiet at weekends). A successful vend takes one item; a
    slot at zero stock takes no vends. Each machine's route visits it once a week on its route
    day and refills every slot to capacity (``restock`` events, door open for the visit).

    Planned faults: ``jammed_coil`` (from the onset every attempt at one slot fails, its stock
    stays; failure at the first failed vend) and ``cooling_failure`` (cooling capacity fades to
    nothing over 1–4 days; failure when the cabinet stays above the profile's cabinet limit for
    its limit minutes). Every stock-out is an episode label ``stockout`` with
    ``failure_ms == onset_ms`` and the slot as component.
    """

    kind: str = KIND

    def __init__(
        self,
        n: int,
        start_ms: int,
        rng: np.random.Generator,
        fault_share: float,
        horizon_ms: int,
        id_prefix: str = "vm",
    ) -> None:
        self._rng = rng
        self._clock = StepClock()
        ids = device_ids(id_prefix, n)
        site = rng.integers(0, len(SITES), size=n)
        self._offset_h = site_offsets_h(site)
        self._weather = Weather(site, rng)
        self.location = rng.choice(len(LOCATIONS), size=n, p=_LOCATION_SHARE)
        n_rows = rng.integers(2, len(SLOT_ROWS), size=n, endpoint=True)
        n_cols = rng.integers(SLOT_COLS - 1, SLOT_COLS, size=n, endpoint=True)
        grid_row, grid_col = np.divmod(np.arange(len(SLOTS)), SLOT_COLS)
        self.has_slot = (grid_row[None, :] < n_rows[:, None]) & (
            grid_col[None, :] < n_cols[:, None]
        )
        self.capacity = np.where(
            self.has_slot, rng.integers(6, 15, size=self.has_slot.shape, endpoint=True), 0
        )
        self.product = rng.integers(0, len(PRODUCTS), size=self.has_slot.shape)
        traffic = rng.lognormal(0.0, 0.35, size=n)
        self.rate_per_day = np.where(
            self.has_slot,
            0.75
            * traffic[:, None]
            * _POPULARITY[self.product]
            * rng.lognormal(0.0, 0.4, size=self.has_slot.shape),
            0.0,
        )
        self.route_day = rng.integers(0, 5, size=n)
        self._visit_ms_of_day = rng.integers(8 * HOUR_MS, 14 * HOUR_MS, size=n)
        self._visit_door_s = rng.uniform(300.0, 900.0, size=n)
        days_since_visit = np.mod(weekday(local_day(start_ms, self._offset_h)) - self.route_day, 7)
        sold = rng.poisson(self.rate_per_day * days_since_visit[:, None])
        self.stock = np.where(self.has_slot, np.clip(self.capacity - sold, 1, None), 0).astype(
            np.int64
        )
        self._room_offset_c = rng.normal(0.0, 1.0, size=n)
        self.cabinet_c = np.full(n, SETPOINT_C)
        self._cooling_fade_ms = rng.uniform(1.0, 4.0, size=n) * DAY_MS
        self._above_since_ms = np.full(n, -1, dtype=np.int64)
        self.devices = tuple(self._spec(i, ids[i], SITES[site[i]].tz) for i in range(n))
        fault = assign_faults(n, fault_share, (0.6, 0.4), rng)
        latest = max(2 * DAY_MS, int(0.8 * horizon_ms))
        onset = start_ms + rng.integers(HOUR_MS, latest, size=n, endpoint=True)
        # The jam hits a random slot the machine has.
        jam_slot = np.argmax(rng.random(self.has_slot.shape) * self.has_slot, axis=1)
        self.jammed = np.zeros(self.has_slot.shape, dtype=np.bool_)
        self._jam_slot = np.where(fault == FAULTS.index("jammed_coil"), jam_slot, -1)
        component = [SLOTS[s] if s >= 0 else None for s in self._jam_slot]
        self.book = FaultBook(KIND, ids, FAULTS, fault, onset, component)
        self._low, self._high = channel_bounds(KIND, CHANNELS)

    def _spec(self, i: int, device_id: str, tz: str) -> DeviceSpec:
        slots = [
            {
                "slot": SLOTS[s],
                "capacity": int(self.capacity[i, s]),
                "product": PRODUCTS[self.product[i, s]][0],
                "price_cents": int(_PRICE_CENTS[self.product[i, s]]),
            }
            for s in np.flatnonzero(self.has_slot[i])
        ]
        route = f"r{int(self.route_day[i]) + 1}"
        return DeviceSpec(device_id, KIND, MODEL, {"slots": slots, "route": route}, tz)

    def labels(self) -> list[FaultLabel]:
        return self.book.labels()

    def _visits(self, begin_ms: int, ts_ms: int) -> IntArray:
        """UTC time of each machine's restock visit inside ``(begin_ms, ts_ms]``, else -1."""
        offset_ms = (self._offset_h * HOUR_MS).astype(np.int64)
        today = local_day(ts_ms, self._offset_h)
        visit_ms = np.full(today.shape, -1, dtype=np.int64)
        for back in (0, 1):  # an interval of up to a day may straddle local midnight
            day = today - back
            at_ms = day * DAY_MS + self._visit_ms_of_day - offset_ms
            hit = (weekday(day) == self.route_day) & (at_ms > begin_ms) & (at_ms <= ts_ms)
            visit_ms = np.where(hit, at_ms, visit_ms)
        return visit_ms

    def step(self, ts_ms: int, dt_s: float) -> StepOutput:
        rng = self._rng
        n = self.stock.shape[0]
        begin_ms = self._clock.advance(ts_ms, dt_s)
        hour = local_hour(ts_ms, self._offset_h).astype(np.int64)
        day = weekday(local_day(ts_ms, self._offset_h))
        weight = _HOUR_WEIGHT_NORM[self.location, hour] * _WEEK_WEIGHT[self.location, day]
        attempts = rng.poisson(self.rate_per_day * (weight * dt_s / 86_400.0)[:, None])

        onset_now = self.book.active(ts_ms) & (self._jam_slot >= 0)
        self.jammed[np.flatnonzero(onset_now), self._jam_slot[onset_now]] = True
        # A sold-out slot refuses the selection: no vend, no failure.
        offered = np.where(self.stock > 0, attempts, 0)
        fails = np.where(self.jammed, offered, 0)
        vends = np.minimum(offered - fails, self.stock)
        before = self.stock
        self.stock = self.stock - vends
        emptied = (before > 0) & (self.stock == 0)

        visit_ms = self._visits(begin_ms, ts_ms)
        visited = visit_ms >= 0
        refilled = visited[:, None] & self.has_slot
        self.stock = np.where(refilled, self.capacity, self.stock)
        door_s = np.where(visited, self._visit_door_s, 0.0)

        ambient_c = (
            21.0 + 0.15 * (self._weather.outdoor_c(ts_ms, dt_s) - 12.0) + self._room_offset_c
        )
        age_ms = np.maximum(ts_ms - self.book.onset_ms, 0)
        failing = self.book.active(ts_ms) & self.book.has("cooling_failure")
        health = np.where(failing, np.clip(1.0 - age_ms / self._cooling_fade_ms, 0.0, 1.0), 1.0)
        load_w = _UA_W_PER_K * (ambient_c - self.cabinet_c) + _DOOR_HEAT_W * door_s / dt_s
        capacity_w = _CAPACITY_W * health
        # A failing refrigeration circuit still runs its compressor; only capacity is gone.
        cooled = cool(
            self.cabinet_c,
            np.full(n, SETPOINT_C),
            load_w,
            np.maximum(capacity_w, 1e-6),
            np.full(n, _HEAT_CAPACITY_J_PER_K),
            np.ones(n),
            dt_s,
        )
        self.cabinet_c = cooled.cabinet_c
        band = np.where(cooled.holding, rng.uniform(-0.7, 0.7, size=n), 0.0)
        cabinet_c = self.cabinet_c + band + rng.normal(0.0, 0.05, size=n)

        slot_values = np.stack((self.stock, vends, fails), axis=2).astype(np.float64)
        slot_values[~self.has_slot] = np.nan
        values = np.concatenate(
            (
                np.column_stack((cabinet_c, ambient_c, cooled.calls, np.round(door_s, 1))),
                slot_values.reshape(n, -1),
            ),
            axis=1,
        )
        clip_to(values, self._low, self._high)
        self._track_failures(ts_ms, cabinet_c, fails)
        events = self._events(begin_ms, ts_ms, vends, fails, visit_ms, refilled)
        self._label_stockouts(emptied, ts_ms)
        self.book.now_ms = ts_ms
        return StepOutput(KIND, ts_ms, CHANNELS, values, tuple(events))

    def _label_stockouts(self, emptied: BoolArray, ts_ms: int) -> None:
        for i, s in np.argwhere(emptied).tolist():
            self.book.add_episode(i, "stockout", ts_ms, ts_ms, SLOTS[s])

    def _track_failures(self, ts_ms: int, cabinet_c: FloatArray, fails: IntArray) -> None:
        above = cabinet_c > LIMIT_C
        starts = above & (self._above_since_ms < 0)
        self._above_since_ms = np.where(above, np.where(starts, ts_ms, self._above_since_ms), -1)
        warm_too_long = above & (ts_ms - self._above_since_ms >= LIMIT_MS)
        self.book.mark_failed(warm_too_long & self.book.has("cooling_failure"), ts_ms)
        self.book.mark_failed(fails.sum(axis=1) > 0, ts_ms)

    def _events(
        self,
        begin_ms: int,
        ts_ms: int,
        vends: IntArray,
        fails: IntArray,
        visit_ms: IntArray,
        refilled: BoolArray,
    ) -> list[tuple[int, dict[str, object]]]:
        """One aggregated vend event per slot and outcome, and one restock event per slot."""
        events: list[tuple[int, dict[str, object]]] = []
        span_ms = ts_ms - begin_ms
        for counts, ok in ((vends, True), (fails, False)):
            where = np.argwhere(counts > 0)
            at_ms = ts_ms - self._rng.integers(0, span_ms, size=where.shape[0])
            for (i, s), t in zip(where.tolist(), at_ms.tolist(), strict=True):
                vend = {"ts_ms": t, "type": "vend", "slot": SLOTS[s], "qty": int(counts[i, s])}
                events.append(
                    (i, {**vend, "price_cents": int(_PRICE_CENTS[self.product[i, s]]), "ok": ok})
                )
        for i, s in np.argwhere(refilled).tolist():
            restock = {"ts_ms": int(visit_ms[i]), "type": "restock", "slot": SLOTS[s]}
            events.append((i, {**restock, "level": int(self.capacity[i, s])}))
        return events
