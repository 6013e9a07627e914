"""A mixed fleet of fridges, vending machines and vehicles driven from one seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from simulators import fridge, tyres, vending
from simulators.climate import DAY_MS
from simulators.customers import Customer, make_customers
from simulators.fridge import FridgeFleet
from simulators.types import DeviceSpec, FaultLabel, StepOutput
from simulators.tyres import TyreFleet
from simulators.vending import VendingFleet

DEFAULT_MIX: Final = (0.4, 0.3, 0.3)


def split_counts(n_devices: int, mix: Sequence[float]) -> tuple[int, int, int]:
    """Devices per kind (fridge, vending, tyres) for ``n_devices`` shared out by ``mix``."""
    if n_devices < 0:
        raise ValueError(f"n_devices must be >= 0, got {n_devices}")
    share = np.asarray(mix, dtype=np.float64)
    if share.shape != (3,) or not np.all(np.isfinite(share)) or share.min() < 0 or share.sum() <= 0:
        raise ValueError(f"mix must be three non-negative shares with a positive sum, got {mix}")
    share = share / share.sum()
    n_fridge = round(n_devices * share[0])
    n_vending = min(round(n_devices * share[1]), n_devices - n_fridge)
    return n_fridge, n_vending, n_devices - n_fridge - n_vending


FAULTS_BY_KIND: Final = {"fridge": fridge.FAULTS, "vending": vending.FAULTS, "tyres": tyres.FAULTS}


def _weights_per_kind(
    weights: Mapping[str, float] | None,
) -> dict[str, dict[str, float] | None]:
    """Split fault weights over the kinds; ``{}`` marks a kind whose faults all weigh 0."""
    if weights is None:
        return dict.fromkeys(FAULTS_BY_KIND)
    known = {name for names in FAULTS_BY_KIND.values() for name in names}
    unknown = sorted(set(weights) - known)
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(sorted(known))}")
    out: dict[str, dict[str, float] | None] = {}
    for kind, names in FAULTS_BY_KIND.items():
        mine = {k: float(v) for k, v in weights.items() if k in names}
        out[kind] = mine if sum(mine.values()) > 0 else {}
    return out


class MixedFleet:
    """Fridges (``fr-``), vending machines (``vm-``) and vehicles (``ty-``) stepped together.

    Each kind draws from its own child of ``np.random.default_rng(seed)``, so a seed gives the
    same fleet, telemetry and labels on every run. Kinds with no devices are left out of
    :meth:`step`'s result; the others come in the order fridge, vending, tyres.

    ``fault_weights`` maps fault names of any kind to relative weights within their kind
    (missing names weigh 0; a kind whose faults all weigh 0 gets no faults); the other keyword
    arguments go to the fleets of their kind.
    """

    def __init__(
        self,
        n_devices: int,
        start_ms: int,
        seed: int,
        fault_share: float = 0.15,
        horizon_days: float = 30,
        mix: Sequence[float] = DEFAULT_MIX,
        *,
        fault_weights: Mapping[str, float] | None = None,
        fridge_variant_shares: Sequence[float] | None = None,
        vending_demand_scale: float = 1.0,
        vending_route: str = "weekly",
    ) -> None:
        if horizon_days <= 0:
            raise ValueError(f"horizon_days must be positive, got {horizon_days}")
        n_fridge, n_vending, n_tyres = split_counts(n_devices, mix)
        fridge_rng, vending_rng, tyre_rng, self._customer_rng = np.random.default_rng(seed).spawn(4)
        horizon_ms = round(horizon_days * DAY_MS)
        per_kind = _weights_per_kind(fault_weights)
        share = {k: fault_share if w != {} else 0.0 for k, w in per_kind.items()}
        self.start_ms = start_ms
        self.fridges = FridgeFleet(
            n_fridge, start_ms, fridge_rng, share["fridge"], horizon_ms, "fr",
            fault_weights=per_kind["fridge"] or None,
            **({} if fridge_variant_shares is None else {"variant_shares": fridge_variant_shares}),
        )  # fmt: skip
        self.vending = VendingFleet(
            n_vending, start_ms, vending_rng, share["vending"], horizon_ms, "vm",
            fault_weights=per_kind["vending"] or None, demand_scale=vending_demand_scale,
            route=vending_route,
        )  # fmt: skip
        self.tyres = TyreFleet(
            n_tyres, start_ms, tyre_rng, share["tyres"], horizon_ms, "ty",
            fault_weights=per_kind["tyres"] or None,
        )  # fmt: skip
        self._customers: list[Customer] | None = None

    @property
    def fleets(self) -> tuple[FridgeFleet, VendingFleet, TyreFleet]:
        return self.fridges, self.vending, self.tyres

    def step(self, ts_ms: int, dt_s: float) -> list[StepOutput]:
        """Advance every device by ``dt_s`` to ``ts_ms``; one output per non-empty kind."""
        return [fleet.step(ts_ms, dt_s) for fleet in self.fleets if fleet.devices]

    def labels(self) -> list[FaultLabel]:
        """Ground truth of every fault that has started so far, all kinds."""
        return [label for fleet in self.fleets for label in fleet.labels()]

    def devices(self) -> list[DeviceSpec]:
        return [spec for fleet in self.fleets for spec in fleet.devices]

    def customers(self) -> list[Customer]:
        """The owners of the devices; the same list on every call and for every run of a seed."""
        if self._customers is None:
            self._customers = make_customers(
                self.fridges.devices, self.vending.devices, self.tyres.devices, self._customer_rng
            )
        return list(self._customers)
