"""Vending conditions: stock-out risk and pick lists, jammed coils, payment, cooling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaincc

from cloud.core.demand import (
    cumulative_profile,
    hour_of_week,
    stockout_probability,
    stockout_quantile_hours,
)
from cloud.core.kernels import BoolArray, FloatArray, IntArray
from cloud.core.types import Condition, normalise_contributions
from cloud.core.vending_state import (
    COOLING_FAULT,
    DECLINE_ALARM,
    DEMAND_SHAPE_PER_DAY,
    FAILED_SLOT,
    FORECAST_HOURS,
    JAM_AFTER_FAILS,
    JAM_CONFIRM_FAILS,
    JAM_CONFIRM_SALES,
    JAM_EXPECTED_SALES,
    JAM_FAULT,
    MACHINE_P_VALUE,
    MACHINE_RATIO,
    ORDER_VALUE,
    PAYMENT_FAILS,
    PAYMENT_FAULT,
    PAYMENT_SLOTS,
    REFILL_SAVES,
    RESTOCK_FAULT,
    RESTOCK_HORIZON_H,
    SELLING_RATIO,
    SLOT_KEY,
    STOCKOUT_RISK,
    VISIT_DELAY_H,
    WARM_AFTER_MS,
    WARM_CABINET_C,
    WARM_LIMIT_MS,
    VendingState,
    hours_to_visit,
)


@dataclass(frozen=True, slots=True)
class StockForecast:
    """Per machine and slot: stock-out risk and timing over the next :data:`FORECAST_HOURS`."""

    level_per_h: FloatArray  # demand per average hour (NaN: no sale seen in the machine yet)
    # probability of selling out within the restock horizon, or before the route's next planned
    # visit to the machine if that comes sooner
    p_horizon: FloatArray
    hours: FloatArray  # median hours until the slot is empty (inf: not within sight)
    hours_lo: FloatArray  # 80 % interval of that time
    hours_hi: FloatArray
    visit_by_h: FloatArray  # hours until it has emptied with probability STOCKOUT_RISK
    pick: FloatArray  # items to bring: refill to capacity after the sales until a visit
    p_refilled: FloatArray  # probability of selling out within the horizon once refilled now
    to_visit_h: FloatArray  # (machines,) hours to the next planned visit; inf: visits on demand


def forecast_stock(st: VendingState, horizon_h: int = RESTOCK_HORIZON_H) -> StockForecast:
    """Forecast every slot of every machine from its level and its machine's weekly profile."""
    n, n_s = st.stock.shape
    if n == 0 or n_s == 0:
        z = np.zeros((n, n_s))
        inf = np.full(n, np.inf)
        return StockForecast(z, z, z + np.inf, z + np.inf, z + np.inf, z + np.inf, z, z, inf)
    level = st.level_per_h()
    how = hour_of_week(np.maximum(st.last_ts_ms, 0))
    cum = cumulative_profile(st.factor(), how + 1, FORECAST_HOURS)
    rate = np.nan_to_num(level)
    stock = st.stock.astype(np.float64)
    # A restock visit now prevents the stock-outs until the route's next planned visit, which
    # refills the machine anyway, or within the horizon for a machine visited on demand.
    to_visit = hours_to_visit(st)
    span = np.minimum(to_visit, float(horizon_h))
    at = np.clip(np.ceil(span).astype(np.int64), 1, FORECAST_HOURS) - 1
    mu_h = rate * cum[np.arange(n), at][:, None]
    shape_h = np.broadcast_to(
        (DEMAND_SHAPE_PER_DAY * np.maximum(span / 24.0, 1.0))[:, None], mu_h.shape
    )
    p = np.where(
        np.isnan(level) & (np.nan_to_num(stock) > 0),
        0.0,
        stockout_probability(stock, mu_h, shape_h),
    )
    refilled = np.where(np.isnan(stock), np.nan, np.maximum(st.capacity, 1.0))
    p_refilled = np.where(np.isnan(level), 0.0, stockout_probability(refilled, mu_h, shape_h))
    s = np.nan_to_num(stock)

    def quantile(q: float) -> FloatArray:
        return stockout_quantile_hours(cum, rate, s, DEMAND_SHAPE_PER_DAY, q)

    # The sell-out time's median and 80 % interval, and the date a visit must beat.
    hours, lo, hi, by = quantile(0.5), quantile(0.1), quantile(0.9), quantile(STOCKOUT_RISK)
    present = ~np.isnan(stock)
    by = np.where(present, by, np.inf)
    hours = np.where(present, hours, np.inf)
    lo = np.where(present, np.minimum(lo, hours), np.inf)
    hi = np.where(present, np.maximum(hi, hours), np.inf)
    until_visit = rate * cum[:, VISIT_DELAY_H - 1][:, None]
    pick = np.where(
        present, np.ceil(np.maximum(st.capacity - np.maximum(s - until_visit, 0.0), 0.0)), 0.0
    )
    pick = np.minimum(pick, st.capacity)
    return StockForecast(level, p, hours, lo, hi, by, pick, p_refilled, to_visit)


def visit_value(fc: StockForecast) -> FloatArray:
    """Stock-outs a visit now prevents within the horizon, per machine.

    Each slot's probability of selling out from its stock less its probability of selling out
    again once refilled, summed over the machine's slots. A slot that empties within the
    horizon however full it is gains nothing from a visit (refilled, it sells out once more),
    and a machine at risk in several slots gains more than one at risk in one.
    """
    gain = np.maximum(fc.p_horizon - fc.p_refilled, 0.0)
    out: FloatArray = gain.sum(axis=1)
    return out


def pick_list(st: VendingState, fc: StockForecast, device: int) -> list[tuple[str, int]]:
    """Items to bring per slot for one machine, slots most at risk first."""
    need = fc.pick[device]
    cols = np.flatnonzero(need > 0)
    cols = cols[np.lexsort((fc.hours[device, cols], -fc.p_horizon[device, cols]))]
    return [(st.slots.ids[c], int(need[c])) for c in cols]


def assess_restock(st: VendingState, touched: BoolArray) -> Condition:
    """One unit per machine; the score is the route priority: the stock-outs a visit prevents.

    Active when a visit now would prevent :data:`ORDER_VALUE` stock-outs or more within the
    horizon (:func:`visit_value`). The ETA is the date a visit must beat: when the slot that
    empties first, of those a refill saves, has sold out with probability
    :data:`STOCKOUT_RISK`; the interval is that slot's 80 % interval.
    """
    n, n_s = st.stock.shape
    fc = forecast_stock(st)
    if n_s:
        rows = np.arange(n)
        value = visit_value(fc)
        # The slot that may empty first sets the ETA, among the slots a refill keeps stocked
        # through the horizon: one that sells out again however full it is would spend the
        # machine's visits on a stock-out no visit prevents.
        saved = np.where(fc.p_refilled < REFILL_SAVES, fc.visit_by_h, np.inf)
        by = np.where(np.isfinite(saved).any(axis=1, keepdims=True), saved, fc.visit_by_h)
        first = np.argmin(by, axis=1)
        first_h, lo_h, hi_h = (a[rows, first] for a in (fc.visit_by_h, fc.hours_lo, fc.hours_hi))
    else:
        value = np.zeros(n)
        first_h = lo_h = hi_h = np.full(n, np.inf)
    active = value >= ORDER_VALUE
    now = st.last_ts_ms.astype(np.float64)

    def at(hours: FloatArray) -> FloatArray:
        out: FloatArray = np.where(active & np.isfinite(hours), now + hours * 3600_000.0, np.nan)
        return out

    empty_now = active & (first_h <= 0)
    notes = {
        int(d): ", ".join(f"{slot}×{qty}" for slot, qty in pick_list(st, fc, int(d)))
        for d in np.flatnonzero(active & touched)
    }
    expected_short = np.maximum(fc.p_horizon, 0.0)
    return Condition(
        fault=RESTOCK_FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=value / (value + ORDER_VALUE),  # 0.5 where a visit becomes worth ordering
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=at(first_h),
        eta_lo_ms=at(lo_h),
        eta_hi_ms=at(hi_h),
        signals=tuple(f"slot.{s}" for s in st.slots.ids),
        contributions=normalise_contributions(expected_short * active[:, None]),
        notes=notes,
        note_name="pick_list",
        reason=np.where(empty_now, 2, np.where(active, 1, 0)).astype(np.int64),
        reason_names=("", "a slot will sell out before the next visit", "a slot is sold out"),
    )


def assess_jams(st: VendingState, touched: BoolArray) -> Condition:
    """One unit per known slot of the machines this update touched."""
    # Every known slot of the touched machines, so that a cleared jam can close its episode.
    known = ~np.isnan(st.stock) | (st.capacity > 0)
    d, c = np.nonzero(known & touched[:, None])
    d = d.astype(np.int64)
    c = c.astype(np.int64)
    fails = st.jam_fails[d, c].astype(np.float64)
    silent = st.silent[d, c].astype(np.float64)
    # A machine that reports its card reader's declines counts only the coil's failures as
    # failed vends: two in a row at a slot are its jam. Without those counts a declined customer
    # may be a failed vend too: failed vends at one slot are a jam; at several slots, the
    # machine (payment). Alone: the machine's other slots together weigh at most FAILED_SLOT
    # failed vends over the last days, however spread out (a dead reader on a quiet machine
    # declines now at one slot, now at another); confirmed, because a fading reader can
    # decline two customers in a row at one slow slot before it declines elsewhere.
    others = st.fail_w.sum(axis=1)[d] - st.fail_w[d, c]  # one sum per machine, not per slot
    alone = others <= FAILED_SLOT
    confirmed = (fails >= JAM_CONFIRM_FAILS) | (st.jam_sold[d, c] >= JAM_CONFIRM_SALES)
    card_reader = reports_card_reader(st)[d]
    by_fails = (fails >= JAM_AFTER_FAILS) & (card_reader | (confirmed & alone))
    selling = machine_ratio(st)[d] >= SELLING_RATIO  # the rest of the machine still sells
    by_silence = (silent >= JAM_EXPECTED_SALES) & selling & alone
    active = by_fails | by_silence
    now = st.last_ts_ms[d].astype(np.float64)
    score = np.maximum(
        np.clip(fails / (2 * JAM_AFTER_FAILS), 0.0, 1.0), -np.expm1(-silent / 3.0) * 0.99
    )
    raw = np.stack([fails / JAM_AFTER_FAILS, silent / JAM_EXPECTED_SALES], axis=1)
    return Condition(
        fault=JAM_FAULT,
        unit_device=d,
        unit_label=tuple(st.slots.ids[i] for i in c),
        unit_key=d * SLOT_KEY + c,
        touched=np.ones(d.shape[0], dtype=bool),
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=np.where(active, np.maximum(score, 0.5), np.minimum(score, 0.49)),
        ts_ms=st.last_ts_ms[d].copy(),
        eta_ms=np.where(active, now, np.nan),
        eta_lo_ms=np.where(active, now, np.nan),
        eta_hi_ms=np.where(active, now, np.nan),
        signals=("failed_vends", "missing_sales"),
        contributions=normalise_contributions(raw * active[:, None]),
        reason=np.select([by_fails, by_silence], [1, 2], default=0).astype(np.int64),
        reason_names=(
            "",
            "vends fail while the slot still has stock: coil jammed",
            "the slot has stopped selling although it has stock and demand: coil jammed",
        ),
    )


def reports_card_reader(st: VendingState) -> BoolArray:
    """Machines whose card reader reports its authorisations and declines."""
    out: BoolArray = ~np.isnan(st.card_auths_w)
    return out


def failing_slots(st: VendingState) -> IntArray:
    """How many slots of each machine failed a vend over the last days."""
    out: IntArray = (st.fail_w > FAILED_SLOT).sum(axis=1).astype(np.int64)
    return out


def machine_ratio(st: VendingState) -> FloatArray:
    """Each machine's sales over the last days as a share of what its slots' levels expected."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = st.machine_sold.astype(np.float64) / st.machine_expected
    out: FloatArray = np.where(st.machine_expected > 0, ratio, 1.0)
    return out


def assess_payment(st: VendingState, touched: BoolArray) -> Condition:
    """A machine whose card reader declines far more cards than a working one, whose customers
    fail to buy at many slots at once, or that has stopped selling.

    Where the machine reports its reader's counts, the decline CUSUM (:data:`DECLINE_ALARM`)
    decides; where it does not, vends failing at several slots point to the machine, as jams
    are per slot. Every slot going quiet at once points to it too: a Poisson tail, this few
    sales for what the levels expected over the last days would happen by chance with
    probability below :data:`MACHINE_P_VALUE`.
    """
    n = len(st.registry)
    sold = st.machine_sold.astype(np.float64)
    expected = st.machine_expected.astype(np.float64)
    p_low = gammaincc(np.floor(sold) + 1.0, np.maximum(expected, 1e-9))  # P(X <= sold)
    ratio = machine_ratio(st)
    spread = failing_slots(st)
    fails = st.fail_w.sum(axis=1).astype(np.float64)
    card_reader = reports_card_reader(st)
    cusum = st.decline_cusum.astype(np.float64)
    declining = ~card_reader & (spread >= PAYMENT_SLOTS) & (fails >= PAYMENT_FAILS)
    declines = cusum >= DECLINE_ALARM
    silent = (p_low < MACHINE_P_VALUE) & (ratio < MACHINE_RATIO)
    active = declines | declining | silent
    now = st.last_ts_ms.astype(np.float64)
    score = np.clip((1.0 - ratio) * np.clip(expected / 10.0, 0.0, 1.0), 0.0, 1.0)
    by_fails = np.clip(fails / (2 * PAYMENT_FAILS), 0.0, 1.0) * (spread >= 2) * ~card_reader
    score = np.maximum(score, by_fails)
    score = np.maximum(score, np.clip(cusum / (2 * DECLINE_ALARM), 0.0, 1.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        decline_share = np.nan_to_num(st.card_declines_w / st.card_auths_w).astype(np.float64)
    return Condition(
        fault=PAYMENT_FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=np.where(active, 1, 0).astype(np.int64),
        score=np.where(active, np.maximum(score, 0.5), np.minimum(score, 0.49)),
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=np.where(active, now, np.nan),
        eta_lo_ms=np.where(active, now, np.nan),
        eta_hi_ms=np.where(active, now, np.nan),
        signals=("machine_sales", "failed_vends", "card_declines"),
        contributions=normalise_contributions(
            np.stack([silent * (1.0 - ratio), declining * fails, declines * decline_share], axis=1)
            * active[:, None]
        ),
        reason=np.select([declines, declining, silent], [3, 1, 2], default=0).astype(np.int64),
        reason_names=(
            "",
            "vends fail at several slots: the payment reader declines customers",
            "the whole machine has almost stopped selling: check the payment reader",
            "the card reader declines far more cards than a working reader does",
        ),
    )


def assess_cooling(st: VendingState, touched: BoolArray) -> Condition:
    n = len(st.registry)
    active = st.warm_ms >= WARM_AFTER_MS
    # The failure comes when the cabinet has been warm for the profile's limit minutes.
    left_ms = np.maximum(WARM_LIMIT_MS - st.warm_ms.astype(np.float64), 0.0)
    now = st.last_ts_ms.astype(np.float64)
    excess = np.nan_to_num(st.cabinet_c - WARM_CABINET_C).astype(np.float64)
    return Condition(
        fault=COOLING_FAULT,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=touched,
        active=active,
        severity=np.where(active, 2, 0).astype(np.int64),
        score=np.where(active, 1.0, np.clip((excess + 3.0) / 6.0, 0.0, 0.49)),
        ts_ms=st.last_ts_ms.copy(),
        eta_ms=np.where(active, now + left_ms, np.nan),
        eta_lo_ms=np.where(active, now, np.nan),
        eta_hi_ms=np.where(active, now + left_ms + WARM_AFTER_MS, np.nan),
        signals=("cabinet_temperature",),
        contributions=normalise_contributions(np.maximum(excess, 0.0)[:, None]),
        reason=active.astype(np.int64),
        reason_names=("", "the cabinet is warm: cooling has failed"),
    )
