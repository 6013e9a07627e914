"""Values every fleet simulator produces: device specs, one step's rows, fault labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """One simulated device as it announces itself in its birth message.

    ``attributes`` are exactly the birth attributes of the device contract for ``kind``.
    ``tz`` is the IANA time zone of the device's site (not sent on the wire; it drives the daily
    rhythm and tells who owns the device where they live).
    """

    device_id: str
    kind: str
    model: str
    attributes: dict[str, object]
    tz: str = "UTC"


@dataclass(frozen=True, slots=True)
class StepOutput:
    """One reading of every device of one kind at ``ts_ms``.

    ``values[device, channel]`` is NaN where the device did not report the channel in this
    sample. Each event is ``(device index, event dict)``; the dict is a contract event with its
    own ``ts_ms`` inside ``(ts_ms - dt, ts_ms]``.
    """

    kind: str
    ts_ms: int
    channels: tuple[str, ...]
    values: FloatArray  # (n_devices, n_channels)
    events: tuple[tuple[int, dict[str, object]], ...]

    def channel(self, name: str) -> FloatArray:
        """One channel's column over all devices."""
        return self.values[:, self.channels.index(name)]


@dataclass(frozen=True, slots=True)
class FaultLabel:
    """Ground truth of one fault episode.

    ``failure_ms`` is when the customer would suffer (cabinet above its limit long enough, a tyre
    25 % under placard or below legal tread, a slot that cannot vend); ``None`` while that has
    not happened. ``component`` names the part inside the device where it matters (a vending
    slot such as ``"B4"``, a tyre position such as ``"fl"``); ``None`` for whole-device faults.
    ``end_ms`` closes an episode that ends by itself (a stock-out ends at the refill); ``None``
    for faults that last until repaired, and for episodes still open.
    """

    device_id: str
    kind: str
    fault: str
    onset_ms: int
    failure_ms: int | None
    component: str | None = None
    end_ms: int | None = None


class Fleet(Protocol):
    """A vectorized fleet of one product kind."""

    kind: str
    devices: tuple[DeviceSpec, ...]

    def step(self, ts_ms: int, dt_s: float) -> StepOutput: ...

    def labels(self) -> list[FaultLabel]: ...
