"""Device identity on a real Mosquitto: credentials from the fleet key, each device on its own
topics only, a TLS listener with a test CA, and a flooding device throttled and flagged."""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud import provisioning
from cloud.config import load_settings
from cloud.errors import ConfigError
from cloud.service import CloudService
from edge.agent import AgentConfig, EdgeAgent
from forewarn.broker import MosquittoProcess, free_port
from forewarn.cli import main as forewarn_main
from forewarn.clock import SimClock

from .conftest import T0_MS, fridge_row, wait_until

FLEET_KEY = "k" * 8 + "-test-fleet-key-0123456789abcdef"
DEVICES = ("fr-000001", "fr-000002")


def make_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    cert = (
        x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "ca.key").write_bytes(
        ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths = folder / "ca.pem", folder / "broker.pem", folder / "broker.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def make_client_cert(folder: Path, common_name: str) -> tuple[Path, Path]:
    """A client certificate for ``common_name`` signed by the CA :func:`make_ca` left there."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    paths = folder / f"{common_name}.pem", folder / f"{common_name}.key"
    paths[0].write_bytes(cert.public_bytes(pem))
    paths[1].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def assert_four_readings_arrive(agent: EdgeAgent, service: CloudService) -> None:
    """Start ``agent``, have it read four rows, and see the cloud store all four."""
    agent.start()
    for i in range(4):
        agent.submit(T0_MS + i * 60_000, fridge_row(i))
    assert agent.wait_drained(20)
    assert wait_until(lambda: service.store.rows_stored() == 4, 20)


@dataclass
class Secured:
    broker: MosquittoProcess
    tls_port: int
    ca: Path
    passwords: dict[str, str]


@pytest.fixture
def secured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Secured]:
    """A broker configured by ``forewarn provision`` with plain and TLS listeners."""
    ca, cert, key = make_ca(tmp_path)
    port, tls_port = free_port(), free_port()
    out = tmp_path / "broker"
    monkeypatch.setenv("FOREWARN_FLEET_KEY", FLEET_KEY)
    code = forewarn_main(
        ["provision", *DEVICES, "--out", str(out), "--host", "127.0.0.1", "--port", str(port),
         "--tls-port", str(tls_port), "--cafile", str(ca), "--certfile", str(cert),
         "--keyfile", str(key)]
    )  # fmt: skip
    assert code == 0
    assert (out / "passwd").stat().st_mode & 0o077 == 0
    with (out / "credentials.csv").open() as fh:
        passwords = {row["username"]: row["password"] for row in csv.DictReader(fh)}
    run_as = "user root\n" if os.geteuid() == 0 else ""
    config = run_as + (out / "mosquitto.conf").read_text()
    broker = MosquittoProcess(port=port, data_dir=out / "data", config=config)
    broker.start()
    try:
        yield Secured(broker, tls_port, ca, passwords)
    finally:
        broker.close()


class Client:
    """A paho MQTT 5 client that records connect results, messages and acknowledgements."""

    def __init__(self, port: int, username: str | None, password: str | None,
                 client_id: str = "", ca: Path | None = None) -> None:  # fmt: skip
        self.connected = threading.Event()
        self.done = threading.Event()
        self.reason: Any = None
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[int, Any] = {}
        self.granted: list[Any] = []
        self.disconnects = 0
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            c.username_pw_set(username, password)
        if ca is not None:
            c.tls_set(ca_certs=str(ca))
        c.on_connect = self._on_connect
        c.on_message = lambda cl, u, m: self.messages.append((m.topic, bytes(m.payload)))
        c.on_publish = lambda cl, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        c.on_subscribe = lambda cl, u, mid, rcs, p: self.granted.extend(rcs)
        c.on_disconnect = self._on_disconnect
        c.reconnect_delay_set(5, 5)
        self.c = c
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.done.wait(10)

    def _on_connect(self, c: mqtt.Client, u: object, f: object, reason: Any, p: object) -> None:
        self.reason = reason
        if not reason.is_failure:
            self.connected.set()
        self.done.set()

    def _on_disconnect(self, c: mqtt.Client, u: object, f: object, reason: Any, p: object) -> None:
        self.disconnects += 1
        if not self.done.is_set():  # refused before or instead of a CONNACK
            self.reason = reason
            self.done.set()

    def publish(self, topic: str, payload: bytes = b"{}") -> Any:
        info = self.c.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.acks and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.acks.get(info.mid)

    def subscribe(self, topic: str) -> Any:
        before = len(self.granted)
        self.c.subscribe(topic, qos=1)
        deadline = time.monotonic() + 10
        while len(self.granted) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.granted[-1]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def topic(device: str, suffix: str) -> str:
    return f"forewarn/v1/fridge/{device}/{suffix}"


def test_credentials_are_derived_per_device_and_refuse_weak_keys() -> None:
    key = FLEET_KEY.encode()
    a = provisioning.device_credential(key, "fr-000001")
    assert a == provisioning.device_credential(key, "fr-000001")
    assert a.password != provisioning.device_credential(key, "fr-000002").password
    assert a.password != provisioning.device_credential(b"x" * 32, "fr-000001").password
    assert len(a.password) >= 40
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        provisioning.device_credential(b"short", "fr-000001")
    with pytest.raises(ConfigError, match="does not match"):
        provisioning.device_credential(key, "../../etc")
    with pytest.raises(ConfigError, match="no device id can take"):
        provisioning.cloud_credential(key, "fr-000009")
    line = provisioning.password_hash("secret", salt=b"0123456789ab")
    assert line.startswith("$7$1000$MDEyMzQ1Njc4OWFi$")


def test_a_device_can_use_only_its_own_topics(secured: Secured) -> None:
    port, pw = secured.broker.port, secured.passwords
    cloud = Client(port, provisioning.DEFAULT_CLOUD_USER, pw[provisioning.DEFAULT_CLOUD_USER])
    a = Client(port, "fr-000001", pw["fr-000001"], client_id="fr-000001")
    b = Client(port, "fr-000002", pw["fr-000002"], client_id="fr-000002")
    clients = [cloud, a, b]
    try:
        assert all(c.connected.is_set() for c in clients)
        assert not cloud.subscribe("forewarn/+/+/+/telemetry").is_failure
        assert not a.subscribe(topic("fr-000001", "cmd")).is_failure
        assert not b.subscribe(topic("fr-000002", "cmd")).is_failure
        # A may ask for B's commands (Mosquitto 2.0 grants the subscription) but the ACL is
        # applied to every delivery, so nothing of B's ever reaches A (checked below).
        a.subscribe(topic("fr-000002", "cmd"))
        a.subscribe("forewarn/#")
        # Publishing as B is refused by the broker (MQTT 5 PUBACK: not authorised).
        assert not a.publish(topic("fr-000001", "telemetry"), b"own").is_failure
        assert a.publish(topic("fr-000002", "telemetry"), b"forged").is_failure
        assert a.publish(topic("fr-000001", "cmd"), b"self-command").is_failure
        assert not cloud.publish(topic("fr-000002", "cmd"), b"for-b").is_failure
        time.sleep(0.5)
        assert cloud.messages == [(topic("fr-000001", "telemetry"), b"own")]
        assert b.messages == [(topic("fr-000002", "cmd"), b"for-b")]
        assert a.messages == []
        # Taking B's client id does not take B's session: the username is the client id.
        thief = Client(port, "fr-000001", pw["fr-000001"], client_id="fr-000002")
        clients.append(thief)
        time.sleep(0.5)
        assert b.disconnects == 0
        assert b.c.is_connected()
        # Wrong, foreign-fleet and missing credentials are refused.
        other_fleet = provisioning.device_credential(
            b"another fleet key, 32 bytes long!", "fr-000001"
        )
        for username, password in (
            ("fr-000001", pw["fr-000002"]), ("fr-000001", other_fleet.password), (None, None),
            ("fr-000003", pw["fr-000001"]),
        ):  # fmt: skip
            intruder = Client(port, username, password)
            clients.append(intruder)
            assert not intruder.connected.is_set(), username
            assert intruder.reason is not None
            assert intruder.reason.is_failure
    finally:
        for c in clients:
            c.close()


def test_agents_and_the_cloud_speak_over_tls_with_the_test_ca(
    secured: Secured, tmp_path: Path
) -> None:
    pw = secured.passwords
    clock = SimClock(T0_MS)
    service = CloudService(
        load_settings(
            data_dir=tmp_path / "cloud", mqtt_url=f"mqtts://127.0.0.1:{secured.tls_port}",
            mqtt_tls_ca=secured.ca, mqtt_username=provisioning.DEFAULT_CLOUD_USER,
            mqtt_password=pw[provisioning.DEFAULT_CLOUD_USER],
        ),
        clock_ms=clock.now_ms,
    )  # fmt: skip
    agent = EdgeAgent(
        AgentConfig(
            device_id="fr-000001", kind="fridge", outbox_path=tmp_path / "a.outbox",
            port=secured.tls_port, tls_ca=secured.ca, username="fr-000001",
            password=pw["fr-000001"], batch_max_rows=2, outbox_durability="normal",
        ),
        clock_ms=clock.now_ms,
    )  # fmt: skip
    plain_to_tls = Client(secured.tls_port, "fr-000002", pw["fr-000002"])
    service.start()
    try:
        assert_four_readings_arrive(agent, service)
        info = service.directory.get("fr-000001")
        assert info is not None
        assert info.fw == "1.0.0"  # the birth message came through as well
        assert not plain_to_tls.connected.is_set()  # no TLS, no connection
    finally:
        agent.stop(graceful=False)
        plain_to_tls.close()
        service.stop()


def test_provision_refuses_a_missing_key_and_bad_device_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FOREWARN_FLEET_KEY", raising=False)
    assert forewarn_main(["provision", "fr-000001", "--out", str(tmp_path / "a")]) == 2
    assert "FOREWARN_FLEET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("FOREWARN_FLEET_KEY", FLEET_KEY)
    assert forewarn_main(["provision", "Not_A_Device", "--out", str(tmp_path / "b")]) == 2
    assert "does not match" in capsys.readouterr().err
    listed = tmp_path / "devices.txt"
    listed.write_text("# the first batch\nfr-000001\nfr-000002  # spare\nfr-000001\n")
    assert (
        forewarn_main(["provision", "--devices-file", str(listed), "--out", str(tmp_path / "c")])
        == 0
    )
    with (tmp_path / "c" / "credentials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["username"], r["role"]) for r in rows] == [
        ("fr-000001", "device"), ("fr-000002", "device"), ("forewarn_ingest", "cloud"),
    ]  # fmt: skip
    assert not (tmp_path / "b").exists()


def test_the_cloud_presents_its_client_certificate_where_the_broker_requires_one(
    tmp_path: Path,
) -> None:
    from cloud.errors import TransientError

    ca, cert, key = make_ca(tmp_path)
    cloud_cert, cloud_key = make_client_cert(tmp_path, "forewarn-cloud")
    tls_port = free_port()
    listener = (
        f"\nlistener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        "require_certificate true\ntls_version tlsv1.2\n"
    )
    url = f"mqtts://127.0.0.1:{tls_port}"
    with MosquittoProcess(extra_config=listener) as broker:
        refused = CloudService(
            load_settings(data_dir=tmp_path / "without", mqtt_url=url, mqtt_tls_ca=ca)
        )
        with pytest.raises(TransientError, match="client certificate"):  # none, no connection
            refused.start()
        refused.stop()

        clock = SimClock(T0_MS)
        service = CloudService(
            load_settings(
                data_dir=tmp_path / "cloud", mqtt_url=url, mqtt_tls_ca=ca,
                mqtt_tls_cert=cloud_cert, mqtt_tls_key=cloud_key,
            ),
            clock_ms=clock.now_ms,
        )  # fmt: skip
        agent = EdgeAgent(
            AgentConfig(
                device_id="fr-000001", kind="fridge", outbox_path=tmp_path / "a.outbox",
                port=broker.port, batch_max_rows=2, outbox_durability="normal",
            ),
            clock_ms=clock.now_ms,
        )  # fmt: skip
        service.start()
        try:
            assert_four_readings_arrive(agent, service)
        finally:
            agent.stop(graceful=False)
            service.stop()


def test_a_client_certificate_is_checked_at_start_up(tmp_path: Path) -> None:
    make_ca(tmp_path)
    cert, key = make_client_cert(tmp_path, "forewarn-cloud")
    other_cert, _ = make_client_cert(tmp_path, "someone-else")
    tls = {"mqtt_url": "mqtts://127.0.0.1:8883", "data_dir": tmp_path}
    assert load_settings(**tls, mqtt_tls_cert=cert, mqtt_tls_key=key).mqtt_tls_key == key
    with pytest.raises(ConfigError, match="set both or neither"):
        load_settings(**tls, mqtt_tls_cert=cert)
    with pytest.raises(ConfigError, match="needs TLS"):
        load_settings(
            mqtt_url="mqtt://127.0.0.1:1883", data_dir=tmp_path, mqtt_tls_cert=cert,
            mqtt_tls_key=key,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(**tls, mqtt_tls_cert=tmp_path / "missing.pem", mqtt_tls_key=key)
    with pytest.raises(ConfigError, match="cannot be used together"):
        load_settings(**tls, mqtt_tls_cert=other_cert, mqtt_tls_key=key)  # not its key
    with pytest.raises(ConfigError, match="cannot be used together"):
        load_settings(**tls, mqtt_tls_cert=key, mqtt_tls_key=cert)  # swapped
