"""The core's entry points: one state value for the whole fleet, one ``update`` per batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from cloud.batch import TelemetryBatch
from cloud.core import fridge, tyres, vending
from cloud.core.types import Condition


@dataclass(frozen=True, slots=True)
class FleetState:
    """Every product kind's state; each is a struct of arrays over its own devices."""

    fridge: fridge.FridgeState
    tyres: tyres.TyreState
    vending: vending.VendingState

    @classmethod
    def empty(cls) -> FleetState:
        return cls(
            fridge.FridgeState.empty(), tyres.TyreState.empty(), vending.VendingState.empty()
        )

    def device_ids(self, kind: str) -> tuple[str, ...]:
        state: fridge.FridgeState | tyres.TyreState | vending.VendingState = getattr(self, kind)
        return state.registry.ids

    @property
    def state_bytes(self) -> int:
        return self.fridge.state_bytes + self.tyres.state_bytes + self.vending.state_bytes

    @property
    def devices(self) -> int:
        return sum(len(getattr(self, k).registry) for k in ("fridge", "tyres", "vending"))


def update(state: FleetState, batch: TelemetryBatch) -> tuple[FleetState, list[Condition]]:
    """Fold one kind's batch into the fleet state; return the conditions of that kind."""
    if batch.kind == "fridge":
        f, cond = fridge.update(state.fridge, batch)
        return replace(state, fridge=f), [cond]
    if batch.kind == "tyres":
        t, conds = tyres.update(state.tyres, batch)
        return replace(state, tyres=t), conds
    if batch.kind == "vending":
        v, conds = vending.update(state.vending, batch)
        return replace(state, vending=v), conds
    raise ValueError(f"unknown product kind {batch.kind!r}")


def _planned_visits(value: object) -> vending.PlannedVisits | None:
    """``attributes.visits`` of a vending machine; None when absent or not usable."""
    if not isinstance(value, Mapping):
        return None
    days, hour, tz = value.get("days"), value.get("hour"), value.get("tz")
    if not (isinstance(days, list) and isinstance(hour, int) and isinstance(tz, str)):
        return None
    try:
        return vending.PlannedVisits(tuple(str(d) for d in days), hour, tz)
    except ValueError:
        return None


def configure(
    state: FleetState, kind: str, device_id: str, attributes: Mapping[str, object]
) -> FleetState:
    """Apply what a device's birth message says about it (variant, placard, slot layout).

    Attributes that are missing or of the wrong type leave the defaults in place; the decoder has
    already checked the message against the contract.
    """
    if kind == "fridge":
        variant = attributes.get("variant")
        setpoint = attributes.get("setpoint_c")
        return replace(
            state,
            fridge=fridge.configure(
                state.fridge,
                device_id,
                variant if isinstance(variant, str) else "household",
                float(setpoint) if isinstance(setpoint, int | float) else None,
            ),
        )
    if kind == "tyres":
        placard = attributes.get("placard_kpa")
        return replace(
            state,
            tyres=tyres.configure(
                state.tyres, device_id, float(placard) if isinstance(placard, int | float) else None
            ),
        )
    if kind == "vending":
        caps: dict[str, int] = {}
        slots = attributes.get("slots")
        if isinstance(slots, list):
            for slot in slots:
                if isinstance(slot, dict) and isinstance(slot.get("slot"), str):
                    cap = slot.get("capacity")
                    caps[slot["slot"]] = int(cap) if isinstance(cap, int) else 0
        visits = _planned_visits(attributes.get("visits"))
        return replace(state, vending=vending.configure(state.vending, device_id, caps, visits))
    raise ValueError(f"unknown product kind {kind!r}")
