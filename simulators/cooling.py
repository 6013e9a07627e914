"""One sample of a thermostat-controlled cabinet: heat in, compressor heat out, thermal mass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.types import BoolArray, FloatArray


@dataclass(frozen=True, slots=True)
class CoolingStep:
    """Result of one sample, per cabinet.

    ``calls`` is the fraction of the sample the thermostat asked for cooling (the relay),
    ``running`` the fraction a working compressor actually ran; they differ only for a
    compressor that cannot run. ``holding`` marks cabinets the thermostat kept at setpoint.
    """

    cabinet_c: FloatArray
    calls: FloatArray
    running: FloatArray
    holding: BoolArray


def cool(
    cabinet_c: FloatArray,
    setpoint_c: FloatArray,
    load_w: FloatArray,
    capacity_w: FloatArray,
    heat_capacity_j_per_k: FloatArray,
    may_run: FloatArray,
    dt_s: float,
) -> CoolingStep:
    """Advance cabinets by ``dt_s`` seconds, quasi-statically.

    The compressor removes what brings the cabinet back to its setpoint, at most
    ``capacity_w`` for the fraction ``may_run`` of the sample (mains present, not defrosting).
    What it cannot remove warms the cabinet through its heat capacity.

    >>> step = cool(np.array([4.0]), np.array([4.0]), np.array([20.0]), np.array([80.0]),
    ...             np.array([1e5]), np.array([1.0]), 600.0)
    >>> float(step.running[0]), float(step.cabinet_c[0]), bool(step.holding[0])
    (0.25, 4.0, True)
    """
    need_w = load_w + heat_capacity_j_per_k * (cabinet_c - setpoint_c) / dt_s
    wanted = np.maximum(need_w / np.maximum(capacity_w, 1e-9), 0.0)
    calls = np.minimum(wanted, may_run)
    running = np.where(capacity_w > 0.0, calls, 0.0)
    new_c = cabinet_c + (load_w - running * capacity_w) * dt_s / heat_capacity_j_per_k
    return CoolingStep(new_c, calls, running, wanted < may_run)
