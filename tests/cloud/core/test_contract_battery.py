"""One battery of contract checks, run over every scorer and forecaster of the core.

The models come from :mod:`cloud.core.models`, so a model added there is checked here without
another line. Data comes from the simulators (labelled, seeded), through the real core.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import pytest

from cloud.batch import TelemetryBatch
from cloud.core import fleet, models
from cloud.core.demand import IntermittentState
from cloud.core.registry import Registry
from cloud.core.types import Condition
from tests.cloud.core.labelled import configured, label_matrix, roc_auc, run_core, simulate

SCORERS = models.SCORERS
FORECASTERS = models.FORECASTERS
# kind → (devices, days, sample interval s) of the small scenario the contract checks run on
SMALL = {"fridge": (10, 2.0, 1200), "tyres": (6, 2.0, 1200), "vending": (6, 2.0, 1800)}
# kind → the labelled scenario for ROC AUC: long enough for faults to develop. A jam shows only
# once a customer picks its slot, and most slots sell a few items a week: 16 machines held five
# jams, too few for a stable estimate, so the vending fleet is larger.
LABELLED = {"fridge": (30, 12.0, 1200), "tyres": (30, 12.0, 1200), "vending": (40, 12.0, 1800)}
MIN_AUC = 0.6


def scorer_id(s: models.Scorer) -> str:
    return s.fault


def forecaster_id(f: models.Forecaster) -> str:
    return f.name


@functools.cache
def small(kind: str, seed: int = 11) -> tuple[list[TelemetryBatch], list[dict[str, object]]]:
    n, days, dt = SMALL[kind]
    batches, _, attrs = simulate(kind, n, days, dt, seed=seed)
    return batches, attrs


def fresh_state(kind: str) -> fleet.FleetState:
    batches, attrs = small(kind)
    return configured(kind, batches[0].device_ids, attrs)


def pick(conds: list[Condition], fault: str) -> Condition:
    (cond,) = [c for c in conds if c.fault == fault]
    return cond


def arrays_of(value: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array inside a state value, by dotted field name."""
    out: dict[str, np.ndarray] = {}
    if isinstance(value, np.ndarray):
        out[prefix] = value
    elif isinstance(value, Registry):
        out[prefix + ".ids"] = np.array(value.ids, dtype=object)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            out.update(arrays_of(getattr(value, f.name), f"{prefix}.{f.name}"))
    return out


def kind_state(state: fleet.FleetState, kind: str) -> Any:
    return getattr(state, kind)


def subset(batch: TelemetryBatch, keep_devices: set[str], channels=None) -> TelemetryBatch:
    """The rows of ``keep_devices`` only, optionally with only some ``channels``."""
    ids = tuple(d for d in batch.device_ids if d in keep_devices)
    remap = np.array([ids.index(d) if d in keep_devices else -1 for d in batch.device_ids])
    rows = remap[batch.row_device] >= 0
    chans = batch.channels if channels is None else tuple(channels)
    cols = [batch.channels.index(c) for c in chans]
    return TelemetryBatch(
        kind=batch.kind,
        device_ids=ids,
        channels=chans,
        row_device=remap[batch.row_device][rows],
        row_seq=batch.row_seq[rows],
        ts_ms=batch.ts_ms[rows],
        values=batch.values[rows][:, cols],
    )


def merge(batches: list[TelemetryBatch], rng: np.random.Generator) -> TelemetryBatch:
    """All rows of same-device-list batches as one batch, in shuffled row order."""
    b0 = batches[0]
    order = rng.permutation(sum(b.n_rows for b in batches))
    return TelemetryBatch(
        kind=b0.kind,
        device_ids=b0.device_ids,
        channels=b0.channels,
        row_device=np.concatenate([b.row_device for b in batches])[order],
        row_seq=np.concatenate([b.row_seq for b in batches])[order],
        ts_ms=np.concatenate([b.ts_ms for b in batches])[order],
        values=np.concatenate([b.values for b in batches])[order],
    )


def rows_of(batch: TelemetryBatch) -> list[TelemetryBatch]:
    """Each row of a batch as a batch of its own."""
    out = []
    for r in range(batch.n_rows):
        d = int(batch.row_device[r])
        out.append(
            TelemetryBatch(
                kind=batch.kind,
                device_ids=(batch.device_ids[d],),
                channels=batch.channels,
                row_device=np.zeros(1, dtype=np.int64),
                row_seq=batch.row_seq[r : r + 1],
                ts_ms=batch.ts_ms[r : r + 1],
                values=batch.values[r : r + 1],
            )
        )
    return out


def check_condition(cond: Condition) -> None:
    """Invariants every condition keeps, whatever the input."""
    n = cond.n_units
    for name in ("touched", "active", "severity", "score", "ts_ms", "eta_ms"):
        assert getattr(cond, name).shape == (n,), name
    assert cond.contributions.shape == (n, len(cond.signals))
    assert np.isfinite(cond.score).all()
    assert ((cond.score >= 0) & (cond.score <= 1)).all()
    assert set(np.unique(cond.severity)) <= {0, 1, 2}
    sums = cond.contributions.sum(axis=1)
    assert np.all(np.isclose(sums, 0.0, atol=1e-5) | np.isclose(sums, 1.0, atol=1e-4))
    has = np.isfinite(cond.eta_ms)
    assert (cond.eta_lo_ms[has] <= cond.eta_ms[has] + 1).all()
    assert (cond.eta_ms[has] <= cond.eta_hi_ms[has] + 1).all()
    # An alarm is a high score: every active unit outranks every quiet one.
    if cond.active.any() and (~cond.active).any():
        assert cond.score[cond.active].min() > cond.score[~cond.active].max()


def assert_same_state(a: Any, b: Any, rtol: float = 1e-5) -> None:
    left, right = arrays_of(a), arrays_of(b)
    assert left.keys() == right.keys()
    for name, x in left.items():
        y = right[name]
        if x.dtype == object:
            assert x.tolist() == y.tolist(), name
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-5, equal_nan=True, err_msg=name)


# ---------------------------------------------------------------------------------- scorers


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_input_batch_and_state_are_not_mutated(scorer: models.Scorer) -> None:
    batches, _ = small(scorer.kind)
    state = fresh_state(scorer.kind)
    for b in batches[:20]:
        state, _ = fleet.update(state, b)
    batch = batches[20]
    values, ts = batch.values.copy(), batch.ts_ms.copy()
    before = {k: v.copy() for k, v in arrays_of(kind_state(state, scorer.kind)).items()}
    new, conds = fleet.update(state, batch)
    np.testing.assert_array_equal(batch.values, values)
    np.testing.assert_array_equal(batch.ts_ms, ts)
    after = arrays_of(kind_state(state, scorer.kind))
    for name, arr in before.items():
        np.testing.assert_array_equal(after[name], arr, err_msg=name)
    # ...and the update did move the new state, so the check above could have failed.
    moved = arrays_of(kind_state(new, scorer.kind))
    assert any(
        not np.array_equal(moved[k], v, equal_nan=v.dtype.kind == "f")
        for k, v in before.items()
        if k in moved
    )
    check_condition(pick(conds, scorer.fault))


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_streaming_row_by_row_equals_one_shuffled_batch(scorer: models.Scorer) -> None:
    batches, _ = small(scorer.kind)
    part = batches[:18]
    one, conds_one = fleet.update(fresh_state(scorer.kind), merge(part, np.random.default_rng(3)))
    stream = fresh_state(scorer.kind)
    for b in part:
        for row in rows_of(b):
            stream, _ = fleet.update(stream, row)
    # One more (shared) update makes both assess every unit at the same moment.
    one, conds_one = fleet.update(one, batches[18])
    stream, conds_stream = fleet.update(stream, batches[18])
    assert_same_state(kind_state(one, scorer.kind), kind_state(stream, scorer.kind))
    a, b = pick(conds_one, scorer.fault), pick(conds_stream, scorer.fault)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a.active, b.active)
    np.testing.assert_allclose(a.eta_ms, b.eta_ms, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_scores_are_causal(scorer: models.Scorer) -> None:
    """Changing what comes after t changes no score up to t."""
    batches, _ = small(scorer.kind)
    rng = np.random.default_rng(5)
    cut = 30
    changed = [
        dataclasses.replace(b, values=b.values * rng.uniform(0.5, 1.5, b.values.shape))
        for b in batches[cut:]
    ]

    def scores(seq: list[TelemetryBatch]) -> list[np.ndarray]:
        state, out = fresh_state(scorer.kind), []
        for b in seq:
            state, conds = fleet.update(state, b)
            out.append(pick(conds, scorer.fault).score.copy())
        return out

    original = scores(batches)
    other = scores(batches[:cut] + changed)
    for k in range(cut):
        np.testing.assert_array_equal(original[k], other[k])
    assert any(not np.array_equal(a, b) for a, b in zip(original, other, strict=True))


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_seeded_runs_are_reproducible(scorer: models.Scorer) -> None:
    n, _, dt = SMALL[scorer.kind]

    def run(seed: int) -> list[np.ndarray]:
        batches, _, attrs = simulate(scorer.kind, n, 1.0, dt, seed=seed)
        _, logs = run_core(scorer.kind, batches, attrs)
        return logs[scorer.fault].scores

    a, b, c = run(21), run(21), run(22)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=False))


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_devices_appear_disappear_and_return(scorer: models.Scorer) -> None:
    batches, _ = small(scorer.kind)
    ids = batches[0].device_ids
    first_half = set(ids[: len(ids) // 2])
    without_first = set(ids[1:])
    state = fleet.FleetState.empty()
    for b in batches[:6]:
        state, conds = fleet.update(state, subset(b, first_half))
        check_condition(pick(conds, scorer.fault))
    assert kind_state(state, scorer.kind).registry.ids == tuple(sorted(first_half))
    for b in batches[6:12]:
        state, conds = fleet.update(state, b)
        check_condition(pick(conds, scorer.fault))
    assert set(kind_state(state, scorer.kind).registry.ids) == set(ids)
    before = kind_state(state, scorer.kind)
    for b in batches[12:18]:  # the first device falls silent
        state, conds = fleet.update(state, subset(b, without_first))
        cond = pick(conds, scorer.fault)
        check_condition(cond)
        silent = cond.unit_device == kind_state(state, scorer.kind).registry.pos[ids[0]]
        assert not cond.touched[silent].any()
    pos = kind_state(state, scorer.kind).registry.pos[ids[0]]
    assert kind_state(state, scorer.kind).last_ts_ms[pos] == before.last_ts_ms[pos]
    for b in batches[30:36]:  # ...and comes back after a gap
        state, conds = fleet.update(state, b)
        check_condition(pick(conds, scorer.fault))
    assert kind_state(state, scorer.kind).last_ts_ms[pos] == batches[35].ts_ms.max()


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_channels_appear_and_disappear(scorer: models.Scorer) -> None:
    batches, _ = small(scorer.kind)
    channels = batches[0].channels
    rng = np.random.default_rng(8)
    state = fresh_state(scorer.kind)
    everyone = set(batches[0].device_ids)
    for k, b in enumerate(batches[:40]):
        keep = channels
        if 10 <= k < 25:  # a firmware that reports a random half of the channels
            keep = tuple(c for c in channels if rng.random() < 0.5) or channels[:1]
        state, conds = fleet.update(state, subset(b, everyone, keep))
        check_condition(pick(conds, scorer.fault))


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_gaps_and_nans_keep_the_contract(scorer: models.Scorer) -> None:
    batches, _ = small(scorer.kind)
    rng = np.random.default_rng(9)
    state = fresh_state(scorer.kind)
    for k, b in enumerate(batches):
        if 20 <= k < 40:
            continue  # a gap of several hours
        holes = rng.random(b.values.shape) < 0.2
        state, conds = fleet.update(
            state, dataclasses.replace(b, values=np.where(holes, np.nan, b.values))
        )
        check_condition(pick(conds, scorer.fault))
    for name, arr in arrays_of(kind_state(state, scorer.kind)).items():
        if arr.dtype.kind == "f":
            assert not np.isinf(arr).any(), name


@functools.cache
def labelled(kind: str) -> tuple[list[TelemetryBatch], list[Any], dict[str, Any]]:
    n, days, dt = LABELLED[kind]
    batches, labels, attrs = simulate(kind, n, days, dt, seed=4)
    _, logs = run_core(kind, batches, attrs)
    return batches, labels, logs


@pytest.mark.parametrize("scorer", SCORERS, ids=scorer_id)
def test_roc_auc_above_chance_on_a_labelled_scenario(scorer: models.Scorer) -> None:
    batches, labels, logs = labelled(scorer.kind)
    scores, truth = label_matrix(
        logs[scorer.fault], batches[0].device_ids, labels, scorer.fault, batches
    )
    assert truth.any()
    assert (~truth).any()
    assert roc_auc(scores, truth) > MIN_AUC


def test_roc_auc_helper_can_tell_good_from_useless() -> None:
    truth = np.array([[True, False, True, False]])
    assert roc_auc(np.array([[0.9, 0.1, 0.8, 0.2]]), truth) == 1.0
    assert roc_auc(np.array([[0.5, 0.5, 0.5, 0.5]]), truth) == 0.5


# ------------------------------------------------------------------------------ forecasters


def counts(n: int, t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rate = rng.lognormal(-1.0, 1.0, n)
    return rng.poisson(rate[:, None], (n, t)).astype(float), rate


@pytest.mark.parametrize("model", FORECASTERS, ids=forecaster_id)
def test_forecaster_input_not_mutated_and_reproducible(model: models.Forecaster) -> None:
    y, _ = counts(20, 60, 1)
    before = y.copy()
    state = IntermittentState.empty(20)
    snapshot = [a.copy() for a in state.arrays()]
    a = model.forecast(model.update(state, y))
    np.testing.assert_array_equal(y, before)
    for old, new in zip(snapshot, state.arrays(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_array_equal(a, model.forecast(model.update(IntermittentState.empty(20), y)))


@pytest.mark.parametrize("model", FORECASTERS, ids=forecaster_id)
def test_forecaster_streaming_equals_batch_and_is_causal(model: models.Forecaster) -> None:
    y, _ = counts(15, 80, 2)
    whole = model.update(IntermittentState.empty(15), y)
    state = IntermittentState.empty(15)
    for start in range(0, 80, 7):
        state = model.update(state, y[:, start : start + 7])
    for a, b in zip(whole.arrays(), state.arrays(), strict=True):
        np.testing.assert_allclose(a, b, equal_nan=True)
    prefix = model.forecast(model.update(IntermittentState.empty(15), y[:, :40]))
    future = y.copy()
    future[:, 40:] = 9.0
    head = model.update(IntermittentState.empty(15), future[:, :40])
    np.testing.assert_array_equal(model.forecast(head), prefix)


@pytest.mark.parametrize("model", FORECASTERS, ids=forecaster_id)
def test_forecaster_series_appear_and_bad_input_is_refused(model: models.Forecaster) -> None:
    y, _ = counts(6, 30, 3)
    state = model.update(IntermittentState.empty(4), y[:4])
    grown = model.update(state.grow(6), y)
    alone = model.update(IntermittentState.empty(2), y[4:])
    np.testing.assert_allclose(model.forecast(grown)[4:], model.forecast(alone))
    with pytest.raises(ValueError, match="NaN"):
        model.update(IntermittentState.empty(6), np.where(y > 1, np.nan, y))
    with pytest.raises(ValueError, match="negative"):
        model.update(IntermittentState.empty(6), -y)
    with pytest.raises(ValueError, match="series"):
        model.update(IntermittentState.empty(5), y)


@pytest.mark.parametrize("model", FORECASTERS, ids=forecaster_id)
def test_forecaster_ranks_fast_sellers_above_slow_ones(model: models.Forecaster) -> None:
    y, rate = counts(200, 120, 4)
    forecast = model.forecast(model.update(IntermittentState.empty(200), y))
    fast = rate > np.median(rate)
    assert roc_auc(forecast[None, :], fast[None, :]) > 0.85
    assert abs(np.sum(forecast) / np.sum(rate) - 1.0) < 0.25


# -------------------------------------------------- the generic detector (cloud.core.detector)

detector = pytest.importorskip("cloud.core.detector")


def seasonal_series(n_series: int, n: int, seed: int) -> tuple[np.ndarray, ...]:
    """Daily-seasonal noisy series at 10-minute steps with labelled spikes and level shifts."""
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * 600_000
    base = 10 + 3 * np.sin(2 * np.pi * ts / 86_400_000)[None, :] + rng.normal(0, 0.3, (n_series, n))
    truth = np.zeros((n_series, n), dtype=bool)
    for s in range(n_series):
        for at in rng.integers(n // 3, n - 5, 3):
            base[s, at] += rng.choice([-1, 1]) * rng.uniform(4, 8)
            truth[s, at] = True
    series = np.repeat(np.arange(n_series), n)
    return series, np.tile(ts, n_series), base.ravel(), truth.ravel()


def detect(state, series, ts, values):
    return detector.update(state, series, ts, values, detector.DetectorConfig())


def fresh_detector(n_series: int):
    return detector.DetectorState.empty(n_series, 1, detector.DetectorConfig())


def test_detector_input_not_mutated_and_streaming_equals_batch() -> None:
    series, ts, values, _ = seasonal_series(3, 300, 1)
    before = values.copy()
    state0 = fresh_detector(3)
    snapshot = {k: v.copy() for k, v in arrays_of(state0).items()}
    whole, scores = detect(state0, series, ts, values)
    np.testing.assert_array_equal(values, before)
    for name, arr in arrays_of(state0).items():
        np.testing.assert_array_equal(arr, snapshot[name], err_msg=name)
    state, streamed = fresh_detector(3), []
    order = np.lexsort((series, ts))  # interleaved in time, one reading at a time
    for i in order:
        state, sc = detect(state, series[i : i + 1], ts[i : i + 1], values[i : i + 1])
        streamed.append(sc.score[0])
    np.testing.assert_allclose(np.array(streamed), scores.score[order], rtol=1e-6, atol=1e-9)
    assert_same_state(whole, state)


def test_detector_is_causal_reproducible_and_handles_gaps_nans_and_new_series() -> None:
    series, ts, values, _ = seasonal_series(2, 400, 2)
    changed = values.copy()
    late = ts >= ts[250]
    changed[late] = changed[late] * 3.0 + 7.0
    _, a = detect(fresh_detector(2), series, ts, values)
    _, b = detect(fresh_detector(2), series, ts, changed)
    np.testing.assert_array_equal(a.score[~late], b.score[~late])
    assert not np.array_equal(a.score[late], b.score[late])
    _, again = detect(fresh_detector(2), series, ts, values)
    np.testing.assert_array_equal(a.score, again.score)
    holes = values.copy()
    holes[np.random.default_rng(3).random(holes.shape) < 0.2] = np.nan
    keep = (ts < ts[100]) | (ts > ts[180])  # and a gap of 13 hours
    state, sc = detect(fresh_detector(1), series[keep], ts[keep], holes[keep])
    assert np.isfinite(sc.score).all()
    assert ((sc.score >= 0) & (sc.score <= 1)).all()
    state, sc = detect(state, np.array([3]), np.array([ts[-1]]), np.array([1.0]))  # a new series
    assert state.n_series == 4
    assert np.isfinite(sc.score).all()


def test_detector_roc_auc_above_chance_on_labelled_spikes() -> None:
    series, ts, values, truth = seasonal_series(6, 1000, 4)
    _, scores = detect(fresh_detector(6), series, ts, values)
    assert roc_auc(scores.score[None, :], truth[None, :]) > 0.8
