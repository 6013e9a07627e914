"""``forewarn provision``: per-device MQTT credentials and a Mosquitto configuration from the
fleet key in ``FOREWARN_FLEET_KEY``."""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

HELP = "derive device credentials from the fleet key and write the broker's auth files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("devices", nargs="*", metavar="DEVICE_ID", help="devices to provision")
    parser.add_argument(
        "--devices-file", type=Path, help="a file with one device id per line (# comments)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder for passwd, acl, mosquitto.conf"
    )
    parser.add_argument(
        "--cloud-user",
        action="append",
        default=[],
        help="MQTT user of an ingest worker (repeatable; default forewarn_ingest)",
    )
    parser.add_argument("--port", type=int, default=1883, help="plain listener port (1883)")
    parser.add_argument("--host", default="0.0.0.0", help="listener address (0.0.0.0)")  # noqa: S104
    parser.add_argument("--tls-port", type=int, default=8883, help="TLS listener port (8883)")
    parser.add_argument("--cafile", type=Path, help="CA certificate: enables the TLS listener")
    parser.add_argument("--certfile", type=Path, help="broker certificate (with --cafile)")
    parser.add_argument("--keyfile", type=Path, help="broker private key (with --cafile)")
    parser.add_argument(
        "--persistence-dir", type=Path, help="broker data folder (default: OUT/data)"
    )


def _device_ids(args: argparse.Namespace) -> list[str]:
    from cloud.errors import ConfigError

    ids = list(args.devices)
    if args.devices_file is not None:
        try:
            text = args.devices_file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.devices_file}: {exc}") from exc
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                ids.append(line)
    if not ids:
        raise ConfigError("name at least one device id (arguments or --devices-file)")
    return list(dict.fromkeys(ids))


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds credentials or their hashes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def run(args: argparse.Namespace) -> int:
    from cloud import provisioning
    from cloud.config import load_settings
    from cloud.errors import ConfigError

    secret = load_settings().fleet_key
    if secret is None:
        raise ConfigError(
            "set FOREWARN_FLEET_KEY to the fleet's secret (32+ random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    fleet_key = secret.get_secret_value().encode()
    devices = [provisioning.device_credential(fleet_key, d) for d in _device_ids(args)]
    cloud_users = args.cloud_user or [provisioning.DEFAULT_CLOUD_USER]
    clouds = [provisioning.cloud_credential(fleet_key, u) for u in cloud_users]
    tls = None
    if args.cafile is not None:
        if args.certfile is None or args.keyfile is None:
            raise ConfigError("--cafile needs --certfile and --keyfile for the TLS listener")
        tls = provisioning.TlsFiles(
            args.cafile.resolve(), args.certfile.resolve(), args.keyfile.resolve()
        )
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        persistence = (args.persistence_dir or out / "data").resolve()
        persistence.mkdir(parents=True, exist_ok=True)
        _write_private(out / "passwd", provisioning.password_file([*devices, *clouds]))
        (out / "acl").write_text(provisioning.acl_file(cloud_users))
        (out / "mosquitto.conf").write_text(
            provisioning.broker_config(
                port=args.port,
                host=args.host,
                password_path=(out / "passwd").resolve(),
                acl_path=(out / "acl").resolve(),
                persistence_dir=persistence,
                tls=tls,
                tls_port=args.tls_port,
            )
        )
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["username", "password", "role"])
        writer.writerows([c.username, c.password, "device"] for c in devices)
        writer.writerows([c.username, c.password, "cloud"] for c in clouds)
        _write_private(out / "credentials.csv", table.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc}") from exc
    sys.stdout.write(
        f"provisioned {len(devices)} devices and {len(clouds)} cloud users in {out}\n"
        f"  broker: mosquitto -c {out / 'mosquitto.conf'}\n"
        f"  credentials (mode 600): {out / 'credentials.csv'}\n"
    )
    return 0
