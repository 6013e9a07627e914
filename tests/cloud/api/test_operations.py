"""Operations: Prometheus metrics, readiness that follows the broker, structured JSON logs."""

from __future__ import annotations

import json
import logging
import time

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cloud.api.app import create_app
from cloud.config import load_settings
from cloud.logs import JsonFormatter, configure_logging
from cloud.service import CloudService
from tests.cloud.api.conftest import auth


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_in_prometheus_format_follow_the_service_counters(client, fleet):
    r = client.get("/metrics", headers=auth(fleet, "read_only"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = _samples(r.text)
    assert got[("forewarn_ingest_messages_total", ())] == 6
    assert got[("forewarn_ingest_readings_stored_total", ())] == 24
    assert got[("forewarn_ingest_rejected_messages_total", (("reason", "encoding"),))] == 1
    assert got[("forewarn_ingest_rejected_messages_total", (("reason", "topic"),))] == 1
    assert got[("forewarn_decisions_total", ())] == 2
    assert got[("forewarn_ingest_backlog_messages", ())] == 0
    assert got[("forewarn_broker_connected", ())] == 1
    assert got[("forewarn_store_write_failures_total", (("store", "embedded"),))] == 0
    assert got[("forewarn_tickets", (("status", "new"),))] == 2
    assert got[("forewarn_outbox_items", (("state", "sent"),))] >= 2
    # New readings move the counters on the next scrape.
    from tests.cloud.api.conftest import T0, telemetry

    fleet.service.pipeline.process(
        [telemetry("ty-000001", 9, T0 + 20 * 600_000, 2, **{"fl.pressure_kpa": [240.0, 240.0]})]
    )
    again = _samples(client.get("/metrics", headers=auth(fleet, "admin")).text)
    assert again[("forewarn_ingest_readings_stored_total", ())] == 26


def test_readiness_reports_a_lost_broker_and_recovers(broker, tmp_path):
    service = CloudService(
        load_settings(data_dir=tmp_path, mqtt_url=broker.url, ingest_receiver="thread")
    )
    service.start()
    try:
        with TestClient(create_app(service)) as client:
            assert client.get("/ready").status_code == 200
            broker.stop()
            deadline = time.monotonic() + 15
            while client.get("/ready").status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            down = client.get("/ready")
            assert down.status_code == 503
            assert down.json()["checks"] == {"broker": "not connected", "database": "ok"}
            assert client.get("/health").json()["broker_connected"] is False
            broker.start()
            deadline = time.monotonic() + 20
            while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.get("/ready").json()["ready"] is True
    finally:
        service.stop()


def test_json_logs_are_one_object_per_line_with_extras_and_exceptions():
    record = logging.LogRecord("cloud.x", logging.WARNING, __file__, 1, "lost %d", (3,), None)
    record.device_id = "fr-000001"
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "warning"
    assert line["logger"] == "cloud.x"
    assert line["msg"] == "lost 3"
    assert line["device_id"] == "fr-000001"
    assert line["ts"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(failed))["exc"]


def test_configure_logging_json_formats_the_root_handlers():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    before = {h: h.formatter for h in root.handlers}
    try:
        configure_logging("text")
        assert not isinstance(handler.formatter, JsonFormatter)
        configure_logging("json")
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
        for h, formatter in before.items():
            h.setFormatter(formatter)
