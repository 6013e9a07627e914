"""CSV replay source: timing, parsing, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import EdgeConfigError, SourceError
from edge.sources import CsvReplaySource

NOW_MS = 1_800_000_000_000


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_rows_are_shifted_to_start_now_and_released_when_due(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ts_ms,cabinet_c,door_open_s\n1000000,4.0,0\n1060000,4.5,\n1120000,5.0,12\n",
    )
    source = CsvReplaySource(path)
    assert source.channels == ("cabinet_c", "door_open_s")
    assert source.sample_interval_s == 60
    assert source.read(NOW_MS) == [(NOW_MS, {"cabinet_c": 4.0, "door_open_s": 0.0})]
    assert source.next_due_ms() == NOW_MS + 60_000
    assert source.read(NOW_MS + 59_999) == []
    assert source.read(NOW_MS + 130_000) == [
        (NOW_MS + 60_000, {"cabinet_c": 4.5, "door_open_s": None}),
        (NOW_MS + 120_000, {"cabinet_c": 5.0, "door_open_s": 12.0}),
    ]
    assert source.exhausted
    assert source.next_due_ms() is None
    assert source.read(NOW_MS + 999_999) == []


def test_speed_compresses_time_and_iso_timestamps_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,cabinet_c\n"
        "2026-01-01T00:00:00Z,4.0\n"
        "2026-01-01T00:01:00+00:00,4.1\n"
        "2026-01-01T01:02:00+01:00,4.2\n",  # the same instant as 00:02 UTC
    )
    source = CsvReplaySource(path, speed=60)
    assert source.sample_interval_s == 1
    rows = source.read(NOW_MS)
    rows += source.read(NOW_MS + 2_000)
    assert [ts for ts, _ in rows] == [NOW_MS, NOW_MS + 1_000, NOW_MS + 2_000]
    assert [values["cabinet_c"] for _, values in rows] == [4.0, 4.1, 4.2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("ts_ms,cabinet_c\n", "no data rows"),
        ("time,cabinet_c\n1,4.0\n", "no time column"),
        ("ts_ms,timestamp,cabinet_c\n1,x,4\n", "both"),
        ("ts_ms\n1\n", "no channel columns"),
        ("ts_ms,cabinet_c,cabinet_c\n1,2,3\n", "duplicate column"),
        (
            "ts_ms,cabinet_c\n1000,4.0\n2000,warm\n",
            "line 3, column 'cabinet_c': 'warm' is not a number",
        ),
        ("ts_ms,cabinet_c\n1000,inf\n", "not finite"),
        ("ts_ms,cabinet_c\n1000,4.0\n2000\n", "line 3: 1 fields, but the header has 2"),
        ("ts_ms,cabinet_c\n1000.5,4.0\n", "line 2, column 'ts_ms': '1000.5' is not an integer"),
        ("ts_ms,cabinet_c\n2000,4.0\n2000,4.1\n", "line 3: column 'ts_ms' does not increase"),
        ("ts_ms,cabinet_c\n-5,4.0\n", "before 1970"),
        ("timestamp,cabinet_c\n2026-01-01T00:00:00,4.0\n", "no UTC offset"),
        ("timestamp,cabinet_c\nyesterday,4.0\n", "not an ISO 8601 timestamp"),
    ],
)
def test_bad_files_raise_a_source_error_that_says_where(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(SourceError, match=r"data\.csv") as caught:
        CsvReplaySource(write(tmp_path, text))
    assert message in str(caught.value)


def test_a_missing_or_binary_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot read"):
        CsvReplaySource(tmp_path / "absent.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"ts_ms,cabinet_c\n\xff\xfe\x00\n")
    with pytest.raises(SourceError, match="not a UTF-8 CSV"):
        CsvReplaySource(binary)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_a_nonsense_speed_is_a_configuration_error(tmp_path: Path, speed: float) -> None:
    with pytest.raises(EdgeConfigError, match="speed"):
        CsvReplaySource(write(tmp_path, "ts_ms,cabinet_c\n1,4\n"), speed=speed)
