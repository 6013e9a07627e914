"""The decision policy: persistence, hysteresis and one stable decision per episode.

The core says, per unit and per update, whether a fault condition holds. The policy turns that
into episodes: a condition must hold for ``open_after`` consecutive updates of the unit before an
episode opens (a blip is not an episode; critical conditions open at once), and must be absent
for ``close_after`` updates before it closes (no flapping). Each episode is one ``Decision`` id;
later decisions with the same id carry new evidence only when it matters (severity rose, or the
ETA moved by more than a quarter of the time left).

State is sparse: only units with a streak or an open episode are held, so the Python work per
update is proportional to the number of troubled units, not to the fleet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np

from cloud.core.types import Condition
from cloud.decision_types import Action, Decision, Severity, decision_id

_SEVERITIES: Final = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)
# Evidence this much older than what a device says is its present is back-filled history.
STALE_AFTER_MS: Final = 3_600_000
POSITION_NAMES: Final = {
    "fl": "front-left",
    "fr": "front-right",
    "rl": "rear-left",
    "rr": "rear-right",
}


@dataclass(frozen=True, slots=True)
class FaultPolicy:
    action: Action
    open_after: int = 3
    close_after: int = 12


POLICIES: Final[dict[str, FaultPolicy]] = {
    "fridge.cooling": FaultPolicy(Action.DISPATCH, open_after=3, close_after=24),
    "tyres.pressure": FaultPolicy(Action.ADVICE, open_after=3, close_after=24),
    "tyres.tread": FaultPolicy(Action.ADVICE, open_after=1, close_after=24),
    "tyres.tpms_battery": FaultPolicy(Action.ADVICE, open_after=3, close_after=24),
    "vending.restock": FaultPolicy(Action.RESTOCK, open_after=1, close_after=1),
    "vending.jammed_coil": FaultPolicy(Action.DISPATCH, open_after=1, close_after=6),
    "vending.payment_reader": FaultPolicy(Action.DISPATCH, open_after=3, close_after=12),
    "vending.cooling": FaultPolicy(Action.DISPATCH, open_after=1, close_after=12),
}


@dataclass(frozen=True, slots=True)
class UnitEpisode:
    """The policy's memory of one unit of one fault."""

    streak: int = 0  # consecutive updates with the condition
    quiet: int = 0  # consecutive updates without it while an episode is open
    open: bool = False
    episode: int = 0  # episodes opened so far
    opened_ms: int = 0
    severity: int = 0
    eta_ms: float = float("nan")


@dataclass(frozen=True, slots=True)
class PolicyState:
    units: dict[tuple[str, int], UnitEpisode] = field(default_factory=dict)

    def open_count(self) -> int:
        return sum(1 for u in self.units.values() if u.open)


def _eta_moved(old: float, new: float, now_ms: float) -> bool:
    if np.isnan(old) != np.isnan(new):
        return True
    if np.isnan(new) or (old <= now_ms and new <= now_ms):
        return False  # no prediction, or the failure is already under way
    return abs(new - old) > 0.25 * max(old - now_ms, 86_400_000.0)


def _int_or_none(x: float) -> int | None:
    return None if not np.isfinite(x) else int(x)


def _fault_name(cond: Condition, unit: int) -> str:
    label = cond.unit_label[unit]
    return f"{cond.fault}.{label}" if label else cond.fault


def _summary(cond: Condition, unit: int) -> str:
    label = cond.unit_label[unit]
    reason = cond.reason_of(unit) or cond.fault
    where = POSITION_NAMES.get(label, f"slot {label}" if label else "")
    text = f"{where.capitalize()}: {reason}" if where else reason[:1].upper() + reason[1:]
    note = (cond.notes or {}).get(unit)
    title = cond.note_name.replace("_", " ").capitalize()
    return f"{text}. {title}: {note}" if note else text


def decide(
    state: PolicyState,
    product_kind: str,
    device_ids: Sequence[str],
    conditions: Sequence[Condition],
    stale_before_ms: Mapping[int, int] | None = None,
    bars: Mapping[str, float] | None = None,
) -> tuple[PolicyState, list[Decision]]:
    """Advance the episode state with fresh conditions; return the decisions to act on.

    ``stale_before_ms`` maps a device index to a data time: evidence older than it (back-filled
    after an outage) still counts towards the streak but opens no episode, so a condition that
    held only in the past raises nothing, and one that still holds opens on the first fresh
    evidence.

    ``bars`` maps a device id to a factor >= 1 (from ``ActionService.device_bars``: repeated
    no-fault-found closures): a non-critical condition on that device must persist that many
    times longer before it opens an episode. Critical conditions still open at once.
    """
    stale = stale_before_ms or {}
    bars = bars or {}
    units = dict(state.units)
    out: list[Decision] = []
    for cond in conditions:
        policy = POLICIES.get(cond.fault, FaultPolicy(Action.DISPATCH))
        keys = cond.keys()
        held = np.fromiter((k for f, k in units if f == cond.fault), dtype=np.int64, count=-1)
        candidate = cond.touched & (cond.active | np.isin(keys, held))
        for u in np.flatnonzero(candidate).tolist():
            key = (cond.fault, int(keys[u]))
            ep = units.get(key, UnitEpisode())
            sev = int(cond.severity[u])
            now = float(cond.ts_ms[u])
            eta = float(cond.eta_ms[u])
            if cond.active[u]:
                ep = replace(ep, streak=ep.streak + 1, quiet=0)
                needed = 1 if sev >= 2 else policy.open_after
                if bars and sev < 2:
                    bar = bars.get(device_ids[int(cond.unit_device[u])], 1.0)
                    needed = math.ceil(policy.open_after * max(bar, 1.0))
                fresh = now >= stale.get(int(cond.unit_device[u]), -1)
                if not ep.open and ep.streak >= needed and fresh:
                    ep = replace(
                        ep, open=True, episode=ep.episode + 1, opened_ms=int(cond.ts_ms[u]),
                        severity=sev, eta_ms=eta,
                    )  # fmt: skip
                    out.append(_decision(cond, u, product_kind, device_ids, policy, ep))
                elif ep.open and (sev > ep.severity or _eta_moved(ep.eta_ms, eta, now)):
                    ep = replace(ep, severity=max(sev, ep.severity), eta_ms=eta)
                    out.append(_decision(cond, u, product_kind, device_ids, policy, ep))
            else:
                ep = replace(ep, streak=0, quiet=ep.quiet + 1 if ep.open else 0)
                if ep.open and ep.quiet >= policy.close_after:
                    ep = replace(ep, open=False, quiet=0, severity=0, eta_ms=float("nan"))
            if ep.open or ep.streak or ep.episode:
                units[key] = ep
            else:
                units.pop(key, None)
    return PolicyState(units), out


def _decision(
    cond: Condition,
    u: int,
    product_kind: str,
    device_ids: Sequence[str],
    policy: FaultPolicy,
    ep: UnitEpisode,
) -> Decision:
    device = device_ids[int(cond.unit_device[u])]
    fault = _fault_name(cond, u)
    details: list[tuple[str, str]] = []
    if cond.unit_label[u]:
        details.append(("unit", cond.unit_label[u]))
    note = (cond.notes or {}).get(u)
    if note:
        details.append((cond.note_name, note))
    # Why now: how long the condition has held, and what it takes to open and to close.
    details.append(("persisted_updates", str(ep.streak)))
    details.append(
        ("hysteresis", f"opens after {policy.open_after}, closes after {policy.close_after}")
    )
    return Decision(
        decision_id=decision_id(device, fault, ep.opened_ms),
        device_id=device,
        product_kind=product_kind,
        fault=fault,
        action=policy.action,
        severity=_SEVERITIES[ep.severity],
        episode=ep.episode,
        opened_ms=ep.opened_ms,
        ts_ms=int(cond.ts_ms[u]),
        score=float(cond.score[u]),
        summary=_summary(cond, u),
        eta_ms=_int_or_none(float(cond.eta_ms[u])),
        eta_lo_ms=_int_or_none(float(cond.eta_lo_ms[u])),
        eta_hi_ms=_int_or_none(float(cond.eta_hi_ms[u])),
        contributions=tuple(
            (s, round(float(c), 4))
            for s, c in zip(cond.signals, cond.contributions[u], strict=True)
        ),
        details=tuple(details),
    )
