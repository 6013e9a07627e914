"""Cheap Gaussian measurement noise for large fleets: windows into one pre-drawn table."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from simulators.types import FloatArray

TABLE_SIZE: Final = 1 << 18


class NoiseTable:
    """Gaussian noise of one standard deviation served as a random window of a table drawn once.

    Drawing fresh normals costs about 10 ns a value, more than the rest of a fridge's step;
    sensor noise only needs the right marginal distribution and no pattern a detector could
    learn. Each call takes a window at a random offset, so one device's successive values come
    from unrelated places in the table. Requests longer than half the table are drawn fresh.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        sigma: float,
        size: int = TABLE_SIZE,
        dtype: type[np.floating[Any]] = np.float64,
    ) -> None:
        if size < 2:
            raise ValueError(f"a noise table needs at least 2 values, got {size}")
        self._rng = rng
        self._sigma = sigma
        self._table = (rng.standard_normal(size) * sigma).astype(dtype)

    def normal(self, n: int) -> FloatArray:
        """``n`` values of zero-mean noise with the table's standard deviation (read-only)."""
        size = self._table.shape[0]
        if n > size // 2:
            fresh = self._rng.standard_normal(n) * self._sigma
            scaled: FloatArray = fresh.astype(self._table.dtype)
            return scaled
        start = int(self._rng.integers(0, size - n + 1))
        window: FloatArray = self._table[start : start + n]
        return window
