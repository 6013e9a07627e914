"""An on/off thermostat with hysteresis cooling a lumped cabinet, solved exactly per sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from simulators.types import BoolArray, FloatArray

# Stands in for "never" so that time and temperature arithmetic stays finite (no inf - inf).
NEVER_S: Final = 1e15
# Thresholds of a controller that always (or never) wants cooling, e.g. behind a stuck sensor.
ALWAYS_C: Final = -1e9
NEVER_C: Final = 1e9


@dataclass(frozen=True, slots=True)
class ThermostatStep:
    """Result of one sample, per cabinet.

    ``cabinet_c`` is the true cabinet temperature at the end of the sample, ``on`` the relay
    state at that moment, ``calls`` the fraction of the sample the relay asked for cooling.
    Whether a compressor actually ran while called is the caller's business (a dead compressor
    is one with ``capacity_w == 0``).
    """

    cabinet_c: FloatArray
    on: BoolArray
    calls: FloatArray


def thermostat(
    cabinet_c: FloatArray,
    on: BoolArray,
    cut_in_c: FloatArray,
    cut_out_c: FloatArray,
    load_w: FloatArray,
    capacity_w: FloatArray,
    heat_capacity_j_per_k: FloatArray,
    may_run: FloatArray,
    dt_s: float,
) -> ThermostatStep:
    """Advance cabinets by ``dt_s`` seconds under an on/off thermostat with hysteresis.

    The relay switches on when the cabinet rises above ``cut_in_c`` and off when it falls below
    ``cut_out_c``. ``load_w`` (heat flowing in) and ``capacity_w`` (heat the running compressor
    removes) are taken as constant over the sample. For the fraction ``1 - may_run`` of the
    sample (mains off, defrosting) the compressor cannot run; that part comes first. The rest is
    solved in closed form, however many on/off cycles fit in it: a first leg to the next
    threshold, whole cycles, and a last partial leg. A cabinet the compressor cannot cool
    (``capacity_w <= load_w``) stays called for and warms at ``(load_w - capacity_w) / C``.

    >>> step = thermostat(np.array([4.0]), np.array([False]), np.array([4.5]),
    ...                   np.array([3.5]), np.array([20.0]), np.array([80.0]),
    ...                   np.array([1e5]), np.array([1.0]), 60.0)
    >>> round(float(step.cabinet_c[0]), 3), bool(step.on[0]), float(step.calls[0])
    (4.012, False, 0.0)
    """
    # Written for speed (see FridgeFleet.step): sparse work on the few cabinets that are
    # blocked or switch in this sample, float masks instead of np.where over the fleet.
    warm_k_per_s = load_w / heat_capacity_j_per_k
    full_k_per_s = capacity_w / heat_capacity_j_per_k  # warming minus cooling while running
    cool_k_per_s = full_k_per_s - warm_k_per_s
    temp = cabinet_c
    free_s: FloatArray | float = dt_s
    blocked = np.flatnonzero(may_run < 1.0)
    if blocked.size:
        free_s = np.full(temp.shape[0], dt_s, dtype=temp.dtype)
        free_s[blocked] = may_run[blocked] * dt_s
        temp = temp.copy()
        temp[blocked] += warm_k_per_s[blocked] * (dt_s - free_s[blocked])
    on = (on | (temp > cut_in_c)) & ~(temp < cut_out_c)
    on_f = on.astype(warm_k_per_s.dtype)
    # Most cabinets cross no threshold within a short sample: one straight leg.
    end_c = temp + (warm_k_per_s - on_f * full_k_per_s) * free_s
    called_s = on_f * free_s
    switches = np.flatnonzero((on & (end_c < cut_out_c)) | (~on & (end_c > cut_in_c)))
    new_on = on.copy()
    if switches.size:
        s = switches
        leg_s = free_s[s] if isinstance(free_s, np.ndarray) else np.full(s.shape[0], dt_s)
        c_end, c_on, c_called = _cycles(
            temp[s], on[s], cut_in_c[s], cut_out_c[s], warm_k_per_s[s], cool_k_per_s[s], leg_s
        )
        end_c[s] = c_end
        new_on[s] = c_on
        called_s[s] = np.clip(c_called, 0.0, leg_s)
    calls = called_s / dt_s
    return ThermostatStep(end_c, new_on, calls)


def _cycles(
    temp: FloatArray,
    on: BoolArray,
    cut_in_c: FloatArray,
    cut_out_c: FloatArray,
    warm_k_per_s: FloatArray,
    cool_k_per_s: FloatArray,
    free_s: FloatArray,
) -> tuple[FloatArray, BoolArray, FloatArray]:
    """End temperature, relay state and seconds called for of cabinets that reach a threshold.

    A first leg to the threshold, whole on/off cycles, then a partial last leg.
    """
    can_cool = cool_k_per_s > 0.0
    can_warm = warm_k_per_s > 0.0
    safe_cool = np.where(can_cool, cool_k_per_s, 1.0)
    safe_warm = np.where(can_warm, warm_k_per_s, 1.0)
    first_s = np.where(
        on,
        np.where(can_cool, np.maximum(temp - cut_out_c, 0.0) / safe_cool, NEVER_S),
        np.where(can_warm, np.maximum(cut_in_c - temp, 0.0) / safe_warm, NEVER_S),
    )
    span_k = np.maximum(cut_in_c - cut_out_c, 0.0)
    on_leg_s = np.where(can_cool, span_k / safe_cool, NEVER_S)
    off_leg_s = np.where(can_warm, span_k / safe_warm, NEVER_S)
    period_s = np.maximum(on_leg_s + off_leg_s, 1e-9)
    rest_s = np.maximum(free_s - first_s, 0.0)
    cycles = np.floor(rest_s / period_s)
    left_s = rest_s - cycles * period_s
    starts_on = ~on  # the relay state after the first leg
    # Starting on (from cut-in): cool for on_leg_s, then warm from cut-out.
    on_first_on = left_s <= on_leg_s
    end_from_on = np.where(
        on_first_on,
        cut_in_c - cool_k_per_s * left_s,
        cut_out_c + warm_k_per_s * (left_s - on_leg_s),
    )
    # Starting off (from cut-out): warm for off_leg_s, then cool from cut-in.
    off_first_off = left_s <= off_leg_s
    end_from_off = np.where(
        off_first_off,
        cut_out_c + warm_k_per_s * left_s,
        cut_in_c - cool_k_per_s * (left_s - off_leg_s),
    )
    end_c = np.where(starts_on, end_from_on, end_from_off)
    new_on = np.where(starts_on, on_first_on, ~off_first_off)
    called_s = (
        np.where(on, first_s, 0.0)
        + cycles * on_leg_s
        + np.where(starts_on, np.minimum(left_s, on_leg_s), np.maximum(left_s - off_leg_s, 0.0))
    )
    return end_c, new_on, called_s
