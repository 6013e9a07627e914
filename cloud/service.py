"""The cloud service's composition root: builds every adapter from settings and runs the loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any

from cloud.actions.db import create_engine_for, init_schema
from cloud.actions.email import Brand, EmailRenderer
from cloud.actions.senders import EmailSender, EmlDirSender, SmtpSender
from cloud.actions.service import ActionService
from cloud.config import Settings, mqtt_host_port
from cloud.deadletters import RecordStore
from cloud.devices import DeviceDirectory
from cloud.errors import TransientError
from cloud.mqtt import Delivery, IngestSubscriber, wall_clock_ms
from cloud.mqtt_receiver import ProcessIngestSubscriber
from cloud.pipeline import Pipeline
from cloud.store.embedded import EmbeddedStore
from cloud.store.ports import TelemetryWriter

log = logging.getLogger(__name__)

GROUP_MAX_MESSAGES = 2000
RETRY_MAX_S = 30.0


class CloudService:
    """Ingest worker, outbox relay and the stores behind the API, wired from ``Settings``."""

    def __init__(self, settings: Settings, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.settings = settings
        self.clock_ms = clock_ms
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine_for(settings.resolved_database_url)
        init_schema(self.engine)
        self.records = RecordStore(self.engine)
        self.store = EmbeddedStore(settings.data_dir / "telemetry.db")
        writers: list[TelemetryWriter] = [self.store]
        self.influx: TelemetryWriter | None = None
        if settings.influx_url:
            from cloud.store.influx import InfluxWriter

            self.influx = InfluxWriter(
                url=settings.influx_url,
                token=settings.influx_token or "",
                org=settings.influx_org,
                bucket=settings.influx_bucket,
                spool_dir=settings.data_dir / "influx-spool",
            )
            writers.append(self.influx)
        name, addr = parseaddr(settings.email_from)
        brand = Brand(name=name or "forewarn service", from_addr=addr or settings.email_from)
        self.sender: EmailSender = (
            SmtpSender(settings.smtp_url)
            if settings.smtp_url
            else EmlDirSender(settings.data_dir / "outbox")
        )
        self.actions = ActionService(self.engine, EmailRenderer(brand=brand), self.sender, clock_ms)
        self.directory = DeviceDirectory()
        self.pipeline = Pipeline(writers, self.records, self.actions, self.directory)
        host, port, _tls = mqtt_host_port(settings.mqtt_url)
        receiver = (
            ProcessIngestSubscriber if settings.ingest_receiver == "process" else IngestSubscriber
        )
        self.subscriber: IngestSubscriber | ProcessIngestSubscriber = receiver(
            host,
            port,
            shared_group=settings.mqtt_shared_group,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            clock_ms=clock_ms,
        )
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ingest_errors = 0
        self.delivery_errors = 0

    def start(self) -> None:
        self.subscriber.start()
        for target, name in ((self._ingest_loop, "ingest"), (self._deliver_loop, "outbox-relay")):
            t = threading.Thread(target=target, name=f"forewarn-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        self.subscriber.stop()
        self.store.flush()
        if self.influx is not None:
            self.influx.close()
        self.store.close()
        self.engine.dispose()

    def _ingest_loop(self) -> None:
        pending: list[Delivery] = []
        backoff_s = 0.5
        while not self._stop.is_set():
            if not pending:
                pending = self.subscriber.take(GROUP_MAX_MESSAGES, timeout_s=0.1)
                if not pending:
                    continue
            self._busy.set()
            try:
                self.pipeline.process([d.message for d in pending])
            except TransientError as exc:
                # Nothing of the group was acknowledged: keep it and try again (back-pressure).
                self.ingest_errors += 1
                log.warning("ingest paused: %s; retrying in %.1f s", exc, backoff_s)
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, RETRY_MAX_S)
                continue
            except Exception:  # a bug must not stop ingest or lose the group
                log.exception("ingest failed on a group of %d messages; isolating", len(pending))
                self.ingest_errors += 1
                pending = self._isolate(pending)
                if pending:
                    continue  # a transient failure while isolating: retry what is left
            finally:
                self._busy.clear()
            self.subscriber.ack(pending)
            pending = []
            backoff_s = 0.5

    def _isolate(self, group: list[Delivery]) -> list[Delivery]:
        """Process a failed group one message at a time.

        A message that fails on its own with anything but a transient error is kept as a dead
        letter (reason ``processing``) and acknowledged, so one poison message can neither stop
        ingest nor take its neighbours with it. Returns what is still unprocessed when a
        transient error interrupts (to be retried), else an empty list after acknowledging.
        """
        for i, delivery in enumerate(group):
            try:
                self.pipeline.process([delivery.message])
            except TransientError:
                self.subscriber.ack(group[:i])
                return group[i:]
            except Exception as exc:  # recorded with its reason, never lost
                log.exception("message on %s could not be processed", delivery.message.topic)
                self.pipeline.dead_letter(
                    delivery.message, "processing", f"{type(exc).__name__}: {exc}"
                )
        self.subscriber.ack(group)
        return []

    def _deliver_loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.deliver_now()
            except Exception:  # the relay must outlive a bug in one round
                self.delivery_errors += 1
                log.exception("outbox relay round failed; trying again")

    def deliver_now(self) -> int:
        try:
            return int(self.actions.deliver_pending().sent)
        except TransientError as exc:
            self.delivery_errors += 1
            log.warning("outbox relay paused: %s", exc)
            return 0

    def wait_idle(self, timeout_s: float, quiet_s: float = 1.0) -> bool:
        """Wait until no message has arrived or been processed for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        last = (-1, -1)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            now = (self.subscriber.received, self.pipeline.counters.messages)
            idle = self.subscriber.backlog() == 0 and not self._busy.is_set() and now[0] == now[1]
            if now != last or not idle:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return True
            time.sleep(0.05)
        return False

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.pipeline.counters.snapshot())
        out["devices"] = len(self.directory.all())
        out["ingest_backlog"] = self.subscriber.backlog()
        out["ingest_errors"] = self.ingest_errors
        out["store"] = self.store.stats()
        if self.influx is not None:
            out["influx"] = self.influx.stats()
        return out
