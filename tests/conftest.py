"""Session fixtures: real servers the test session starts itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forewarn.broker import MosquittoProcess, free_port

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "firmware_specs"


@pytest.fixture
def broker() -> Iterator[MosquittoProcess]:
    """A private Mosquitto on a free port, configured never to drop a slow subscriber's queue."""
    with MosquittoProcess() as proc:
        yield proc


@pytest.fixture(scope="session")
def session_broker() -> Iterator[MosquittoProcess]:
    with MosquittoProcess() as proc:
        yield proc


class SmtpSink:
    """An aiosmtpd server that keeps every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[bytes] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                sink.messages.append(envelope.content)  # type: ignore[attr-defined]
                sink.envelopes.append(
                    (envelope.mail_from, list(envelope.rcpt_tos))  # type: ignore[attr-defined]
                )
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.messages)


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    try:
        yield sink
    finally:
        sink.controller.stop()


def _pg_url() -> str | None:
    return os.environ.get("FOREWARN_TEST_PG_URL")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema-isolated database URL from FOREWARN_TEST_PG_URL.

    When the variable is set the server must be reachable: an unreachable server fails the test
    rather than skipping it. When it is unset (a laptop without PostgreSQL) the test is skipped
    with that reason; ``.ci/run`` always sets it.
    """
    url = _pg_url()
    if not url:
        pytest.skip("FOREWARN_TEST_PG_URL is not set")
    import sqlalchemy as sa

    name = f"fw_test_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    test_url = sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        yield test_url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class VictoriaMetrics:
    """A VictoriaMetrics server (accepts influxdb-client writes) that can stop and start again
    on the same port and data directory."""

    def __init__(self, port: int, data_dir: Path) -> None:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        if not Path(binary).exists():
            raise RuntimeError(
                "victoria-metrics is not installed: 'apt-get install victoria-metrics'"
            )
        self.binary = binary
        self.port = port
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data_dir}",
                "-search.latencyOffset=0s",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("victoria-metrics did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


@pytest.fixture
def vm_server(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics on a free port, not started yet (the test starts and stops it)."""
    server = VictoriaMetrics(free_port(), tmp_path / "vm-data")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def victoria_metrics(vm_server: VictoriaMetrics) -> VictoriaMetrics:
    """A running VictoriaMetrics on a free port."""
    vm_server.start()
    return vm_server
