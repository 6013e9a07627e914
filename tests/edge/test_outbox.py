"""The on-disk outbox: seq assignment, order, acknowledgement, drops, concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge.errors import OutboxError
from edge.outbox import Outbox


class FakeClock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def payload_of(seq: int) -> bytes:
    return f'{{"seq":{seq}}}'.encode()


def test_seq_survives_reopen_and_is_never_reused_after_ack(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Outbox(path) as outbox:
        first = [outbox.enqueue("telemetry", payload_of) for _ in range(3)]
        assert outbox.ack_many(first) == 3
        assert outbox.stats.depth == 0
    with Outbox(path) as outbox:
        assert outbox.enqueue("event", payload_of) == 3
        assert outbox.stats.next_seq == 4
        [message] = outbox.peek(10)
        assert (message.seq, message.suffix, message.payload) == (3, "event", b'{"seq":3}')


def test_peek_is_ordered_and_ack_removes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite") as outbox:
        for _ in range(5):
            outbox.enqueue("telemetry", payload_of, rows=2)
        assert [m.seq for m in outbox.peek(3)] == [0, 1, 2]
        assert [m.seq for m in outbox.peek(10, after_seq=2)] == [3, 4]
        assert all(m.rows == 2 for m in outbox.peek(10))
        assert outbox.ack(1) is True
        assert outbox.ack(1) is False  # already gone
        assert outbox.ack(99) is False
        assert [m.seq for m in outbox.peek(10)] == [0, 2, 3, 4]
        stats = outbox.stats
        assert (stats.depth, stats.size_bytes) == (4, 4 * len(payload_of(0)))
        assert outbox.peek(0) == []


def test_a_failing_payload_builder_stores_nothing_and_keeps_the_seq(tmp_path: Path) -> None:
    def broken(seq: int) -> bytes:
        raise ValueError("boom")

    with Outbox(tmp_path / "o.sqlite") as outbox:
        with pytest.raises(ValueError, match="boom"):
            outbox.enqueue("telemetry", broken)
        assert outbox.stats.depth == 0
        assert outbox.enqueue("telemetry", payload_of) == 0


def test_size_cap_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path, max_bytes=1000) as outbox:
        for _ in range(12):
            outbox.enqueue("telemetry", lambda seq: b"x" * 100)
        stats = outbox.stats
        assert stats.size_bytes <= 1000
        assert stats.dropped_cap == 2
        assert stats.depth == 10
        assert [m.seq for m in outbox.peek(100)] == list(range(2, 12))
    with Outbox(path, max_bytes=1000) as outbox:  # the count is persisted
        assert outbox.stats.dropped == 2


def test_ttl_drops_expired_messages_and_counts_them(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path / "o.sqlite", ttl_s=60, clock_ms=clock) as outbox:
        outbox.enqueue("telemetry", payload_of)
        outbox.enqueue("telemetry", payload_of)
        clock.now_ms += 30_000
        outbox.enqueue("telemetry", payload_of)
        clock.now_ms += 31_000  # the first two are now 61 s old
        assert [m.seq for m in outbox.peek(10)] == [2]
        stats = outbox.stats
        assert (stats.dropped_ttl, stats.dropped_cap, stats.depth) == (2, 0, 1)


def test_concurrent_enqueues_get_unique_contiguous_seqs(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite", durability="normal") as outbox:
        threads = [
            threading.Thread(
                target=lambda: [outbox.enqueue("telemetry", payload_of) for _ in range(100)]
            )
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        messages = outbox.peek(1000)
        assert [m.seq for m in messages] == list(range(800))
        # each payload was built with the seq it was stored under
        assert all(m.payload == payload_of(m.seq) for m in messages)


def test_a_second_agent_cannot_share_an_open_outbox(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    with Outbox(path) as outbox:
        outbox.enqueue("telemetry", payload_of)
        with pytest.raises(OutboxError, match="another agent"):
            Outbox(path)


def test_bad_settings_and_closed_outbox_raise_outbox_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="max_bytes"):
        Outbox(tmp_path / "a.sqlite", max_bytes=0)
    with pytest.raises(OutboxError, match="ttl_s"):
        Outbox(tmp_path / "b.sqlite", ttl_s=-1)
    with pytest.raises(OutboxError, match="durability"):
        Outbox(tmp_path / "c.sqlite", durability="sometimes")  # type: ignore[arg-type]
    outbox = Outbox(tmp_path / "d.sqlite")
    outbox.close()
    with pytest.raises(OutboxError, match="closed"):
        outbox.enqueue("telemetry", payload_of)


def test_an_unwritable_location_raises_outbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxError, match="cannot open"):
        Outbox(blocker / "o.sqlite")
