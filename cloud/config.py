"""Settings from ``FOREWARN_*`` environment variables, checked once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cloud.errors import ConfigError


class Settings(BaseSettings):
    """Every setting of the cloud service. See the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="FOREWARN_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("forewarn-data"), description="embedded databases, .eml outbox"
    )
    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="broker to ingest from")
    mqtt_username: str | None = None
    mqtt_password: str | None = None
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
    influx_url: str | None = Field(default=None, description="InfluxDB 2.x mirror of telemetry")
    influx_token: str | None = None
    influx_org: str = "forewarn"
    influx_bucket: str = "telemetry"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)

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
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def mqtt_host_port(url: str) -> tuple[str, int, bool]:
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls
