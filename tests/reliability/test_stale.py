"""The decision policy opens no episode on back-filled evidence, only on fresh evidence."""

from __future__ import annotations

import numpy as np

from cloud.core.types import Condition
from cloud.decisions import STALE_AFTER_MS, PolicyState, decide

T0 = 1_767_225_600_000
HOUR = 3_600_000


def warm(ts_ms: int, active: bool = True) -> Condition:
    """One fridge (device index 0) whose cooling condition holds (critical) at ``ts_ms``."""
    one = np.ones(1)
    return Condition(
        fault="fridge.cooling", unit_device=np.zeros(1, dtype=np.int64), unit_label=("",),
        touched=np.ones(1, dtype=bool), active=np.array([active]),
        severity=np.array([2 if active else 0], dtype=np.int64), score=one * 0.9,
        ts_ms=np.array([ts_ms], dtype=np.int64), eta_ms=one * np.nan, eta_lo_ms=one * np.nan,
        eta_hi_ms=one * np.nan, signals=("cabinet_excess",), contributions=np.ones((1, 1)),
    )  # fmt: skip


def test_back_filled_evidence_opens_nothing_and_fresh_evidence_opens_the_episode() -> None:
    present = T0 + 6 * HOUR  # the device's birth message after a six-hour outage
    stale = {0: present - STALE_AFTER_MS}
    policy = PolicyState()
    for hour in range(1, 4):  # critical hours ago, while the device was offline
        policy, out = decide(policy, "fridge", ["fr-000001"], [warm(T0 + hour * HOUR)], stale)
        assert out == []
    policy, out = decide(policy, "fridge", ["fr-000001"], [warm(T0 + 4 * HOUR, False)], stale)
    assert out == []
    assert policy.open_count() == 0
    # Still true in the present: the first fresh evidence opens the episode, dated by it.
    policy, out = decide(policy, "fridge", ["fr-000001"], [warm(present - HOUR // 2)], stale)
    assert [(d.device_id, d.opened_ms) for d in out] == [("fr-000001", present - HOUR // 2)]
    # Without a stale limit the same history would have opened it from the past.
    _, past = decide(PolicyState(), "fridge", ["fr-000001"], [warm(T0 + HOUR)])
    assert [d.opened_ms for d in past] == [T0 + HOUR]
