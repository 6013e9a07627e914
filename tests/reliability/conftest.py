"""Helpers for fault-injection tests: a small fleet of real edge agents on a simulation clock,
and a cloud service run as a child process that can be killed for real."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.agent import AgentConfig, EdgeAgent
from forewarn.broker import MosquittoProcess, free_port
from forewarn.clock import SimClock

REPO = Path(__file__).resolve().parents[2]
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 60_000
# Mosquitto saves its in-memory state only now and then; saving after every change narrows
# what a kill -9 can take to the moment between a PUBACK and the next save.
DURABLE_BROKER = "autosave_on_changes true\nautosave_interval 1\n"


def fridge_row(i: int, warm: bool = False) -> dict[str, float]:
    return {
        "cabinet_c": 12.0 if warm else 4.0 + 0.1 * (i % 5),
        "compressor_on": 0.4,
        "mains_ok": 1.0,
    }


class Fleet:
    """Real edge agents on one broker; ``feed`` submits rows for all of them on a sim clock."""

    def __init__(self, port: int, tmp: Path, clock: SimClock, n: int, **overrides: Any) -> None:
        self.clock = clock
        self.agents: list[EdgeAgent] = []
        self.submitted = 0
        for k in range(n):
            settings: dict[str, Any] = {
                "device_id": f"fr-{k + 1:06d}",
                "kind": "fridge",
                "port": port,
                "outbox_path": tmp / f"fr-{k + 1:06d}.outbox",
                "outbox_durability": "normal",
                "batch_max_rows": 3,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 0.5,
                "replay_rate_msgs_per_s": 200.0,
                "attributes": {"variant": "household", "setpoint_c": 4.0},
            }
            settings.update(overrides)
            self.agents.append(EdgeAgent(AgentConfig(**settings), clock_ms=clock.now_ms))

    def start(self) -> None:
        for agent in self.agents:
            agent.start()

    def feed(self, first_step: int, steps: int, pause_s: float = 0.0) -> None:
        for i in range(first_step, first_step + steps):
            ts = T0_MS + i * STEP_MS
            self.clock.set(ts)
            for agent in self.agents:
                agent.submit(ts, fridge_row(i))
                self.submitted += 1
            if pause_s:
                time.sleep(pause_s)

    def drain(self, timeout_s: float = 60.0) -> bool:
        for agent in self.agents:
            agent.flush()
        return all(agent.wait_drained(timeout_s) for agent in self.agents)

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop(graceful=False)


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    made: list[Fleet] = []

    def make(port: int, n: int, clock: SimClock, **overrides: Any) -> Fleet:
        fleet = Fleet(port, tmp_path / f"fleet{len(made)}", clock, n, **overrides)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.stop()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    """A broker that keeps its data directory across kill -9 and restart."""
    proc = MosquittoProcess(data_dir=tmp_path / "broker", extra_config=DURABLE_BROKER)
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def stored_seqs(data_dir: Path) -> dict[str, list[int]]:
    """Every (device, seq) message in a cloud's telemetry store (read-only, while it runs)."""
    path = data_dir / "telemetry.db"
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT device_id, seq FROM chunks").fetchall()
    except sqlite3.OperationalError:  # the schema is not there yet
        rows = []
    finally:
        conn.close()
    out: dict[str, list[int]] = {}
    for device_id, seq in rows:
        out.setdefault(device_id, []).append(seq)
    return {k: sorted(v) for k, v in out.items()}


def stored_rows(data_dir: Path) -> int:
    path = data_dir / "telemetry.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute("SELECT COALESCE(SUM(n_rows), 0) FROM chunks").fetchone()[0])
    finally:
        conn.close()


class CloudProcess:
    """``python -m forewarn cloud`` as a child process, so that kill -9 is real."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.http_port = free_port()
        self.env = {
            **os.environ,
            "FOREWARN_DATA_DIR": str(data_dir),
            "FOREWARN_HTTP_PORT": str(self.http_port),
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "forewarn", "cloud"],
                cwd=REPO, env=self.env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cloud exited: {self.log.read_text()[-3000:]}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"cloud did not answer: {self.log.read_text()[-3000:]}")

    def health(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.http_port}/health"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def kill(self) -> None:
        """kill -9 the service and its receiver process, as a power cut or OOM kill would."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


@pytest.fixture
def cloud_process(tmp_path: Path) -> Iterator[Callable[..., CloudProcess]]:
    made: list[CloudProcess] = []

    def make(env: dict[str, str], name: str = "cloud") -> CloudProcess:
        cloud = CloudProcess(tmp_path / name, env)
        made.append(cloud)
        return cloud

    yield make
    for cloud in made:
        cloud.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def run_in_thread(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


class SlowSmtp:
    """An aiosmtpd server that takes ``delay_s`` to accept each message and can stop and start
    on the same port; keeps every message it accepted."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.messages: list[bytes] = []
        self.delay_s = delay_s
        self.port = free_port()
        self.controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        import asyncio

        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
                await asyncio.sleep(sink.delay_s)
                sink.messages.append(envelope.content)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def message_ids(self) -> list[str]:
        import email
        from email import policy

        return [
            str(email.message_from_bytes(m, policy=policy.default)["Message-ID"])
            for m in list(self.messages)
        ]


@pytest.fixture
def slow_smtp() -> Iterator[SlowSmtp]:
    server = SlowSmtp()
    try:
        yield server
    finally:
        server.stop()


def seed_customers(database_url: str, devices: list[tuple[str, str]]) -> None:
    """Register one customer with an address per device, so that tickets send emails."""
    from cloud.actions.db import create_engine_for, init_schema
    from cloud.actions.email import Brand, EmailRenderer
    from cloud.actions.senders import EmlDirSender
    from cloud.actions.service import ActionService

    engine = create_engine_for(database_url)
    try:
        init_schema(engine)
        renderer = EmailRenderer(brand=Brand(name="forewarn", from_addr="s@forewarn.invalid"))
        actions = ActionService(engine, renderer, EmlDirSender(Path("unused")), lambda: T0_MS)
        for n, (device_id, kind) in enumerate(devices):
            customer = f"c-{n + 1}"
            actions.upsert_customer(customer, f"Customer {n + 1}", f"c{n + 1}@example.com")
            actions.upsert_device(device_id, kind, customer, f"{kind} {n + 1}")
    finally:
        engine.dispose()


class TcpProxy:
    """Forwards one local port to ``target``; ``cut`` drops every connection and refuses new
    ones (a network outage), ``restore`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        with self._lock:
            self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        if server is not None:
            server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:  # cut while this one was connecting
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy_factory() -> Iterator[Callable[[int], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        proxy.restore()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.cut()
