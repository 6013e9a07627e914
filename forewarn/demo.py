"""``forewarn demo``: a private broker, the cloud and a simulated fleet of edge agents, end to end.

Everything runs on embedded defaults: Mosquitto as a child process; the cloud service (ingest,
core, decisions, actions, API) in this process with SQLite and the embedded telemetry store; and
the simulated fleet in a second process — one real edge agent per device, each with its own MQTT
connection and on-disk outbox. Time is accelerated: a shared simulation clock moves in sample
steps as fast as the pipeline keeps up.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cloud.config import load_settings
from cloud.errors import ConfigError, ForewarnError
from cloud.service import CloudService
from forewarn.broker import MosquittoProcess
from forewarn.fleet_runner import DAY_MS, FleetPlan, FleetResult, make_fleet, run_fleet
from forewarn.scoring import score

DEMO_ADMIN = "demo"


class DemoError(ForewarnError):
    """The simulated fleet failed; the message says why."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    devices: int = 300
    seed: int = 7
    sim_days: float = 30.0
    data_dir: Path = Path("forewarn-data/demo")
    port: int = 8000
    headless: bool = False
    sample_s: int = 600
    batch_rows: int = 12
    fault_share: float = 0.15
    rogue: bool = True  # also publish the contract's invalid examples, to show rejections


class Demo:
    def __init__(
        self,
        opts: DemoOptions,
        progress: Callable[[str], None] | None = None,
        on_summary: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.opts = opts
        self.progress = progress or (lambda _msg: None)
        self.on_summary = on_summary or (lambda _summary: None)
        self.stop_requested = threading.Event()

    def _clean(self) -> None:
        data = self.opts.data_dir
        for sub in ("broker", "edge", "outbox", "influx-spool"):
            shutil.rmtree(data / sub, ignore_errors=True)
        for name in ("telemetry.db", "forewarn.db"):
            for suffix in ("", "-wal", "-shm"):
                (data / f"{name}{suffix}").unlink(missing_ok=True)
        data.mkdir(parents=True, exist_ok=True)

    def run(self) -> dict[str, Any]:
        opts = self.opts
        wall0 = time.monotonic()
        if not opts.headless:
            _check_port_free(opts.port)
        self._clean()
        step_ms = opts.sample_s * 1000
        end_ms = (time.time_ns() // 1_000_000) // step_ms * step_ms
        start_ms = end_ms - int(opts.sim_days * DAY_MS) // step_ms * step_ms
        ctx = mp.get_context("spawn")
        clock = ctx.Value("q", start_ms, lock=False)
        backlog = ctx.Value("q", 0, lock=False)
        stop = ctx.Event()
        results: mp.Queue[FleetResult] = ctx.Queue()
        progress: mp.Queue[str] = ctx.Queue()

        with MosquittoProcess(data_dir=opts.data_dir / "broker") as broker:
            plan = FleetPlan(
                devices=opts.devices, seed=opts.seed, fault_share=opts.fault_share,
                sim_days=opts.sim_days, start_ms=start_ms, end_ms=end_ms,
                sample_s=opts.sample_s, batch_rows=opts.batch_rows, host=broker.host,
                port=broker.port, edge_dir=opts.data_dir / "edge", rogue=opts.rogue,
            )  # fmt: skip
            settings = load_settings(
                data_dir=opts.data_dir, mqtt_url=broker.url, http_port=opts.port
            )
            service = CloudService(settings, clock_ms=lambda: int(clock.value))
            self.service = service
            self._seed_customers(service, plan)
            login = self._seed_console(service)
            service.start()
            server = None if opts.headless else self._serve(service, opts.port)
            if server is not None:
                self.progress(f"console at http://127.0.0.1:{opts.port}; sign in as {login}")
            child = ctx.Process(
                target=run_fleet,
                args=(plan, clock, backlog, stop, results, progress),
                name="forewarn-fleet",
            )
            child.start()
            try:
                result = self._follow(child, service, backlog, stop, results, progress)
                self.progress("edge outboxes drained; waiting for ingest to settle")
                service.wait_idle(timeout_s=120, quiet_s=1.5)
                while service.deliver_now():
                    pass
                summary = self._summary(result, service, wall0)
                self.on_summary(summary)
                if server is not None and not self.stop_requested.is_set():
                    self.progress(
                        f"simulation done; console at http://127.0.0.1:{opts.port}, sign in as "
                        f"{login} (Ctrl-C stops)"
                    )
                    self.stop_requested.wait()
                return summary
            finally:
                stop.set()
                child.join(timeout=60)
                if child.is_alive():
                    child.terminate()
                if server is not None:
                    server.should_exit = True
                service.stop()

    def _follow(
        self,
        child: Any,
        service: CloudService,
        backlog: Any,
        stop: Any,
        results: Any,
        progress: Any,
    ) -> FleetResult:
        """Relay progress and back-pressure until the fleet process reports its result."""
        while True:
            if self.stop_requested.is_set():
                stop.set()
            backlog.value = service.subscriber.backlog()
            with_msg = True
            while with_msg:
                try:
                    msg = progress.get_nowait()
                except queue.Empty:
                    with_msg = False
                else:
                    if msg.startswith("day"):
                        c = service.pipeline.counters
                        tickets = sum(service.actions.counts().tickets.values())
                        msg += f": {c.readings_stored} readings stored, {tickets} tickets"
                    self.progress(msg)
            try:
                result: FleetResult = results.get(timeout=0.1)
            except queue.Empty:
                if not child.is_alive() and results.empty():
                    raise DemoError(
                        f"the fleet process died (exit code {child.exitcode})"
                    ) from None
                continue
            if result.error:
                raise DemoError(f"the simulated fleet failed: {result.error}")
            return result

    def _seed_customers(self, service: CloudService, plan: FleetPlan) -> None:
        fleet = make_fleet(plan)
        kinds = {d.device_id: d.kind for d in fleet.devices()}
        for c in fleet.customers():
            service.actions.upsert_customer(
                c.customer_id, c.name, c.email, locale=c.locale, tz=c.tz
            )
            for owned in c.devices:
                service.actions.upsert_device(
                    owned.device_id, kinds[owned.device_id], c.customer_id, owned.nickname
                )

    def _seed_console(self, service: CloudService) -> str:
        """A demo admin with a fresh password (the demo database is new each run) and two
        technicians to assign tickets to; returns how to sign in."""
        password = secrets.token_urlsafe(9)
        service.accounts.create_user(DEMO_ADMIN, password, "admin")
        for tech_id, name in (("tech-ana", "Ana Field"), ("tech-ben", "Ben Route")):
            service.actions.technicians.upsert(
                tech_id, name, "central", ["refrigeration", "vending_mechanics", "tyres"]
            )
        return f"{DEMO_ADMIN} / {password}"

    def _serve(self, service: CloudService, port: int) -> Any:
        import uvicorn

        from cloud.api.app import create_app

        config = uvicorn.Config(
            create_app(service), host="127.0.0.1", port=port, log_level="warning"
        )
        server = uvicorn.Server(config)
        threading.Thread(target=server.run, name="forewarn-http", daemon=True).start()
        return server

    def _summary(self, result: FleetResult, service: CloudService, wall0: float) -> dict[str, Any]:
        c = service.pipeline.counters
        tickets = _all_tickets(service)
        counts = service.actions.counts()
        fault_score = score(result.labels, tickets)
        return {
            "devices": self.opts.devices,
            "sim_days": self.opts.sim_days,
            "readings_published": result.readings_acked + result.rogue_rows,
            "readings_stored": c.readings_stored,
            "readings_rejected": c.readings_rejected,
            "device_readings_published": result.readings_acked,
            "device_messages_published": result.messages_acked,
            "rogue_messages_published": result.rogue_messages,
            "messages_rejected": sum(c.rejects_by_reason.values()),
            "rejects_by_reason": dict(c.rejects_by_reason),
            "duplicate_messages": c.duplicate_messages,
            "outbox_backlog": result.outbox_backlog,
            "decisions": c.decisions,
            "tickets": sum(counts.tickets.values()),
            "tickets_by_action": _count_by(tickets, "action"),
            "emails": sum(counts.emails.values()),
            "emails_sent": counts.emails.get("sent", 0),
            **asdict(fault_score),
            "wall_s": round(time.monotonic() - wall0, 1),
        }


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror}); choose another with "
                "--port, or run with --headless"
            ) from exc


def _count_by(items: list[Any], attr: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        key = str(getattr(it, attr))
        out[key] = out.get(key, 0) + 1
    return out


def _all_tickets(service: CloudService) -> list[Any]:
    out: list[Any] = []
    while True:
        page = service.actions.tickets(limit=1000, offset=len(out))
        out.extend(page)
        if len(page) < 1000:
            return out
