"""The cloud service's composition root: builds every adapter from settings and runs the loops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cloud import snapshot
from cloud.accounts import AccountStore
from cloud.actions.branding import email_renderer
from cloud.actions.customer_mail import CustomerMail
from cloud.actions.db import create_engine_for, init_schema
from cloud.actions.reminders import Reminders
from cloud.actions.senders import EmailSender, EmlDirSender, SmtpSender
from cloud.actions.service import ActionService
from cloud.config import Settings, mqtt_host_port
from cloud.deadletters import RecordStore
from cloud.devices import DeviceDirectory
from cloud.errors import TransientError
from cloud.gc_tuning import tune_gc_for_ingest
from cloud.logs import configure_logging
from cloud.mqtt import Delivery, IngestSubscriber, wall_clock_ms
from cloud.mqtt_receiver import ProcessIngestSubscriber
from cloud.pipeline import Pipeline
from cloud.predictions import PredictionBoard
from cloud.readmodel import ReadModel
from cloud.store.embedded import EmbeddedStore
from cloud.store.ports import TelemetryWriter
from cloud.throttle import DeviceThrottle

log = logging.getLogger(__name__)

GROUP_MAX_MESSAGES = 2000
# How long a group waits for more messages after its first: a live stream is processed in
# groups of hundreds, not of a few (each group's store transaction and core step have a fixed
# cost), for at most this much more latency. A backlog fills a group at once.
GROUP_LINGER_S = 0.05
RETRY_MAX_S = 30.0
TICK_INTERVAL_MS = 30_000  # how often overdue tickets are looked for


class CloudService:
    """Ingest worker, outbox relay and the stores behind the API, wired from ``Settings``."""

    def __init__(self, settings: Settings, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self.settings = settings
        self.clock_ms = clock_ms
        configure_logging(settings.log_format)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine_for(settings.resolved_database_url)
        init_schema(self.engine)
        self.records = RecordStore(self.engine)
        self.accounts = AccountStore(self.engine, clock_ms)
        self.reads = ReadModel(self.engine)
        self.predictions = PredictionBoard()
        self.store = EmbeddedStore(settings.data_dir / "telemetry.db")
        writers: list[TelemetryWriter] = [self.store]
        self.influx: TelemetryWriter | None = None
        if settings.influx_url:
            from cloud.store.influx import InfluxWriter

            self.influx = InfluxWriter(
                url=settings.influx_url,
                token=settings.influx_token.get_secret_value() if settings.influx_token else "",
                org=settings.influx_org,
                bucket=settings.influx_bucket,
                spool_dir=settings.data_dir / "influx-spool",
            )
            writers.append(self.influx)
        self.sender: EmailSender = (
            SmtpSender(settings.smtp_url)
            if settings.smtp_url
            else EmlDirSender(settings.data_dir / "outbox")
        )
        self.renderer = email_renderer(
            settings.brand_dir,
            email_from=settings.email_from,
            secret_key=settings.secret_key.get_secret_value() if settings.secret_key else None,
            key_file=settings.data_dir / "email-token.key",
        )
        self.actions = ActionService(self.engine, self.renderer, self.sender, clock_ms)
        self.mail = CustomerMail(self.engine, self.renderer, clock_ms)
        self.reminders = Reminders(self.engine, self.renderer.brand, clock_ms)
        self.directory = DeviceDirectory()
        self.pipeline = Pipeline(
            writers, self.records, self.actions, self.directory, self.predictions.record,
            throttle=DeviceThrottle(settings.device_max_msgs_per_s, settings.device_burst_msgs),
        )  # fmt: skip
        host, port, tls = mqtt_host_port(settings.mqtt_url)
        tls_ca = str(settings.mqtt_tls_ca or "") if tls else None
        receiver = (
            ProcessIngestSubscriber if settings.ingest_receiver == "process" else IngestSubscriber
        )
        self.subscriber: IngestSubscriber | ProcessIngestSubscriber = receiver(
            host,
            port,
            shared_group=settings.mqtt_shared_group,
            username=settings.mqtt_username,
            password=(
                settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            ),
            clock_ms=clock_ms,
            client_id=settings.mqtt_client_id,
            tls_ca=tls_ca,
            # Settings allow a client certificate only with mqtts://.
            tls_cert=str(settings.mqtt_tls_cert) if settings.mqtt_tls_cert else None,
            tls_key=str(settings.mqtt_tls_key) if settings.mqtt_tls_key else None,
        )
        self._stop = threading.Event()
        self._busy = threading.Event()
        self._threads: list[threading.Thread] = []
        self.ingest_errors = 0
        self.delivery_errors = 0
        self._next_tick_ms = 0
        self.snapshot_path = settings.data_dir / snapshot.FILE_NAME
        self.replayed_rows = 0

    def start(self) -> None:
        self.recover()
        tune_gc_for_ingest()
        self.subscriber.start()
        loops = (
            (self._ingest_loop, "ingest"),
            (self._deliver_loop, "outbox-relay"),
            (self._snapshot_loop, "snapshot"),
        )
        for target, name in loops:
            t = threading.Thread(target=target, name=f"forewarn-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        self.subscriber.stop()
        self._save_snapshot_logged()
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
                pending = self.subscriber.take(
                    GROUP_MAX_MESSAGES, timeout_s=0.1, linger_s=GROUP_LINGER_S
                )
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

    def recover(self) -> int:
        """Load the last snapshot and replay the telemetry stored after it; return rows replayed.

        Without a usable snapshot the whole telemetry store is replayed: slower, same state.
        """
        try:
            saved = snapshot.load(self.snapshot_path)
        except snapshot.SnapshotUnreadable as exc:
            log.warning("%s; rebuilding the fleet state from the telemetry store", exc)
            saved = None
        if saved is not None:
            self.pipeline.restore(saved)
        after = saved.high_water if saved is not None else 0
        rows = self.pipeline.replay(snapshot.replay_batches(self.store, after), self.clock_ms())
        self.replayed_rows += rows
        log.info("fleet state restored: snapshot at %d, %d rows replayed", after, rows)
        return rows

    def save_snapshot(self) -> int:
        """Save the fleet state now; returns the snapshot's size in bytes."""
        taken = self.pipeline.checkpoint(self.store.high_water, snapshot.wall_clock_ms())
        return snapshot.save(self.snapshot_path, taken)

    def _save_snapshot_logged(self) -> None:
        try:
            self.save_snapshot()
        except (OSError, TransientError) as exc:  # the next one will do; replay covers the gap
            log.warning("could not save the fleet snapshot: %s", exc)

    def _snapshot_loop(self) -> None:
        while not self._stop.wait(self.settings.snapshot_interval_s):
            self._save_snapshot_logged()

    def _deliver_loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.tick_now()
                self.deliver_now()
            except Exception:  # the relay must outlive a bug in one round
                self.delivery_errors += 1
                log.exception("outbox relay round failed; trying again")

    def tick_now(self) -> None:
        """Ticket reminders, escalations and SLA breaches, at most every ``TICK_INTERVAL_MS``."""
        now = self.clock_ms()
        if now < self._next_tick_ms:
            return
        try:
            self.actions.tick(now)
            self._next_tick_ms = now + TICK_INTERVAL_MS
        except TransientError as exc:
            log.warning("ticket escalation paused: %s", exc)

    def deliver_now(self) -> int:
        try:
            self.reminders.due_reminders(self.clock_ms())
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
        out["replayed_rows"] = self.replayed_rows
        out["store"] = self.store.stats()
        if self.influx is not None:
            out["influx"] = self.influx.stats()
        return out
