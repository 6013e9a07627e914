"""The ``Decision`` value: one root cause, one stable id, handed from decisions to actions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

_NAMESPACE: Final = uuid.UUID("6f1c5c2e-6a53-4b0c-9a53-0f6f0a1e7d21")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class Action(StrEnum):
    DISPATCH = "dispatch"  # a service technician visits the product
    RESTOCK = "restock"  # a route driver refills a vending machine
    ADVICE = "advice"  # the customer acts (e.g. drives to a tyre shop): email and a ticket


def decision_id(device_id: str, fault: str, opened_ms: int) -> str:
    """A stable id for one episode of one fault on one device.

    An episode is named by the data time of the reading that opened it, so the same evidence
    seen again (a duplicate message, a replay after a crash, a retry) gives the same id, which is
    what the actions outbox keys on.

    >>> a = decision_id("fr-0001", "fridge.cooling", 1_767_225_600_000)
    >>> a == decision_id("fr-0001", "fridge.cooling", 1_767_225_600_000)
    True
    >>> a == decision_id("fr-0001", "fridge.cooling", 1_767_229_200_000)
    False
    """
    return str(uuid.uuid5(_NAMESPACE, f"{device_id}|{fault}|{opened_ms}"))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the platform decided about one root cause at one moment.

    A later decision with the same ``decision_id`` is new evidence for the same root cause
    (the ETA moved, the severity rose); it never means a second ticket or a second email.
    Times are UTC milliseconds of the data (model time), never the wall clock.
    """

    decision_id: str
    device_id: str
    product_kind: str  # fridge | vending | tyres
    fault: str  # e.g. "fridge.cooling_loss", "tyres.slow_leak.fl", "vending.stockout"
    action: Action
    severity: Severity
    episode: int
    opened_ms: int
    ts_ms: int
    score: float  # in [0, 1], high = sure
    summary: str  # one human sentence, no personal data
    eta_ms: int | None = None  # predicted failure / stock-out time
    eta_lo_ms: int | None = None  # 80 % interval
    eta_hi_ms: int | None = None
    contributions: tuple[tuple[str, float], ...] = ()  # (signal, share) pairs summing to ~1
    details: tuple[tuple[str, str], ...] = field(
        default=()
    )  # e.g. (("slot", "A3"), ("tyre", "fl"))

    @property
    def correlation_id(self) -> str:
        """Links the ticket, the email thread and any order of this root cause."""
        return self.decision_id
