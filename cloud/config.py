"""Settings from ``FOREWARN_*`` environment variables, checked once at start-up."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.errors import ConfigError

MIN_SECRET_CHARS = 32
# Values seen in examples and templates: never accepted as a production secret.
DEFAULT_SECRETS = frozenset({"changeme", "change-me", "secret", "development", "forewarn"})


class Settings(BaseSettings):
    """Every setting of the cloud service. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="FOREWARN_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("forewarn-data"), description="embedded databases, .eml outbox"
    )
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="broker to ingest from")
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_client_id: str = Field(
        default="forewarn-ingest", description="MQTT client id (its session) of this worker"
    )
    mqtt_tls_ca: Path | None = Field(
        default=None, description="CA file for mqtts:// (default: the system's CAs)"
    )
    mqtt_tls_cert: Path | None = Field(
        default=None,
        description="client certificate (PEM) for brokers that require one; needs mqtts:// "
        "and FOREWARN_MQTT_TLS_KEY",
    )
    mqtt_tls_key: Path | None = Field(
        default=None, description="private key (PEM, unencrypted) of FOREWARN_MQTT_TLS_CERT"
    )
    ingest_receiver: Literal["process", "thread"] = Field(
        default="process",
        description="run the MQTT client in its own process (a core of its own) or a thread",
    )
    mqtt_shared_group: str | None = Field(
        default=None, description="MQTT 5 shared-subscription group for several ingest workers"
    )
    database_url: str | None = Field(
        default=None, description="tickets/outbox database; default SQLite under data_dir"
    )
    smtp_url: str | None = Field(
        default=None, description="smtp://host:port; unset writes .eml files to data_dir/outbox"
    )
    email_from: str = "forewarn service <service@forewarn.invalid>"
    brand_dir: Path | None = Field(
        default=None,
        description="email brand folder (brand.toml, logo, template overrides); "
        "default: the shipped one with email_from as sender",
    )
    influx_url: str | None = Field(default=None, description="InfluxDB 2.x mirror of telemetry")
    influx_token: SecretStr | None = None
    influx_org: str = "forewarn"
    influx_bucket: str = "telemetry"
    fleet_key: SecretStr | None = Field(
        default=None,
        description="derives per-device MQTT passwords ('forewarn provision'); 32+ characters",
    )
    device_max_msgs_per_s: float = Field(
        default=100.0, gt=0, description="per-device ingest rate; faster devices are throttled"
    )
    device_burst_msgs: int = Field(
        default=1000, ge=1, description="messages a device may send at once above its rate"
    )
    snapshot_interval_s: float = Field(
        default=60.0, gt=0, description="how often the fleet state is saved for fast restarts"
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    env: Literal["development", "production"] = Field(
        default="development", description="production refuses missing or default secrets"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="signs console sessions; required (32+ characters) outside development",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per log line"
    )
    reports_dir: Path | None = Field(
        default=None, description="directory of 'forewarn backtest --report' outputs to serve"
    )

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port (or mqtts:// for TLS)")
        return v

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
                raise ValueError("must look like smtp://host:port (or smtps:// for TLS)")
        return v

    @model_validator(mode="after")
    def _client_certificate(self) -> Settings:
        cert, key = self.mqtt_tls_cert, self.mqtt_tls_key
        if cert is None and key is None:
            return self
        if cert is None or key is None:
            raise ValueError(
                "FOREWARN_MQTT_TLS_CERT and FOREWARN_MQTT_TLS_KEY go together: set both or neither"
            )
        if urlsplit(self.mqtt_url).scheme != "mqtts":
            raise ValueError("a client certificate needs TLS: FOREWARN_MQTT_URL=mqtts://host:port")
        for name, path in (("FOREWARN_MQTT_TLS_CERT", cert), ("FOREWARN_MQTT_TLS_KEY", key)):
            if not path.is_file():
                raise ValueError(f"{name}: {path} does not exist or is not a file")
        try:  # the pair is checked now, not in the receiver process at the first connection
            ssl.create_default_context().load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"FOREWARN_MQTT_TLS_CERT and FOREWARN_MQTT_TLS_KEY cannot be used together: {exc}"
            ) from exc
        return self

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if self.env == "production":
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key) < MIN_SECRET_CHARS or key.lower() in DEFAULT_SECRETS:
                raise ValueError(
                    f"FOREWARN_SECRET_KEY must be set to a random value of {MIN_SECRET_CHARS}+ "
                    "characters in production (python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')"
                )
            for name, min_chars in (
                ("fleet_key", MIN_SECRET_CHARS),
                ("mqtt_password", 12),
                ("influx_token", 12),
            ):
                value: SecretStr | None = getattr(self, name)
                text = value.get_secret_value() if value is not None else None
                if text is not None and (len(text) < min_chars or text.lower() in DEFAULT_SECRETS):
                    raise ValueError(
                        f"FOREWARN_{name.upper()} is a default or short value ({min_chars}+ "
                        "random characters are needed in production)"
                    )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'forewarn.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``overrides``); a bad value stops start-up with what to fix."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"FOREWARN_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def mqtt_host_port(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls
