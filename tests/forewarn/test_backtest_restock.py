"""The route driver spends scarce visits where they prevent the most stock-outs, then on the
orders that must be served soonest."""

from __future__ import annotations

import dataclasses

import numpy as np

from forewarn.backtest.restock import RouteDriver
from simulators.scenario import RestockPolicy
from simulators.vending import VendingFleet

MONDAY = 1_767_571_200_000  # 2026-01-05 00:00 UTC
HOUR = 3_600_000
WEEKDAYS = RestockPolicy(delay_h=4, visit_days=(0, 1, 2, 3, 4), visit_start_h=8, visit_end_h=17)


def two_orders_for_one_visit(priority: tuple[float, float]) -> RouteDriver:
    """Tuesday: machine 1 (visited at 08:00) must be seen at once (12:30, after the delay),
    machine 0 (never visited) by 13:00; both fall due in one hour with one visit left.
    ``priority`` holds the two machines' route priorities."""
    machines = VendingFleet(2, MONDAY, np.random.default_rng(7), 0.0, 7 * 24 * HOUR)
    machines.route_day = np.array([0, 0])  # the schedule earns two visits on Monday at 17:00
    specs = [dataclasses.replace(s, tz="UTC") for s in machines.devices]
    driver = RouteDriver(machines, specs, WEEKDAYS)
    orders: dict[int, list[tuple[int, int | None]]] = {
        MONDAY + 10 * HOUR: [(1, None)],  # no visit earned yet: it waits for Tuesday 08:00
        MONDAY + 32 * HOUR + HOUR // 2: [(1, None)],
        MONDAY + 33 * HOUR: [(0, MONDAY + 37 * HOUR)],
    }
    for k in range(1, 38):
        ts = MONDAY + k * HOUR
        for at, todo in orders.items():
            if ts - HOUR < at <= ts:
                for machine, by in todo:
                    driver.order(machine, at, by, priority[machine])
        driver.serve(ts - HOUR, ts)
    return driver


def test_scarce_visits_go_to_the_order_with_the_earliest_sell_out_date() -> None:
    driver = two_orders_for_one_visit(priority=(0.6, 0.6))
    tuesday_8, tuesday_1pm = MONDAY + 32 * HOUR, MONDAY + 37 * HOUR
    assert driver.visits[0] == (1, tuesday_8)
    # The second visit goes to the order that must be served soonest, although machine 0 has
    # never been visited; machine 0 waits for the next working hour.
    assert driver.visits[1:] == [(1, tuesday_1pm - HOUR // 2)]
    assert driver.pending_ms[0] == tuesday_1pm + HOUR
    assert driver.visit_by_ms[1] == -1  # served: its deadline is gone with it


def test_scarce_visits_go_first_where_they_prevent_the_most_stock_outs() -> None:
    driver = two_orders_for_one_visit(priority=(0.9, 0.6))
    tuesday_8, tuesday_1pm = MONDAY + 32 * HOUR, MONDAY + 37 * HOUR
    assert driver.visits[0] == (1, tuesday_8)
    # Machine 0's order may wait half an hour longer, but a visit there prevents more
    # stock-outs: it takes the last visit and machine 1 waits for the next working hour.
    assert driver.visits[1:] == [(0, tuesday_1pm)]
    assert driver.pending_ms[1] == tuesday_1pm + HOUR
    assert driver.priority.tolist() == [0.9, 0.6]
