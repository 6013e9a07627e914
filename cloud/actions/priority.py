"""Ticket priority and due time from a decision's severity and predicted lead time."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from cloud.decision_types import Severity

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS


class Priority(StrEnum):
    """P1 is the most urgent; the string order equals the urgency order."""

    P1 = "P1"  # same day
    P2 = "P2"  # within three days
    P3 = "P3"  # within a week
    P4 = "P4"  # planned work


# Upper bound of the lead time that still earns a priority, and the time a team has to act.
_LEAD_LIMIT_MS: Final = (
    (Priority.P1, DAY_MS),
    (Priority.P2, 3 * DAY_MS),
    (Priority.P3, 7 * DAY_MS),
)
SLA_MS: Final = {
    Priority.P1: DAY_MS,
    Priority.P2: 3 * DAY_MS,
    Priority.P3: 7 * DAY_MS,
    Priority.P4: 30 * DAY_MS,
}


def lead_ms(ts_ms: int, eta_ms: int | None, eta_lo_ms: int | None) -> int | None:
    """Time left from the data time ``ts_ms`` until the earliest plausible failure.

    The lower end of the interval is used when known: a team must arrive before the early case.
    """
    earliest = eta_lo_ms if eta_lo_ms is not None else eta_ms
    return None if earliest is None else max(earliest - ts_ms, 0)


def priority_for(severity: Severity, lead: int | None) -> Priority:
    """Map severity and lead time (ms) onto P1..P4.

    Critical is always P1. Without an ETA a warning is P3 and anything milder P4.

    >>> priority_for(Severity.WARNING, 5 * HOUR_MS), priority_for(Severity.WARNING, 2 * DAY_MS)
    (<Priority.P1: 'P1'>, <Priority.P2: 'P2'>)
    >>> priority_for(Severity.INFO, 6 * DAY_MS), priority_for(Severity.INFO, 7 * DAY_MS)
    (<Priority.P3: 'P3'>, <Priority.P4: 'P4'>)
    >>> priority_for(Severity.CRITICAL, 30 * DAY_MS), priority_for(Severity.WARNING, None)
    (<Priority.P1: 'P1'>, <Priority.P3: 'P3'>)
    """
    if severity is Severity.CRITICAL:
        return Priority.P1
    if lead is None:
        return Priority.P3 if severity is Severity.WARNING else Priority.P4
    for priority, limit_ms in _LEAD_LIMIT_MS:
        if lead < limit_ms:
            return priority
    return Priority.P4


def due_ms_for(priority: Priority, ts_ms: int, lead: int | None) -> int:
    """When the work must be done: the priority's service time, or earlier if failure is sooner.

    >>> due_ms_for(Priority.P1, 0, 2 * HOUR_MS) == 2 * HOUR_MS
    True
    >>> due_ms_for(Priority.P4, 0, None) == 30 * DAY_MS
    True
    """
    due = ts_ms + SLA_MS[priority]
    return due if lead is None else min(due, ts_ms + lead)


def more_urgent(a: Priority, b: Priority) -> Priority:
    """The more urgent of two priorities (P1 beats P2)."""
    return min(a, b)
