"""Scores of a backtest run: detections per fault kind, false tickets, ETAs, stock-outs, emails.

Every figure is defined in ``docs/backtest.md``; the JSON keys and their order are stable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from forewarn.backtest.ledger import DecisionRecord, TicketRecord
from forewarn.backtest.runner import BacktestRun
from forewarn.scoring import FAMILY, NOT_A_DEVICE_FAULT, expected_fault
from simulators.types import FaultLabel

DAY_MS: Final = 86_400_000
DAYS_PER_YEAR: Final = 365.25
DAYS_PER_MONTH: Final = DAYS_PER_YEAR / 12


@dataclass(frozen=True, slots=True)
class FaultMatch:
    """One injected device fault and what the platform did about it."""

    label: FaultLabel
    expected: str | None  # the decision fault name that answers it
    ticket: TicketRecord | None  # first matching ticket
    first_eta: DecisionRecord | None  # first decision with an ETA interval before the failure

    @property
    def detected(self) -> bool:
        return self.ticket is not None

    @property
    def before_failure(self) -> bool:
        return (
            self.ticket is not None
            and self.label.failure_ms is not None
            and self.ticket.opened_ms <= self.label.failure_ms
        )

    @property
    def lead_days(self) -> float | None:
        if not self.before_failure or self.ticket is None or self.label.failure_ms is None:
            return None
        return (self.label.failure_ms - self.ticket.opened_ms) / DAY_MS


@dataclass(frozen=True, slots=True)
class FaultKindScore:
    kind: str  # product kind
    family: str | None  # decision fault family that should answer it (None: not mapped)
    injected: int
    failed: int
    detected: int
    detected_before_failure: int
    detected_before_failure_pct: float | None
    median_lead_days: float | None
    p10_lead_days: float | None

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "family": self.family,
            "injected": self.injected,
            "failed": self.failed,
            "detected": self.detected,
            "detected_before_failure": self.detected_before_failure,
            "detected_before_failure_pct": self.detected_before_failure_pct,
            "median_lead_days": self.median_lead_days,
            "p10_lead_days": self.p10_lead_days,
        }


@dataclass(frozen=True, slots=True)
class BacktestScore:
    scenario: str
    seeds: tuple[int, ...]  # one run's seed, or the seeds pooled
    days: float
    dt_s: float
    devices: dict[str, int]
    faults: dict[str, FaultKindScore]
    tickets: int
    false_tickets: int
    false_tickets_by_family: dict[str, int]
    false_tickets_on_faulty_devices: int
    tickets_by_family: dict[str, int]
    device_years: float
    false_tickets_per_100_device_years: float
    eta_interval_coverage: float | None
    eta_intervals_scored: int
    stockouts: int
    baseline_stockouts: int
    stockouts_prevented_pct: float | None
    stockout_slot_hours: float
    baseline_stockout_slot_hours: float
    restock_orders: int
    restock_visits: int
    baseline_restock_visits: int
    customers: int
    customers_with_email: int
    emails: int
    emails_per_customer_month: float

    def as_json(self) -> dict[str, object]:
        seed: dict[str, object] = (
            {"seed": self.seeds[0]} if len(self.seeds) == 1 else {"seeds": list(self.seeds)}
        )
        return {
            "scenario": self.scenario,
            **seed,
            "days": self.days,
            "dt_s": self.dt_s,
            "devices": dict(self.devices),
            "faults": {name: s.as_json() for name, s in self.faults.items()},
            "tickets": self.tickets,
            "tickets_by_family": dict(self.tickets_by_family),
            "false_tickets": self.false_tickets,
            "false_tickets_by_family": dict(self.false_tickets_by_family),
            "false_tickets_on_faulty_devices": self.false_tickets_on_faulty_devices,
            "device_years": self.device_years,
            "false_tickets_per_100_device_years": self.false_tickets_per_100_device_years,
            "eta_interval_coverage": self.eta_interval_coverage,
            "eta_intervals_scored": self.eta_intervals_scored,
            "stockouts": self.stockouts,
            "baseline_stockouts": self.baseline_stockouts,
            "stockouts_prevented_pct": self.stockouts_prevented_pct,
            "stockout_slot_hours": self.stockout_slot_hours,
            "baseline_stockout_slot_hours": self.baseline_stockout_slot_hours,
            "restock_orders": self.restock_orders,
            "restock_visits": self.restock_visits,
            "baseline_restock_visits": self.baseline_restock_visits,
            "customers": self.customers,
            "customers_with_email": self.customers_with_email,
            "emails": self.emails,
            "emails_per_customer_month": self.emails_per_customer_month,
        }


def family_of(fault: str) -> str:
    """``tyres.pressure.fl`` → ``tyres.pressure``; ``vending.jammed_coil.B4`` → its family."""
    return ".".join(fault.split(".")[:2])


def device_faults(labels: Sequence[FaultLabel]) -> list[FaultLabel]:
    """The labels that are faults of a device (not power cuts, not stock-outs)."""
    return [lb for lb in labels if lb.fault not in NOT_A_DEVICE_FAULT]


def match(
    labels: Sequence[FaultLabel],
    tickets: Sequence[TicketRecord],
    decisions: Sequence[DecisionRecord],
) -> tuple[list[FaultMatch], list[TicketRecord]]:
    """Match each device fault to the first ticket for it; return the matches and false tickets.

    A ticket answers a fault when it is on the same device, its fault name is the fault's
    family (with the slot or tyre where the family has one), and it opened at or after the
    fault's onset. Every ticket that answers no fault is false.
    """
    by_key: dict[tuple[str, str], list[TicketRecord]] = {}
    for t in tickets:
        by_key.setdefault((t.device_id, t.fault), []).append(t)
    eta_by_key: dict[tuple[str, str], list[DecisionRecord]] = {}
    for d in decisions:
        if d.eta_lo_ms is not None and d.eta_hi_ms is not None:
            eta_by_key.setdefault((d.device_id, d.fault), []).append(d)
    explained: set[str] = set()
    matches: list[FaultMatch] = []
    for lb in device_faults(labels):
        expected = expected_fault(lb)
        hits = [] if expected is None else by_key.get((lb.device_id, expected), [])
        hits = [t for t in hits if t.opened_ms >= lb.onset_ms]
        first = min(hits, key=lambda t: t.opened_ms) if hits else None
        explained.update(t.decision_id for t in hits)
        first_eta = None
        if first is not None and expected is not None and lb.failure_ms is not None:
            failure_ms = lb.failure_ms
            etas = [
                d
                for d in eta_by_key.get((lb.device_id, expected), [])
                if lb.onset_ms <= d.ts_ms < failure_ms
            ]
            first_eta = min(etas, key=lambda d: d.ts_ms) if etas else None
        matches.append(FaultMatch(lb, expected, first, first_eta))
    false = [t for t in tickets if t.decision_id not in explained]
    return matches, false


def _percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def score_kind(kind: str, fault: str, matches: Sequence[FaultMatch]) -> FaultKindScore:
    failed = [m for m in matches if m.label.failure_ms is not None]
    before = [m for m in failed if m.before_failure]
    leads = [m.lead_days for m in before if m.lead_days is not None]
    return FaultKindScore(
        kind=kind,
        family=FAMILY.get(fault),
        injected=len(matches),
        failed=len(failed),
        detected=sum(1 for m in matches if m.detected),
        detected_before_failure=len(before),
        detected_before_failure_pct=round(100.0 * len(before) / len(failed), 1) if failed else None,
        median_lead_days=_percentile(leads, 50),
        p10_lead_days=_percentile(leads, 10),
    )


def eta_coverage(matches: Sequence[FaultMatch]) -> tuple[float | None, int]:
    """Share of first ETA intervals (issued before the failure) that hold the failure time."""
    scored = [m for m in matches if m.first_eta is not None and m.label.failure_ms is not None]
    held = 0
    for m in scored:
        d, failure_ms = m.first_eta, m.label.failure_ms
        if d is None or failure_ms is None or d.eta_lo_ms is None or d.eta_hi_ms is None:
            continue
        held += int(d.eta_lo_ms <= failure_ms <= d.eta_hi_ms)
    return (round(held / len(scored), 3) if scored else None), len(scored)


def on_faulty_devices(false: Sequence[TicketRecord], labels: Sequence[FaultLabel]) -> int:
    """False tickets opened on a device after one of its faults began (the wrong family or part)."""
    onset: dict[str, int] = {}
    for lb in device_faults(labels):
        onset[lb.device_id] = min(lb.onset_ms, onset.get(lb.device_id, lb.onset_ms))
    return sum(1 for t in false if t.opened_ms >= onset.get(t.device_id, t.opened_ms + 1))


def stockout_hours(labels: Sequence[FaultLabel], end_ms: int) -> float:
    """Slot-hours without stock: each stock-out from the sample it began to its refill."""
    total_ms = sum(
        (lb.end_ms if lb.end_ms is not None else end_ms) - lb.onset_ms
        for lb in labels
        if lb.fault == "stockout"
    )
    return round(total_ms / 3_600_000, 1)


def score(run: BacktestRun) -> BacktestScore:
    """Every figure of ``docs/backtest.md`` for one run."""
    return pooled_score([run])


def pooled_score(runs: Sequence[BacktestRun]) -> BacktestScore:
    """Every figure of ``docs/backtest.md`` over runs of one scenario with different seeds.

    Counts add up over the runs; shares, medians and percentiles are taken over every fault,
    ticket, interval and stock-out of all of them (not averaged run by run), so a seed with
    more faults weighs more. One run gives :func:`score`'s figures.
    """
    if not runs:
        raise ValueError("no run to score")
    sc = runs[0].scenario
    seeds = tuple(r.scenario.seed for r in runs)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"each seed once, got {list(seeds)}")
    if any(r.scenario.name != sc.name or r.scenario.days != sc.days for r in runs):
        raise ValueError("pooled runs must be of one scenario")
    matches: list[FaultMatch] = []
    false: list[TicketRecord] = []
    on_faulty = 0  # device ids repeat from seed to seed: each run's tickets meet its own faults
    for r in runs:
        run_matches, run_false = match(r.labels, r.tickets, r.decisions)
        matches += run_matches
        false += run_false
        on_faulty += on_faulty_devices(run_false, r.labels)
    tickets = [t for r in runs for t in r.tickets]
    labels = [lb for r in runs for lb in r.labels]
    by_fault: dict[tuple[str, str], list[FaultMatch]] = {}
    for m in matches:
        by_fault.setdefault((m.label.kind, m.label.fault), []).append(m)
    kinds_of = Counter(fault for _, fault in by_fault)
    faults = {
        # A fault name two product kinds share is keyed with its kind.
        (f"{kind}.{fault}" if kinds_of[fault] > 1 else fault): score_kind(
            kind, fault, by_fault[(kind, fault)]
        )
        for kind, fault in sorted(by_fault)
    }
    devices = Counter(d.kind for d in runs[0].devices)  # a scenario's fleet, whatever the seed
    device_years = sum(len(r.devices) for r in runs) * sc.days / DAYS_PER_YEAR
    coverage, n_eta = eta_coverage(matches)
    stockouts = sum(1 for lb in labels if lb.fault == "stockout")
    baseline = sum(1 for r in runs for lb in r.baseline_labels if lb.fault == "stockout")
    months = sc.days / DAYS_PER_MONTH
    customers = sum(r.customers for r in runs)
    emails = sum(r.emails for r in runs)
    return BacktestScore(
        scenario=sc.name,
        seeds=seeds,
        days=sc.days,
        dt_s=sc.dt_s,
        devices={k: devices[k] for k in ("fridge", "vending", "tyres")},
        faults=faults,
        tickets=len(tickets),
        false_tickets=len(false),
        false_tickets_by_family=dict(sorted(Counter(family_of(t.fault) for t in false).items())),
        false_tickets_on_faulty_devices=on_faulty,
        tickets_by_family=dict(sorted(Counter(family_of(t.fault) for t in tickets).items())),
        device_years=round(device_years, 3),
        false_tickets_per_100_device_years=round(100.0 * len(false) / device_years, 2)
        if device_years > 0
        else 0.0,
        eta_interval_coverage=coverage,
        eta_intervals_scored=n_eta,
        stockouts=stockouts,
        baseline_stockouts=baseline,
        stockouts_prevented_pct=round(100.0 * (baseline - stockouts) / baseline, 1)
        if baseline
        else None,
        stockout_slot_hours=round(sum(stockout_hours(r.labels, sc.end_ms) for r in runs), 1),
        baseline_stockout_slot_hours=round(
            sum(stockout_hours(r.baseline_labels, sc.end_ms) for r in runs), 1
        ),
        restock_orders=sum(r.restock_orders for r in runs),
        restock_visits=sum(r.restock_visits for r in runs),
        baseline_restock_visits=sum(r.baseline_restock_visits for r in runs),
        customers=customers,
        customers_with_email=sum(r.customers_with_email for r in runs),
        emails=emails,
        emails_per_customer_month=round(emails / (customers * months), 4)
        if customers and months > 0
        else 0.0,
    )
