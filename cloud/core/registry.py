"""Dense device indexing: device ids → array positions, growing as devices appear."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud.core.kernels import IntArray


@dataclass(frozen=True, slots=True)
class Registry:
    """An append-only map of device ids to dense indices.

    Treated as a value: ``extend`` returns a new registry when unknown ids appear and the same
    one otherwise, so states that share it stay consistent.
    """

    ids: tuple[str, ...] = ()
    pos: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, device_ids: Sequence[str]) -> tuple[Registry, IntArray]:
        """Return the grown registry and the index of each of ``device_ids``."""
        new = [d for d in dict.fromkeys(device_ids) if d not in self.pos]
        reg = self
        if new:
            pos = dict(self.pos)
            pos.update((d, len(self.ids) + i) for i, d in enumerate(new))
            reg = Registry(self.ids + tuple(new), pos)
        idx = np.fromiter((reg.pos[d] for d in device_ids), dtype=np.int64, count=len(device_ids))
        return reg, idx


def grow(arr: npt.NDArray[Any], n: int, fill: float | int | bool) -> npt.NDArray[Any]:
    """Pad the first axis of ``arr`` to ``n`` with ``fill``."""
    pad = n - arr.shape[0]
    if pad <= 0:
        return arr
    extra = np.full((pad, *arr.shape[1:]), fill, dtype=arr.dtype)
    return np.concatenate([arr, extra])
