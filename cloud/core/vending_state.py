"""Vending machines' state: slot stock and demand, machine rhythm, and one reading's fold."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from cloud.core.demand import (
    HOURS_PER_WEEK,
    hour_of_week,
    profile_factor,
    seasonal_factor,
)
from cloud.core.kernels import (
    F32,
    BoolArray,
    Float32Array,
    FloatArray,
    IntArray,
    ewm_alpha,
    ewm_update,
)
from cloud.core.registry import Registry, grow

RESTOCK_FAULT: Final = "vending.restock"
JAM_FAULT: Final = "vending.jammed_coil"
COOLING_FAULT: Final = "vending.cooling"
SLOT_KEY: Final = 1024  # unit key of a slot: device * SLOT_KEY + slot column
TAU_LEVEL_S: Final = 7 * 86400.0  # a slot's demand level forgets over a week
TAU_HOD_H: Final = 28.0  # hours of the same hour-of-day bucket (four weeks of that hour)
TAU_DOW_H: Final = 96.0  # hours of the same weekday (four weeks of that day)
TAU_CABINET_S: Final = 1800.0
# Stock-outs are weighed within this horizon (it reaches over a weekend and the delay of a
# visit); the order carries the early end of the predicted sell-out, so the route can come as
# late as that allows (ordering early is free).
RESTOCK_HORIZON_H: Final = 96
# The sell-out date a visit must beat: the time by which the slot has emptied with this
# probability. Lower is safer but spends visits earlier, and the route has no more visits than
# the weekly schedule it replaces: on the realistic backtest 0.2 prevented the most stock-outs
# of 0.15, 0.2 and 0.3 (docs/backtest.md).
STOCKOUT_RISK: Final = 0.2
# Order a visit when it prevents this many stock-outs within the horizon: the sum over the
# machine's slots of the chance to sell out from the stock they have, less the chance to sell
# out again once refilled.
ORDER_VALUE: Final = 0.3
# A slot that sells out within the horizon with this probability even when refilled now cannot
# be saved by one visit: it does not set the date a visit must beat.
REFILL_SAVES: Final = 0.5
# Bursty demand: a slot's daily count is Poisson with a gamma-distributed rate of this shape
# (negative binomial; smaller = burstier). Public vending sales put it near 1.
DEMAND_SHAPE_PER_DAY: Final = 1.0
FLEET_PRIOR_H: Final = 96.0  # pseudo-hours of the fleet's mean in each machine's mean
VISIT_DELAY_H: Final = 4  # the earliest a driver arrives; the pick list covers these sales
FORECAST_HOURS: Final = 2 * HOURS_PER_WEEK
# Failed vends in a row at one slot, with stock left and no other slot failing: a jam. A
# payment reader that starts to fail can decline two customers in a row at one slow slot too;
# a jam fails every later vend at its slot, a fading reader soon declines at other slots. So two
# are a jam once a third fails, or once the rest of the machine has sold this many items since
# the first without a failure (counted in sales, not hours: a quiet machine gathers the evidence
# slowly).
JAM_AFTER_FAILS: Final = 2.0
JAM_CONFIRM_FAILS: Final = 3.0
JAM_CONFIRM_SALES: Final = 12.0
TAU_FAILS_S: Final = 7 * 86400.0  # the window in which failures at other slots are looked for
# Expected sales without a single one that mean a silent jam. Poisson would say e^-12 ≈ 6e-6
# for 12, but vending demand comes in bursts (a group buys together, then nobody for hours), so
# silences are longer than Poisson's; 24 keeps healthy slots quiet in the backtests.
JAM_EXPECTED_SALES: Final = 24.0
PAYMENT_FAULT: Final = "vending.payment_reader"
# A reader that reports its authorisations and declines: a one-sided CUSUM of the decline log
# likelihood ratio, a failing reader (half the cards declined) against a working one (15 %, well
# above what issuers decline), alarms at a ratio of 100 to 1. Four or five declines with few
# approvals between them reach it; a working reader's approvals keep it near zero.
DECLINE_OK: Final = 0.15
DECLINE_BAD: Final = 0.5
DECLINE_ALARM: Final = float(np.log(100.0))
DECLINE_LLR: Final = float(np.log(DECLINE_BAD / DECLINE_OK))  # per declined card
APPROVE_LLR: Final = float(np.log((1 - DECLINE_BAD) / (1 - DECLINE_OK)))  # per approved one
TAU_MACHINE_S: Final = 2 * 86400.0  # the window of a machine's sales against its expectation
MACHINE_P_VALUE: Final = 1e-6  # so few sales for what was expected happen this rarely by chance
MACHINE_RATIO: Final = 0.5  # ...and the machine sells less than half of what it should
SELLING_RATIO: Final = 0.6  # a machine selling at least this share can have a silent jam
FAILED_SLOT: Final = 0.5  # a slot with this many recent failed vends is failing
PAYMENT_SLOTS: Final = 2  # failed vends at this many slots at once point to the machine
PAYMENT_FAILS: Final = 3.0  # ...once there are this many of them
MIN_SALES_FOR_LEVEL: Final = 10.0  # a slot's own sales before its silence can mean a jam
LEVEL_PRIOR_H: Final = 48.0  # pseudo-hours of the machine's mean in each slot's level
HOD_PRIOR_H: Final = 6.0  # pseudo-hours of the machine's mean in each hour-of-day bucket
DOW_PRIOR_H: Final = 24.0  # and in each weekday bucket
WARM_CABINET_C: Final = 7.0  # the profile's cabinet limit
WARM_LIMIT_MS: Final = 60 * 60_000.0  # the profile's minutes above the limit that are a failure
WARM_AFTER_MS: Final = 30 * 60_000.0  # half of them: act before it counts
SLOT_CHANNEL: Final = re.compile(r"^slot\.([A-J][0-9]{1,2})\.(stock|vends|fails)$")


@dataclass(frozen=True, slots=True)
class VendingState:
    registry: Registry
    slots: Registry  # slot name → column
    last_ts_ms: IntArray  # (n_devices,)
    hod_sales: Float32Array  # (n_devices, 24) machine sales by UTC hour of day, forgetting
    hod_hours: Float32Array  # (n_devices, 24) hours observed in each of those buckets
    dow_sales: Float32Array  # (n_devices, 7) the same by UTC weekday
    dow_hours: Float32Array
    cabinet_c: Float32Array  # (n_devices,)
    warm_ms: Float32Array
    stock: Float32Array  # (n_devices, n_slots); NaN = slot absent
    capacity: Float32Array  # configured, or the most stock ever seen in the slot
    sales_w: Float32Array  # forgetting sum of sales while stocked
    hours_w: Float32Array  # forgetting sum of profile-weighted hours while stocked
    jam_fails: Float32Array  # failed vends since the slot last served one
    jam_sold: Float32Array  # the machine's sales since the first of those (0 without any)
    silent: Float32Array  # expected sales since the slot last sold, while stocked
    fail_w: Float32Array  # failed vends over the last days, forgetting
    machine_sold: Float32Array  # (n_devices,) sales over the last days, forgetting
    machine_expected: Float32Array  # (n_devices,) what the levels expected over them
    card_auths_w: Float32Array  # (n_devices,) card authorisations, forgetting; NaN: no reader seen
    card_declines_w: Float32Array  # (n_devices,) of those declined, forgetting
    decline_cusum: Float32Array  # (n_devices,) evidence of a failing reader (see DECLINE_ALARM)
    visit_mask: BoolArray  # (n_devices, 168) planned visits by local hour of the week (Monday 0:00)
    visit_zone: IntArray  # (n_devices,) index of the machine's time zone in ``zones``; -1: none
    zones: tuple[str, ...] = ()  # IANA time zones of the planned visits

    @classmethod
    def empty(cls) -> VendingState:
        i = np.zeros(0, dtype=np.int64)
        f = np.zeros(0, dtype=F32)
        grids: dict[str, Any] = {
            g: np.zeros((0, 0), F32)
            for g in ("stock", "capacity", "sales_w", "hours_w", "jam_fails", "jam_sold",
                      "silent", "fail_w")
        }  # fmt: skip
        return cls(
            Registry(), Registry(), i, np.zeros((0, 24), F32), np.zeros((0, 24), F32),
            np.zeros((0, 7), F32), np.zeros((0, 7), F32), cabinet_c=f, warm_ms=f,
            machine_sold=f, machine_expected=f, card_auths_w=f, card_declines_w=f,
            decline_cusum=f, visit_mask=np.zeros((0, HOURS_PER_WEEK), dtype=bool),
            visit_zone=i, **grids,
        )  # fmt: skip

    def grown(self, n_dev: int, n_slots: int) -> VendingState:
        def grid(a: Float32Array, fill: float) -> Float32Array:
            a = grow(a, n_dev, fill)
            pad = n_slots - a.shape[1]
            if pad > 0:
                a = np.concatenate([a, np.full((a.shape[0], pad), fill, dtype=a.dtype)], axis=1)
            return a

        return VendingState(
            registry=self.registry,
            slots=self.slots,
            last_ts_ms=grow(self.last_ts_ms, n_dev, -1),
            hod_sales=grow(self.hod_sales, n_dev, 0.0),
            hod_hours=grow(self.hod_hours, n_dev, 0.0),
            dow_sales=grow(self.dow_sales, n_dev, 0.0),
            dow_hours=grow(self.dow_hours, n_dev, 0.0),
            cabinet_c=grow(self.cabinet_c, n_dev, np.nan),
            warm_ms=grow(self.warm_ms, n_dev, 0.0),
            stock=grid(self.stock, np.nan),
            capacity=grid(self.capacity, 0.0),
            sales_w=grid(self.sales_w, 0.0),
            hours_w=grid(self.hours_w, 0.0),
            jam_fails=grid(self.jam_fails, 0.0),
            jam_sold=grid(self.jam_sold, 0.0),
            silent=grid(self.silent, 0.0),
            fail_w=grid(self.fail_w, 0.0),
            machine_sold=grow(self.machine_sold, n_dev, 0.0),
            machine_expected=grow(self.machine_expected, n_dev, 0.0),
            card_auths_w=grow(self.card_auths_w, n_dev, np.nan),
            card_declines_w=grow(self.card_declines_w, n_dev, 0.0),
            decline_cusum=grow(self.decline_cusum, n_dev, 0.0),
            visit_mask=grow(self.visit_mask, n_dev, False),
            visit_zone=grow(self.visit_zone, n_dev, -1),
            zones=self.zones,
        )

    def copy(self) -> VendingState:
        arrays = {
            f.name: getattr(self, f.name).copy()
            for f in fields(self)
            if f.name not in ("registry", "slots", "zones")
        }
        return replace(self, **arrays)

    @property
    def state_bytes(self) -> int:
        return sum(
            getattr(self, f.name).nbytes
            for f in fields(self)
            if f.name not in ("registry", "slots", "zones")
        )

    def level_per_h(self) -> FloatArray:
        """Each slot's demand per average hour.

        Its own sales over its own stocked hours, shrunk towards the machine's mean per slot
        by :data:`LEVEL_PRIOR_H` pseudo-hours: a slot that has sold little is assumed to sell
        like its neighbours until its own record says otherwise. The machine's mean is in turn
        shrunk towards the fleet's mean per slot by :data:`FLEET_PRIOR_H` pseudo-hours, so a
        machine that has just joined starts from what the fleet sells. NaN before any sale in
        the fleet.
        """
        sales = self.sales_w.astype(np.float64)
        hours = self.hours_w.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            fleet = sales.sum() / hours.sum()
            m_sales = sales.sum(axis=1, keepdims=True)
            m_hours = hours.sum(axis=1, keepdims=True)
            n_slots = np.maximum((~np.isnan(self.stock)).sum(axis=1, keepdims=True), 1)
            # The machine's record counts as one slot's; the prior as FLEET_PRIOR_H of its hours.
            prior = (m_sales / n_slots + FLEET_PRIOR_H * fleet) / (
                m_hours / n_slots + FLEET_PRIOR_H
            )
            level: FloatArray = (sales + LEVEL_PRIOR_H * prior) / (hours + LEVEL_PRIOR_H)
        return np.where((prior > 0) & ~np.isnan(self.stock), level, np.nan)

    def factor(self) -> FloatArray:
        """Seasonal demand multiplier ``[device, hour of week]``."""
        return seasonal_factor(
            profile_factor(self.hod_sales, self.hod_hours, HOD_PRIOR_H),
            profile_factor(self.dow_sales, self.dow_hours, DOW_PRIOR_H),
        )


WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class PlannedVisits:
    """A route's planned visits to one machine: these weekdays at this local hour."""

    days: tuple[str, ...]
    hour: int
    tz: str

    def __post_init__(self) -> None:
        bad = [d for d in self.days if d not in WEEKDAYS]
        if not self.days or bad:
            raise ValueError(f"visit days must be some of {', '.join(WEEKDAYS)}, got {self.days}")
        if not 0 <= self.hour <= 23:
            raise ValueError(f"the visit hour must be 0-23, got {self.hour}")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.tz!r}") from exc

    def mask(self) -> BoolArray:
        """The visits as a mask over the local hours of the week, Monday 0:00 first."""
        out = np.zeros(HOURS_PER_WEEK, dtype=bool)
        out[[WEEKDAYS.index(d) * 24 + self.hour for d in self.days]] = True
        return out


def configure(
    state: VendingState,
    device_id: str,
    capacities: dict[str, int],
    visits: PlannedVisits | None = None,
) -> VendingState:
    """Record slot capacities, and the route's planned visits if any, from a birth message."""
    reg, idx = state.registry.extend([device_id])
    slots, cols = state.slots.extend(list(capacities))
    st = replace(state, registry=reg, slots=slots).grown(len(reg), len(slots))
    cap = st.capacity.copy()
    cap[idx[0], cols] = np.fromiter(capacities.values(), dtype=np.float64, count=len(cols))
    mask, zone, zones = st.visit_mask.copy(), st.visit_zone.copy(), st.zones
    if visits is None:
        mask[idx[0]], zone[idx[0]] = False, -1
    else:
        if visits.tz not in zones:
            zones = (*zones, visits.tz)
        mask[idx[0]], zone[idx[0]] = visits.mask(), zones.index(visits.tz)
    return replace(st, capacity=cap, visit_mask=mask, visit_zone=zone, zones=zones)


def hours_to_visit(st: VendingState) -> FloatArray:
    """Hours from each machine's last reading to the start of its next planned visit (at least
    one, the visit hour in progress counting as passed); ``inf`` without planned visits.

    Each time zone's UTC offset is taken at the fleet's latest reading, one look-up per zone.
    """
    n = st.visit_zone.shape[0]
    out = np.full(n, np.inf)
    planned = st.visit_zone >= 0
    if not planned.any():
        return out
    now_ms = int(st.last_ts_ms.max())
    offset_h = np.zeros(len(st.zones), dtype=np.int64)
    for k, name in enumerate(st.zones):
        delta = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(name)).utcoffset()
        offset_h[k] = round(delta.total_seconds() / 3600) if delta is not None else 0
    rows = np.flatnonzero(planned)
    utc_how = hour_of_week(np.maximum(st.last_ts_ms[rows], 0))
    local_how = (utc_how + offset_h[st.visit_zone[rows]]) % HOURS_PER_WEEK
    ahead = (local_how[:, None] + np.arange(1, HOURS_PER_WEEK + 1)[None, :]) % HOURS_PER_WEEK
    hits = np.take_along_axis(st.visit_mask[rows], ahead, axis=1)
    # From the hour of the last reading, the k-th hour ahead starts k hours later less the
    # minutes already gone in this one.
    minutes_in = (np.maximum(st.last_ts_ms[rows], 0) % 3_600_000) / 3_600_000
    first = np.argmax(hits, axis=1) + 1.0 - minutes_in
    out[rows] = np.where(hits.any(axis=1), first, np.inf)
    return out


def fold(
    st: VendingState,
    d: IntArray,
    t: IntArray,
    stock_in: Float32Array,
    sold: Float32Array,
    fails: Float32Array,
    cab_in: Float32Array,
    auths_in: Float32Array | None = None,
    declines_in: Float32Array | None = None,
) -> None:
    """Fold one reading per listed machine into ``st`` (a private copy), in place.

    ``auths_in`` and ``declines_in`` are the card reader's counts (NaN, or ``None`` for all,
    where a machine does not report them).
    """
    last = st.last_ts_ms[d]
    dt_s = np.where(last >= 0, (t - last) / 1000.0, 0.0).astype(F32)
    dt_h = dt_s / F32(3600.0)
    how = hour_of_week(t)
    hour = how % 24
    day = how // 24
    rows = np.arange(d.shape[0])
    # This hour's demand multiplier, from the profile as it stands before this reading.
    hf = profile_factor(st.hod_sales[d], st.hod_hours[d], HOD_PRIOR_H)[rows, hour]
    wf = profile_factor(st.dow_sales[d], st.dow_hours[d], DOW_PRIOR_H)[rows, day]
    f_now = (hf * wf).astype(F32)
    stock = st.stock[d]
    had_stock = np.nan_to_num(stock, nan=0.0) > 0
    observed = had_stock & ~np.isnan(sold) & (dt_h[:, None] > 0)

    # The machine's rhythm, from all its stocked slots together.
    total = np.where(observed, sold, 0).sum(axis=1)
    any_obs = observed.any(axis=1) & (dt_h > 0)
    seen_h = np.where(any_obs, dt_h, 0)
    for sales, hours, bucket, tau in (
        (st.hod_sales, st.hod_hours, hour, TAU_HOD_H),
        (st.dow_sales, st.dow_hours, day, TAU_DOW_H),
    ):
        keep_b = np.exp(-seen_h / tau)
        sales[d, bucket] = sales[d, bucket] * keep_b + total
        hours[d, bucket] = hours[d, bucket] * keep_b + seen_h

    # Slot levels: sales over profile-weighted hours, both forgotten over a week.
    keep = (1 - ewm_alpha(dt_s, TAU_LEVEL_S))[:, None]
    st.sales_w[d] = st.sales_w[d] * keep + np.where(observed, sold, 0)
    weighted_h = (dt_h * f_now)[:, None]
    st.hours_w[d] = st.hours_w[d] * keep + np.where(observed, weighted_h, 0)

    # Silence: expected sales since the last one, while the slot could have sold.
    with np.errstate(invalid="ignore", divide="ignore"):
        own = st.sales_w[d] / st.hours_w[d]
        level = np.where((st.sales_w[d] >= MIN_SALES_FOR_LEVEL) & (own > 0), own, 0)
    served = np.nan_to_num(sold) > 0
    expected = np.where(observed, np.nan_to_num(level) * weighted_h, 0)
    st.silent[d] = np.where(served | ~had_stock, 0, st.silent[d] + expected)
    # The machine as a whole: a payment reader that declines cards silences every slot.
    keep_m = 1 - ewm_alpha(dt_s, TAU_MACHINE_S)
    st.machine_sold[d] = st.machine_sold[d] * keep_m + total
    with np.errstate(invalid="ignore", divide="ignore"):
        sales_w, hours_w = st.sales_w[d], st.hours_w[d]
        prior = sales_w.sum(axis=1, keepdims=True) / hours_w.sum(axis=1, keepdims=True)
        shrunk = (sales_w + LEVEL_PRIOR_H * prior) / (hours_w + LEVEL_PRIOR_H)
    machine_exp = np.where(observed & np.isfinite(shrunk), shrunk * weighted_h, 0).sum(axis=1)
    st.machine_expected[d] = st.machine_expected[d] * keep_m + machine_exp

    new_stock = np.where(np.isnan(stock_in), stock, stock_in)
    st.stock[d] = new_stock
    st.capacity[d] = np.fmax(st.capacity[d], np.nan_to_num(stock_in, nan=0.0))
    failing = (np.nan_to_num(fails) > 0) & (np.nan_to_num(new_stock) > 0)
    fails_now = np.where(failing, np.nan_to_num(fails), 0)
    streak_before = (st.jam_fails[d] > 0) & ~served
    jam_fails = np.where(served, fails_now, st.jam_fails[d] + fails_now)
    st.jam_fails[d] = jam_fails
    st.jam_sold[d] = np.where(streak_before, st.jam_sold[d] + total[:, None], 0) * (jam_fails > 0)
    keep_f = (1 - ewm_alpha(dt_s, TAU_FAILS_S))[:, None]
    st.fail_w[d] = st.fail_w[d] * keep_f + np.where(np.isnan(fails), 0, fails)
    if auths_in is not None:
        _fold_card(st, d, keep_f[:, 0], auths_in, declines_in)
    st.cabinet_c[d] = ewm_update(st.cabinet_c[d], cab_in, ewm_alpha(dt_s, TAU_CABINET_S))
    warm_now = np.nan_to_num(cab_in, nan=-np.inf) > WARM_CABINET_C
    st.warm_ms[d] = np.where(warm_now, st.warm_ms[d] + dt_s * 1000, 0)
    st.last_ts_ms[d] = t


def _fold_card(
    st: VendingState,
    d: IntArray,
    keep: Float32Array,
    auths_in: Float32Array,
    declines_in: Float32Array | None,
) -> None:
    """The card reader's authorisations and declines: forgetting sums and the decline CUSUM."""
    seen = ~np.isnan(auths_in)
    auths = np.where(seen, auths_in, 0).astype(F32)
    declines = np.zeros_like(auths) if declines_in is None else np.nan_to_num(declines_in)
    declines = np.clip(declines, 0, auths).astype(F32)  # never more declines than payments
    old_auths = st.card_auths_w[d]
    st.card_auths_w[d] = np.where(seen, np.nan_to_num(old_auths) * keep + auths, old_auths)
    old_declines = st.card_declines_w[d]
    st.card_declines_w[d] = np.where(seen, old_declines * keep + declines, old_declines)
    step = declines * F32(DECLINE_LLR) + (auths - declines) * F32(APPROVE_LLR)
    st.decline_cusum[d] = np.maximum(st.decline_cusum[d] + step, 0)
