"""Secrets: no default or short secret is accepted in production, and none reaches the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cloud import provisioning
from cloud.config import load_settings
from cloud.errors import ConfigError, ForewarnError
from cloud.service import CloudService
from forewarn.cli import main as forewarn_main

from .test_security import FLEET_KEY, Secured, secured  # noqa: F401 - the fixture

GOOD = "Zq8vY1r7-long-random-secret-value-0123456789"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("fleet_key", "changeme"), ("fleet_key", "short-but-random"),
        ("mqtt_password", "secret"), ("mqtt_password", "forewarn"),
        ("influx_token", "development"),
    ],
)  # fmt: skip
def test_production_refuses_default_and_short_secrets(
    name: str, value: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"FOREWARN_{name.upper()}") as err:
        load_settings(env="production", secret_key=GOOD, data_dir=tmp_path, **{name: value})
    assert value not in str(err.value)
    # Development accepts them, so that a laptop needs no set-up.
    assert load_settings(data_dir=tmp_path, **{name: value}) is not None
    # And production accepts real ones.
    assert load_settings(env="production", secret_key=GOOD, data_dir=tmp_path, **{name: GOOD})


def test_settings_never_show_their_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, mqtt_password=GOOD, fleet_key=GOOD + "f", influx_token=GOOD + "i",
        secret_key=GOOD + "s",
    )  # fmt: skip
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for secret in (GOOD, GOOD + "f", GOOD + "i", GOOD + "s"):
        assert secret not in text


def test_no_secret_appears_in_the_logs(
    secured: Secured,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    user = provisioning.DEFAULT_CLOUD_USER
    right = secured.passwords[user]
    wrong = right[::-1]
    secrets = [right, wrong, FLEET_KEY, GOOD, *secured.passwords.values()]
    base = {
        "data_dir": tmp_path / "cloud", "mqtt_url": secured.broker.url, "mqtt_username": user,
        "fleet_key": FLEET_KEY, "secret_key": GOOD, "ingest_receiver": "thread",
    }  # fmt: skip
    refused = CloudService(load_settings(**base, mqtt_password=wrong))
    with pytest.raises(ForewarnError) as err:
        refused.subscriber.start(timeout_s=2.0)
    refused.stop()
    service = CloudService(load_settings(**base, mqtt_password=right))
    service.start()
    service.stop()
    monkeypatch.setenv("FOREWARN_FLEET_KEY", FLEET_KEY)
    assert forewarn_main(["provision", "fr-000001", "--out", str(tmp_path / "prov")]) == 0
    printed = capsys.readouterr()
    seen = caplog.text + str(err.value) + printed.out + printed.err
    assert "refused" in seen or "not authori" in seen.lower()
    for secret in secrets:
        assert secret not in seen
