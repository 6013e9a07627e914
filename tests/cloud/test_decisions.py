"""Episode policy: persistence, hysteresis and stable ids, on hand-made conditions."""

from __future__ import annotations

import numpy as np

from cloud.core.types import Condition
from cloud.decision_types import decision_id
from cloud.decisions import PolicyState, decide


def cond(
    active: list[bool], ts_ms: int, severity: int = 1, fault: str = "fridge.cooling", eta=None
) -> Condition:
    n = len(active)
    a = np.array(active)
    eta_arr = np.full(n, np.nan if eta is None else float(eta))
    return Condition(
        fault=fault,
        unit_device=np.arange(n, dtype=np.int64),
        unit_label=("",) * n,
        touched=np.ones(n, dtype=bool),
        active=a,
        severity=np.where(a, severity, 0).astype(np.int64),
        score=a.astype(float),
        ts_ms=np.full(n, ts_ms, dtype=np.int64),
        eta_ms=eta_arr,
        eta_lo_ms=eta_arr,
        eta_hi_ms=eta_arr,
        signals=("x",),
        contributions=a[:, None].astype(float),
    )


def run(seq: list[list[bool]], severity: int = 1, eta=None) -> list:
    state = PolicyState()
    out = []
    for i, active in enumerate(seq):
        state, d = decide(
            state, "fridge", ["fr-001", "fr-002"], [cond(active, 1000 * i, severity, eta=eta)]
        )
        out.extend(d)
    return out


def test_a_blip_is_not_an_episode():
    assert run([[True, False], [False, False], [True, False], [False, False]]) == []


def test_persistence_opens_one_episode_with_one_id():
    out = run([[True, False]] * 10)
    assert len(out) == 1
    assert out[0].device_id == "fr-001"
    assert out[0].opened_ms == 2000  # third consecutive update
    assert out[0].decision_id == decision_id("fr-001", "fridge.cooling", 2000)


def test_critical_opens_at_once():
    out = run([[False, True]], severity=2)
    assert [d.device_id for d in out] == ["fr-002"]
    assert out[0].severity == "critical"


def test_hysteresis_keeps_the_episode_through_short_gaps():
    seq = [[True, False]] * 4 + [[False, False]] * 5 + [[True, False]] * 4
    out = run(seq)
    assert len({d.decision_id for d in out}) == 1


def test_a_new_episode_after_a_long_quiet_spell_has_a_new_id():
    seq = [[True, False]] * 4 + [[False, False]] * 30 + [[True, False]] * 4
    out = run(seq)
    ids = [d.decision_id for d in out]
    assert len(set(ids)) == 2
    assert out[-1].episode == 2


def test_severity_rise_is_new_evidence_for_the_same_id():
    state = PolicyState()
    out = []
    for i, sev in enumerate([1, 1, 1, 1, 2, 2]):
        state, d = decide(state, "fridge", ["fr-001"], [cond([True], 1000 * i, sev)])
        out.extend(d)
    assert [d.severity for d in out] == ["warning", "critical"]
    assert len({d.decision_id for d in out}) == 1


def test_untouched_units_neither_open_nor_close():
    state = PolicyState()
    c = cond([True], 0)
    silent = Condition(
        **{**{f: getattr(c, f) for f in c.__slots__}, "touched": np.zeros(1, dtype=bool)}
    )
    for _ in range(5):
        state, out = decide(state, "fridge", ["fr-001"], [silent])
        assert out == []
    assert state.units == {}


def test_a_decision_explains_its_persistence_and_hysteresis():
    out = run([[True, False]] * 4)
    details = dict(out[0].details)
    assert details["persisted_updates"] == "3"
    assert details["hysteresis"] == "opens after 3, closes after 24"
    assert out[0].contributions == (("x", 1.0),)
