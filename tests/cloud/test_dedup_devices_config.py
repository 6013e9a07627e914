"""Small stateful helpers of ingest: deduplication, device presence, settings."""

from __future__ import annotations

import pytest

from cloud.config import load_settings
from cloud.dedup import SeqDeduper
from cloud.devices import DeviceDirectory
from cloud.errors import ConfigError
from cloud.wire import Status


def test_dedup_accepts_each_seq_once_and_can_forget():
    d = SeqDeduper(window=4)
    assert not d.seen("a", 1)
    assert d.seen("a", 1)
    assert not d.seen("b", 1)  # per device
    d.forget("a", 1)
    assert not d.seen("a", 1)
    assert d.duplicates == 1


def test_dedup_memory_is_bounded_and_old_seqs_count_as_seen():
    d = SeqDeduper(window=4)
    for s in range(100):
        assert not d.seen("a", s)
    assert d.seen("a", 10)  # far behind the window: treated as a redelivery
    assert not d.seen("a", 100)


def test_dedup_handles_out_of_order_gaps_and_jumps_within_the_window():
    d = SeqDeduper(window=8)
    assert not d.seen("a", 5)
    assert not d.seen("a", 3)  # late, within the window, first time
    assert d.seen("a", 3)
    assert d.seen("a", 5)
    assert not d.seen("a", 4)
    assert not d.seen("a", 12)  # a gap of 7: 5 is still in the window
    assert d.seen("a", 5)
    assert not d.seen("a", 6)
    assert d.seen("a", 4)  # 8 behind 12: out of the window, treated as seen
    assert not d.seen("a", 1000)  # a jump past the window starts afresh
    assert d.seen("a", 1000)
    assert not d.seen("a", 999)
    d.forget("a", 999)
    assert not d.seen("a", 999)
    d.forget("a", 1000)  # the highest itself can be forgotten and redelivered
    assert not d.seen("a", 1000)
    d.forget("a", 5)  # long gone: nothing to undo
    d.forget("nobody", 1)
    assert d.duplicates == 5


def test_dedup_agrees_with_a_set_of_everything_seen():
    import random

    rng = random.Random(7)
    d = SeqDeduper(window=64)
    seen: set[int] = set()
    highest = -1
    for _ in range(5000):
        seq = max(0, highest + rng.randint(-70, 3))
        expected = seq in seen or seq <= highest - 64
        assert d.seen("a", seq) is expected, seq
        if not expected:
            seen.add(seq)
            highest = max(highest, seq)


def test_dedup_memory_per_device_is_a_bitmap_not_a_set():
    import sys

    d = SeqDeduper()
    for s in range(20_000):
        d.seen("a", s)
    dev = d._devices["a"]
    assert sys.getsizeof(dev.mask) <= d.window // 8 + 64
    assert len(d) == 1


def test_dedup_rejects_a_window_below_one():
    with pytest.raises(ValueError, match="window"):
        SeqDeduper(window=0)


def status(state: str, ts: int | None, reason: str | None = None) -> Status:
    return Status(
        "fr-000001", "fridge", state, ts, reason, "1.0", "m", 60, 600, {"variant": "freezer"}
    )


def test_device_is_offline_when_its_reporting_interval_passes_without_data():
    d = DeviceDirectory()
    d.saw_status(status("online", 1_000), now_ms=1_000)
    d.saw_data("fridge", "fr-000001", 0, 60_000, rows=10)
    info = d.get("fr-000001")
    assert info is not None
    assert info.online(60_000 + 3 * 600_000)
    assert not info.online(60_000 + 3 * 600_000 + 1)
    assert info.attributes == {"variant": "freezer"}


def test_last_will_means_offline_at_once_and_data_brings_it_back():
    d = DeviceDirectory()
    d.saw_data("fridge", "fr-000001", 60_000, 60_000, rows=1)
    d.saw_status(status("offline", None, "lost"), now_ms=61_000)
    info = d.get("fr-000001")
    assert info is not None
    assert not info.online(61_000)
    assert info.presence_reason == "lost"
    d.saw_data("fridge", "fr-000001", 120_000, 120_000, rows=1)
    info = d.get("fr-000001")
    assert info is not None
    assert info.online(120_000)


def test_bad_settings_say_which_variable_to_fix(monkeypatch):
    monkeypatch.setenv("FOREWARN_MQTT_URL", "http://broker")
    with pytest.raises(ConfigError, match="FOREWARN_MQTT_URL"):
        load_settings()
    monkeypatch.setenv("FOREWARN_MQTT_URL", "mqtt://broker:1883")
    monkeypatch.setenv("FOREWARN_SMTP_URL", "mail.example.com")
    with pytest.raises(ConfigError, match="FOREWARN_SMTP_URL"):
        load_settings()
    monkeypatch.setenv("FOREWARN_SMTP_URL", "smtp://mail.example.com:25")
    monkeypatch.setenv("FOREWARN_HTTP_PORT", "99999")
    with pytest.raises(ConfigError, match="FOREWARN_HTTP_PORT"):
        load_settings()


def test_default_database_is_sqlite_under_the_data_dir(tmp_path):
    s = load_settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/forewarn.db"
