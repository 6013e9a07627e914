"""Closure feedback: a device with repeated false alarms needs more persistence to open."""

from __future__ import annotations

import numpy as np

from cloud.core.types import Condition
from cloud.decisions import POLICIES, PolicyState, decide

DEVICES = ["fr-000001", "fr-000002"]


def both_active(ts_ms: int, severity: int = 1) -> Condition:
    a = np.array([True, True])
    nan = np.full(2, np.nan)
    return Condition(
        fault="fridge.cooling",
        unit_device=np.arange(2, dtype=np.int64),
        unit_label=("", ""),
        touched=np.ones(2, dtype=bool),
        active=a,
        severity=np.full(2, severity, dtype=np.int64),
        score=np.full(2, 0.8),
        ts_ms=np.full(2, ts_ms, dtype=np.int64),
        eta_ms=nan,
        eta_lo_ms=nan,
        eta_hi_ms=nan,
        signals=("x",),
        contributions=np.ones((2, 1)),
    )


def opened_at(
    bars: dict[str, float] | None, severity: int = 1, updates: int = 12
) -> dict[str, int]:
    state = PolicyState()
    first: dict[str, int] = {}
    for i in range(updates):
        state, out = decide(state, "fridge", DEVICES, [both_active(1000 * i, severity)], bars=bars)
        for d in out:
            first.setdefault(d.device_id, i)
    return first


def test_a_bar_of_two_doubles_the_persistence_of_that_device_only() -> None:
    open_after = POLICIES["fridge.cooling"].open_after
    plain = opened_at(None)
    barred = opened_at({"fr-000001": 2.0})
    assert plain == {"fr-000001": open_after - 1, "fr-000002": open_after - 1}
    assert barred["fr-000001"] == 2 * open_after - 1
    assert barred["fr-000002"] == open_after - 1


def test_critical_conditions_ignore_the_bar_and_a_bar_below_one_lowers_nothing() -> None:
    assert opened_at({"fr-000001": 3.0}, severity=2) == {"fr-000001": 0, "fr-000002": 0}
    assert opened_at({"fr-000001": 0.1}) == opened_at(None)
