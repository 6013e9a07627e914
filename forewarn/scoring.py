"""Ground truth against tickets: which injected faults were ticketed, and how early."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cloud.actions.records import Ticket
from simulators.types import FaultLabel

# simulator fault kind → the decision fault family that should answer it. A faulty cabinet
# sensor needs the same technician visit as failing cooling, so it is answered by the same
# family; a payment reader and a TPMS battery need families of their own.
FAMILY: Final = {
    "refrigerant_leak": "fridge.cooling",
    "condenser_fouling": "fridge.cooling",
    "compressor_wear": "fridge.cooling",
    "compressor_failure": "fridge.cooling",
    "door_gasket_leak": "fridge.cooling",
    "defrost_heater_failure": "fridge.cooling",
    "sensor_stuck": "fridge.cooling",
    "sensor_drift": "fridge.cooling",
    "jammed_coil": "vending.jammed_coil",
    "cooling_failure": "vending.cooling",
    "payment_reader": "vending.payment_reader",
    "slow_leak": "tyres.pressure",
    "valve_leak": "tyres.pressure",
    "puncture": "tyres.pressure",
    "tread_wear": "tyres.tread",
    "tpms_battery": "tyres.tpms_battery",
}
NOT_A_DEVICE_FAULT: Final = frozenset({"power_cut", "stockout"})


@dataclass(frozen=True, slots=True)
class FaultScore:
    faults_injected: int
    faults_failed: int  # reached the failure the customer would notice within the run
    faults_ticketed: int
    faults_ticketed_before_failure: int
    median_lead_h: float | None  # failure time minus ticket time, over faults that failed
    stockouts: int
    false_tickets: int  # tickets with no injected fault behind them


def expected_fault(label: FaultLabel) -> str | None:
    """The decision fault name that answers ``label`` (family, plus the slot or tyre)."""
    family = FAMILY.get(label.fault)
    if family is None:
        return None
    if label.component and family in ("vending.jammed_coil", "tyres.pressure", "tyres.tread"):
        return f"{family}.{label.component}"
    return family


def score(labels: Sequence[FaultLabel], tickets: Sequence[Ticket]) -> FaultScore:
    by_key: dict[tuple[str, str], list[Ticket]] = {}
    for t in tickets:
        by_key.setdefault((t.device_id, t.fault), []).append(t)
    faults = [lb for lb in labels if lb.fault not in NOT_A_DEVICE_FAULT]
    ticketed = before = failed = 0
    leads: list[float] = []
    explained: set[int] = set()
    for lb in faults:
        expected = expected_fault(lb)
        if lb.failure_ms is not None:
            failed += 1
        if expected is None:
            continue
        hits = [t for t in by_key.get((lb.device_id, expected), []) if t.opened_ms >= lb.onset_ms]
        if not hits:
            continue
        first = min(hits, key=lambda t: t.opened_ms)
        explained.update(t.id for t in hits)
        ticketed += 1
        if lb.failure_ms is None or first.opened_ms <= lb.failure_ms:
            before += 1
        if lb.failure_ms is not None:
            leads.append((lb.failure_ms - first.opened_ms) / 3600_000.0)
    restock = {t.id for t in tickets if t.action == "restock"}
    leads.sort()
    return FaultScore(
        faults_injected=len(faults),
        faults_failed=failed,
        faults_ticketed=ticketed,
        faults_ticketed_before_failure=before,
        median_lead_h=round(leads[len(leads) // 2], 1) if leads else None,
        stockouts=sum(1 for lb in labels if lb.fault == "stockout"),
        false_tickets=len({t.id for t in tickets} - explained - restock),
    )
