"""The streaming detector: contract checks, labelled synthetic data and NAB-dev."""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from cloud.core import detect_filters, detector
from cloud.core.detector import EXPERTS, DetectorConfig, DetectorState, score_series, update

MIN = 60_000
STEP = 10 * MIN
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
CFG = DetectorConfig()
NAB = Path(__file__).resolve().parents[3].parent / "shared" / "benchmarks" / "nab-dev"


def seasonal(rng: np.random.Generator, days: float, noise: float = 0.3) -> tuple[np.ndarray, ...]:
    ts = T0 + np.arange(int(days * DAY / STEP), dtype=np.int64) * STEP
    phase = 2 * np.pi * (ts - T0) / DAY
    x = 10.0 + 3.0 * np.sin(phase) + rng.normal(0.0, noise, ts.size)
    return ts, x


def one(ts: np.ndarray, x: np.ndarray, cfg: DetectorConfig = CFG) -> np.ndarray:
    return score_series([ts], [x], cfg)[0]


def assert_states_close(a: DetectorState, b: DetectorState) -> None:
    for f in fields(DetectorState):
        np.testing.assert_allclose(
            getattr(a, f.name), getattr(b, f.name), rtol=1e-9, atol=1e-9, err_msg=f.name
        )


def test_doctests_hold() -> None:
    for module in (detector, detect_filters):
        assert doctest.testmod(module).failed == 0


def test_scores_are_causal() -> None:
    ts, x = seasonal(np.random.default_rng(1), 6)
    base = one(ts, x)
    cut = 500
    changed = x.copy()
    changed[cut:] = np.random.default_rng(2).normal(100.0, 50.0, x.size - cut)
    other = one(ts, changed)
    np.testing.assert_array_equal(base[:cut], other[:cut])
    assert not np.array_equal(base[cut:], other[cut:])


def test_many_series_at_once_equal_each_alone() -> None:
    rng = np.random.default_rng(3)
    series = [seasonal(rng, d, noise) for d, noise in ((3, 0.2), (5, 1.0), (2, 0.05))]
    series[1][1][400] += 20.0
    together = score_series([s[0] for s in series], [s[1] for s in series])
    for (ts, x), got in zip(series, together, strict=True):
        np.testing.assert_allclose(got, one(ts, x), rtol=1e-12, atol=1e-12)


def test_streaming_equals_batch() -> None:
    rng = np.random.default_rng(4)
    ts, x = seasonal(rng, 12)  # past the warm-up, so that episodes open
    x[1500] += 15.0
    x[1550:] += 4.0
    series = np.zeros(ts.size, dtype=np.int64)
    batch_state, batch = update(DetectorState.empty(1, 1, CFG), series, ts, x, CFG)

    state = DetectorState.empty(1, 1, CFG)
    streamed = []
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, ts.size), 40, replace=False)), ts.size]
    for lo, hi in itertools.pairwise(cuts):  # uneven chunks, many of one row
        for a, b in ((lo, lo + 1), (lo + 1, hi)) if hi - lo > 1 else ((lo, hi),):
            state, sc = update(state, series[a:b], ts[a:b], x[a:b], CFG)
            streamed.append(sc.score)
    np.testing.assert_allclose(np.concatenate(streamed), batch.score, rtol=1e-9, atol=1e-9)
    assert_states_close(state, batch_state)
    assert batch.score.max() > 0.5  # the spike fired, so the comparison covers an episode


def test_score_in_unit_interval_on_hostile_input() -> None:
    rng = np.random.default_rng(5)
    n = 600
    ts = T0 + np.arange(n, dtype=np.int64) * MIN
    inputs = [
        np.zeros(n),
        np.full(n, 1e12),
        rng.normal(0, 1e-9, n),
        np.where(rng.random(n) < 0.05, 1e9, 0.0),
        np.cumsum(rng.normal(0, 1, n)),
        np.r_[np.zeros(n // 2), np.full(n - n // 2, -1e6)],
    ]
    for got in score_series([ts] * len(inputs), inputs):
        assert np.isfinite(got).all()
        assert ((got >= 0.0) & (got <= 1.0)).all()


def test_missing_readings_score_zero_and_leave_the_state_alone() -> None:
    ts, x = seasonal(np.random.default_rng(6), 2)
    holes = x.copy()
    holes[100:130] = np.nan
    s0 = np.zeros(ts.size, dtype=np.int64)
    with_nan, sc = update(DetectorState.empty(1, 1, CFG), s0, ts, holes, CFG)
    keep = ~np.isnan(holes)
    without, sc2 = update(DetectorState.empty(1, 1, CFG), s0[keep], ts[keep], x[keep], CFG)
    assert (sc.score[~keep] == 0.0).all()
    np.testing.assert_allclose(sc.score[keep], sc2.score, rtol=1e-12, atol=1e-12)
    assert_states_close(with_nan, without)


def test_gaps_and_irregular_sampling_do_not_raise_alarms() -> None:
    rng = np.random.default_rng(7)
    ts, x = seasonal(rng, 10)
    keep = rng.random(ts.size) < 0.6  # irregular: 60 % of the readings
    keep[(ts > T0 + 4 * DAY) & (ts < T0 + 5 * DAY)] = False  # a whole day missing
    ts, x = ts[keep], x[keep]
    jitter = rng.integers(-MIN, MIN, ts.size)
    got = one(ts + jitter, x)
    assert got[ts > T0 + 3 * DAY].max() < 0.5


def test_deterministic_and_input_not_mutated() -> None:
    ts, x = seasonal(np.random.default_rng(8), 2)
    x[200] = 40.0
    state = DetectorState.empty(1, 1, CFG)
    before = [getattr(state, f.name).copy() for f in fields(DetectorState)]
    x_copy, ts_copy = x.copy(), ts.copy()
    series = np.zeros(ts.size, dtype=np.int64)
    _, a = update(state, series, ts, x, CFG)
    _, b = update(state, series, ts, x, CFG)
    np.testing.assert_array_equal(a.score, b.score)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(ts, ts_copy)
    for f, old in zip(fields(DetectorState), before, strict=True):
        np.testing.assert_array_equal(getattr(state, f.name), old)


def test_spike_and_level_shift_score_high_plain_seasonal_noise_low() -> None:
    rng = np.random.default_rng(9)
    ts, x = seasonal(rng, 8)
    clean = one(ts, x)
    spike, shift = x.copy(), x.copy()
    at = int(6 * DAY / STEP)
    spike[at] += 8.0
    shift[at:] -= 4.0
    assert clean[int(2 * DAY / STEP) :].max() < 0.5
    assert one(ts, spike)[at] > 0.5
    assert one(ts, shift)[at : at + 12].max() > 0.5


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half)."""
    gt = (pos[:, None] > neg[None, :]).mean()
    eq = (pos[:, None] == neg[None, :]).mean()
    return float(gt + 0.5 * eq)


def test_roc_auc_well_above_chance_on_labelled_synthetic_series() -> None:
    rng = np.random.default_rng(10)
    kinds = ("spike", "shift", "drop_season", "variance")
    ts_all, x_all, label = [], [], []
    for i in range(40):
        ts, x = seasonal(rng, 9, noise=rng.uniform(0.1, 0.6))
        x = x * rng.uniform(0.5, 50.0) + rng.uniform(-100, 100)  # any units, any level
        anomalous = i % 2 == 0
        if anomalous:
            at = int(rng.uniform(6.5, 8.0) * DAY / STEP)
            scale = float(np.std(np.diff(x)))
            kind = kinds[(i // 2) % len(kinds)]
            if kind == "spike":
                x[at] += 12 * scale * rng.choice([-1, 1])
            elif kind == "shift":
                x[at:] += 8 * scale * rng.choice([-1, 1])
            elif kind == "drop_season":
                x[at : at + 36] = float(np.mean(x[:at]))
            else:
                x[at : at + 36] += rng.normal(0.0, 6 * scale, 36)
        ts_all.append(ts)
        x_all.append(x)
        label.append(anomalous)
    scores = score_series(ts_all, x_all)
    window = slice(int(6.5 * DAY / STEP), None)
    top = np.array([s[window].max() for s in scores])
    lab = np.array(label)
    assert auc(top[lab], top[~lab]) > 0.9


def test_contributions_name_the_channel_that_moved() -> None:
    rng = np.random.default_rng(11)
    ts, a = seasonal(rng, 12)
    _, b = seasonal(rng, 12, noise=1.0)
    b = b * 100.0
    at = int(11 * DAY / STEP)
    b[at] += 2_000.0
    values = np.stack([a, b], axis=1)
    cfg = DetectorConfig()
    state = DetectorState.empty(1, 2, cfg)
    _, sc = update(state, np.zeros(ts.size, dtype=np.int64), ts, values, cfg)
    assert sc.score[at] > 0.5
    assert sc.contributions[at, 1] > 0.8  # the quiet channel keeps its everyday share
    assert EXPERTS[int(sc.expert[at])] == "point"
    sums = sc.contributions.sum(axis=1)
    assert np.all((np.abs(sums - 1.0) < 1e-9) | (sums == 0.0))


def test_series_appear_later_and_grow_the_state() -> None:
    cfg = DetectorConfig()
    state = DetectorState.empty(1, 1, cfg)
    ts = T0 + np.arange(3, dtype=np.int64) * MIN
    state, _ = update(state, np.array([0, 0, 5]), ts, np.array([1.0, 2.0, 3.0]), cfg)
    assert state.n_series == 6
    assert state.n_obs[:, 0].tolist() == [2, 0, 0, 0, 0, 1]
    assert 0 < state.nbytes_per_series() < 16_384


def test_bad_arguments_are_refused() -> None:
    cfg = DetectorConfig()
    state = DetectorState.empty(1, 2, cfg)
    ts = np.array([T0], dtype=np.int64)
    with pytest.raises(ValueError, match="shape"):
        update(state, np.array([0]), ts, np.array([1.0]), cfg)  # one channel, state has two
    with pytest.raises(ValueError, match="within"):
        update(state, np.array([0]), ts, np.array([[np.inf, 1.0]]), cfg)
    with pytest.raises(ValueError, match="non-negative"):
        update(state, np.array([-1]), ts, np.array([[1.0, 1.0]]), cfg)
    with pytest.raises(ValueError, match="spans"):
        DetectorConfig(tail_span=0.0)
    with pytest.raises(ValueError, match="season_alpha"):
        DetectorConfig(season_alpha=1.5)
    with pytest.raises(ValueError, match="same number"):
        score_series([ts], [])
    _, empty = update(state, np.zeros(0, dtype=np.int64), ts[:0], np.zeros((0, 2)), cfg)
    assert empty.score.shape == (0,)
    assert empty.contributions.shape == (0, 2)


@pytest.mark.skipif(not NAB.is_dir(), reason="the NAB-dev benchmark data is not next to the repo")
def test_nab_dev_standard_score() -> None:
    """The score on NAB-dev with its own scorer (regression guard; see docs/benchmarks.md)."""
    spec = importlib.util.spec_from_file_location("nab_score", NAB / "nab_score.py")
    assert spec is not None
    assert spec.loader is not None
    nab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nab)
    windows = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    rels = sorted(windows)
    ts_list, x_list, win_idx = [], [], []
    for rel in rels:
        text = np.loadtxt(NAB / "data" / rel, delimiter=",", skiprows=1, dtype=str)
        stamps = np.char.replace(text[:, 0], " ", "T")
        ts_list.append(stamps.astype("datetime64[ms]").astype(np.int64))
        x_list.append(text[:, 1].astype(np.float64))
        pos = {s[:19]: i for i, s in enumerate(text[:, 0])}
        win_idx.append([(pos[a[:19]], pos[b[:19]]) for a, b in windows[rel]])
    scores = score_series(ts_list, x_list)
    files = list(zip(rels, scores, win_idx, strict=True))
    result = nab.corpus_score(files, *nab.PROFILES["standard"])
    assert result["score"] >= 70.0  # measured 72.63 (standard profile)


def test_chunked_scan_matches_a_first_order_filter() -> None:
    from scipy.signal import lfilter

    rng = np.random.default_rng(12)
    for alpha in (1.0, 0.5, 0.15, 2.0 / 10_001):
        x = rng.normal(0.0, 1e6, (3000, 4))
        start = rng.normal(0.0, 1e6, 4)
        keep = 1.0 - alpha
        ref, _ = lfilter([alpha], [1.0, -keep], x, axis=0, zi=(keep * start)[None, :])
        got = detect_filters.ewm_sum(x, alpha, start)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-6)


def test_back_filled_rows_are_marked_late_and_not_learned() -> None:
    ts, x = seasonal(np.random.default_rng(13), 3)
    series = np.zeros(ts.size, dtype=np.int64)
    state, _ = update(DetectorState.empty(1, 1, CFG), series[200:], ts[200:], x[200:], CFG)
    again, sc = update(state, series[:200], ts[:200], x[:200] + 50.0, CFG)
    assert sc.late.all()
    assert (sc.score == 0.0).all()
    assert_states_close(again, state)
    _, fresh = update(state, series[:1], ts[-1:] + STEP, x[-1:], CFG)
    assert not fresh.late.any()
