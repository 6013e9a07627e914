"""Reference computation of a failure time from reported temperatures, for label checks."""

from __future__ import annotations

import numpy as np


def first_long_excursion_ms(
    temp_c: np.ndarray, ts_ms: np.ndarray, limit_c: float, limit_ms: int
) -> int | None:
    """The first sample at which ``temp_c`` has been above ``limit_c`` for ``limit_ms``."""
    since = None
    for value, t in zip(temp_c.tolist(), ts_ms.tolist(), strict=True):
        if value > limit_c:
            since = t if since is None else since
            if t - since >= limit_ms:
                return int(t)
        else:
            since = None
    return None
