"""The embedded telemetry history: round trips, idempotency, downsampling, persistence, failures."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cloud.batch import TelemetryBatch
from cloud.errors import StoreUnavailable
from cloud.store import TelemetryReader, TelemetryWriter
from cloud.store.bench import fridge_batches
from cloud.store.embedded import EmbeddedStore

T0_MS = 1_767_225_600_000
MINUTE_MS = 60_000
FRIDGE = ("cabinet_c", "evap_c", "door_open_s")

Message = tuple[str, int, npt.ArrayLike, npt.ArrayLike]  # device_id, seq, ts_ms, rows


def make_batch(messages: Sequence[Message], channels: Sequence[str] = FRIDGE) -> TelemetryBatch:
    """A batch from ``(device_id, seq, ts_ms, rows)`` messages, rows in ``channels`` order."""
    device_ids = tuple(dict.fromkeys(m[0] for m in messages))
    lengths = [np.asarray(m[2]).shape[0] for m in messages]
    return TelemetryBatch(
        kind="fridge",
        device_ids=device_ids,
        channels=tuple(channels),
        row_device=np.repeat([device_ids.index(m[0]) for m in messages], lengths).astype(np.int64),
        row_seq=np.repeat([m[1] for m in messages], lengths).astype(np.int64),
        ts_ms=np.concatenate([np.asarray(m[2], dtype=np.int64) for m in messages]),
        values=np.concatenate([np.asarray(m[3], dtype=np.float64) for m in messages]).reshape(
            sum(lengths), len(channels)
        ),
    )


def minutes(first: int, count: int) -> list[int]:
    return [T0_MS + (first + i) * MINUTE_MS for i in range(count)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    with EmbeddedStore(tmp_path / "data" / "telemetry.sqlite") as opened:
        yield opened


def test_store_satisfies_both_ports(store: EmbeddedStore) -> None:
    writer: TelemetryWriter = store
    reader: TelemetryReader = store
    assert writer.stats().rows_written == 0
    assert reader.rows_stored() == 0


def test_round_trip_keeps_values_and_missing_readings(store: EmbeddedStore) -> None:
    nan = np.nan
    batch = make_batch(
        [
            ("fr-000001", 7, minutes(0, 3), [[3.9, -20.5, 0], [nan, -20.25, 12], [4.1, nan, 0]]),
            ("fr-000002", 3, minutes(0, 2), [[5.5, nan, nan], [5.75, nan, nan]]),
        ]
    )

    assert store.write(batch) == 5

    cabinet = store.query("fr-000001", "cabinet_c", T0_MS, T0_MS + 10 * MINUTE_MS)
    # the missing reading is a gap in time, not a point
    np.testing.assert_array_equal(cabinet.ts_ms, [minutes(0, 1)[0], minutes(2, 1)[0]])
    np.testing.assert_array_equal(cabinet.values, [3.9, 4.1])
    assert cabinet.min is None
    assert cabinet.max is None
    assert cabinet.ts_ms.dtype == np.int64
    evap = store.query("fr-000001", "evap_c", T0_MS, T0_MS + 10 * MINUTE_MS)
    np.testing.assert_array_equal(evap.ts_ms, minutes(0, 2))
    np.testing.assert_array_equal(evap.values, [-20.5, -20.25])
    door = store.query("fr-000001", "door_open_s", T0_MS, T0_MS + 10 * MINUTE_MS)
    np.testing.assert_array_equal(door.values, [0, 12, 0])
    assert store.channels("fr-000001") == ["cabinet_c", "door_open_s", "evap_c"]
    # fr-000002 never reported evap_c or door_open_s: they are not its channels
    assert store.channels("fr-000002") == ["cabinet_c"]
    assert store.query("fr-000002", "evap_c", T0_MS, T0_MS + MINUTE_MS).n_points == 0
    assert store.rows_stored() == 5
    assert store.devices() == ["fr-000001", "fr-000002"]
    assert store.stats().rows_written == 5


def test_rewriting_a_stored_message_writes_nothing(store: EmbeddedStore) -> None:
    first = make_batch([("fr-000001", 1, minutes(0, 4), np.ones((4, 3)))])
    assert store.write(first) == 4

    assert store.write(first) == 0
    # a redelivered message beside a new one: only the new one's rows count
    mixed = make_batch(
        [
            ("fr-000001", 1, minutes(0, 4), np.full((4, 3), 9.0)),
            ("fr-000001", 2, minutes(4, 2), np.full((2, 3), 2.0)),
        ]
    )
    assert store.write(mixed) == 2

    assert store.rows_stored() == 6
    series = store.query("fr-000001", "cabinet_c", T0_MS, T0_MS + 60 * MINUTE_MS)
    np.testing.assert_array_equal(series.ts_ms, minutes(0, 6))
    # the first delivery wins; the redelivery's (different) values are not stored
    np.testing.assert_array_equal(series.values, [1, 1, 1, 1, 2, 2])
    assert store.stats().rows_written == 6


def test_message_delivered_twice_within_one_batch_is_stored_once(store: EmbeddedStore) -> None:
    rows = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    twice = make_batch(
        [("fr-000001", 5, minutes(0, 2), rows), ("fr-000001", 5, minutes(0, 2), rows)]
    )

    assert store.write(twice) == 2

    series = store.query("fr-000001", "evap_c", T0_MS, T0_MS + MINUTE_MS)
    np.testing.assert_array_equal(series.values, [2.0, 5.0])
    assert store.rows_stored() == 2


def test_many_devices_and_channels_read_back_exactly(store: EmbeddedStore) -> None:
    rng = np.random.default_rng(7)
    channels = tuple(f"slot.{c}{n}.stock" for c in "ABC" for n in range(1, 5))
    n_devices = 40
    messages: list[Message] = []
    for d in range(n_devices):
        has_slot = rng.uniform(size=len(channels)) < 0.6  # each device its own slots
        for seq in range(3):
            n = int(rng.integers(1, 30))
            rows = np.round(rng.uniform(0, 200, (n, len(channels))))
            rows[:, ~has_slot] = np.nan
            messages.append((f"vm-{d:04d}", seq, minutes(seq * 100, n), rows))
    order = rng.permutation(len(messages))  # devices interleave within the batch
    batch = make_batch([messages[i] for i in order], channels)

    assert store.write(batch) == batch.n_rows

    for d in range(n_devices):
        device_id = f"vm-{d:04d}"
        own = batch.row_device == batch.device_ids.index(device_id)
        by_time = np.argsort(batch.ts_ms[own], kind="stable")
        ts_ms, values = batch.ts_ms[own][by_time], batch.values[own][by_time]
        reported = [c for i, c in enumerate(channels) if np.isfinite(values[:, i]).any()]
        assert store.channels(device_id) == sorted(reported)
        for c in reported:
            column = values[:, channels.index(c)]
            series = store.query(device_id, c, T0_MS, T0_MS + 10**9)
            np.testing.assert_array_equal(series.ts_ms, ts_ms[np.isfinite(column)])
            np.testing.assert_array_equal(series.values, column[np.isfinite(column)])
    assert store.rows_stored() == batch.n_rows


def downsample_reference(
    ts_ms: np.ndarray, values: np.ndarray, start_ms: int, end_ms: int, max_points: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    width = -(-(end_ms - start_ms + 1) // max_points)
    ts_ms, values = ts_ms[np.isfinite(values)], values[np.isfinite(values)]
    out: tuple[list[int], list[float], list[float], list[float]] = ([], [], [], [])
    for bucket in sorted(set(((ts_ms - start_ms) // width).tolist())):
        inside = values[(ts_ms - start_ms) // width == bucket]
        out[0].append(start_ms + bucket * width)
        out[1].append(float(inside.mean()))
        out[2].append(float(inside.min()))
        out[3].append(float(inside.max()))
    return out


def test_downsampled_buckets_match_a_numpy_reference(store: EmbeddedStore) -> None:
    rng = np.random.default_rng(3)
    n = 1_000
    ts_ms = T0_MS + np.cumsum(rng.integers(1_000, 120_000, n))
    values = rng.normal(4.0, 1.0, (n, 3))
    values[rng.uniform(size=n) < 0.1, 0] = np.nan
    values[400:520, 0] = np.nan  # a gap long enough to leave buckets without a reading
    messages: list[Message] = [
        ("fr-000001", seq, ts_ms[lo : lo + 50].tolist(), values[lo : lo + 50])
        for seq, lo in enumerate(range(0, n, 50))
    ]
    store.write(make_batch(messages))
    start_ms, end_ms, max_points = int(ts_ms[0]) - 5, int(ts_ms[-1]) + 5, 37

    series = store.query("fr-000001", "cabinet_c", start_ms, end_ms, max_points=max_points)

    expected = downsample_reference(ts_ms, values[:, 0], start_ms, end_ms, max_points)
    assert series.downsampled
    assert series.min is not None
    assert series.max is not None
    assert 0 < series.n_points < max_points  # the gap's buckets are left out, not zeros
    assert not np.isnan(series.values).any()
    np.testing.assert_array_equal(series.ts_ms, expected[0])
    np.testing.assert_allclose(series.values, expected[1], rtol=1e-12)
    np.testing.assert_array_equal(series.min, expected[2])
    np.testing.assert_array_equal(series.max, expected[3])
    assert np.all(np.diff(series.ts_ms) > 0)


def test_few_points_come_back_raw_even_with_max_points(store: EmbeddedStore) -> None:
    store.write(make_batch([("fr-000001", 0, minutes(0, 5), np.arange(15.0).reshape(5, 3))]))

    series = store.query("fr-000001", "evap_c", T0_MS, T0_MS + 4 * MINUTE_MS, max_points=5)
    one = store.query("fr-000001", "evap_c", T0_MS, T0_MS + 4 * MINUTE_MS, max_points=1)

    assert not series.downsampled
    np.testing.assert_array_equal(series.values, [1, 4, 7, 10, 13])
    assert one.n_points == 1
    np.testing.assert_array_equal(one.values, [7.0])
    np.testing.assert_array_equal(one.min, [1.0])
    np.testing.assert_array_equal(one.max, [13.0])
    np.testing.assert_array_equal(one.ts_ms, [T0_MS])


def test_time_range_is_inclusive_and_sorts_late_messages(store: EmbeddedStore) -> None:
    values = np.arange(30.0).reshape(10, 3)
    # the later message arrives first, in another batch: back-filled data
    store.write(make_batch([("fr-000001", 2, minutes(5, 5), values[5:])]))
    store.write(make_batch([("fr-000001", 1, minutes(0, 5), values[:5])]))

    series = store.query("fr-000001", "cabinet_c", minutes(3, 1)[0], minutes(7, 1)[0])

    np.testing.assert_array_equal(series.ts_ms, minutes(3, 5))
    np.testing.assert_array_equal(series.values, values[3:8, 0])
    whole = store.query("fr-000001", "cabinet_c", T0_MS - 1, T0_MS + 10**9)
    np.testing.assert_array_equal(whole.ts_ms, minutes(0, 10))


def test_empty_queries_return_empty_series(store: EmbeddedStore) -> None:
    store.write(make_batch([("fr-000001", 0, minutes(0, 3), np.ones((3, 3)))]))
    cases = [
        ("fr-999999", "cabinet_c", T0_MS, T0_MS + 10**9),  # unknown device
        ("fr-000001", "no_such_channel", T0_MS, T0_MS + 10**9),
        ("fr-000001", "cabinet_c", T0_MS + 10 * MINUTE_MS, T0_MS + 20 * MINUTE_MS),  # no data
        ("fr-000001", "cabinet_c", T0_MS + MINUTE_MS, T0_MS),  # end before start
    ]
    for device_id, channel, start_ms, end_ms in cases:
        series = store.query(device_id, channel, start_ms, end_ms, max_points=10)
        assert series.n_points == 0
        assert series.values.shape == (0,)
        assert series.ts_ms.dtype == np.int64
    assert store.channels("fr-999999") == []
    assert store.write(TelemetryBatch.empty("fridge")) == 0
    with pytest.raises(ValueError, match="max_points"):
        store.query("fr-000001", "cabinet_c", T0_MS, T0_MS + 1, max_points=0)


def test_history_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    batch = make_batch(
        [("fr-000001", 4, minutes(0, 3), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, np.nan]])]
    )
    with EmbeddedStore(path) as store:
        store.write(batch)

    # reopen without compression: chunks written compressed stay readable, new ones mix in
    with EmbeddedStore(path, compress=False) as reopened:
        assert reopened.rows_stored() == 3
        assert reopened.channels("fr-000001") == ["cabinet_c", "door_open_s", "evap_c"]
        np.testing.assert_array_equal(
            reopened.query("fr-000001", "door_open_s", T0_MS, T0_MS + 10**9).values, [3, 6]
        )
        assert reopened.write(batch) == 0  # idempotency is in the file, not in memory
        assert reopened.write(make_batch([("fr-000001", 5, minutes(3, 1), [[9, 9, 9]])])) == 1
        series = reopened.query("fr-000001", "cabinet_c", T0_MS, T0_MS + 10**9)
        np.testing.assert_array_equal(series.values, [1, 4, 7, 9])


def test_prune_drops_old_messages_and_keeps_the_count_exact(store: EmbeddedStore) -> None:
    store.write(
        make_batch(
            [
                ("fr-000001", 1, minutes(0, 10), np.ones((10, 3))),
                ("fr-000001", 2, minutes(10, 10), np.ones((10, 3))),
                ("fr-000002", 1, minutes(5, 10), np.ones((10, 3))),  # straddles the cut
            ]
        )
    )

    removed = store.prune(older_than_ms=minutes(12, 1)[0])

    assert removed == 10
    assert store.rows_stored() == 20
    assert store.query("fr-000001", "cabinet_c", T0_MS, minutes(9, 1)[0]).n_points == 0
    assert store.query("fr-000002", "cabinet_c", T0_MS, T0_MS + 10**9).n_points == 10
    assert store.prune(older_than_ms=minutes(12, 1)[0]) == 0


def test_corrupt_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    path.write_bytes(b"this is not a database file, just bytes\n" * 200)

    with pytest.raises(StoreUnavailable, match=r"telemetry\.sqlite.*not a database"):
        EmbeddedStore(path)


@pytest.mark.parametrize("kind", ["directory", "under_a_file"])
def test_unusable_path_is_reported(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path / "is-a-dir"
        path.mkdir()
    else:
        (tmp_path / "plain-file").write_text("x")
        path = tmp_path / "plain-file" / "telemetry.sqlite"

    with pytest.raises(StoreUnavailable, match="telemetry store"):
        EmbeddedStore(path)


def test_locked_file_fails_the_write_whole_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.sqlite"
    batch = make_batch([("fr-000001", 1, minutes(0, 4), np.ones((4, 3)))])
    with EmbeddedStore(path, busy_timeout_s=0.05) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                store.write(batch)
        finally:
            other.execute("ROLLBACK")
            other.close()

        failed = store.stats()
        assert (failed.rows_failed, failed.batches_failed, failed.rows_written) == (4, 1, 0)
        assert failed.last_error is not None
        assert "locked" in failed.last_error
        assert store.write(batch) == 4  # nothing of the failed attempt was left behind
        assert store.rows_stored() == 4


def test_closed_store_refuses_with_store_unavailable(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "telemetry.sqlite")
    store.close()
    store.close()  # closing twice is harmless

    with pytest.raises(StoreUnavailable, match="closed"):
        store.write(make_batch([("fr-000001", 1, minutes(0, 1), [[1, 2, 3]])]))
    with pytest.raises(StoreUnavailable, match="closed"):
        store.query("fr-000001", "cabinet_c", T0_MS, T0_MS + 1)


def test_malformed_batch_is_refused(store: EmbeddedStore) -> None:
    good = make_batch([("fr-000001", 1, minutes(0, 2), np.ones((2, 3)))])
    bad_values = TelemetryBatch(
        "fridge", good.device_ids, good.channels, good.row_device, good.row_seq, good.ts_ms,
        np.ones((2, 2)),
    )  # fmt: skip
    bad_device = TelemetryBatch(
        "fridge", good.device_ids, good.channels, good.row_device + 1, good.row_seq, good.ts_ms,
        good.values,
    )  # fmt: skip

    with pytest.raises(ValueError, match="shape"):
        store.write(bad_values)
    with pytest.raises(ValueError, match="device_ids"):
        store.write(bad_device)
    assert store.rows_stored() == 0


def test_reads_from_another_thread_see_whole_batches(store: EmbeddedStore) -> None:
    batches = fridge_batches(
        np.random.default_rng(1), n_devices=5, messages_per_batch=5, n_batches=40
    )
    expected = sum(b.n_rows for b in batches)
    errors: list[BaseException] = []

    def write_all() -> None:
        try:
            for batch in batches:
                store.write(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    writer = threading.Thread(target=write_all)
    writer.start()
    seen = []
    while writer.is_alive():
        seen.append(store.rows_stored())
        store.query("fr-000001", "cabinet_c", 0, 2**62, max_points=100)
    writer.join()

    assert errors == []
    assert seen == sorted(seen)
    written_after = np.cumsum([0] + [b.n_rows for b in batches])
    assert set(seen) <= set(written_after.tolist())  # never half a batch
    assert store.rows_stored() == expected


def test_small_raw_and_large_compressed_messages_read_back_alike(tmp_path: Path) -> None:
    from cloud.store.chunks import COMPRESS_MIN_ROWS

    rng = np.random.default_rng(3)
    small, large = COMPRESS_MIN_ROWS - 1, COMPRESS_MIN_ROWS + 40
    rows = rng.normal(4.0, 1.0, size=(small + large, 3)).round(3)
    batch = make_batch(
        [
            ("fr-000001", 0, minutes(0, small), rows[:small]),
            ("fr-000001", 1, minutes(small, large), rows[small:]),
        ]
    )
    with EmbeddedStore(tmp_path / "raw-and-zlib.sqlite") as store:
        assert store.write(batch) == small + large
        for c, name in enumerate(FRIDGE):
            got = store.query("fr-000001", name, T0_MS, T0_MS + 10_000 * MINUTE_MS)
            np.testing.assert_array_equal(got.ts_ms, minutes(0, small + large))
            np.testing.assert_array_equal(got.values, rows[:, c])
