"""Device identity: per-device MQTT credentials derived from one fleet key, and the Mosquitto
password file, ACL file and configuration that pin each device to its own topics.

A device's password is ``HMAC-SHA256(fleet_key, "forewarn/device-password/v1/" + device_id)``
(URL-safe base64): the factory can flash any number of devices from one secret without keeping
a list, and one device's password says nothing about another's. The broker stores only salted
PBKDF2-SHA512 hashes in the ``$7$`` format of ``mosquitto_passwd``.

Each device's MQTT username is its device id, and the broker is told to use the username as the
client id, so a device can neither take over another device's session nor, through the ACL's
``pattern`` lines, publish on or subscribe to another device's topics. Cloud users (the ingest
workers) have names that cannot be device ids (they contain ``_``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cloud.errors import ConfigError

PASSWORD_CONTEXT: Final = b"forewarn/device-password/v1/"
CLOUD_CONTEXT: Final = b"forewarn/cloud-password/v1/"
MIN_FLEET_KEY_BYTES: Final = 32
PBKDF2_ITERATIONS: Final = 1000
SALT_BYTES: Final = 12  # what mosquitto_passwd uses
DEVICE_ID_RE: Final = re.compile(r"[a-z0-9][a-z0-9-]{2,47}\Z")  # firmware_specs topics.json
CLOUD_USER_RE: Final = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+\Z")
DEFAULT_CLOUD_USER: Final = "forewarn_ingest"
TOPIC_ROOT: Final = "forewarn/v1"
DEVICE_WRITES: Final = ("telemetry", "event", "status", "cmd/ack")
DEVICE_READS: Final = ("cmd",)


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str


def _check_key(fleet_key: bytes) -> None:
    if len(fleet_key) < MIN_FLEET_KEY_BYTES:
        raise ConfigError(
            f"the fleet key must be at least {MIN_FLEET_KEY_BYTES} bytes of secret random data"
        )


def _derive(fleet_key: bytes, context: bytes, name: str) -> str:
    _check_key(fleet_key)
    digest = hmac.new(fleet_key, context + name.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def device_credential(fleet_key: bytes, device_id: str) -> Credential:
    """The MQTT username and password of one device."""
    if not DEVICE_ID_RE.match(device_id):
        raise ConfigError(f"device id {device_id!r} does not match ^[a-z0-9][a-z0-9-]{{2,47}}$")
    return Credential(device_id, _derive(fleet_key, PASSWORD_CONTEXT, device_id))


def cloud_credential(fleet_key: bytes, username: str = DEFAULT_CLOUD_USER) -> Credential:
    """The MQTT credential of one cloud ingest worker."""
    if not CLOUD_USER_RE.match(username):
        raise ConfigError(
            f"cloud user {username!r} must be lower-case words joined by '_' "
            "(a name no device id can take)"
        )
    return Credential(username, _derive(fleet_key, CLOUD_CONTEXT, username))


def password_hash(password: str, salt: bytes | None = None) -> str:
    """Mosquitto's ``$7$`` PBKDF2-SHA512 password hash (as written by ``mosquitto_passwd``)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def password_file(credentials: Iterable[Credential]) -> str:
    """A Mosquitto ``password_file``: one ``username:hash`` line per credential."""
    lines = []
    seen: set[str] = set()
    for cred in credentials:
        if cred.username in seen:
            raise ConfigError(f"{cred.username!r} is listed twice")
        seen.add(cred.username)
        lines.append(f"{cred.username}:{password_hash(cred.password)}")
    return "\n".join(lines) + "\n"


def acl_file(cloud_users: Iterable[str]) -> str:
    """A Mosquitto ``acl_file``: devices on their own topics only, cloud users on all."""
    lines = [
        "# Devices: the MQTT username is the device id (%u); nothing outside its own subtree.",
        *(f"pattern write {TOPIC_ROOT}/+/%u/{suffix}" for suffix in DEVICE_WRITES),
        *(f"pattern read {TOPIC_ROOT}/+/%u/{suffix}" for suffix in DEVICE_READS),
    ]
    for user in cloud_users:
        if not CLOUD_USER_RE.match(user):
            raise ConfigError(f"cloud user {user!r} must contain '_' and no capitals")
        lines += [
            "",
            f"user {user}",
            "topic read forewarn/#",  # its subscriptions wildcard the version level
            f"topic write {TOPIC_ROOT}/+/+/cmd",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cafile: Path
    certfile: Path
    keyfile: Path


def broker_config(
    *,
    port: int,
    password_path: Path,
    acl_path: Path,
    persistence_dir: Path,
    host: str = "0.0.0.0",  # noqa: S104 - a broker listens for devices
    tls: TlsFiles | None = None,
    tls_port: int | None = None,
) -> str:
    """A Mosquitto 2.x configuration that authenticates every client and applies the ACL.

    Persistence is saved after every change, so that a broker killed outright loses as little
    as it can of what it had acknowledged; queues are not capped by message count (a slow
    ingest must not lose data), only by bytes per client.
    """
    lines = [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_path}",
        f"acl_file {acl_path}",
        "persistence true",
        f"persistence_location {persistence_dir}/",
        "autosave_on_changes true",
        "autosave_interval 1",
        "max_queued_messages 0",
        "max_queued_bytes 268435456",
        "max_inflight_messages 100",
        "max_packet_size 1048576",
        "",
        f"listener {port} {host}",
        "use_username_as_clientid true",
    ]
    if tls is not None:
        lines += [
            "",
            f"listener {tls_port or 8883} {host}",
            "use_username_as_clientid true",
            f"cafile {tls.cafile}",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(lines) + "\n"
