"""``/metrics`` in the Prometheus text format, read from the service's counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cloud.service import CloudService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (counter name, stats key, help); Prometheus derives rates from counters: rate(...[5m]).
_COUNTERS = (
    ("forewarn_ingest_messages", "messages", "MQTT messages processed"),
    ("forewarn_ingest_telemetry_messages", "telemetry_messages", "telemetry messages accepted"),
    ("forewarn_ingest_readings_received", "readings_received", "readings in accepted messages"),
    ("forewarn_ingest_readings_stored", "readings_stored", "readings newly stored"),
    ("forewarn_ingest_readings_rejected", "readings_rejected", "readings in rejected messages"),
    ("forewarn_ingest_duplicate_messages", "duplicate_messages", "redelivered messages dropped"),
    ("forewarn_ingest_errors", "ingest_errors", "groups that failed and were retried/isolated"),
    ("forewarn_decisions", "decisions", "decisions handed to the actions stage"),
)


class ServiceCollector(Collector):
    def __init__(self, service: CloudService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        stats: dict[str, Any] = svc.stats()
        for name, key, doc in _COUNTERS:
            if key in stats:
                yield CounterMetricFamily(name, doc, value=float(stats[key]))
        rejects = CounterMetricFamily(
            "forewarn_ingest_rejected_messages", "messages rejected, by reason", labels=["reason"]
        )
        for reason, count in sorted(stats.get("rejects_by_reason", {}).items()):
            rejects.add_metric([reason], float(count))
        yield rejects
        yield GaugeMetricFamily(
            "forewarn_ingest_backlog_messages",
            "messages received from the broker and not yet processed (ingest lag)",
            value=float(stats.get("ingest_backlog", 0)),
        )
        yield GaugeMetricFamily(
            "forewarn_broker_connected", "1 when the MQTT connection is up",
            value=1.0 if svc.subscriber.connected.is_set() else 0.0,
        )  # fmt: skip
        yield GaugeMetricFamily("forewarn_devices", "devices known", value=stats["devices"])
        failures = CounterMetricFamily(
            "forewarn_store_write_failures",
            "telemetry rows a store failed to write, by store",
            labels=["store"],
        )
        pending = GaugeMetricFamily(
            "forewarn_store_rows_pending", "rows handed to a store, not confirmed", labels=["store"]
        )
        for store in ("store", "influx"):
            writer = stats.get(store)
            if writer is not None:
                label = "embedded" if store == "store" else store
                failures.add_metric([label], float(writer.rows_failed))
                pending.add_metric([label], float(writer.rows_pending))
        yield failures
        yield pending
        counts = svc.actions.counts()
        for name, doc, label, values in (
            ("forewarn_outbox_items", "outbox items by state (parked = needs a human)", "state",
             counts.outbox),
            ("forewarn_tickets", "tickets by status", "status", counts.tickets),
            ("forewarn_emails", "customer emails by status", "status", counts.emails),
        ):  # fmt: skip
            family = GaugeMetricFamily(name, doc, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], float(value))
            yield family


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def registry_for(service: CloudService) -> CollectorRegistry:
    """A registry of this service only (no process-global state shared between apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry
