"""Generic streaming anomaly detector for numeric channels, vectorized over many series.

Each series (a device, a file) has ``c`` channels scored together. Five experts judge each
reading against baselines learned from earlier readings only: the deviation from a short level,
a shift of a short level against a long one, a shift of the short-term variance, and the
deviation from a daily and from a weekly profile (wall-clock bins, so irregular sampling and gaps
need no resampling; a profile speaks only where it explains the series). Each expert's evidence
is ranked among that expert's own earlier evidence (an exponentially forgetting empirical tail),
so one configuration suits any units and noise level, and an event that recurs — however large
— stops surprising. The largest surprise gives the score in [0, 1]. A reading whose surprise
reaches ``fire_surprise`` opens an episode and keeps its full score; every other reading is
damped, and a new episode opens only ``quiet_readings`` later (or when much stronger), so an
episode is reported once. Baselines learn from readings clipped to a few typical deviations, so
a spike is not learned while a level shift is, within a few readings.

Streaming equals batch: every baseline is an exponentially weighted sum whose state is kept, and
so is the episode state, so folding single readings through ``update`` gives the same state and
scores as one call with all of them (up to floating-point rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from cloud.core import detect_experts as dx
from cloud.core.detect_experts import EXPERTS, N_CELL, N_EXPERTS, N_FILTERS, Block, Settings
from cloud.core.detect_filters import MAX_ABS, pad_groups
from cloud.core.kernels import BoolArray, FloatArray, IntArray

__all__ = ["EXPERTS", "DetectorConfig", "DetectorState", "Scores", "score_series", "update"]

BLOCK_ROUNDS = 4096  # readings per column scored in one array pass (bounds the padded grid)


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Settings of the detector; one configuration serves every series.

    Spans are in readings of a channel (an exponentially weighted mean of span ``n`` weighs a new
    reading ``2 / (n + 1)``); profiles are in wall-clock bins (UTC).
    """

    point_span: float = 3.0  # level the point expert compares each reading with
    point_scale_span: float = 300.0  # typical size of a point deviation
    short_span: float = 8.0  # short level of the level-shift expert
    long_span: float = 600.0  # long level and its typical deviation
    short_var_span: float = 40.0  # short-term variance of the variance-shift expert
    long_var_span: float = 1500.0  # long-term variance it is compared with
    clip_k: float = 5.0  # readings beyond this many typical deviations are clipped for learning
    season_alpha: float = 0.15  # weight of a new visit to a profile bin
    season_min_visits: int = 3  # visits before a profile bin is trusted
    smooth_alpha: float = 0.3  # smoothing of the seasonal residual
    daily_bins: int = 96  # 15-minute bins over the day
    weekly_bins: int = 168  # hourly bins over the week, Monday first
    season_gate: float = 0.6  # a profile speaks in full once it removes this share of deviation
    variance_floor: float = 0.5  # floor of the variances, in long-deviation units
    tail_span: float = 10_000.0  # memory of each expert's evidence history, readings
    tail_warmup: float = 1000.0  # readings before the experts speak in full
    gap_factor: float = 4.0  # an interval this many times the typical one is a gap
    fire_surprise: float = 3.0  # surprise (decades) at which a reading fires; its score is 0.5
    quiet_readings: int = 600  # readings after a firing whose scores are damped
    quiet_damping: float = 0.5  # factor on the scores while damped
    refire_margin: float = 2.0  # a damped reading this much (decades) above the episode fires

    def __post_init__(self) -> None:
        spans = (
            self.point_span,
            self.point_scale_span,
            self.short_span,
            self.long_span,
            self.short_var_span,
            self.long_var_span,
            self.tail_span,
        )
        if min(spans) < 1.0:
            raise ValueError(f"spans must be at least 1 reading, got {spans}")
        if self.daily_bins < 1 or self.weekly_bins < 1 or self.season_min_visits < 1:
            raise ValueError("daily_bins, weekly_bins and season_min_visits must be positive")
        for name in ("season_alpha", "smooth_alpha", "quiet_damping", "season_gate"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if min(self.fire_surprise, self.clip_k, self.tail_warmup) <= 0.0 or self.quiet_readings < 0:
            raise ValueError("fire_surprise, clip_k, tail_warmup must be > 0, quiet_readings >= 0")
        if self.gap_factor <= 1.0:
            raise ValueError(f"gap_factor must exceed 1, got {self.gap_factor}")

    def settings(self) -> Settings:
        return Settings(
            point_span=self.point_span,
            point_scale_span=self.point_scale_span,
            short_span=self.short_span,
            long_span=self.long_span,
            short_var_span=self.short_var_span,
            long_var_span=self.long_var_span,
            clip_k=self.clip_k,
            season_alpha=self.season_alpha,
            season_min_visits=self.season_min_visits,
            smooth_alpha=self.smooth_alpha,
            daily_bins=self.daily_bins,
            weekly_bins=self.weekly_bins,
            season_gate=self.season_gate,
            variance_floor=self.variance_floor,
            tail_span=self.tail_span,
            tail_warmup=self.tail_warmup,
            gap_factor=self.gap_factor,
        )


@dataclass(frozen=True, slots=True)
class DetectorState:
    """Everything the detector remembers, as arrays over ``(series, channel, ...)``.

    ``sums[s, c, f, :]`` are the exponentially weighted sums (num, den) of the filters listed in
    ``detect_experts`` (``F_*``); ``daily[s, c, bin, :]`` and ``weekly[s, c, bin, :]`` the
    profile cells (mean num, mean den, spread num, spread den); ``n_obs[s, c]`` the readings
    seen; ``quiet[s]`` the readings left in a damped episode; ``last_ts_ms[s]`` the newest
    reading's time (``iinfo(int64).min`` before the first).
    """

    sums: FloatArray
    daily: FloatArray
    weekly: FloatArray
    n_obs: FloatArray
    quiet: FloatArray
    peak: FloatArray
    last_ts_ms: IntArray

    @classmethod
    def empty(cls, n_series: int, n_channels: int, config: DetectorConfig) -> DetectorState:
        if n_series < 0 or n_channels < 1:
            raise ValueError(f"need n_series >= 0, n_channels >= 1; got {n_series}, {n_channels}")
        s, c = n_series, n_channels
        return cls(
            sums=np.zeros((s, c, N_FILTERS, 2)),
            daily=np.zeros((s, c, config.daily_bins, N_CELL)),
            weekly=np.zeros((s, c, config.weekly_bins, N_CELL)),
            n_obs=np.zeros((s, c)),
            quiet=np.zeros(s),
            peak=np.zeros(s),
            last_ts_ms=np.full(s, np.iinfo(np.int64).min, dtype=np.int64),
        )

    @property
    def n_series(self) -> int:
        return int(self.quiet.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.n_obs.shape[1])

    def grow(self, n_series: int, config: DetectorConfig) -> DetectorState:
        """Return a state with room for ``n_series`` series (new ones start empty)."""
        if n_series <= self.n_series:
            return self
        extra = DetectorState.empty(n_series - self.n_series, self.n_channels, config)
        grown = [
            np.concatenate([getattr(self, f.name), getattr(extra, f.name)]) for f in fields(self)
        ]
        return DetectorState(*grown)

    def nbytes_per_series(self) -> int:
        total = sum(int(getattr(self, f.name).nbytes) for f in fields(self))
        return total // max(self.n_series, 1)


@dataclass(frozen=True, slots=True)
class Scores:
    """Scores of the rows of one ``update``, in the order the rows were given.

    ``score[i]`` is in [0, 1]; it exceeds 0.5 only on a reading that opens an episode (its
    surprise reached ``fire_surprise``), and is 0 where every channel of the row is missing.
    ``contributions[i, c]`` is channel ``c``'s share of the row's evidence (rows sum to 1, or to
    0 where nothing is surprising); ``expert[i]`` indexes ``EXPERTS``: the row's strongest one.
    ``late[i]`` marks rows older than their series' newest reading before this update: they are
    neither learned nor scored (score 0).
    """

    score: FloatArray
    contributions: FloatArray
    expert: IntArray
    late: BoolArray


def _validate(
    state: DetectorState, series: IntArray, ts_ms: IntArray, values: FloatArray
) -> FloatArray:
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 1:
        vals = vals[:, None]
    if vals.ndim != 2 or vals.shape[1] != state.n_channels:
        raise ValueError(
            f"values must have shape (rows, {state.n_channels}), got {np.shape(values)}"
        )
    n = vals.shape[0]
    if series.shape != (n,) or ts_ms.shape != (n,):
        raise ValueError(f"series and ts_ms must have shape ({n},) like the rows of values")
    if n and int(series.min()) < 0:
        raise ValueError("series indices must be non-negative")
    if (np.abs(vals) > MAX_ABS).any():  # also catches infinities; NaN compares false
        raise ValueError(f"values must be within ±{MAX_ABS:g}, or NaN for a missing reading")
    return vals


def _episodes(
    top: FloatArray,
    series: IntArray,
    ts_ms: IntArray,
    live: IntArray,
    quiet0: FloatArray,
    peak0: FloatArray,
    cfg: DetectorConfig,
) -> tuple[BoolArray, FloatArray, FloatArray]:
    """Find the rows that open an episode; return ``(fired, quiet, peak)`` after the batch.

    Rows are taken per series in time order; only rows with a reading (``live``) count. A row
    whose surprise reaches ``fire_surprise`` opens an episode unless the series is still within
    ``quiet_readings`` rows of the last opening and the row is not ``refire_margin`` stronger
    than that opening (``peak``).
    """
    fired = np.zeros(top.shape[0], dtype=bool)
    quiet, peak = quiet0.copy(), peak0.copy()
    rows = live[np.lexsort((live, ts_ms[live], series[live]))]
    if rows.size == 0:
        return fired, quiet, peak
    s_rows = series[rows]
    uniq, first, count = np.unique(s_rows, return_index=True, return_counts=True)
    k_of = np.searchsorted(uniq, s_rows)
    v_idx = np.arange(rows.size) - first[k_of]  # live row number within its series
    q_end = quiet0[uniq].astype(np.float64)  # first row number no longer damped
    p_top = peak0[uniq].astype(np.float64)
    # Only candidate rows are visited: few, except in a series that is wild all the time.
    for pos in np.flatnonzero(top[rows] > cfg.fire_surprise).tolist():
        k, strength = int(k_of[pos]), float(top[rows[pos]])
        if v_idx[pos] >= q_end[k] or strength > p_top[k] + cfg.refire_margin:
            q_end[k] = v_idx[pos] + 1 + cfg.quiet_readings
            p_top[k] = strength
            fired[rows[pos]] = True
    quiet[uniq] = np.maximum(q_end - count, 0.0)
    peak[uniq] = np.where(quiet[uniq] > 0.0, p_top, 0.0)
    return fired, quiet, peak


def _evidence_of_entries(
    state: DetectorState,
    col: IntArray,
    ts_ms: IntArray,
    x: FloatArray,
    cfg: DetectorConfig,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Surprise ``[entry, expert]`` of readings sorted by (column, time); new column state."""
    n_cols = state.n_series * state.n_channels
    sums = state.sums.reshape(n_cols, N_FILTERS, 2).copy()
    daily = state.daily.reshape(n_cols, cfg.daily_bins, N_CELL).copy()
    weekly = state.weekly.reshape(n_cols, cfg.weekly_bins, N_CELL).copy()
    n_obs = state.n_obs.reshape(n_cols).copy()
    out = np.zeros((col.shape[0], N_EXPERTS))
    cols, local = np.unique(col, return_inverse=True)
    rank, _, depth = pad_groups(local, cols.shape[0])
    settings = cfg.settings()
    for lo in range(0, depth, BLOCK_ROUNDS):
        sel = np.flatnonzero((rank >= lo) & (rank < lo + BLOCK_ROUNDS))
        present, bl = np.unique(local[sel], return_inverse=True)
        gcol = cols[present]
        r = rank[sel] - lo
        length = np.bincount(bl, minlength=present.shape[0]).astype(np.int64)
        shape = (int(length.max()), present.shape[0])
        grid_x, grid_w = np.zeros(shape), np.zeros(shape)
        grid_ts = np.zeros(shape, dtype=np.int64)
        grid_x[r, bl], grid_w[r, bl], grid_ts[r, bl] = x[sel], 1.0, ts_ms[sel]
        block = Block(x=grid_x, w=grid_w, ts_ms=grid_ts, length=length)
        b_sums, b_daily, b_weekly = sums[gcol], daily[gcol], weekly[gcol]
        e, active = dx.evidence(block, b_sums, b_daily, b_weekly, settings)
        sur = dx.surprise(e, active, block, b_sums, settings)
        sums[gcol], daily[gcol], weekly[gcol] = b_sums, b_daily, b_weekly
        n_obs[gcol] += length
        out[sel] = sur[r, bl]
    return out, sums, daily, weekly, n_obs


def update(
    state: DetectorState,
    series: IntArray,
    ts_ms: IntArray,
    values: FloatArray,
    config: DetectorConfig,
) -> tuple[DetectorState, Scores]:
    """Score a batch of readings and return the new state; ``state`` is left unchanged.

    Parameters
    ----------
    state : the detector state; grown automatically to the largest series index.
    series : ``(n,)`` dense series index of each row.
    ts_ms : ``(n,)`` UTC time of each row in milliseconds. Rows of a series are applied in time
        order (ties in the given order); rows older than the series' newest reading from an
        earlier update are late: skipped and marked in ``Scores.late``.
    values : ``(n, channels)``, or ``(n,)`` for one channel. NaN marks a missing reading: it
        neither changes the state nor scores.
    config : the settings; use the same configuration for every update of a state.

    Examples
    --------
    >>> cfg = DetectorConfig()
    >>> st = DetectorState.empty(2, 1, cfg)
    >>> ts = np.arange(4, dtype=np.int64) * 60_000
    >>> st, sc = update(st, np.array([0, 0, 1, 1]), ts, np.array([1.0, 1.1, 5.0, np.nan]), cfg)
    >>> sc.score.shape, bool(((sc.score >= 0) & (sc.score <= 1)).all()), int(st.n_obs.sum())
    ((4,), True, 3)
    """
    series = np.asarray(series, dtype=np.int64)
    ts_ms = np.asarray(ts_ms, dtype=np.int64)
    vals = _validate(state, series, ts_ms, values)
    n, c = vals.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return state, Scores(np.zeros(0), np.zeros((0, c)), empty, empty.astype(bool))
    state = state.grow(int(series.max()) + 1, config)
    # Back-filled rows (older than the series' newest reading) are not learned and not scored,
    # so late data raises no stale alarms.
    late = ts_ms < state.last_ts_ms[series]
    vals = np.where(late[:, None], np.nan, vals)

    row, ch = np.nonzero(~np.isnan(vals))
    col = series[row] * c + ch
    order = np.lexsort((row, ts_ms[row], col))
    row, ch, col = row[order], ch[order], col[order]
    sur, sums, daily, weekly, n_obs = _evidence_of_entries(
        state, col, ts_ms[row], vals[row, ch], config
    )

    per_channel = np.zeros((n, c))
    per_channel[row, ch] = sur.max(axis=1)
    by_expert = np.zeros((n, N_EXPERTS))
    np.maximum.at(by_expert, row, sur)
    top = per_channel.max(axis=1)
    live = np.flatnonzero(~np.isnan(vals).all(axis=1))
    fired, quiet, peak = _episodes(top, series, ts_ms, live, state.quiet, state.peak, config)
    score = top / (top + config.fire_surprise)
    # Only the reading that opens an episode keeps its full score.
    score = np.where(fired, score, score * config.quiet_damping)
    total = per_channel.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        contributions = np.where(total > 0.0, per_channel / total, 0.0)
    last = state.last_ts_ms.copy()
    np.maximum.at(last, series[live], ts_ms[live])
    s, cfg = state.n_series, config
    new = DetectorState(
        sums=sums.reshape(s, c, N_FILTERS, 2),
        daily=daily.reshape(s, c, cfg.daily_bins, N_CELL),
        weekly=weekly.reshape(s, c, cfg.weekly_bins, N_CELL),
        n_obs=n_obs.reshape(s, c),
        quiet=quiet,
        peak=peak,
        last_ts_ms=last,
    )
    expert = by_expert.argmax(axis=1).astype(np.int64)
    return new, Scores(score, contributions, expert, late)


def score_series(
    ts_ms: list[IntArray], values: list[FloatArray], config: DetectorConfig | None = None
) -> list[FloatArray]:
    """Score independent single-channel series in one vectorized pass; one array per series.

    The series are stacked into one flat array (with offsets) and scored together by ``update``
    from an empty state — what ``forewarn detect`` and backtests use.
    """
    cfg = DetectorConfig() if config is None else config
    if len(ts_ms) != len(values):
        raise ValueError("ts_ms and values must list the same number of series")
    if any(len(t) != len(v) for t, v in zip(ts_ms, values, strict=True)):
        raise ValueError("each series needs one timestamp per value")
    if not values:
        return []
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    series = np.repeat(np.arange(len(values), dtype=np.int64), lengths)
    flat_ts = np.concatenate([np.asarray(t, dtype=np.int64) for t in ts_ms])
    flat_v = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    _, scores = update(DetectorState.empty(len(values), 1, cfg), series, flat_ts, flat_v, cfg)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return [scores.score[offsets[i] : offsets[i + 1]] for i in range(len(values))]
