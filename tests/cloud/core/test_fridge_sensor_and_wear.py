"""Fridge sensor drift and compressor wear on simulated fleets: caught early, and only on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from cloud.batch import TelemetryBatch
from cloud.core import fleet, fridge
from cloud.core.fridge_state import REASONS
from cloud.core.types import column_shares, normalise_contributions
from cloud.decision_types import Decision
from cloud.decisions import PolicyState, decide
from forewarn.bench.core_loop import LoopFridge
from simulators.fridge import FridgeFleet
from simulators.types import FaultLabel, StepOutput

DAY_MS = 86_400_000
T0_MS = 1_767_571_200_000  # 2026-01-05T00:00Z
DT_S = 300.0
BATCH_STEPS = 6  # one message per device every 30 minutes, as in the realistic scenario
DRIFT_REASON = REASONS[7]
WEAR_REASON = REASONS[5]


@dataclass
class Run:
    sim: FridgeFleet
    ids: tuple[str, ...]
    labels: list[FaultLabel]
    decisions: list[Decision]
    reasons: np.ndarray  # reasons[update, device] of the fridge.cooling condition
    outputs: list[StepOutput]

    def first_ticket(self, device_id: str) -> Decision | None:
        mine = [d for d in self.decisions if d.device_id == device_id]
        return min(mine, key=lambda d: d.opened_ms) if mine else None


def simulate(fault: str, n: int, days: float, seed: int, keep: bool = False) -> Run:
    """``n`` fridges, half with ``fault``, through the real core and decision policy."""
    rng = np.random.default_rng(seed)
    sim = FridgeFleet(n, T0_MS, rng, 0.5, int(days * DAY_MS), fault_weights={fault: 1.0})
    ids = tuple(spec.device_id for spec in sim.devices)
    state = fleet.FleetState.empty()
    for spec in sim.devices:
        state = fleet.configure(state, "fridge", spec.device_id, spec.attributes)
    policy = PolicyState()
    decisions: list[Decision] = []
    reasons: list[np.ndarray] = []
    pending: list[StepOutput] = []
    kept: list[StepOutput] = []
    steps = round(days * 86_400 / DT_S)
    for k in range(1, steps + 1):
        out = sim.step(T0_MS + round(k * DT_S * 1000), DT_S)
        pending.append(out)
        if keep:
            kept.append(out)
        if k % BATCH_STEPS and k != steps:
            continue
        batch = TelemetryBatch(
            kind="fridge",
            device_ids=ids,
            channels=pending[0].channels,
            row_device=np.tile(np.arange(n, dtype=np.int64), len(pending)),
            row_seq=np.repeat(np.arange(len(pending), dtype=np.int64), n),
            ts_ms=np.repeat(np.array([o.ts_ms for o in pending], dtype=np.int64), n),
            values=np.concatenate([o.values for o in pending]),
        )
        pending = []
        state, conds = fleet.update(state, batch)
        reason = conds[0].reason
        assert reason is not None
        reasons.append(reason.copy())
        policy, new = decide(policy, "fridge", state.device_ids("fridge"), conds)
        decisions.extend(new)
    return Run(sim, ids, sim.labels(), decisions, np.stack(reasons), kept)


@pytest.fixture(scope="module")
def drift_run() -> Run:
    return simulate("sensor_drift", 24, 8.0, seed=41, keep=True)


@pytest.fixture(scope="module")
def wear_run() -> Run:
    return simulate("compressor_failure", 16, 10.0, seed=42, keep=True)


def test_a_drifting_cabinet_sensor_is_ticketed_before_the_cabinet_fails(drift_run: Run) -> None:
    failed = [lb for lb in drift_run.labels if lb.failure_ms is not None]
    assert len(failed) >= 5, "the scenario must hold drifts that fail within the run"
    for lb in failed:
        first = drift_run.first_ticket(lb.device_id)
        assert first is not None, lb.device_id
        assert lb.failure_ms is not None
        assert lb.onset_ms <= first.opened_ms < lb.failure_ms
        assert first.summary.lower().startswith(DRIFT_REASON)
        # the reading is regulated at the setpoint, so the warning names a failure ahead
        assert first.eta_lo_ms is not None
        assert first.eta_hi_ms is not None
        assert first.eta_lo_ms <= first.eta_hi_ms
        assert first.eta_lo_ms > first.ts_ms


def test_healthy_fridges_beside_the_drifting_ones_raise_nothing(drift_run: Run) -> None:
    faulty = {lb.device_id for lb in drift_run.labels}
    assert len(faulty) < len(drift_run.ids)
    assert [d.device_id for d in drift_run.decisions if d.device_id not in faulty] == []


def test_a_worn_compressor_is_ticketed_while_its_current_has_barely_risen(wear_run: Run) -> None:
    plan = wear_run.sim.plan
    worn = [lb for lb in wear_run.labels if lb.failure_ms is not None]
    assert len(worn) >= 4
    for lb in worn:
        i = wear_run.ids.index(lb.device_id)
        wear_ms = int(plan.stop_ms[i] - lb.onset_ms)  # the current climbs 30 % over this
        first = wear_run.first_ticket(lb.device_id)
        assert first is not None, lb.device_id
        assert first.summary.lower().startswith(WEAR_REASON)
        # within the first third of the climb (10 % more current), hours of smoothing allowed
        assert first.opened_ms - lb.onset_ms <= wear_ms / 3 + 0.3 * DAY_MS
        assert lb.failure_ms is not None
        assert first.eta_lo_ms is not None
        assert first.eta_hi_ms is not None
        assert first.eta_lo_ms <= lb.failure_ms <= first.eta_hi_ms
    faulty = {lb.device_id for lb in wear_run.labels}
    assert [d.device_id for d in wear_run.decisions if d.device_id not in faulty] == []


def test_power_cuts_doors_defrosts_and_weather_raise_no_ticket() -> None:
    run = simulate("power_cut", 30, 8.0, seed=43)
    assert any(lb.fault == "power_cut" for lb in run.labels)
    assert run.decisions == []


def test_a_refrigerant_leak_is_not_mistaken_for_a_drifting_sensor() -> None:
    # lost charge warms the coil while it runs; at rest it still sits just below the cabinet
    run = simulate("refrigerant_leak", 16, 8.0, seed=44)
    assert run.labels
    assert not (run.reasons == REASONS.index(DRIFT_REASON)).any()
    assert run.decisions, "the leaks themselves are still caught"


@pytest.mark.parametrize("which", ["drift", "wear"])
def test_the_per_device_loop_agrees_with_the_fleet_model(
    which: str, drift_run: Run, wear_run: Run
) -> None:
    """The benchmark's pure-Python baseline follows the same maths on faulty fridges."""
    run = drift_run if which == "drift" else wear_run
    n = len(run.ids)
    state = fridge.FridgeState.empty()
    loops: dict[int, LoopFridge] = {}
    faulty = {lb.device_id for lb in run.labels}
    healthy = [i for i, d in enumerate(run.ids) if d not in faulty][:2]
    sample = sorted([i for i, d in enumerate(run.ids) if d in faulty][:6] + healthy)
    for i, spec in enumerate(run.sim.devices):
        variant = str(spec.attributes["variant"])
        setpoint = float(spec.attributes["setpoint_c"])  # type: ignore[arg-type]
        state = fridge.configure(state, spec.device_id, variant, setpoint)
        _, limit_c, limit_min = fridge.VARIANTS[variant]
        if i in sample:
            loops[i] = LoopFridge(setpoint, limit_c, limit_min * 60_000.0)
    active_steps = 0
    for k, out in enumerate(run.outputs):
        values = out.values.astype(np.float32)
        if k == 0:
            batch = TelemetryBatch(
                kind="fridge",
                device_ids=run.ids,
                channels=out.channels,
                row_device=np.arange(n, dtype=np.int64),
                row_seq=np.zeros(n, dtype=np.int64),
                ts_ms=np.full(n, out.ts_ms, dtype=np.int64),
                values=out.values,
            )
            state, cond = fridge.update(state, batch)
        else:
            state, cond = fridge.step(state, out.ts_ms, values)
        rows = values.astype(np.float64)
        for i, loop in loops.items():
            loop.fold(out.ts_ms, rows[i].tolist())
            if k % 12:
                continue
            active, score, (eta, lo, hi), _ = loop.assess()
            assert active == bool(cond.active[i]), (k, i)
            assert score == pytest.approx(float(cond.score[i]), abs=1e-4)
            for mine, theirs in ((eta, cond.eta_ms[i]), (lo, cond.eta_lo_ms[i])):
                if math.isnan(mine):
                    assert np.isnan(theirs)
                else:
                    assert mine == pytest.approx(float(theirs), rel=1e-4, abs=60_000.0)
            hi_theirs = float(cond.eta_hi_ms[i])
            assert (math.isnan(hi) and math.isnan(hi_theirs)) or hi == pytest.approx(
                hi_theirs, rel=1e-4, abs=60_000.0
            )
            active_steps += int(active)
    assert active_steps > 0, "the comparison must cover active fridges"


def test_the_new_features_stream_as_they_batch(drift_run: Run) -> None:
    outputs = drift_run.outputs[:400]
    n = len(drift_run.ids)

    def batch(outs: list[StepOutput]) -> TelemetryBatch:
        return TelemetryBatch(
            kind="fridge",
            device_ids=drift_run.ids,
            channels=outs[0].channels,
            row_device=np.tile(np.arange(n, dtype=np.int64), len(outs)),
            row_seq=np.repeat(np.arange(len(outs), dtype=np.int64), n),
            ts_ms=np.repeat(np.array([o.ts_ms for o in outs], dtype=np.int64), n),
            values=np.concatenate([o.values for o in outs]),
        )

    whole, _ = fridge.update(fridge.FridgeState.empty(), batch(outputs))
    stream = fridge.FridgeState.empty()
    for out in outputs:
        stream, _ = fridge.update(stream, batch([out]))
    for name in ("current_a", "current_base_a", "idle_delta_k", "idle_slow_k", "idle_base_k"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(stream, name))
    assert np.isfinite(whole.idle_base_k).all()


def test_contributions_are_the_shared_normalisation_of_the_evidence() -> None:
    rng = np.random.default_rng(5)
    columns = [rng.normal(size=50).astype(np.float32) for _ in range(8)]
    columns[3][::7] = np.nan
    columns[5][:] = 0.0
    raw = np.stack(columns, axis=1)
    raw[10] = 0.0  # a unit with no evidence at all
    expected = normalise_contributions(raw)
    got = column_shares([raw[:, j] for j in range(raw.shape[1])])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert (got[10] == 0).all()


def test_infinite_evidence_takes_the_whole_share_instead_of_nan() -> None:
    raw = np.array([[np.inf, 2.0, 0.0], [np.inf, np.inf, 1.0], [np.nan, -1.0, 0.0]])
    expected = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    shares = column_shares([raw[:, j].astype(np.float32) for j in range(raw.shape[1])])
    for got in (np.asarray(normalise_contributions(raw), dtype=np.float64), shares):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected, atol=1e-6)


def test_a_trend_fitted_exactly_by_its_first_points_still_explains_itself() -> None:
    """Three readings whose duty rises in a straight line: the trend's standard error is zero,
    its t statistic infinite. The contributions stay shares (they used to be NaN)."""
    rows = np.array(
        [
            [4.2673397, 2.0104544, 20.640865, 0.16120611, 0.71625185, 0.0, 0.0, 1.0],
            [3.8260767, 0.39956194, 20.66268, 0.24475105, 0.71625185, 0.0, 0.0, 1.0],
            [3.7016745, -0.87046504, 20.684484, 0.32658139, 0.71625185, 0.0, 0.0, 1.0],
        ],
        dtype=np.float32,
    )
    state = fridge.FridgeState.empty()
    for k, row in enumerate(rows):
        batch = TelemetryBatch(
            kind="fridge",
            device_ids=("fr-exact",),
            channels=fridge.CHANNELS,
            row_device=np.zeros(1, dtype=np.int64),
            row_seq=np.zeros(1, dtype=np.int64),
            ts_ms=np.array([T0_MS + k * 300_000], dtype=np.int64),
            values=row[None, :].astype(np.float64),
        )
        state, cond = fridge.update(state, batch)
    fit = state.trend.fit(np.array([2 * 300_000 / DAY_MS], dtype=np.float32))
    assert fit.slope[0] > 0  # the case itself: a rising line fitted exactly
    assert fit.slope_se[0] == 0
    assert np.isfinite(cond.contributions).all()
    assert cond.contributions[0].sum() == pytest.approx(1.0)
    assert cond.signals[int(np.argmax(cond.contributions[0]))] == "duty_trend"
    assert not cond.active[0]
