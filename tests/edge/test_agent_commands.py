"""Commands from the cloud: every readable command gets exactly one kind of answer on cmd/ack."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from edge.agent import EdgeAgent
from forewarn.broker import MosquittoProcess

from .conftest import Observer, validate

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000
CMD_TOPIC = "forewarn/v1/fridge/fr-0001/cmd"


def command(cmd_id: str, name: str = "ping", **fields: Any) -> bytes:
    document: dict[str, Any] = {
        "v": 1,
        "cmd_id": cmd_id,
        "ts_ms": NOW_MS - 1_000,
        "name": name,
        "expires_ms": NOW_MS + 60_000,
    }
    document.update(fields)
    return json.dumps(document).encode()


@pytest.fixture
def online(
    make_agent: Callable[..., EdgeAgent], observe: Callable[..., Observer]
) -> tuple[EdgeAgent, Observer]:
    """A started agent (its fake clock reads NOW_MS) whose birth, hence subscription, is seen."""
    agent = make_agent(clock_ms=lambda: NOW_MS)
    observer = observe()
    agent.start()
    observer.wait_count("status", 1)
    return agent, observer


def send(observer: Observer, payload: bytes) -> None:
    observer.client.publish(CMD_TOPIC, payload, qos=1).wait_for_publish(5)


def acks_by_id(observer: Observer, count: int) -> dict[str, dict[str, Any]]:
    acks = observer.wait_count("cmd/ack", count)
    assert len(acks) == count
    for ack in acks:
        validate("command_ack", ack.payload)
    return {ack.payload["cmd_id"]: ack.payload for ack in acks}


def test_each_command_is_answered_with_its_cmd_id_and_a_seq(
    online: tuple[EdgeAgent, Observer],
) -> None:
    agent, observer = online
    send(observer, command("ping-0000001"))
    send(observer, command("late-0000001", expires_ms=NOW_MS - 1))
    send(observer, command("boot-0000001", name="reboot"))
    send(observer, command("what-0000001", name="self_destruct"))
    acks = acks_by_id(observer, 4)
    assert acks["ping-0000001"]["status"] == "ok"
    assert acks["late-0000001"]["status"] == "expired"
    assert acks["boot-0000001"]["status"] == "ok"
    assert acks["what-0000001"]["status"] == "rejected"
    assert "unknown command" in acks["what-0000001"]["detail"]
    assert sorted(a["seq"] for a in acks.values()) == [0, 1, 2, 3]
    assert all(a["ts_ms"] == NOW_MS for a in acks.values())
    stats = agent.stats
    assert (stats.commands_received, stats.commands_ignored, stats.reboots_requested) == (4, 0, 1)


def test_set_sample_interval_is_applied_and_reported_in_the_next_birth(
    online: tuple[EdgeAgent, Observer],
) -> None:
    agent, observer = online
    send(observer, command("slow-0000001", "set_sample_interval", args={"sample_interval_s": 5}))
    send(
        observer,
        command(
            "fast-0000001",
            "set_sample_interval",
            args={"sample_interval_s": 30, "batch_interval_s": 300},
        ),
    )
    acks = acks_by_id(observer, 2)
    assert acks["slow-0000001"]["status"] == "rejected"  # the fridge profile's minimum is 10 s
    assert "outside 10..900" in acks["slow-0000001"]["detail"]
    assert acks["fast-0000001"]["status"] == "ok"
    assert agent.sample_interval_s == 30
    births = observer.wait_count("status", 2)
    validate("status", births[-1].payload)
    assert births[-1].payload["sample_interval_s"] == 30
    assert births[-1].payload["batch_interval_s"] == 300


def test_malformed_commands_are_counted_and_repeats_get_the_first_answer(
    online: tuple[EdgeAgent, Observer],
) -> None:
    agent, observer = online
    send(observer, b"{not json")
    send(observer, json.dumps({"v": 1, "name": "ping"}).encode())  # no cmd_id to answer to
    send(observer, command("dupe-0000001"))
    send(observer, command("dupe-0000001"))  # a QoS 1 redelivery
    send(observer, command("args-0000001", args={"now": True}))
    acks = observer.wait_count("cmd/ack", 3)
    assert [(a.payload["cmd_id"], a.payload["status"]) for a in acks] == [
        ("dupe-0000001", "ok"),
        ("dupe-0000001", "ok"),
        ("args-0000001", "rejected"),
    ]
    assert agent.wait_drained(5)
    stats = agent.stats
    assert (stats.commands_received, stats.commands_ignored) == (5, 2)
    assert stats.connected  # nothing above hurt the connection


def test_commands_sent_while_the_device_is_offline_arrive_when_it_returns(
    broker: MosquittoProcess,
    make_agent: Callable[..., EdgeAgent],
    observe: Callable[..., Observer],
    tmp_path: Any,
) -> None:
    observer = observe()
    first = make_agent(clock_ms=lambda: NOW_MS, outbox_path=tmp_path / "o.sqlite")
    first.start()
    observer.wait_count("status", 1)  # connected once: the broker now keeps its session
    first.stop(graceful=True)
    send(observer, command("wait-0000001"))
    second = make_agent(clock_ms=lambda: NOW_MS, outbox_path=tmp_path / "o.sqlite")
    second.start()
    acks = acks_by_id(observer, 1)
    assert acks["wait-0000001"]["status"] == "ok"
