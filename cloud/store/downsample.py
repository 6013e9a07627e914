"""Time-bucket downsampling of one series: mean, min and max per bucket, vectorized."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud.batch import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Buckets:
    ts_ms: IntArray  # bucket start
    mean: FloatArray
    min: FloatArray
    max: FloatArray


def bucket_width_ms(start_ms: int, end_ms: int, max_points: int) -> int:
    """Smallest whole-millisecond width that fits ``[start_ms, end_ms]`` into ``max_points``."""
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    span_ms = end_ms - start_ms + 1
    return max(1, -(-span_ms // max_points))


def downsample(
    ts_ms: IntArray, values: FloatArray, start_ms: int, end_ms: int, max_points: int
) -> Buckets:
    """Group readings into at most ``max_points`` equal time buckets covering ``[start, end]``.

    ``ts_ms`` must be sorted and within ``[start_ms, end_ms]``. Only buckets holding at least
    one reading are returned. NaN readings are ignored; a bucket with no finite reading has
    NaN mean, min and max.

    Examples
    --------
    >>> b = downsample(np.array([0, 1, 2, 3]), np.array([1.0, 3.0, np.nan, 5.0]), 0, 3, 2)
    >>> b.ts_ms.tolist(), b.mean.tolist(), b.min.tolist(), b.max.tolist()
    ([0, 2], [2.0, 5.0], [1.0, 5.0], [3.0, 5.0])
    """
    width_ms = bucket_width_ms(start_ms, end_ms, max_points)
    if ts_ms.shape[0] == 0:
        empty = np.zeros(0)
        return Buckets(ts_ms=np.zeros(0, dtype=np.int64), mean=empty, min=empty, max=empty)
    bucket = (ts_ms - start_ms) // width_ms
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    finite = np.isfinite(values)
    count = np.add.reduceat(finite.astype(np.int64), starts)
    total = np.add.reduceat(np.where(finite, values, 0.0), starts)
    empty_bucket = count == 0
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=~empty_bucket)
    low = np.minimum.reduceat(np.where(finite, values, np.inf), starts)
    high = np.maximum.reduceat(np.where(finite, values, -np.inf), starts)
    low[empty_bucket] = np.nan
    high[empty_bucket] = np.nan
    return Buckets(
        ts_ms=(start_ms + bucket[starts] * width_ms).astype(np.int64),
        mean=mean,
        min=low,
        max=high,
    )
