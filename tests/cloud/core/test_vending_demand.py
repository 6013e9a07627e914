"""Bursty demand and stock-out timing: the negative binomial tail, quantiles, fleet prior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cloud.core.demand import (
    crossing_hours,
    stockout_mean,
    stockout_probability,
    stockout_quantile_hours,
)
from cloud.core.vending_state import VendingState, configure, fold
from cloud.core.vending_verdicts import (
    StockForecast,
    assess_restock,
    forecast_stock,
    visit_value,
)

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC, a Monday
HOUR = 3_600_000


def test_stockout_probability_is_the_negative_binomial_tail():
    stock = np.array([1.0, 3.0, 8.0, 12.0])
    mean = np.array([0.5, 2.0, 4.0, 4.0])
    shape = np.array([1.0, 2.0, 3.0, 0.75])
    p = stockout_probability(stock, mean, shape)
    # scipy's nbinom counts failures before `n` successes with success probability n/(n+mean).
    want = stats.nbinom.sf(stock - 1, shape, shape / (shape + mean))
    np.testing.assert_allclose(p, want, rtol=1e-9)
    # Bursty demand empties a well-stocked slot far more often than Poisson demand would.
    poisson = stockout_probability(stock, mean)
    assert p[2] > 2 * poisson[2]
    assert p[3] > 10 * poisson[3]
    # A huge shape is Poisson again; empty and absent slots keep their meaning.
    np.testing.assert_allclose(stockout_probability(stock, mean, np.full(4, 1e7)), poisson, 1e-4)
    edge = stockout_probability(np.array([0.0, np.nan, 4.0]), np.zeros(3), np.ones(3))
    np.testing.assert_array_equal(edge, [1.0, 0.0, 0.0])


def test_stockout_mean_inverts_the_tail_and_refuses_impossible_probabilities():
    stock, shape = np.array([1.0, 5.0, 14.0]), np.array([1.0, 4.0, 10.0])
    mean = stockout_mean(stock, shape, 0.1)
    np.testing.assert_allclose(stockout_probability(stock, mean, shape), 0.1, rtol=1e-6)
    assert (np.diff(mean) > 0).all()  # more stock takes more demand to empty
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="probability"):
            stockout_mean(stock, shape, bad)


def test_stockout_quantiles_order_and_match_the_tail_at_the_time_they_give():
    hours = 14 * 24
    cum = np.cumsum(np.ones((1, hours)), axis=1)  # a flat week: one average hour per hour
    rate = np.array([[0.05, 0.2, 0.0]])  # items per hour; the last slot does not sell
    stock = np.array([[6.0, 0.0, 4.0]])
    lo, mid, hi = (stockout_quantile_hours(cum, rate, stock, 1.0, q) for q in (0.1, 0.5, 0.9))
    assert lo[0, 0] < mid[0, 0] < hi[0, 0]
    assert lo[0, 1] == mid[0, 1] == hi[0, 1] == 0.0  # already empty
    assert np.isinf(mid[0, 2])  # no demand: never
    # At the early end the slot has sold out with about 10 % probability (whole hours).
    t = lo[0, 0]
    days = max(t / 24.0, 1.0)
    p = stockout_probability(np.array([6.0]), np.array([0.05 * t]), np.array([days]))
    assert 0.07 < p[0] < 0.13


def test_crossing_hours_agrees_with_counting_the_hours_below_the_target():
    rng = np.random.default_rng(4)
    cum = np.cumsum(rng.gamma(1.0, 1.0, size=(30, 200)), axis=1)
    rate = rng.gamma(0.5, 0.2, size=(30, 12))
    rate[rng.random(rate.shape) < 0.1] = 0.0
    target = rng.integers(0, 20, size=(30, 12)).astype(float)
    got = crossing_hours(cum, rate, target)
    need = np.where(rate > 0, target / np.where(rate > 0, rate, 1.0), np.inf)
    below = (cum[:, None, :] < need[:, :, None]).sum(axis=2)
    inside = np.isfinite(need) & (below < cum.shape[1]) & (target > 0)
    np.testing.assert_array_equal(got[inside], below[inside])
    assert np.isinf(got[rate == 0]).all()
    assert (got[(target == 0) & (rate > 0)] == 0).all()


def _fleet(sold_per_h: float, hours: int) -> VendingState:
    """Two machines of two slots; the first sells for ``hours`` hours, the second has just
    joined and reported its stock once."""
    st = VendingState.empty()
    for device in ("vm-1", "vm-2"):
        st = configure(st, device, {"A1": 10, "A2": 10})
    st = st.copy()
    for h in range(hours + 1):
        sold = np.array([[sold_per_h, sold_per_h]], dtype=np.float32)
        stock = np.array([[10.0, 10.0]], dtype=np.float32)
        nan = np.full(1, np.nan, dtype=np.float32)
        fold(st, np.array([0]), np.array([T0 + h * HOUR]), stock, sold, sold * 0, nan)
    new = np.array([[10.0, 10.0]], dtype=np.float32)
    fold(st, np.array([1]), np.array([T0 + hours * HOUR]), new, new * np.nan, new * 0, nan)
    return st


def test_a_new_machine_starts_from_the_fleet_rate():
    level = _fleet(0.5, 48).level_per_h()
    assert np.isfinite(level).all()
    # The new machine has no sales of its own: the fleet's pace, not zero and not unknown.
    np.testing.assert_allclose(level[1], level[1, 0])
    assert 0.25 < level[1, 0] < 0.75
    # Before anything has sold anywhere there is no rate to start from.
    assert np.isnan(_fleet(0.0, 48).level_per_h()).all()


def test_a_visit_is_worth_the_stock_outs_it_prevents():
    inf = np.full((3, 2), np.inf)
    fc = StockForecast(
        level_per_h=np.ones((3, 2)),
        p_horizon=np.array([[0.9, 0.8], [0.9, 0.0], [0.99, 0.0]]),
        hours=inf, hours_lo=inf, hours_hi=inf, visit_by_h=inf, pick=np.zeros((3, 2)),
        p_refilled=np.array([[0.05, 0.0], [0.05, 0.0], [0.98, 0.0]]), to_visit_h=np.full(3, np.inf),
    )  # fmt: skip
    value = visit_value(fc)
    np.testing.assert_allclose(value, [1.65, 0.85, 0.01])
    # Two slots at risk are worth more than one; a slot that sells out however full it is
    # gains (almost) nothing from a refill.
    assert value[0] > value[1] > 10 * value[2]


def test_no_visit_is_ordered_for_a_slot_that_a_refill_cannot_save():
    """Two machines sell out within the horizon; only the one a refill saves gets an order."""
    st = VendingState.empty()
    for device in ("vm-fast", "vm-slow"):
        st = configure(st, device, {"A1": 10, "A2": 10})
    st = st.copy()
    nan = np.full(2, np.nan, dtype=np.float32)
    sold = np.array([[0.5, 0.5], [0.02, 0.02]], dtype=np.float32)  # items per hour
    for h in range(7 * 24 + 1):
        stock = np.array([[9.0, 9.0], [1.0, 10.0]], dtype=np.float32)
        fold(st, np.array([0, 1]), np.full(2, T0 + h * HOUR), stock, sold, sold * 0, nan)
    fc = forecast_stock(st)
    assert (fc.p_horizon[:, 0] > 0.9).all()  # both machines' first slot empties for sure
    assert fc.p_refilled[0, 0] > 0.9 > 0.3 > fc.p_refilled[1, 0]
    restock = assess_restock(st, np.ones(2, dtype=bool))
    np.testing.assert_array_equal(restock.active, [False, True])
    assert restock.notes[1].startswith("A1×")
