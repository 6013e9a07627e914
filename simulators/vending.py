"""Vending machines: calibrated intermittent demand per slot, restock routes, a cooled cabinet."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from firmware_specs import load_profile
from simulators.climate import (
    DAY_MS,
    HOUR_MS,
    SITES,
    WEEKDAYS,
    Weather,
    local_day,
    local_hour,
    site_offsets_h,
    weekday,
)
from simulators.clock import StepClock
from simulators.cooling import thermostat
from simulators.ids import device_ids
from simulators.labels import FaultBook, assign_faults, fault_weights
from simulators.ranges import channel_bounds, clip_to
from simulators.types import BoolArray, DeviceSpec, FaultLabel, FloatArray, IntArray, StepOutput
from simulators.vending_catalogue import Catalogue, load_calibration

KIND: Final = "vending"
MODEL: Final = "VendMax 30"
# Every machine uses the same slot grid; a machine with fewer slots reports NaN for the others.
SLOT_ROWS: Final = "ABCDE"
SLOT_COLS: Final = 6
SLOTS: Final = tuple(f"{row}{col}" for row in SLOT_ROWS for col in range(1, SLOT_COLS + 1))
BASE_CHANNELS: Final = ("cabinet_c", "ambient_c", "compressor_on", "door_open_s")
# The card reader's own counts: payments sent for authorisation and payments declined. A
# declined card is not a vend: the machine never tried to deliver, so it is not a slot's fail.
PAYMENT_CHANNELS: Final = ("card_auths", "card_declines")
CHANNELS: Final = (
    BASE_CHANNELS
    + PAYMENT_CHANNELS
    + tuple(f"slot.{slot}.{what}" for slot in SLOTS for what in ("stock", "vends", "fails"))
)
FAULTS: Final = ("jammed_coil", "payment_reader", "cooling_failure")
DEFAULT_WEIGHTS: Final = (0.45, 0.25, 0.3)
ROUTES: Final = ("weekly", "none")
SETPOINT_C: Final = 4.0
_FAILURE: Final = load_profile(KIND)["failures"]["warm_cabinet"]
LIMIT_C: Final = float(_FAILURE["limit_c"])
LIMIT_MS: Final = int(_FAILURE["limit_minutes"]) * 60_000

CALIBRATION: Final = load_calibration()
LOCATIONS: Final = ("office", "retail", "public")
_LOCATION_SHARE: Final = np.array([0.4, 0.4, 0.2])  # machines per kind in the sales data
# Hour of day is not in the sales data: these shapes are assumptions (office hours with a
# lunch peak; shopping-centre opening hours with an afternoon peak; library opening hours).
_HOUR_WEIGHT: Final = np.array(
    [
        [0, 0, 0, 0, 0, 0, 0.1, 0.5, 1.5, 2.0, 2.2, 2.0, 2.8, 2.6, 2.2, 2.4, 2.0, 1.2, 0.4, 0.1,
         0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0.1, 0.3, 0.8, 1.4, 1.8, 2.2, 2.2, 2.0, 2.1, 2.3, 2.4, 2.3, 2.0,
         1.5, 0.6, 0.1, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0.2, 1.0, 1.4, 1.5, 1.8, 1.7, 1.6, 1.8, 2.0, 1.8, 1.3, 0.9,
         0.4, 0, 0, 0],
    ]
)  # fmt: skip
_HOUR_WEIGHT_NORM: Final = _HOUR_WEIGHT / _HOUR_WEIGHT.mean(axis=1, keepdims=True)
# Fitted on the real sales: items per machine-day by weekday, mean 1 (Monday first).
WEEKDAY_PROFILE: Final = np.array([CALIBRATION["weekday_profile"][k] for k in LOCATIONS])
_RATE_LOG_MEAN: Final = float(CALIBRATION["slot_rate_per_day"]["log_mean"])
_RATE_LOG_SD: Final = float(CALIBRATION["slot_rate_per_day"]["log_sd"])
# Negative binomial daily counts: a gamma day factor of shape 1/overdispersion, mean 1.
_DAY_SHAPE: Final = 1.0 / max(float(CALIBRATION["overdispersion"]), 1e-3)
CARD_SHARE: Final = float(CALIBRATION["card_share"])
_CASH_RETRY: Final = 0.3  # declined card customers who pay cash instead
# A working reader declines some cards too (insufficient funds, expired or blocked cards). The
# sales data lists processed sales only, so this per-machine share is an assumption.
HEALTHY_DECLINES: Final = (0.01, 0.05)

_UA_W_PER_K: Final = 2.0
_HEAT_CAPACITY_J_PER_K: Final = 200e3
_CAPACITY_W: Final = 250.0
_BAND_K: Final = 0.7
_DOOR_HEAT_W: Final = 400.0  # service door open during a restock visit
Events = list[tuple[int, dict[str, object]]]


class VendingFleet:
    """``n`` vending machines with 10–30 slots each.

    Every machine reports the same channels: the slot grid A1..E6 (rows A–E, columns 1–6), of
    which a machine fills the first 2–5 rows and 5–6 columns; slots it lacks read NaN. Its
    birth attributes list only the slots it has (capacity, product, price).

    Demand per slot is an intermittent count process calibrated on real sales
    (``simulators/vending_calibration.json``, see ``docs/simulators.md``): a slot's mean rate is
    lognormal across slots; each local day a gamma factor makes daily counts negative binomial
    with the fitted overdispersion; within the week the rate follows the fitted weekday profile of
    the machine's location kind and within the day an assumed hour profile. ``demand_scale``
    multiplies every rate (1 = the calibrated sites). A slot at zero stock takes no selections.

    A third of customers pay by card (fitted). The reader reports the card payments it sent for
    authorisation (``card_auths``) and those declined (``card_declines``); a working reader
    declines 1–5 % of cards (per machine, assumed). 30 % of declined customers pay cash instead,
    the rest walk away without a vend; a declined card is never a slot's failed vend.

    Route policy ``"weekly"``: each machine is visited once a week on its route day and every
    slot refilled to capacity (``restock`` events, door open for the visit); ``"none"``: only
    :meth:`restock` refills. Each stock-out is a ``stockout`` label with the slot as component,
    ``failure_ms == onset_ms`` (the sample the slot hit zero) and ``end_ms`` the refill.

    Planned faults: ``jammed_coil`` (every vend at one slot fails from the onset while its stock
    stays; failure at the first failed vend), ``payment_reader`` (card payments are declined
    with a probability rising to 1 over 2–7 days; 30 % of those customers pay cash instead;
    failure when the reader is dead) and ``cooling_failure`` (cooling capacity fades to nothing
    over 1–4 days; failure when the true cabinet temperature stays above the profile's limit for
    its limit minutes).
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
        *,
        fault_weights: Mapping[str, float] | None = None,
        demand_scale: float = 1.0,
        route: str = "weekly",
    ) -> None:
        weights = _fault_mix(fault_weights)
        if not (np.isfinite(demand_scale) and demand_scale > 0):
            raise ValueError(f"demand_scale must be a positive number, got {demand_scale}")
        if route not in ROUTES:
            raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
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
        shape = self.has_slot.shape
        self.capacity = np.where(self.has_slot, rng.integers(6, 15, size=shape, endpoint=True), 0)
        self.catalogue = Catalogue(CALIBRATION)
        self.product, self.price_cents = self.catalogue.draw(shape, rng)
        slot_rate = np.exp(rng.normal(_RATE_LOG_MEAN, _RATE_LOG_SD, size=shape))
        self.rate_per_day = np.where(self.has_slot, demand_scale * slot_rate, 0.0)
        self._day_factor = np.ones(shape)
        self._day = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.route_day = rng.integers(0, 5, size=n) if route == "weekly" else np.full(n, -1)
        self._visit_ms_of_day = rng.integers(8 * HOUR_MS, 14 * HOUR_MS, size=n)
        self._visit_door_s = rng.uniform(300.0, 900.0, size=n)
        days_since_visit = np.mod(weekday(local_day(start_ms, self._offset_h)) - self.route_day, 7)
        sold = rng.poisson(self.rate_per_day * days_since_visit[:, None])
        self.stock = np.where(self.has_slot, np.clip(self.capacity - sold, 1, None), 0).astype(
            np.int64
        )
        self._last_stock = self.stock.copy()
        self._room_offset_c = rng.normal(0.0, 1.0, size=n)
        self.cabinet_c = SETPOINT_C + rng.uniform(-_BAND_K, _BAND_K, size=n)
        self._relay_on = np.zeros(n, dtype=np.bool_)
        self._cooling_fade_ms = rng.uniform(1.0, 4.0, size=n) * DAY_MS
        self._reader_fade_ms = rng.uniform(2.0, 7.0, size=n) * DAY_MS
        # Card declines draw from a stream of their own (spawning leaves ``rng`` where it was),
        # so the machines, their faults and their onsets are those the seed always gave.
        self._card_rng = rng.spawn(1)[0]
        self._healthy_decline_p = self._card_rng.uniform(*HEALTHY_DECLINES, size=n)
        self._above_since_ms = np.full(n, -1, dtype=np.int64)
        self.devices = tuple(self._spec(i, ids[i], SITES[site[i]].tz) for i in range(n))
        fault = assign_faults(n, fault_share, weights, rng)
        latest = max(2 * DAY_MS, int(0.8 * horizon_ms))
        onset = start_ms + rng.integers(HOUR_MS, latest, size=n, endpoint=True)
        # The jam hits a random slot the machine has.
        jam_slot = np.argmax(rng.random(shape) * self.has_slot, axis=1)
        self.jammed = np.zeros(shape, dtype=np.bool_)
        self._jam_slot = np.where(fault == FAULTS.index("jammed_coil"), jam_slot, -1)
        component = [
            SLOTS[s] if s >= 0 else ("payment" if f == FAULTS.index("payment_reader") else None)
            for s, f in zip(self._jam_slot.tolist(), fault.tolist(), strict=True)
        ]
        self.book = FaultBook(KIND, ids, FAULTS, fault, onset, component)
        self._open_stockouts: dict[tuple[int, int], int] = {}
        self._pending_restocks: Events = []
        self.visits: list[tuple[int, int]] = []  # (machine, visit time), route and requested
        self._low, self._high = channel_bounds(KIND, CHANNELS)

    def _spec(self, i: int, device_id: str, tz: str) -> DeviceSpec:
        slots = [
            {
                "slot": SLOTS[s],
                "capacity": int(self.capacity[i, s]),
                "product": self.catalogue.name(int(self.product[i, s])),
                "price_cents": int(self.price_cents[i, s]),
            }
            for s in np.flatnonzero(self.has_slot[i])
        ]
        route = f"r{int(self.route_day[i]) + 1}" if self.route_day[i] >= 0 else "on-demand"
        return DeviceSpec(device_id, KIND, MODEL, {"slots": slots, "route": route}, tz)

    def labels(self) -> list[FaultLabel]:
        return self.book.labels()

    def planned_visits(self, i: int) -> dict[str, object] | None:
        """Machine ``i``'s weekly route visit as a birth message's ``attributes.visits`` (its
        route day, the hour it starts in, its site's time zone); None off the weekly route.

        The simulated sites keep standard time all year, so where the zone has summer time
        the visit comes an hour after the hour given in summer.
        """
        day = int(self.route_day[i])
        if day < 0:
            return None
        hour = int(self._visit_ms_of_day[i] // HOUR_MS)
        return {"days": [WEEKDAYS[day]], "hour": hour, "tz": self.devices[i].tz}

    def restock(self, machines: Sequence[int] | IntArray, at_ms: int) -> None:
        """Refill every slot of ``machines`` to capacity at ``at_ms``, a visit off the route.

        ``at_ms`` must lie after the last sample; the restock events come with the next step.
        """
        last = self._clock.last_ms
        if last is not None and at_ms <= last:
            raise ValueError(f"a restock at {at_ms} must come after the last sample {last}")
        for i in sorted({int(m) for m in machines}):
            self._refill(i, at_ms)

    def _refill(self, i: int, at_ms: int) -> None:
        for s in np.flatnonzero(self.has_slot[i]).tolist():
            self._close_stockout(i, s, at_ms)
            restock = {"ts_ms": at_ms, "type": "restock", "slot": SLOTS[s]}
            self._pending_restocks.append((i, {**restock, "level": int(self.capacity[i, s])}))
        self.stock[i] = np.where(self.has_slot[i], self.capacity[i], 0)
        self.visits.append((i, at_ms))

    def _refill_visited(self, visit_ms: IntArray) -> None:
        for i in np.flatnonzero(visit_ms >= 0).tolist():
            self._refill(i, int(visit_ms[i]))

    def _close_stockout(self, i: int, s: int, at_ms: int) -> None:
        k = self._open_stockouts.pop((i, s), None)
        if k is not None:
            episodes = self.book.episodes
            # Emptied and refilled within one sample: the stock-out lasted no time at all.
            end_ms = max(at_ms, episodes[k].onset_ms)
            episodes[k] = dataclasses.replace(episodes[k], end_ms=end_ms)

    def _route_visits(self, begin_ms: int, ts_ms: int) -> IntArray:
        """UTC time of each machine's route visit inside ``(begin_ms, ts_ms]``, else -1."""
        offset_ms = (self._offset_h * HOUR_MS).astype(np.int64)
        today = local_day(ts_ms, self._offset_h)
        visit_ms = np.full(today.shape, -1, dtype=np.int64)
        for back in (0, 1):  # an interval of up to a day may straddle local midnight
            day = today - back
            at_ms = day * DAY_MS + self._visit_ms_of_day - offset_ms
            hit = (weekday(day) == self.route_day) & (at_ms > begin_ms) & (at_ms <= ts_ms)
            visit_ms = np.where(hit, at_ms, visit_ms)
        return visit_ms

    def _demand(self, ts_ms: int, dt_s: float) -> IntArray:
        """Selections per slot in the sample: negative binomial per day, shaped by hour."""
        rng = self._rng
        day = local_day(ts_ms, self._offset_h)
        new_day = np.flatnonzero(day != self._day)
        if new_day.size:
            self._day_factor[new_day] = rng.gamma(
                _DAY_SHAPE, 1.0 / _DAY_SHAPE, size=(new_day.size, len(SLOTS))
            )
            self._day = day
        hour = local_hour(ts_ms, self._offset_h).astype(np.int64)
        weight = (
            _HOUR_WEIGHT_NORM[self.location, hour] * WEEKDAY_PROFILE[self.location, weekday(day)]
        )
        lam = self.rate_per_day * self._day_factor * (weight * dt_s / 86_400.0)[:, None]
        attempts: IntArray = rng.poisson(lam)
        return attempts

    def step(self, ts_ms: int, dt_s: float) -> StepOutput:
        rng = self._rng
        n = self.stock.shape[0]
        begin_ms = self._clock.advance(ts_ms, dt_s)
        self._notice_outside_refills(begin_ms)
        attempts = self._demand(ts_ms, dt_s)

        active = self.book.active(ts_ms)
        onset_now = active & (self._jam_slot >= 0)
        self.jammed[np.flatnonzero(onset_now), self._jam_slot[onset_now]] = True
        # A sold-out slot refuses the selection: no vend, no failure.
        offered = np.where(self.stock > 0, attempts, 0)
        jam_fails = np.where(self.jammed, offered, 0)
        paying = offered - jam_fails
        decline_p = self._decline_probability(ts_ms, active)
        card = rng.binomial(paying, CARD_SHARE)
        declined = self._card_rng.binomial(
            card, 1.0 - (1.0 - self._healthy_decline_p[:, None]) * (1.0 - decline_p[:, None])
        )
        walked_away = declined - self._card_rng.binomial(declined, _CASH_RETRY)
        fails = jam_fails  # a declined customer who walks away leaves no failed vend
        vends = np.minimum(paying - walked_away, self.stock)
        before = self.stock
        self.stock = self.stock - vends
        emptied = (before > 0) & (self.stock == 0)
        self._label_stockouts(emptied, ts_ms)

        visit_ms = self._route_visits(begin_ms, ts_ms)
        visited = visit_ms >= 0
        self._refill_visited(visit_ms)
        door_s = np.where(visited, self._visit_door_s, 0.0)
        self._last_stock = self.stock.copy()

        ambient_c = (
            21.0 + 0.15 * (self._weather.outdoor_c(ts_ms, dt_s) - 12.0) + self._room_offset_c
        )
        age_ms = np.maximum(ts_ms - self.book.onset_ms, 0)
        failing = active & self.book.has("cooling_failure")
        health = np.where(failing, np.clip(1.0 - age_ms / self._cooling_fade_ms, 0.0, 1.0), 1.0)
        load_w = _UA_W_PER_K * (ambient_c - self.cabinet_c) + _DOOR_HEAT_W * door_s / dt_s
        # A failing refrigeration circuit still runs its compressor; only capacity is gone.
        cooled = thermostat(
            self.cabinet_c,
            self._relay_on,
            np.full(n, SETPOINT_C + _BAND_K),
            np.full(n, SETPOINT_C - _BAND_K),
            load_w,
            _CAPACITY_W * health,
            np.full(n, _HEAT_CAPACITY_J_PER_K),
            np.ones(n),
            dt_s,
        )
        self.cabinet_c = cooled.cabinet_c
        self._relay_on = cooled.on
        cabinet_c = self.cabinet_c + rng.normal(0.0, 0.05, size=n)

        slot_values = np.stack((self.stock, vends, fails), axis=2).astype(np.float64)
        slot_values[~self.has_slot] = np.nan
        values = np.concatenate(
            (
                np.column_stack(
                    (
                        cabinet_c,
                        ambient_c,
                        cooled.calls,
                        np.round(door_s, 1),
                        card.sum(axis=1),
                        declined.sum(axis=1),
                    )
                ),
                slot_values.reshape(n, -1),
            ),
            axis=1,
        )
        clip_to(values, self._low, self._high)
        events = self._track_failures(ts_ms, jam_fails, decline_p)
        events += self._vend_events(begin_ms, ts_ms, vends, fails)
        events += self._pending_restocks
        self._pending_restocks = []
        self.book.now_ms = ts_ms
        return StepOutput(KIND, ts_ms, CHANNELS, values, tuple(events))

    def _decline_probability(self, ts_ms: int, active: BoolArray) -> FloatArray:
        age_ms = np.maximum(ts_ms - self.book.onset_ms, 0)
        broken = active & self.book.has("payment_reader")
        p: FloatArray = np.where(broken, np.clip(age_ms / self._reader_fade_ms, 0.0, 1.0), 0.0)
        return p

    def _notice_outside_refills(self, begin_ms: int) -> None:
        """Close stock-outs of slots someone refilled by writing :attr:`stock` directly."""
        if not self._open_stockouts:
            return
        refilled = self.stock > self._last_stock
        for i, s in [key for key in self._open_stockouts if refilled[key]]:
            self._close_stockout(i, s, begin_ms)

    def _label_stockouts(self, emptied: BoolArray, ts_ms: int) -> None:
        for i, s in np.argwhere(emptied).tolist():
            self._open_stockouts[(i, s)] = len(self.book.episodes)
            self.book.add_episode(i, "stockout", ts_ms, ts_ms, SLOTS[s])

    def _track_failures(self, ts_ms: int, jam_fails: IntArray, decline_p: FloatArray) -> Events:
        above = self.cabinet_c > LIMIT_C
        starts = above & (self._above_since_ms < 0)
        self._above_since_ms = np.where(above, np.where(starts, ts_ms, self._above_since_ms), -1)
        warm_too_long = above & (ts_ms - self._above_since_ms >= LIMIT_MS)
        self.book.mark_failed(warm_too_long & self.book.has("cooling_failure"), ts_ms)
        self.book.mark_failed(jam_fails.sum(axis=1) > 0, ts_ms)
        dead = self.book.mark_failed((decline_p >= 1.0) & self.book.has("payment_reader"), ts_ms)
        events: Events = []
        for i in np.flatnonzero(dead).tolist():
            alarm = {"ts_ms": ts_ms, "type": "fault", "code": "P21", "severity": "critical"}
            events.append((i, {**alarm, "detail": "card reader not responding"}))
        return events

    def _vend_events(self, begin_ms: int, ts_ms: int, vends: IntArray, fails: IntArray) -> Events:
        """One aggregated vend event per slot and outcome in the sample."""
        events: Events = []
        span_ms = ts_ms - begin_ms
        for counts, ok in ((vends, True), (fails, False)):
            where = np.argwhere(counts > 0)
            at_ms = ts_ms - self._rng.integers(0, span_ms, size=where.shape[0])
            for (i, s), t in zip(where.tolist(), at_ms.tolist(), strict=True):
                vend = {"ts_ms": t, "type": "vend", "slot": SLOTS[s], "qty": int(counts[i, s])}
                events.append((i, {**vend, "price_cents": int(self.price_cents[i, s]), "ok": ok}))
        return events


def _fault_mix(weights: Mapping[str, float] | None) -> tuple[float, ...]:
    return fault_weights(FAULTS, weights, DEFAULT_WEIGHTS)
