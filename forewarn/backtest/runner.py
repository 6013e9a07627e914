"""Drive a scenario offline: simulator steps → telemetry batches → core → decision policy.

No broker and no decoding: each kind's simulator output becomes the ``TelemetryBatch`` the wire
decoder would have produced from the devices' messages (``batch_steps`` samples per device per
message), and goes through the same ``cloud.core.fleet.update`` and ``cloud.decisions.decide``
as in production. Memory is bounded by one batch plus the recorded timelines.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

import numpy as np

from cloud.batch import TelemetryBatch
from cloud.core import fleet as core
from cloud.decisions import PolicyState, decide
from forewarn.backtest.ledger import DecisionRecord, Ledger, TicketRecord
from forewarn.backtest.restock import BacktestError, RouteDriver, route_visits
from simulators.fleet import MixedFleet
from simulators.scenario import Scenario, build_fleet
from simulators.types import DeviceSpec, FaultLabel, FloatArray, StepOutput
from simulators.vending import VendingFleet

TIMELINE_DEVICES: Final = 200  # per kind: the first devices' key channels are kept for plots
TIMELINE_STEP_S: Final = 3600.0

Progress = Callable[[int, int], None]  # (steps done, steps in all)


@dataclass(frozen=True, slots=True)
class Timeline:
    """Key channels of the first devices of one kind, about hourly.

    ``values[t, device, channel]`` is the channel's mean over the interval ending at
    ``ts_ms[t]`` (its sum for counts such as failed vends); float32, NaN where a device did not
    report the channel in the interval.
    """

    kind: str
    device_ids: tuple[str, ...]
    channels: tuple[str, ...]
    ts_ms: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """Everything a run produced that the scores and the report need."""

    scenario: Scenario
    devices: tuple[DeviceSpec, ...]
    labels: tuple[FaultLabel, ...]
    baseline_labels: tuple[FaultLabel, ...]  # the weekly-schedule copy of the vending fleet
    tickets: tuple[TicketRecord, ...]
    decisions: tuple[DecisionRecord, ...]
    restock_decisions: int
    restock_orders: int
    restock_visits: int
    baseline_restock_visits: int
    customers: int
    customers_with_email: int
    emails: int
    timelines: dict[str, Timeline]


# Channels recorded per kind for the timelines: name, how to derive it from one step output, and
# whether it is a count summed over the kept interval (else it is averaged over the interval).
Derive = Callable[[StepOutput], FloatArray]


def _key_channels(kind: str) -> tuple[tuple[str, Derive, bool], ...]:
    if kind == "fridge":
        return (
            ("cabinet_c", lambda o: o.channel("cabinet_c"), False),
            ("compressor_on", lambda o: o.channel("compressor_on"), False),
        )
    if kind == "vending":
        return (
            ("cabinet_c", lambda o: o.channel("cabinet_c"), False),
            ("stock_items", lambda o: _slot_sum(o, ".stock"), False),
            ("failed_vends", lambda o: _slot_sum(o, ".fails"), True),
        )
    return tuple(
        (f"{p}.pressure_kpa", lambda o, p=p: o.channel(f"{p}.pressure_kpa"), False)
        for p in ("fl", "fr", "rl", "rr")
    )


def _slot_sum(out: StepOutput, suffix: str) -> FloatArray:
    cols = [i for i, c in enumerate(out.channels) if c.startswith("slot.") and c.endswith(suffix)]
    total: FloatArray = np.nansum(out.values[:, cols], axis=1)
    return total


def to_batch(outputs: Sequence[StepOutput], device_ids: tuple[str, ...]) -> TelemetryBatch:
    """The batch the decoder would build from one message per device holding these samples."""
    first = outputs[0]
    n = len(device_ids)
    steps = len(outputs)
    return TelemetryBatch(
        kind=first.kind,
        device_ids=device_ids,
        channels=first.channels,
        row_device=np.tile(np.arange(n, dtype=np.int64), steps),
        row_seq=np.repeat(np.arange(steps, dtype=np.int64), n),
        ts_ms=np.repeat(np.array([o.ts_ms for o in outputs], dtype=np.int64), n),
        values=np.concatenate([o.values for o in outputs]),
    )


def _emailable(fleet: MixedFleet, scenario: Scenario) -> tuple[set[str], int, int]:
    """Devices whose owner has an email address; customers in all and with an address."""
    customers = fleet.customers()
    rng = np.random.default_rng((scenario.seed, 0xE3A11))
    has_email = rng.random(len(customers)) < scenario.email_share
    devices = {
        owned.device_id
        for c, ok in zip(customers, has_email, strict=True)
        if ok
        for owned in c.devices
    }
    return devices, len(customers), int(has_email.sum())


def run_backtest(scenario: Scenario, progress: Progress | None = None) -> BacktestRun:
    """Simulate the scenario, feed the core and the policy, and keep what the scores need."""
    fleet = build_fleet(scenario)
    specs = {f.kind: f.devices for f in fleet.fleets if f.devices}
    ids = {kind: tuple(s.device_id for s in devs) for kind, devs in specs.items()}
    baseline, driver = _restock_arms(fleet, scenario)
    vending_of = {d.device_id: i for i, d in enumerate(fleet.vending.devices)}

    state = core.FleetState.empty()
    keeps_route = driver is not None and driver.keeps_route
    for spec in fleet.devices():  # birth messages configure the devices before data arrives
        attributes = dict(spec.attributes)
        if keeps_route and spec.kind == "vending":  # the machines announce the route's rounds
            attributes["visits"] = fleet.vending.planned_visits(vending_of[spec.device_id])
        state = core.configure(state, spec.kind, spec.device_id, attributes)
    policy = PolicyState()
    emailable, n_customers, n_with_email = _emailable(fleet, scenario)
    ledger = Ledger(emailable)
    vending_index = {d: i for i, d in enumerate(ids.get("vending", ()))}

    keep_every = max(1, round(TIMELINE_STEP_S / scenario.dt_s))
    recorders = {kind: _Recorder(kind, ids[kind]) for kind in specs}
    pending: dict[str, list[StepOutput]] = {kind: [] for kind in specs}
    baseline_visits: set[tuple[int, int]] = set()
    decision_visits: set[tuple[int, int]] = set()  # the route's and the ordered ones
    n_steps = scenario.n_steps
    dt_s = scenario.dt_s
    for k in range(1, n_steps + 1):
        ts_ms = scenario.step_ms(k)
        if driver is not None:
            driver.serve(scenario.step_ms(k - 1), ts_ms)
        for out in fleet.step(ts_ms, dt_s):
            pending[out.kind].append(out)
            if driver is not None and out.kind == "vending":
                driver.check_no_route_visit(out)
                decision_visits |= route_visits(out)
            recorders[out.kind].observe(out)
            if k % keep_every == 0 or k == n_steps:
                recorders[out.kind].keep(ts_ms)
        if baseline is not None:
            baseline_visits |= route_visits(baseline.step(ts_ms, dt_s))
        if k % scenario.batch_steps and k != n_steps:
            continue
        for kind, outputs in pending.items():
            state, conditions = core.update(state, to_batch(outputs, ids[kind]))
            policy, decisions = decide(policy, kind, state.device_ids(kind), conditions)
            for order in ledger.apply(decisions):
                if driver is not None:
                    visit_by = order.eta_ms  # a restock ETA is the date a visit must beat
                    machine = vending_index[order.device_id]
                    driver.order(machine, order.ts_ms, visit_by, order.score)
            outputs.clear()
        if progress is not None:
            progress(k, n_steps)

    labels = tuple(fleet.labels())
    return BacktestRun(
        scenario=scenario,
        devices=tuple(fleet.devices()),
        labels=labels,
        baseline_labels=tuple(baseline.labels()) if baseline is not None else (),
        tickets=tuple(ledger.tickets),
        decisions=tuple(ledger.decisions),
        restock_decisions=ledger.restock_decisions,
        restock_orders=ledger.restock_episodes,
        restock_visits=(len(decision_visits) if keeps_route else len(driver.visits))
        if driver is not None
        else 0,
        baseline_restock_visits=len(baseline_visits),
        customers=n_customers,
        customers_with_email=n_with_email,
        emails=ledger.emails,
        timelines={kind: r.timeline() for kind, r in recorders.items()},
    )


def _restock_arms(
    fleet: MixedFleet, scenario: Scenario
) -> tuple[VendingFleet | None, RouteDriver | None]:
    """The weekly-schedule copy of the vending machines, and the driver of the fed copy."""
    if not fleet.vending.devices:
        return None, None
    # Each kind draws from its own child of the seed, so a fleet of only the vending machines
    # is the same machines with the same demand and faults.
    only_vending = replace(scenario.fleet, fridges=0, vehicles=0)
    twin = build_fleet(replace(scenario, fleet=only_vending)).vending
    if twin.devices != fleet.vending.devices:
        raise BacktestError("the weekly-schedule copy of the vending fleet differs from the fleet")
    driver = RouteDriver(fleet.vending, fleet.vending.devices, scenario.restock)
    return twin, driver


class _Recorder:
    """Key channels of the first devices: interval means (sums for counts), kept about hourly."""

    def __init__(self, kind: str, device_ids: tuple[str, ...]) -> None:
        self.kind = kind
        self.n = min(len(device_ids), TIMELINE_DEVICES)
        self.device_ids = device_ids[: self.n]
        self.channels = _key_channels(kind)
        self._is_count = np.array([count for _, _, count in self.channels])
        self._sum = np.zeros((self.n, len(self.channels)))
        self._seen = np.zeros((self.n, len(self.channels)))
        self._steps = 0
        self.ts_ms: list[int] = []
        self.rows: list[np.ndarray] = []

    def observe(self, out: StepOutput) -> None:
        values = np.stack([derive(out)[: self.n] for _, derive, _ in self.channels], axis=1)
        seen = ~np.isnan(values)
        self._sum += np.where(seen, values, 0.0)
        self._seen += seen
        self._steps += 1

    def keep(self, ts_ms: int) -> None:
        if not self._steps:
            return
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._seen > 0, self._sum / self._seen, np.nan)
        row = np.where(self._is_count[None, :], self._sum, mean)
        self.ts_ms.append(ts_ms)
        self.rows.append(row.astype(np.float32))
        self._sum[:] = 0.0
        self._seen[:] = 0.0
        self._steps = 0

    def timeline(self) -> Timeline:
        shape = (0, self.n, len(self.channels))
        return Timeline(
            kind=self.kind,
            device_ids=self.device_ids,
            channels=tuple(name for name, _, _ in self.channels),
            ts_ms=np.array(self.ts_ms, dtype=np.int64),
            values=np.stack(self.rows) if self.rows else np.zeros(shape, dtype=np.float32),
        )
