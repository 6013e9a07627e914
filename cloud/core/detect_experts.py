"""The detector's experts and their calibration, vectorized over time and columns at once.

A column is one channel of one series. Every expert compares a reading with baselines learned
from the column's earlier readings only, so a block of readings is scored with whole-array
filters while the scores stay causal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud.core.detect_filters import (
    before,
    ewm,
    ewm_sum,
    last_rows,
    mean_of,
    pad_groups,
    span_alpha,
)
from cloud.core.kernels import BoolArray, FloatArray, IntArray

EXPERTS = ("point", "level_shift", "variance_shift", "daily", "weekly")
N_EXPERTS = len(EXPERTS)
MS_PER_DAY = 86_400_000
MS_PER_WEEK = 7 * MS_PER_DAY
WEEK_ORIGIN_MS = 3 * MS_PER_DAY  # 1970-01-01 was a Thursday: weekly bin 0 starts Monday 00:00 UTC

# Exponentially weighted sums kept per column, each as (num, den): see ``detect_filters.ewm``.
(
    F_POINT,  # level the point expert compares with
    F_POINT_DEV_RAW,  # size of point deviations, unclipped (the clipping reference)
    F_POINT_DEV,  # size of point deviations, clipped
    F_SHORT,  # short level
    F_LONG,  # long level (learns from clipped readings)
    F_LONG_DEV,  # typical deviation from the long level
    F_SHORT_VAR,  # short-term variance around the long level
    F_LONG_VAR,  # long-term variance around the long level
    F_DAILY_RES,  # smoothed residual against the daily profile
    F_WEEKLY_RES,  # smoothed residual against the weekly profile
    F_DAILY_DEV,  # typical size of the daily residual (for the gate)
    F_WEEKLY_DEV,  # typical size of the weekly residual
    F_LAST_TS,  # time of the column's newest reading (num; den is 1 once there is one)
    F_INTERVAL,  # typical interval between readings, ms
    F_GAP,  # decaying memory of a recent gap
) = range(15)
# Log-evidence thresholds of the empirical tail: finer near zero, up to evidence of about e^8.
TAIL_EDGES = 8.0 * (np.arange(1, 25) / 24.0) ** 2
F_TAIL = 15  # N_EXPERTS x edges: share of an expert's readings that reached each edge
N_FILTERS = F_TAIL + N_EXPERTS * TAIL_EDGES.size
# Profile cells: (mean num, mean den, spread num, spread den) per bin.
N_CELL = 4
GAP_MEMORY = span_alpha(50.0)  # typical interval: mean over about 50 intervals
GAP_TRAIL = 0.06


@dataclass(frozen=True, slots=True)
class Settings:
    """The numbers the experts use; built from ``DetectorConfig`` (see its docstring)."""

    point_span: float
    point_scale_span: float
    short_span: float
    long_span: float
    short_var_span: float
    long_var_span: float
    clip_k: float
    season_alpha: float
    season_min_visits: int
    smooth_alpha: float
    daily_bins: int
    weekly_bins: int
    season_gate: float
    variance_floor: float
    tail_span: float
    tail_warmup: float
    gap_factor: float


@dataclass(frozen=True, slots=True)
class Block:
    """Readings of one block on a ``[t, col]`` grid (``w`` is 1 on real readings, 0 on padding)."""

    x: FloatArray
    w: FloatArray
    ts_ms: IntArray
    length: IntArray  # real rows per column


class Filters:
    """Mutable working copy of the per-column sums of one block (never leaves this module)."""

    def __init__(self, sums: FloatArray, block: Block) -> None:
        self.sums = sums  # (cols, N_FILTERS, 2), updated to the block's end
        self.block = block

    def run(
        self, f: int, x: FloatArray, w: FloatArray, alpha: float
    ) -> tuple[FloatArray, FloatArray]:
        """Feed ``x`` (weights ``w``) to filter ``f``; return ``(mean_before, mean_after)``."""
        num0, den0 = self.sums[:, f, 0], self.sums[:, f, 1]
        num, den = ewm(x, w, alpha, num0, den0)
        after = mean_of(num, den)
        prev = before(after, mean_of(num0, den0))
        length = self.block.length
        self.sums[:, f, 0] = last_rows(num, length, num0)
        self.sums[:, f, 1] = last_rows(den, length, den0)
        return prev, after


def _profile(
    cells: FloatArray, bins: IntArray, x: FloatArray, xc: FloatArray, block: Block, alpha: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Residual against a wall-clock profile, the bin's spread and its learned weight.

    ``cells[col, bin, N_CELL]`` is updated in place. Each bin is an exponentially weighted mean
    over its visits (of clipped readings, so spikes are not learned); the residual of a reading
    is taken against the bin as it was before the reading.
    """
    t_idx, c_idx = np.nonzero(block.w > 0.0)
    n_bins = cells.shape[1]
    key = c_idx * n_bins + bins[t_idx, c_idx]
    order = np.lexsort((t_idx, key))
    t_idx, c_idx, key = t_idx[order], c_idx[order], key[order]
    groups, gid = np.unique(key, return_inverse=True)
    rank, length, depth = pad_groups(gid, groups.shape[0])
    g_col, g_bin = groups // n_bins, groups % n_bins
    grid = np.zeros((max(depth, 1), groups.shape[0]))
    wgrid = np.zeros_like(grid)
    wgrid[rank, gid] = 1.0
    state = cells[g_col, g_bin]  # (groups, N_CELL)
    grid[rank, gid] = xc[t_idx, c_idx]
    num, den = ewm(grid, wgrid, alpha, state[:, 0], state[:, 1])
    mean_prev = before(mean_of(num, den), mean_of(state[:, 0], state[:, 1]))
    raw = np.zeros_like(grid)
    raw[rank, gid] = x[t_idx, c_idx]
    seen = ~np.isnan(mean_prev)
    resid = np.where(seen, raw - mean_prev, 0.0)
    snum, sden = ewm(np.abs(resid), wgrid * seen, alpha, state[:, 2], state[:, 3])
    spread_prev = before(mean_of(snum, sden), mean_of(state[:, 2], state[:, 3]))
    weight_prev = before(den, state[:, 1])
    for j, arr in enumerate((num, den, snum, sden)):
        cells[g_col, g_bin, j] = last_rows(arr, length, state[:, j])

    shape = x.shape
    out_resid, out_spread, out_weight = np.zeros(shape), np.full(shape, np.nan), np.zeros(shape)
    out_resid[t_idx, c_idx] = resid[rank, gid]
    out_spread[t_idx, c_idx] = spread_prev[rank, gid]
    out_weight[t_idx, c_idx] = weight_prev[rank, gid]
    return out_resid, out_spread, out_weight


def evidence(
    block: Block, sums: FloatArray, daily: FloatArray, weekly: FloatArray, s: Settings
) -> tuple[FloatArray, BoolArray]:
    """Evidence ``e[t, col, expert] >= 0`` (robust z-like units) of every reading in the block.

    Also returns where each expert had a baseline to judge the reading by (``active``).

    ``sums``, ``daily`` and ``weekly`` are the block's working copies of the state and are
    advanced to the block's end in place.
    """
    f = Filters(sums, block)
    x, w = block.x, block.w
    k = s.clip_k

    point_prev, _ = f.run(F_POINT, x, w, span_alpha(s.point_span))
    has_prev = ~np.isnan(point_prev)
    wd = w * has_prev
    d = np.where(has_prev, x - point_prev, 0.0)
    raw_prev, _ = f.run(F_POINT_DEV_RAW, np.abs(d), wd, span_alpha(s.point_scale_span))
    lim = np.where(np.isnan(raw_prev), np.inf, k * raw_prev)
    dc = np.clip(d, -lim, lim)
    dev_prev, _ = f.run(F_POINT_DEV, np.abs(dc), wd, span_alpha(s.point_scale_span))
    xc = np.where(has_prev, point_prev + dc, x)

    _, short_now = f.run(F_SHORT, x, w, span_alpha(s.short_span))
    long_prev, _ = f.run(F_LONG, xc, w, span_alpha(s.long_span))
    has_long = ~np.isnan(long_prev)
    floor = 1e-6 * (np.abs(np.nan_to_num(long_prev)) + 1e-3)
    dl = np.where(has_long, x - long_prev, 0.0)
    dlc = np.where(has_long, xc - long_prev, 0.0)
    wl = w * has_long
    ldev_prev, _ = f.run(F_LONG_DEV, np.abs(dlc), wl, span_alpha(s.long_span))
    cap = np.where(np.isnan(ldev_prev), np.inf, k * ldev_prev)
    _, svar_now = f.run(F_SHORT_VAR, dl * dl, wl, span_alpha(s.short_var_span))
    lvar_prev, _ = f.run(
        F_LONG_VAR, np.minimum(dl * dl, cap * cap), wl, span_alpha(s.long_var_span)
    )

    e = np.zeros((*x.shape, N_EXPERTS))
    active = np.zeros(e.shape, dtype=bool)
    e[..., 0] = np.abs(d) / (dev_prev + floor)
    e[..., 1] = np.abs(short_now - long_prev) / (ldev_prev + floor)
    vfloor = (s.variance_floor * ldev_prev) ** 2 + floor * floor
    e[..., 2] = np.abs(np.log((svar_now + vfloor) / (lvar_prev + vfloor)))

    trusted = 1.0 - (1.0 - s.season_alpha) ** s.season_min_visits
    half_dev = 0.5 * np.nan_to_num(dev_prev)
    for j, cells, n_bins, period, origin, f_res, f_dev in (
        (3, daily, s.daily_bins, MS_PER_DAY, 0, F_DAILY_RES, F_DAILY_DEV),
        (4, weekly, s.weekly_bins, MS_PER_WEEK, WEEK_ORIGIN_MS, F_WEEKLY_RES, F_WEEKLY_DEV),
    ):
        bins = ((block.ts_ms + origin) % period) * n_bins // period
        resid, spread, weight = _profile(cells, bins, x, xc, block, s.season_alpha)
        ok = (weight >= trusted - 1e-12) & (w > 0.0)
        _, smooth = f.run(f_res, resid * ok, w, s.smooth_alpha)
        sdev_prev, _ = f.run(f_dev, np.minimum(np.abs(resid), cap), w * ok, span_alpha(s.long_span))
        # A profile speaks only where it explains the series better than a plain level does.
        gate = np.clip((1.0 - sdev_prev / (ldev_prev + floor)) / s.season_gate, 0.0, 1.0)
        denom = spread + half_dev + floor
        e[..., j] = np.nan_to_num(np.abs(smooth) / denom * gate) * ok
        active[..., j] = ok & (np.nan_to_num(gate) > 0.0)

    # Right after a gap the short baselines are stale: the short-term experts stay silent for a
    # few readings (the profiles, on wall-clock time, still speak).
    fresh = _after_gap(f, sums, block, s)
    short_ok = (wd > 0.0) & has_long & ~fresh
    e[..., :3] *= short_ok[..., None]
    active[..., :3] = short_ok[..., None]
    return np.nan_to_num(e, posinf=0.0), active


def _after_gap(f: Filters, sums: FloatArray, block: Block, s: Settings) -> BoolArray:
    """Readings within a few readings after an interval of ``gap_factor`` typical intervals."""
    w, length = block.w, block.length
    ts = block.ts_ms.astype(np.float64)
    last0, seen = sums[:, F_LAST_TS, 0], sums[:, F_LAST_TS, 1] > 0.0
    interval = ts - before(ts, np.where(seen, last0, np.nan))
    has_interval = ~np.isnan(interval) & (w > 0.0)
    typical, _ = f.run(F_INTERVAL, np.nan_to_num(interval), w * has_interval, GAP_MEMORY)
    gap = has_interval & (interval > s.gap_factor * np.nan_to_num(typical, nan=np.inf))
    num, den = ewm(gap.astype(np.float64), w, 0.5, sums[:, F_GAP, 0], sums[:, F_GAP, 1])
    sums[:, F_GAP, 0] = last_rows(num, length, sums[:, F_GAP, 0])
    sums[:, F_GAP, 1] = last_rows(den, length, sums[:, F_GAP, 1])
    sums[:, F_LAST_TS, 0] = last_rows(ts, length, last0)
    sums[:, F_LAST_TS, 1] = np.where(length > 0, 1.0, sums[:, F_LAST_TS, 1])
    recent: BoolArray = num > GAP_TRAIL  # the gap reading and the next three
    return recent


def surprise(
    e: FloatArray, active: BoolArray, block: Block, sums: FloatArray, s: Settings
) -> FloatArray:
    """How improbable each expert's evidence is among that expert's earlier readings (decades).

    Only readings an expert could judge (``active``) enter its history. The calibration is
    empirical, so an event that recurs (the edges of a square wave, the spikes of a spiky
    series) stops surprising however large it is. An expert speaks in full once about
    ``tail_warmup`` readings are in its memory.
    """
    le = np.log1p(e)
    out = np.zeros_like(le)
    alpha = span_alpha(s.tail_span)
    for j in range(N_EXPERTS):
        wj = block.w * active[..., j]
        rarity, n_eff = _empirical(le[..., j], wj, sums, j, block, alpha)
        out[..., j] = rarity * np.clip(n_eff / s.tail_warmup, 0.0, 1.0) * wj
    return out


def _empirical(
    le: FloatArray, w: FloatArray, sums: FloatArray, j: int, block: Block, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """Improbability (decades) of each reading among the expert's earlier readings.

    Keeps, per edge, the exponentially weighted share of readings whose log-evidence reached it;
    a reading's tail probability is the share at the highest edge it reaches. A value never seen
    within memory gets ``log10`` of the readings in memory, plus its excess over the largest
    edge seen, so new extremes still rank by size. Returns ``(surprise, readings in memory)``.
    """
    n_edges = TAIL_EDGES.size
    t_len, cols = le.shape
    lo = F_TAIL + j * n_edges
    num0 = sums[:, lo : lo + n_edges, 0].reshape(cols * n_edges)
    den0 = sums[:, lo, 1]  # every edge of an expert shares one weight
    reached = (le[..., None] >= TAIL_EDGES) & (w[..., None] > 0.0)
    num = ewm_sum(reached.reshape(t_len, cols * n_edges).astype(np.float64), alpha, num0)
    den = ewm_sum(w, alpha, den0)
    num_prev = before(num, num0).reshape(t_len, cols, n_edges)
    den_prev = before(den, den0)
    sums[:, lo : lo + n_edges, 0] = last_rows(num, np.repeat(block.length, n_edges), num0).reshape(
        cols, n_edges
    )
    sums[:, lo : lo + n_edges, 1] = last_rows(den, block.length, den0)[:, None]

    n_eff = den_prev / alpha
    k = np.searchsorted(TAIL_EDGES, le, side="right") - 1
    hits = np.take_along_axis(num_prev, np.maximum(k, 0)[..., None], axis=2)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(k < 0, 1.0, np.where(den_prev > 0.0, hits / den_prev, 0.0))
    n_seen = (num_prev > 0.0).sum(axis=2)
    top = np.where(n_seen > 0, TAIL_EDGES[np.maximum(n_seen - 1, 0)], 0.0)
    never = log10_safe(n_eff + 1.0) + np.maximum(le - top, 0.0)
    seen_before = -log10_safe(np.maximum(p, 1.0 / (n_eff + 1.0)))
    out: FloatArray = np.maximum(np.where(p > 0.0, seen_before, never), 0.0)
    return out, n_eff


def log10_safe(x: FloatArray) -> FloatArray:
    out: FloatArray = np.log10(np.maximum(x, 1e-300))
    return out
