"""Line protocol, spool files and the documented examples of the store's pure helpers."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest

import cloud.store.downsample
import cloud.store.line_protocol
from cloud.batch import TelemetryBatch
from cloud.errors import ConfigError
from cloud.store.chunks import decode_chunk, encode_batch
from cloud.store.line_protocol import batch_lines, count_lines
from cloud.store.spool import Spool


@pytest.mark.parametrize("module", [cloud.store.downsample, cloud.store.line_protocol])
def test_documented_examples_hold(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


def test_lines_escape_names_skip_missing_and_keep_seq() -> None:
    batch = TelemetryBatch(
        kind="odd kind,x",
        device_ids=("dev 1", "dev=2"),
        channels=("a b", "c,d", "e=f"),
        row_device=np.array([0, 1, 1], dtype=np.int64),
        row_seq=np.array([5, 9, 9], dtype=np.int64),
        ts_ms=np.array([1000, 2000, 3000], dtype=np.int64),
        values=np.array([[1.5, np.inf, 1e-5], [np.nan, np.nan, np.nan], [-0.25, 2.0, 3.0]]),
    )

    assert batch_lines(batch) == [
        rb"odd\ kind\,x,device_id=dev\ 1 a\ b=1.5,e\=f=1e-05,seq=5i 1000",
        rb"odd\ kind\,x,device_id=dev\=2 seq=9i 2000",
        rb"odd\ kind\,x,device_id=dev\=2 a\ b=-0.25,c\,d=2.0,e\=f=3.0,seq=9i 3000",
    ]
    assert batch_lines(TelemetryBatch.empty("fridge")) == []


def test_count_lines() -> None:
    assert count_lines(b"") == 0
    assert count_lines(b"a 1 1") == 1
    assert count_lines(b"a 1 1\nb 2 2\n") == 2


def test_chunks_round_trip_each_message_with_its_own_channels() -> None:
    batch = TelemetryBatch(
        kind="fridge",
        device_ids=("fr-000001",),
        channels=("cabinet_c", "evap_c"),
        row_device=np.zeros(4, dtype=np.int64),
        row_seq=np.array([2, 1, 2, 1], dtype=np.int64),  # two messages, interleaved
        ts_ms=np.array([30, 10, 40, 20], dtype=np.int64),
        values=np.array([[3.0, np.nan], [1.0, 5.0], [4.0, np.nan], [2.0, 6.0]]),
    )
    for compress in (True, False):
        records = encode_batch(batch, compress=compress)

        assert [(r[1], r[3], r[4], r[5], r[6]) for r in records] == [
            (1, 10, 20, 2, "cabinet_c,evap_c"),
            (2, 30, 40, 2, "cabinet_c"),  # evap_c was not reported in message 2
        ]
        second = decode_chunk(*records[1][6:8], records[1][5], *records[1][8:10])
        np.testing.assert_array_equal(second.ts_ms, [30, 40])
        np.testing.assert_array_equal(second.values, [[3.0], [4.0]])
    with pytest.raises(ValueError, match="corrupt"):
        decode_chunk("cabinet_c", 1, 2, b"not zlib", b"not zlib")
    with pytest.raises(ValueError, match="codec"):
        decode_chunk("cabinet_c", 7, 0, b"", b"")


def test_spool_keeps_order_limits_size_and_survives_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=10)
    first = spool.add(b"1234")
    second = spool.add(b"5678")
    refused = spool.add(b"abc")  # 4 + 4 + 3 > 10

    assert refused is None
    assert spool.files() == [first, second]
    assert [p.read_bytes() for p in spool.files()] == [b"1234", b"5678"]
    (tmp_path / "spool" / "half-written.partial").write_bytes(b"x")

    reopened = Spool(tmp_path / "spool", max_bytes=10)
    assert reopened.status().bytes == 8
    assert not list((tmp_path / "spool").glob("*.partial"))
    assert first is not None
    reopened.remove(first)
    assert reopened.add(b"abc") is not None
    assert second is not None
    set_aside = reopened.reject(second)
    assert set_aside.read_bytes() == b"5678"
    status = reopened.status()
    assert (status.files, status.bytes, status.rejected_files) == (1, 3, 1)


def test_spool_refuses_nonsense_limits(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive"):
        Spool(tmp_path / "spool", max_bytes=0)
