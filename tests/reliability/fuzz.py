"""A seeded mutational fuzzer for the wire contract: golden examples in, malformed messages out.

Mutations work at three levels: the topic (levels swapped, dropped, misspelt, foreign
characters), the bytes (flips, cuts, insertions, other encodings) and the JSON tree (values of
the wrong type or size, keys removed or added, arrays of the wrong length). Each call with the
same seed yields the same messages.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from cloud.messages import RawMessage
from firmware_specs import SPEC_DIR

_ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**400, 1.5, -0.0, 1e308, "", "x" * 300,
    "NaN", [], {}, [None], [[1]], {"a": 1}, "\u0000", "\ud800", "fr-000001", 1_767_225_600_000,
)  # fmt: skip
_TOPIC_PIECES = (
    "forewarn", "v1", "v2", "fridge", "tyres", "vending", "toaster", "fr-000001", "FR-1", "",
    "telemetry", "event", "status", "cmd", "ack", "cmd/ack", "..", " ", "ü", "a" * 80,
)  # fmt: skip


def golden() -> list[tuple[str, bytes]]:
    """(topic, payload) of every valid golden example in the contract."""
    out = []
    for path in sorted((SPEC_DIR / "valid").glob("*.json")):
        case = json.loads(path.read_text())
        if case["topic"].endswith("/cmd"):  # cloud → device: not an ingest message
            continue
        out.append((case["topic"], json.dumps(case["payload"]).encode()))
    return out


def _mutate_tree(rng: random.Random, node: Any, depth: int = 0) -> Any:
    if isinstance(node, dict) and node and (depth == 0 or rng.random() < 0.7):
        node = dict(node)
        key = rng.choice(list(node))
        action = rng.random()
        if action < 0.25:
            del node[key]
        elif action < 0.35:
            node[rng.choice(["extra", "values", "ts_ms", "v", key + "_"])] = rng.choice(_ODD_VALUES)
        elif action < 0.7:
            node[key] = _mutate_tree(rng, node[key], depth + 1)
        else:
            node[key] = rng.choice(_ODD_VALUES)
        return node
    if isinstance(node, list) and node:
        node = list(node)
        action = rng.random()
        i = rng.randrange(len(node))
        if action < 0.3:
            del node[i]
        elif action < 0.5:
            node.insert(i, rng.choice(_ODD_VALUES))
        elif action < 0.6:
            node = node[::-1]
        elif action < 0.7:
            node = node * rng.randint(2, 60)
        else:
            node[i] = _mutate_tree(rng, node[i], depth + 1)
        return node
    if isinstance(node, int | float) and not isinstance(node, bool) and rng.random() < 0.6:
        return rng.choice([node * 1000, -node, node + 1, node / 1000, float(node) + 0.5, 10**20])
    return rng.choice(_ODD_VALUES)


def _mutate_bytes(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    action = rng.random()
    if action < 0.2 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif action < 0.35:
        data = data[: rng.randrange(len(data) + 1)]
    elif action < 0.5:
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.choice([b"\xff", b"\x00", b"NaN", b",", b"}", b'"', b"\xc3\x28", b" "])
    elif action < 0.6:
        return payload.decode().encode("utf-16")
    elif action < 0.65:
        return b"\xef\xbb\xbf" + payload
    elif action < 0.7:
        return payload + b" " * 70_000
    elif action < 0.8:
        return json.dumps([json.loads(payload)]).encode()
    else:
        return payload.replace(b"1", b"\xb9")
    return bytes(data)


def _mutate_topic(rng: random.Random, topic: str, routable: bool) -> str:
    levels = topic.split("/")
    if routable:  # stays inside the ingest subscriptions forewarn/+/+/+/<suffix>
        i = rng.randrange(1, 4)
        levels[i] = rng.choice([p for p in _TOPIC_PIECES if p and "/" not in p])
        return "/".join(levels)
    action = rng.random()
    if action < 0.3:
        levels[rng.randrange(len(levels))] = rng.choice(_TOPIC_PIECES)
    elif action < 0.5:
        del levels[rng.randrange(len(levels))]
    elif action < 0.7:
        rng.shuffle(levels)
    else:
        levels.insert(rng.randrange(len(levels) + 1), rng.choice(_TOPIC_PIECES))
    return "/".join(levels)


def malformed(
    seed: int, count: int, received_ms: int, *, routable: bool = False
) -> Iterator[RawMessage]:
    """``count`` mutated messages (some may still be valid: the decoder decides).

    ``routable`` keeps topics publishable and inside the ingest subscriptions, for traffic
    that goes through a real broker.
    """
    rng = random.Random(seed)
    cases = golden()
    for _ in range(count):
        topic, payload = rng.choice(cases)
        which = rng.random()
        if which < 0.45:
            payload = json.dumps(_mutate_tree(rng, json.loads(payload))).encode()
        elif which < 0.8:
            payload = _mutate_bytes(rng, payload)
        else:
            topic = _mutate_topic(rng, topic, routable)
            if rng.random() < 0.5:
                payload = _mutate_bytes(rng, payload)
        yield RawMessage(topic, payload, received_ms)
