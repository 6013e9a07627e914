"""Settings of one edge agent, checked when they are made."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import EdgeConfigError
from edge.outbox import DEFAULT_MAX_BYTES, DEFAULT_TTL_S, Durability
from firmware_specs import DEVICE_ID_PATTERN, DEVICE_ID_RE, KINDS

_MAX_ROWS_PER_MESSAGE = 720  # telemetry.v1.json: ts_ms maxItems


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig:
    device_id: str
    kind: str
    outbox_path: Path
    host: str = "127.0.0.1"
    port: int = 1883
    batch_max_rows: int = 60
    inflight_max: int = 20
    replay_rate_msgs_per_s: float = 50.0  # token bucket for publishing from the outbox
    replay_burst: int = 10  # messages the bucket lets through at once after a pause
    keepalive_s: int = 30
    fw: str = "1.0.0"
    model: str = ""  # reported in the birth message; the kind when empty
    sample_interval_s: int = 60
    batch_interval_s: int = 600
    attributes: Mapping[str, object] = field(default_factory=dict)  # birth attributes
    username: str | None = None
    password: str | None = None
    tls: bool = False  # also implied by tls_ca / tls_cert
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    outbox_max_bytes: int = DEFAULT_MAX_BYTES
    outbox_ttl_s: float | None = DEFAULT_TTL_S
    outbox_durability: Durability = "full"
    session_expiry_s: int = 7 * 86400
    reconnect_min_s: float = 1.0  # reconnect backoff: doubles from min up to max
    reconnect_max_s: float = 60.0
    drain_timeout_s: float = 10.0  # how long a graceful stop waits for acknowledgements

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not isinstance(self.device_id, str) or not DEVICE_ID_RE.match(self.device_id):
            problems.append(f"device_id {self.device_id!r} must match {DEVICE_ID_PATTERN}")
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} must be one of {', '.join(KINDS)}")
        if not 1 <= self.port <= 65535:
            problems.append(f"port {self.port} must be 1..65535")
        if not 1 <= self.batch_max_rows <= _MAX_ROWS_PER_MESSAGE:
            problems.append(f"batch_max_rows {self.batch_max_rows} must be 1..720")
        if self.inflight_max < 1:
            problems.append(f"inflight_max {self.inflight_max} must be at least 1")
        if not self.replay_rate_msgs_per_s > 0:
            problems.append(f"replay_rate_msgs_per_s {self.replay_rate_msgs_per_s} must be > 0")
        if self.replay_burst < 1:
            problems.append(f"replay_burst {self.replay_burst} must be at least 1")
        for name in ("sample_interval_s", "batch_interval_s"):
            if not 1 <= getattr(self, name) <= 86400:
                problems.append(f"{name} {getattr(self, name)} must be 1..86400")
        if self.keepalive_s < 5:
            problems.append(f"keepalive_s {self.keepalive_s} must be at least 5")
        if not 0.1 <= self.reconnect_min_s <= self.reconnect_max_s:
            problems.append(
                "reconnect delays must satisfy 0.1 <= reconnect_min_s <= reconnect_max_s"
            )
        if self.password is not None and self.username is None:
            problems.append("a password needs a username")
        if not 1 <= len(self.fw) <= 32:
            problems.append("fw must be 1..32 characters")
        if len(self.model) > 64:
            problems.append("model must be at most 64 characters")
        if problems:
            raise EdgeConfigError("bad agent configuration: " + "; ".join(problems))
