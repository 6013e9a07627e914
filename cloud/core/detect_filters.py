"""Exponentially weighted means along time for many columns at once, resumable from a state."""

from __future__ import annotations

import numpy as np

from cloud.core.kernels import FloatArray, IntArray

# Largest power of (1 - alpha) a chunk may reach, in decades: with readings up to MAX_ABS
# (squared: 1e200) the rescaled sums stay below 1e300.
POWER_DECADES = 90.0
MAX_ABS = 1e100


def span_alpha(span: float) -> float:
    """Weight of a new sample in an exponentially weighted mean of span ``span`` samples.

    >>> span_alpha(1.0)
    1.0
    """
    return 2.0 / (span + 1.0)


def ewm(
    x: FloatArray, w: FloatArray, alpha: float, num0: FloatArray, den0: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Running weighted means of the columns of ``x[t, col]``, continuing from a state.

    ``num`` and ``den`` are the exponentially weighted sums of ``w·x`` and ``w``; the mean is
    ``num / den``, which needs no start-up value: the first sample with weight 1 is the mean.
    Rows with ``w == 0`` (padding, readings a filter must not learn from) only decay the sums.
    Returns ``(num[t, col], den[t, col])`` after each row.

    >>> n, d = ewm(np.array([[2.0], [4.0]]), np.ones((2, 1)), 0.5, np.zeros(1), np.zeros(1))
    >>> [round(float(v), 4) for v in (n / d).ravel()]
    [2.0, 3.3333]
    """
    return ewm_sum(x * w, alpha, num0), ewm_sum(w, alpha, den0)


def ewm_sum(x: FloatArray, alpha: float, start: FloatArray) -> FloatArray:
    """``s[t] = (1 - alpha)·s[t-1] + alpha·x[t]`` down each column, from ``s[-1] = start``.

    A scan in chunks: within a chunk, ``s`` is a cumulative sum of ``x`` rescaled by powers of
    ``1 - alpha``, with chunks short enough that the powers stay far from overflow for any
    ``|x|`` up to ``MAX_ABS``. The same recursion as a first-order IIR filter, in numpy alone.

    >>> ewm_sum(np.array([[1.0], [1.0], [1.0]]), 0.5, np.zeros(1)).ravel().tolist()
    [0.5, 0.75, 0.875]
    """
    keep = 1.0 - alpha
    t_len = x.shape[0]
    out = np.empty(x.shape)
    carry = np.asarray(start, dtype=np.float64)
    if keep <= 0.0:
        out[:] = x
        return out
    decades_per_step = -np.log10(keep)
    chunk = t_len if decades_per_step == 0.0 else max(1, int(POWER_DECADES / decades_per_step))
    for lo in range(0, t_len, chunk):
        blk = x[lo : lo + chunk]
        steps = np.arange(1, blk.shape[0] + 1, dtype=np.float64)
        grow = keep**-steps
        acc = np.cumsum(blk * grow[:, None], axis=0)
        part = (keep**steps)[:, None] * (carry[None, :] + alpha * acc)
        out[lo : lo + blk.shape[0]] = part
        carry = part[-1]
    return out


def before(value: FloatArray, first: FloatArray) -> FloatArray:
    """``value`` shifted one row down along time, with ``first`` as the row before the first."""
    out = np.empty_like(value)
    out[0] = first
    out[1:] = value[:-1]
    return out


def mean_of(num: FloatArray, den: FloatArray, empty: float = np.nan) -> FloatArray:
    """``num / den`` where the weight is positive, ``empty`` where nothing was seen yet."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(den > 0.0, num / den, empty)
    return out


def last_rows(arr: FloatArray, length: IntArray, previous: FloatArray) -> FloatArray:
    """Each column's value at its last real row (``length - 1``), or ``previous`` if it had none."""
    cols = np.arange(arr.shape[1])
    out: FloatArray = np.where(length > 0, arr[np.maximum(length - 1, 0), cols], previous)
    return out


def pad_groups(group: IntArray, n_groups: int) -> tuple[IntArray, IntArray, int]:
    """Place entries already sorted by ``group`` (then time) on a ``[rank, group]`` grid.

    Returns ``(rank, length, depth)``: each entry's position within its group, each group's
    number of entries and the grid's depth (the longest group).
    """
    n = group.shape[0]
    length = np.bincount(group, minlength=n_groups).astype(np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64), length, 0
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    rank = np.arange(n, dtype=np.int64) - starts[group]
    return rank, length, int(length.max())
