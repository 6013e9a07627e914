"""Helpers for edge tests: an MQTT observer on the test broker and agent factories."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.agent import AgentConfig, EdgeAgent
from firmware_specs import load_schema
from forewarn.broker import MosquittoProcess

_ids = itertools.count()
T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool
    arrived_s: float  # monotonic


class Observer:
    """A plain paho client that records every message on ``forewarn/v1/#``.

    ``persistent=True`` keeps an MQTT 5 session on the broker, so that messages published
    while the observer is reconnecting (e.g. after a broker restart) are queued for it.
    """

    def __init__(self, port: int, *, persistent: bool = False) -> None:
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"observer-{next(_ids)}-{time.monotonic_ns()}",
            protocol=paho.MQTTv5,
        )
        client.reconnect_delay_set(1, 1)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if persistent:
            properties.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
        client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("observer did not subscribe")
        self.client = client

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe("forewarn/v1/#", qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            payload = json.loads(msg.payload)
        except ValueError:  # e.g. a malformed command a test sent on purpose
            payload = {"raw": bytes(msg.payload)}
        received = Received(msg.topic, payload, bool(msg.retain), time.monotonic())
        with self._cond:
            self.messages.append(received)
            self._cond.notify_all()

    def of(self, suffix: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def wait_for(
        self, suffix: str, predicate: Callable[[list[Received]], bool], timeout_s: float = 10.0
    ) -> list[Received]:
        """Wait until ``predicate(messages on suffix)`` holds; returns those messages."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                found = [m for m in self.messages if m.topic.endswith("/" + suffix)]
                if predicate(found):
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found
                self._cond.wait(remaining)

    def wait_count(self, suffix: str, count: int, timeout_s: float = 10.0) -> list[Received]:
        return self.wait_for(suffix, lambda found: len(found) >= count, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def observe(broker: MosquittoProcess) -> Iterator[Callable[..., Observer]]:
    observers: list[Observer] = []

    def make(*, persistent: bool = False) -> Observer:
        observer = Observer(broker.port, persistent=persistent)
        observers.append(observer)
        return observer

    yield make
    for observer in observers:
        observer.close()


@pytest.fixture
def make_agent(broker: MosquittoProcess, tmp_path: Path) -> Iterator[Callable[..., EdgeAgent]]:
    """Agents on the test broker with an outbox in tmp_path; stopped (not gracefully) at the end."""
    agents: list[EdgeAgent] = []

    def make(
        device_id: str = "fr-0001",
        kind: str = "fridge",
        clock_ms: Callable[[], int] | None = None,
        **overrides: Any,
    ) -> EdgeAgent:
        settings: dict[str, Any] = {
            "device_id": device_id,
            "kind": kind,
            "port": broker.port,
            "outbox_path": tmp_path / f"{device_id}.outbox.sqlite",
            "outbox_durability": "normal",
            "reconnect_max_s": 1,
            "drain_timeout_s": 5.0,
        }
        settings.update(overrides)
        config = AgentConfig(**settings)
        agent = EdgeAgent(config) if clock_ms is None else EdgeAgent(config, clock_ms)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop(graceful=False)


def validate(name: str, payload: dict[str, Any]) -> None:
    """Check a payload against ``firmware_specs/schemas/{name}.v1.json``."""
    jsonschema.Draft202012Validator(load_schema(name)).validate(payload)


def seqs(messages: list[Received]) -> list[int]:
    return [int(m.payload["seq"]) for m in messages]


def first_arrivals(messages: list[Received]) -> list[int]:
    """Seqs in the order they first arrived (later duplicates dropped, as the cloud does)."""
    seen: set[int] = set()
    order: list[int] = []
    for seq in seqs(messages):
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order
