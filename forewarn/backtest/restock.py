"""Restock visits ordered by decisions, in place of the simulator's fixed weekly route.

The backtest runs two copies of the scenario's vending machines from the same seed. The
baseline copy keeps the simulator's own route: every machine is refilled once a week on its
route day. The other copy feeds the core, and its machines are refilled only when a restock
decision orders a visit (:class:`RouteDriver`); both copies count their stock-outs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np

from cloud.errors import ForewarnError
from simulators.scenario import RestockPolicy
from simulators.types import DeviceSpec, FloatArray, IntArray, StepOutput
from simulators.vending import VendingFleet

HOUR_MS: Final = 3_600_000
NO_ROUTE_DAY: Final = -1  # a weekday index no day has: the fleet's own route never comes
MAX_SEARCH_H: Final = 8 * 24
# The route earns one visit per machine and week, as the weekly schedule makes, and banks at
# most this many weeks of them: it never visits more often than the schedule it replaces.
BANKED_WEEKS: Final = 1.0


class BacktestError(ForewarnError):
    """The backtest cannot go on; the message says why."""


def _works(t_ms: int, zone: ZoneInfo, policy: RestockPolicy) -> bool:
    local = dt.datetime.fromtimestamp(t_ms / 1000, zone)
    return local.weekday() in policy.visit_days and (
        policy.visit_start_h <= local.hour < policy.visit_end_h
    )


def next_visit_ms(order_ms: int, tz: str, policy: RestockPolicy) -> int:
    """The first moment, ``delay_h`` or more after the order, that a driver works.

    >>> from simulators.scenario import RestockPolicy
    >>> weekdays = RestockPolicy(delay_h=4, visit_days=(0, 1, 2, 3, 4), visit_start_h=8,
    ...                          visit_end_h=17)
    >>> friday_4pm = 1_767_970_800_000  # 2026-01-09 16:00 UTC
    >>> dt.datetime.fromtimestamp(next_visit_ms(friday_4pm, "UTC", weekdays) / 1000, dt.UTC)
    datetime.datetime(2026, 1, 12, 8, 0, tzinfo=datetime.timezone.utc)
    """
    return first_working_ms(order_ms + round(policy.delay_h * HOUR_MS), tz, policy)


def first_working_ms(t_ms: int, tz: str, policy: RestockPolicy) -> int:
    """``t_ms`` if a driver works then, else the start of the next hour a driver works."""
    zone = ZoneInfo(tz)
    for _ in range(MAX_SEARCH_H + 1):
        if _works(t_ms, zone, policy):
            return t_ms
        t_ms = (t_ms // HOUR_MS + 1) * HOUR_MS
    raise BacktestError(f"no visit hour within {MAX_SEARCH_H} h of an order ({policy})")


def visit_for_ms(order_ms: int, visit_by_ms: int, tz: str, policy: RestockPolicy) -> int:
    """When to visit for an order that should be served by ``visit_by_ms``.

    ``visit_by_ms`` itself if a driver works then, else the start of the last working hour
    before it (the later the visit, the more the machine has sold and the more one visit
    refills), but never before :func:`next_visit_ms`, which is the answer when nothing fits.

    >>> from simulators.scenario import RestockPolicy
    >>> weekdays = RestockPolicy(delay_h=4, visit_days=(0, 1, 2, 3, 4), visit_start_h=8,
    ...                          visit_end_h=17)
    >>> monday_9am, saturday_noon = 1_767_603_600_000, 1_768_046_400_000  # 2026-01-05, -10
    >>> at = visit_for_ms(monday_9am, saturday_noon, "UTC", weekdays)
    >>> dt.datetime.fromtimestamp(at / 1000, dt.UTC)  # Friday, the last working hour
    datetime.datetime(2026, 1, 9, 16, 0, tzinfo=datetime.timezone.utc)
    """
    earliest = next_visit_ms(order_ms, tz, policy)
    zone = ZoneInfo(tz)
    if visit_by_ms <= earliest or _works(visit_by_ms, zone, policy):
        return max(visit_by_ms, earliest)
    start = visit_by_ms // HOUR_MS * HOUR_MS  # an hour nobody works: look further back
    for _ in range(MAX_SEARCH_H + 1):
        start -= HOUR_MS
        if start + HOUR_MS <= earliest:
            break
        if _works(start, zone, policy):
            return max(start, earliest)
    return earliest


class RouteDriver:
    """Serves restock orders for one vending fleet: one pending visit per machine at a time.

    Taking over the route switches off the fleet's own weekly visits (its machines keep the
    route days they were drawn with, so they stay the same machines as the baseline's). A
    visit refills every slot of the machine to capacity, as the core's pick list asks.

    With the ``weekly-plus`` route policy the weekly route stays and every order is an extra
    visit between its rounds, with no budget: the machines' planned visits are in their birth
    messages, so the core orders only for stock-outs that would come before the next round.

    Otherwise the route replaces the weekly schedule and never visits more often: it earns a visit
    whenever the schedule has made one (a machine's route day, counted at the end of the
    working day in its time zone, when the scheduled visit has surely happened) and banks at
    most :data:`BANKED_WEEKS` weeks of them. Machines that sell slowly need fewer visits than
    the schedule gave them, which leaves visits for the machines that sell fast. When visits
    fall due and the route has too few left, the orders with the highest route priority go
    first (the decision's score: the more stock-outs a visit prevents, the higher), then those
    that must be served soonest, then the machines visited longest ago; the rest wait for the
    next working hour.
    """

    def __init__(
        self, machines: VendingFleet, specs: Sequence[DeviceSpec], policy: RestockPolicy
    ) -> None:
        n = len(specs)
        for attr in ("route_day", "stock", "capacity", "has_slot"):
            if not hasattr(machines, attr):
                raise BacktestError(
                    f"the vending simulator has no {attr!r}: cannot drive its restock visits"
                )
        self._route_day: IntArray = np.asarray(machines.route_day, dtype=np.int64).copy()
        # "weekly-plus": the weekly route stays and orders are extra visits, with no budget.
        self.keeps_route = policy.route == "weekly-plus"
        if not self.keeps_route:
            machines.route_day = np.full(n, NO_ROUTE_DAY, dtype=np.int64)
        self._machines = machines
        self._tz = tuple(s.tz for s in specs)
        self._policy = policy
        self.pending_ms: IntArray = np.full(n, -1, dtype=np.int64)
        self.visit_by_ms: IntArray = np.full(n, -1, dtype=np.int64)  # the booked visit's deadline
        self.priority: FloatArray = np.zeros(n)  # the latest order's route priority
        self.orders = 0
        self.visits: list[tuple[int, int]] = []  # (machine, visit time)
        self._requested: set[tuple[int, int]] = set()
        self._credit = 0.0  # visits the route may still make
        self._last_visit_ms: IntArray = np.full(n, -1, dtype=np.int64)
        self._zones = {tz: ZoneInfo(tz) for tz in self._tz}
        self._machine_tz = np.array([list(self._zones).index(tz) for tz in self._tz])

    def order(
        self, machine: int, ts_ms: int, visit_by_ms: int | None, priority: float = 0.0
    ) -> None:
        """A restock decision for ``machine`` at data time ``ts_ms``, to be served by
        ``visit_by_ms`` (the decision's ETA, the sell-out date to beat; ``None``: at once),
        with the decision's score as its route ``priority``.

        A visit already booked for the machine stays unless this one must come sooner; the
        priority is the latest order's, as the forecast behind it is the freshest.
        """
        self.orders += 1
        self.priority[machine] = priority
        by_ms = ts_ms if visit_by_ms is None else max(visit_by_ms, ts_ms)
        visit_ms = visit_for_ms(ts_ms, by_ms, self._tz[machine], self._policy)
        booked = int(self.pending_ms[machine])
        self.pending_ms[machine] = visit_ms if booked < 0 else min(booked, visit_ms)
        due = int(self.visit_by_ms[machine])
        self.visit_by_ms[machine] = by_ms if booked < 0 else min(due, by_ms)

    def serve(self, last_ms: int, ts_ms: int) -> None:
        """Carry out the visits due by ``ts_ms``, before the fleet steps from ``last_ms`` to it.

        A visit whose time has passed already (an order with no delay) happens just after the
        last sample.
        """
        n = self.pending_ms.shape[0]
        earned = self._scheduled_visits(last_ms, ts_ms)
        self._credit = min(self._credit + earned, n * BANKED_WEEKS)
        due = np.flatnonzero((self.pending_ms >= 0) & (self.pending_ms <= ts_ms))
        if not due.size:
            return
        # Scarce visits go where they prevent the most stock-outs (the route priority), then to
        # the machines whose sell-out date comes first (deferred, they are the likeliest to run
        # out before the next working hour), then to those visited longest ago.
        keys = (self._last_visit_ms[due], self.visit_by_ms[due], -self.priority[due])
        due = due[np.lexsort(keys)]
        allowed = due.size if self.keeps_route else max(int(self._credit), 0)
        for i in due[allowed:].tolist():  # no visit left: the next working hour
            later = (ts_ms // HOUR_MS + 1) * HOUR_MS
            self.pending_ms[i] = first_working_ms(later, self._tz[i], self._policy)
        due = due[:allowed]
        if not self.keeps_route:
            self._credit -= due.size
        if not due.size:
            return
        at_ms = np.maximum(self.pending_ms[due], last_ms + 1)
        m = self._machines
        for t in np.unique(at_ms).tolist():
            group = due[at_ms == t]
            if hasattr(m, "restock"):
                m.restock(group, t)
            else:  # a simulator without visits on request: refill the slots directly
                stock = m.stock.copy()
                stock[group] = np.where(m.has_slot[group], m.capacity[group], 0)
                m.stock = stock
            self.visits.extend((int(i), t) for i in group.tolist())
            self._requested.update((int(i), t) for i in group.tolist())
        self.pending_ms[due] = -1
        self.visit_by_ms[due] = -1
        self._last_visit_ms[due] = at_ms

    def _scheduled_visits(self, last_ms: int, ts_ms: int) -> int:
        """Visits the weekly schedule completed in ``(last_ms, ts_ms]``: its machines of the
        day, as the working day ends."""
        count = 0
        end_h = self._policy.visit_end_h
        for k, zone in enumerate(self._zones.values()):
            before = dt.datetime.fromtimestamp(last_ms / 1000, zone)
            now = dt.datetime.fromtimestamp(ts_ms / 1000, zone)
            day_end = now.replace(hour=end_h % 24, minute=0, second=0, microsecond=0)
            if before < day_end <= now:
                here = (self._machine_tz == k) & (self._route_day == now.weekday())
                count += int(here.sum())
        return count

    def check_no_route_visit(self, out: StepOutput) -> None:
        """Fail loudly if the simulator ran its own route in the decision-driven copy (unless
        the route stays, as with ``weekly-plus``)."""
        if self.keeps_route:
            return
        unasked = route_visits(out) - self._requested
        if unasked:
            device, _ = min(unasked)
            raise BacktestError(
                f"vending machine {device} was restocked by the simulator's own route in the "
                "decision-driven run; the backtest could not take over the route"
            )


def route_visits(out: StepOutput) -> set[tuple[int, int]]:
    """Distinct (machine, visit time) pairs of the simulator's own restock events in a step."""
    visits: set[tuple[int, int]] = set()
    for device, event in out.events:
        if event.get("type") == "restock":
            ts = event.get("ts_ms")
            visits.add((device, int(ts) if isinstance(ts, int) else out.ts_ms))
    return visits
