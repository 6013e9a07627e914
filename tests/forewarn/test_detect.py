"""``forewarn detect``: CSV files in, the same rows with an anomaly score out; bad files refused."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from forewarn.cli import main
from forewarn.detect import parse_timestamp_ms


def write_csv(path: Path, rows: list[tuple[str, str]], header: str = "timestamp,value") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def series_rows(n: int, spike_at: int | None = None, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2014-04-01T00:00:00")
    rows = []
    for i in range(n):
        stamp = str(start + np.timedelta64(5 * i, "m")).replace("T", " ")
        value = 20.0 + 5.0 * np.sin(2 * np.pi * i / 288) + rng.normal(0.0, 0.5)
        if i == spike_at:
            value += 40.0
        rows.append((stamp, f"{value:.3f}"))
    return rows


def read_out(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_round_trip_keeps_rows_and_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a_rows = series_rows(2000, spike_at=1500, seed=1)
    b_rows = series_rows(700, seed=2)
    a = write_csv(tmp_path / "in" / "a.csv", a_rows)
    b = write_csv(tmp_path / "in" / "b.csv", b_rows)
    out = tmp_path / "out"
    assert main(["detect", str(a), str(b), "--output-dir", str(out)]) == 0
    assert "2 file(s) written" in capsys.readouterr().out
    for src_rows, name in ((a_rows, "a.csv"), (b_rows, "b.csv")):
        got = read_out(out / name)
        assert list(got[0]) == ["timestamp", "value", "anomaly_score"]
        assert [(r["timestamp"], r["value"]) for r in got] == src_rows
        scores = np.array([float(r["anomaly_score"]) for r in got])
        assert ((scores >= 0.0) & (scores <= 1.0)).all()
    scores_a = np.array([float(r["anomaly_score"]) for r in read_out(out / "a.csv")])
    assert scores_a[1500] > 0.5
    assert scores_a[600:1500].max() < 0.5


def test_the_installed_command_runs(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "in" / "one.csv", series_rows(300))
    done = subprocess.run(
        [sys.executable, "-m", "forewarn", "detect", str(src), "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(read_out(tmp_path / "o" / "one.csv")) == 300


def test_input_root_keeps_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "data"
    x = write_csv(root / "s1" / "same.csv", series_rows(100, seed=3))
    y = write_csv(root / "s2" / "same.csv", series_rows(120, seed=4))
    out = tmp_path / "out"
    args = ["detect", str(x), str(y), "--output-dir", str(out), "--input-root", str(root)]
    assert main(args) == 0
    assert len(read_out(out / "s1" / "same.csv")) == 100
    assert len(read_out(out / "s2" / "same.csv")) == 120


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty file"),
        ("timestamp,value\n", "no rows"),
        ("time,value\n2014-04-01 00:00:00,1\n", ":1: missing column 'timestamp'"),
        ("timestamp,reading\n2014-04-01 00:00:00,1\n", ":1: missing column 'value'"),
        ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,abc\n", ":3: non-numeric"),
        ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,\n", ":3: non-numeric"),
        ("timestamp,value\n2014-04-01 00:00:00,nan\n", ":2: value must be a finite number"),
        ("timestamp,value\n2014-04-01 00:00:00,1e300\n", ":2: value must be a finite number"),
        ("timestamp,value\nyesterday,1\n", ":2: unparsable timestamp 'yesterday'"),
        ("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00\n", ":3: expected 2 fields"),
    ],
)
def test_bad_files_are_named_and_the_good_ones_still_scored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    bad = tmp_path / "in" / "bad.csv"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    good = write_csv(tmp_path / "in" / "good.csv", series_rows(50))
    out = tmp_path / "out"
    assert main(["detect", str(bad), str(good), "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}" in err
    assert needle in err
    assert not (out / "bad.csv").exists()
    assert len(read_out(out / "good.csv")) == 50


def test_output_dir_equal_to_input_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_csv(tmp_path / "a.csv", series_rows(40))
    before = src.read_text()
    assert main(["detect", str(src), "--output-dir", str(tmp_path)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert src.read_text() == before


def test_two_inputs_with_one_output_name_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = write_csv(tmp_path / "p" / "same.csv", series_rows(30))
    y = write_csv(tmp_path / "q" / "same.csv", series_rows(30))
    assert main(["detect", str(x), str(y), "--output-dir", str(tmp_path / "o")]) == 2
    assert "same output" in capsys.readouterr().err
    assert len(read_out(tmp_path / "o" / "same.csv")) == 30


def test_timestamps_with_offsets_and_t_separator_parse_to_utc(tmp_path: Path) -> None:
    assert parse_timestamp_ms("2014-04-01T02:00:00+02:00") == parse_timestamp_ms(
        "2014-04-01 00:00:00"
    )
    rows = [("2014-04-01T00:00:00Z", "1"), ("2014-04-01T02:05:00+02:00", "2")]
    src = write_csv(tmp_path / "in" / "tz.csv", rows)
    assert main(["detect", str(src), "--output-dir", str(tmp_path / "o")]) == 0
    assert [r["timestamp"] for r in read_out(tmp_path / "o" / "tz.csv")] == [r[0] for r in rows]


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    src = tmp_path / "in" / "bom.csv"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"\xef\xbb\xbftimestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,2\n")
    assert main(["detect", str(src), "--output-dir", str(tmp_path / "o")]) == 0
    assert [r["value"] for r in read_out(tmp_path / "o" / "bom.csv")] == ["1", "2"]
