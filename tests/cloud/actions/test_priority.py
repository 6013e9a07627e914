"""Ticket priority and due time from severity and the predicted lead time."""

from __future__ import annotations

import pytest

from cloud.actions.priority import Priority, due_ms_for, lead_ms, more_urgent, priority_for
from cloud.decision_types import Severity

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        (0, Priority.P1),
        (23 * HOUR_MS, Priority.P1),
        (DAY_MS - 1, Priority.P1),
        (DAY_MS, Priority.P2),
        (3 * DAY_MS - 1, Priority.P2),
        (3 * DAY_MS, Priority.P3),
        (7 * DAY_MS - 1, Priority.P3),
        (7 * DAY_MS, Priority.P4),
        (90 * DAY_MS, Priority.P4),
    ],
)
def test_lead_time_bands(lead: int, expected: Priority) -> None:
    assert priority_for(Severity.WARNING, lead) is expected
    assert priority_for(Severity.INFO, lead) is expected


@pytest.mark.parametrize("lead", [None, 0, 5 * DAY_MS, 60 * DAY_MS])
def test_critical_is_always_p1(lead: int | None) -> None:
    assert priority_for(Severity.CRITICAL, lead) is Priority.P1


def test_without_eta_warning_outranks_info() -> None:
    assert priority_for(Severity.WARNING, None) is Priority.P3
    assert priority_for(Severity.INFO, None) is Priority.P4


def test_lead_uses_the_lower_end_of_the_interval() -> None:
    ts = 1_000 * DAY_MS
    assert lead_ms(ts, ts + 4 * DAY_MS, ts + 2 * DAY_MS) == 2 * DAY_MS
    assert lead_ms(ts, ts + 4 * DAY_MS, None) == 4 * DAY_MS
    assert lead_ms(ts, None, None) is None
    # An ETA already in the past is "now", not a negative lead.
    assert lead_ms(ts, ts - DAY_MS, None) == 0


def test_due_is_the_earlier_of_service_time_and_failure() -> None:
    ts = 1_000 * DAY_MS
    assert due_ms_for(Priority.P2, ts, 2 * DAY_MS) == ts + 2 * DAY_MS
    assert due_ms_for(Priority.P2, ts, 10 * DAY_MS) == ts + 3 * DAY_MS
    assert due_ms_for(Priority.P1, ts, None) == ts + DAY_MS


def test_more_urgent_picks_the_lower_number() -> None:
    assert more_urgent(Priority.P3, Priority.P1) is Priority.P1
    assert more_urgent(Priority.P2, Priority.P4) is Priority.P2
