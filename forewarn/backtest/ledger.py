"""What the actions layer would make of the decisions: tickets, emails and restock orders.

The rule is the one ``cloud.actions.ActionService.apply`` keeps, without a database: a dispatch
or advice decision opens a ticket unless a ticket for the same device and fault is open, in
which case it is evidence for that ticket; the owner gets one email when the ticket opens, if
an address is on file. Nobody works the tickets in a backtest, so a ticket stays open to the
end of the run. A restock decision that opens an episode orders a route visit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cloud.decision_types import Action, Decision


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """The parts of a dispatch or advice decision the scores look at."""

    decision_id: str
    device_id: str
    fault: str
    severity: str
    ts_ms: int
    score: float
    eta_ms: int | None
    eta_lo_ms: int | None
    eta_hi_ms: int | None


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A ticket as opened by its first decision (times are data times)."""

    device_id: str
    product_kind: str
    fault: str
    action: str
    opened_ms: int
    decision_id: str
    severity: str
    score: float
    emailed: bool


class Ledger:
    """Tickets, emails and restock orders in decision order."""

    def __init__(self, emailable_devices: Collection[str]) -> None:
        self._emailable = frozenset(emailable_devices)
        self._open: dict[tuple[str, str], int] = {}
        self.tickets: list[TicketRecord] = []
        self.decisions: list[DecisionRecord] = []
        self.restock_decisions = 0
        self._restock_episodes: set[str] = set()

    @property
    def restock_episodes(self) -> int:
        return len(self._restock_episodes)

    def apply(self, decisions: Sequence[Decision]) -> list[Decision]:
        """Record ``decisions``; return the restock decisions, each an order for the route.

        An episode's first restock decision opens an order; later ones (the forecast moved)
        refresh it, as the actions layer refreshes a restock ticket's order.
        """
        orders: list[Decision] = []
        for d in sorted(decisions, key=lambda d: (d.ts_ms, d.decision_id)):
            if d.action is Action.RESTOCK:
                self.restock_decisions += 1
                self._restock_episodes.add(d.decision_id)
                orders.append(d)
                continue
            self.decisions.append(
                DecisionRecord(
                    d.decision_id, d.device_id, d.fault, str(d.severity), d.ts_ms, d.score,
                    d.eta_ms, d.eta_lo_ms, d.eta_hi_ms,
                )
            )  # fmt: skip
            key = (d.device_id, d.fault)
            if key in self._open:
                continue
            self._open[key] = len(self.tickets)
            self.tickets.append(
                TicketRecord(
                    device_id=d.device_id,
                    product_kind=d.product_kind,
                    fault=d.fault,
                    action=str(d.action),
                    opened_ms=d.ts_ms,
                    decision_id=d.decision_id,
                    severity=str(d.severity),
                    score=d.score,
                    emailed=d.device_id in self._emailable,
                )
            )
        return orders

    @property
    def emails(self) -> int:
        return sum(1 for t in self.tickets if t.emailed)
