"""The docker-compose stack holds together without Docker: secrets from the environment,
health-gated start order, and Grafana provisioning that points at files that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET_NAMES = ("PASSWORD", "TOKEN", "SECRET")


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_secret_comes_from_the_environment_and_must_be_set():
    text = (REPO / "docker-compose.yml").read_text()
    for service, spec in _compose()["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if any(s in key for s in SECRET_NAMES) and "FILE" not in key:
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), (service, key)
    # No literal credential anywhere: every ${VAR} reference insists on being set.
    for ref in re.findall(r"\$\{([A-Z_]+)([^}]*)\}", text):
        assert ref[1].startswith(":?"), ref


def test_services_start_only_after_what_they_need_is_healthy():
    services = _compose()["services"]
    assert set(services) >= {"mosquitto", "postgres", "influxdb", "mailpit", "cloud",
                             "simulator", "grafana"}  # fmt: skip
    for name, spec in services.items():
        if name != "simulator":
            assert "healthcheck" in spec, name
        for dep, cond in (spec.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, (name, dep)
            assert "healthcheck" in services[dep], dep
    assert set(services["cloud"]["depends_on"]) == {"mosquitto", "postgres", "influxdb", "mailpit"}
    cloud_env = services["cloud"]["environment"]
    assert cloud_env["FOREWARN_ENV"] == "production"
    assert "/ready" in " ".join(services["cloud"]["healthcheck"]["test"])


def test_grafana_is_provisioned_with_influxdb_and_a_dashboard_over_it():
    grafana = _compose()["services"]["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"] if v.startswith("./")}
    for host in mounts:
        assert (REPO / host).exists(), host
    source = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/influxdb.yaml").read_text()
    )["datasources"][0]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    assert source["secureJsonData"]["token"] == "$INFLUX_TOKEN"
    board = json.loads((REPO / "deploy/grafana/dashboards/forewarn-fleet.json").read_text())
    assert board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"]
        query = panel["targets"][0]["query"]
        assert 'from(bucket: "telemetry")' in query
    measurements = {
        m
        for p in board["panels"]
        for m in re.findall(r'_measurement == "(\w+)"', p["targets"][0]["query"])
    }
    assert measurements == {"fridge", "tyres", "vending"}


def test_broker_keeps_a_slow_subscribers_queue_and_refuses_anonymous_clients():
    conf = (REPO / "deploy/mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line and not line.startswith("#")
    )
    assert settings["allow_anonymous"] == "false"
    assert settings["max_queued_messages"] == "0"
    assert settings["persistence"] == "true"
