"""The simulated fleet of the demo: one real edge agent per device, run in its own process.

The fleet and the cloud each get a process (and so a core) of their own; they share only the
simulation clock and the cloud's ingest backlog, through shared memory, and talk over MQTT like
real devices and a real cloud.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import time
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from cloud.wire import RawMessage, decode_many
from edge.agent import AgentConfig, EdgeAgent
from firmware_specs import SPEC_DIR
from simulators.fleet import MixedFleet
from simulators.types import FaultLabel

DAY_MS = 86_400_000
MAX_BACKLOG = 20_000  # messages waiting in ingest before the simulation waits for it


@dataclass(frozen=True, slots=True)
class FleetPlan:
    devices: int
    seed: int
    fault_share: float
    sim_days: float
    start_ms: int
    end_ms: int
    sample_s: int
    batch_rows: int
    host: str
    port: int
    edge_dir: Path
    rogue: bool


@dataclass(frozen=True, slots=True)
class FleetResult:
    readings_acked: int
    messages_acked: int
    outbox_backlog: int
    rogue_messages: int
    rogue_rows: int
    labels: tuple[FaultLabel, ...]
    error: str | None = None


def make_fleet(plan: FleetPlan) -> MixedFleet:
    return MixedFleet(
        plan.devices, plan.start_ms, plan.seed, fault_share=plan.fault_share,
        horizon_days=plan.sim_days,
    )  # fmt: skip


def rogue_messages(now_ms: int) -> list[RawMessage]:
    """The contract's invalid examples that stand alone (no prerequisite messages), re-timed."""
    out: list[RawMessage] = []
    for path in sorted((SPEC_DIR / "invalid").glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        if case.get("before") or not case["topic"].startswith("forewarn/"):
            continue  # needs prerequisites, or is on a topic the cloud does not subscribe to
        if "payload" in case:
            shift = now_ms - int(case.get("received_ms", now_ms))
            payload = json.dumps(_retime(case["payload"], shift)).encode()
        elif "payload_utf8" in case:
            payload = case["payload_utf8"].encode()
        elif "payload_b64" in case:
            payload = base64.b64decode(case["payload_b64"])
        else:
            continue
        out.append(RawMessage(case["topic"], payload, now_ms))
    return out


def _retime(value: Any, shift_ms: int) -> Any:
    """Move every ``*_ms`` time in a payload by ``shift_ms``, keeping its relation to receipt."""
    if isinstance(value, dict):
        return {
            k: _shift(v, shift_ms) if k.endswith("_ms") else _retime(v, shift_ms)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_retime(v, shift_ms) for v in value]
    return value


def _shift(value: Any, shift_ms: int) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value + shift_ms
    if isinstance(value, list):
        return [_shift(v, shift_ms) for v in value]
    return value


def _publish_raw(host: str, port: int, messages: list[RawMessage]) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forewarn-demo-rogue")
    client.connect(host, port)
    client.loop_start()
    try:
        for info in [client.publish(m.topic, m.payload, qos=1) for m in messages]:
            info.wait_for_publish(timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()


def run_fleet(
    plan: FleetPlan,
    clock: Synchronized,  # type: ignore[type-arg]
    backlog: Synchronized,  # type: ignore[type-arg]
    stop: Any,
    results: Any,
    progress: Any,
) -> None:
    """Child-process entry: simulate, publish through edge agents, drain, report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    agents: dict[str, EdgeAgent] = {}
    try:
        fleet = make_fleet(plan)

        def now_ms() -> int:
            return int(clock.value)

        for spec in fleet.devices():
            config = AgentConfig(
                device_id=spec.device_id,
                kind=spec.kind,
                outbox_path=plan.edge_dir / f"{spec.device_id}.db",
                host=plan.host,
                port=plan.port,
                batch_max_rows=plan.batch_rows,
                sample_interval_s=plan.sample_s,
                batch_interval_s=plan.sample_s * plan.batch_rows,
                model=spec.model,
                attributes=spec.attributes,
                # Accelerated time: a simulated day passes in seconds, so the replay limit is
                # set for the demo's pace; the power-loss trade-off is irrelevant to a demo.
                replay_rate_msgs_per_s=500.0,
                replay_burst=50,
                outbox_durability="normal",
            )
            agent = EdgeAgent(config, clock_ms=now_ms)
            agent.start()
            agents[spec.device_id] = agent
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(a.stats.connected for a in agents.values()):
            time.sleep(0.1)
        progress.put(f"{len(agents)} edge agents connected to mqtt://{plan.host}:{plan.port}")
        rogue_n, rogue_rows = _simulate(plan, fleet, agents, clock, backlog, stop, progress)
        for agent in agents.values():
            agent.flush()
        deadline = time.monotonic() + 120
        for agent in agents.values():
            agent.wait_drained(max(0.1, deadline - time.monotonic()))
        stats = [a.stats for a in agents.values()]
        results.put(
            FleetResult(
                readings_acked=sum(s.readings_acked for s in stats),
                messages_acked=sum(s.messages_acked for s in stats),
                outbox_backlog=sum(s.outbox_depth for s in stats),
                rogue_messages=rogue_n,
                rogue_rows=rogue_rows,
                labels=tuple(fleet.labels()),
            )
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the demo
        results.put(FleetResult(0, 0, 0, 0, 0, (), error=f"{type(exc).__name__}: {exc}"))
    finally:
        for agent in agents.values():
            with contextlib.suppress(Exception):
                agent.stop(graceful=True)


def _simulate(
    plan: FleetPlan,
    fleet: MixedFleet,
    agents: dict[str, EdgeAgent],
    clock: Synchronized,  # type: ignore[type-arg]
    backlog: Synchronized,  # type: ignore[type-arg]
    stop: Any,
    progress: Any,
) -> tuple[int, int]:
    step_ms = plan.sample_s * 1000
    by_kind = {f.kind: [agents[d.device_id] for d in f.devices] for f in fleet.fleets if f.devices}
    steps = (plan.end_ms - plan.start_ms) // step_ms
    rogue_at = steps // 2 if plan.rogue else -1
    rogue_n = rogue_rows = 0
    for i in range(1, steps + 1):
        if stop.is_set():
            break
        ts = plan.start_ms + i * step_ms
        clock.value = ts
        for out in fleet.step(ts, float(plan.sample_s)):
            kind_agents = by_kind[out.kind]
            rows: list[list[float]] = out.values.tolist()
            names = out.channels
            for agent, row in zip(kind_agents, rows, strict=True):
                # NaN means "not sampled this time": leave the channel out of the row.
                agent.submit(ts, {n: v for n, v in zip(names, row, strict=True) if v == v})
            for dev, event in out.events:
                kind_agents[dev].submit_event(event)
        if i % plan.batch_rows == 0:
            for agent in agents.values():
                agent.flush()
        if i == rogue_at:
            rogue = rogue_messages(ts)
            _, rejects = decode_many(rogue)
            rogue_n, rogue_rows = len(rogue), sum(r.rows for r in rejects)
            _publish_raw(plan.host, plan.port, rogue)
        while backlog.value > MAX_BACKLOG and not stop.is_set():
            time.sleep(0.05)
        if i % (steps // 10 or 1) == 0:
            progress.put(f"day {i * step_ms / DAY_MS:5.1f}/{plan.sim_days:g}")
    return rogue_n, rogue_rows
