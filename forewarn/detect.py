"""``forewarn detect``: score CSV files of ``timestamp,value`` with the streaming detector."""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloud.core.kernels import FloatArray, IntArray

HELP = "score CSV files (timestamp,value) for anomalies; one configuration for all files"


class InputError(Exception):
    """A file that cannot be scored; the message names the file and, where known, the line."""


@dataclass(frozen=True, slots=True)
class Series:
    """One parsed input file: its rows as text (written back unchanged) and as numbers."""

    source: Path
    target: Path
    header: list[str]
    rows: list[list[str]]
    ts_ms: IntArray
    values: FloatArray


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="CSV with timestamp,value")
    p.add_argument(
        "--output-dir",
        type=Path,
        required=True,
        help="where DIR/<name of each input> is written with an anomaly_score column",
    )
    p.add_argument(
        "--input-root",
        type=Path,
        help="write DIR/<path relative to this folder> instead of DIR/<name> (keeps subfolders)",
    )


def parse_timestamp_ms(text: str) -> int:
    """ISO 8601 (``2014-04-01 00:00:00``, ``T`` separator, fractions, offsets) → UTC ms.

    A timestamp without an offset is taken as UTC.

    >>> parse_timestamp_ms("1970-01-01 00:00:01.5")
    1500
    >>> parse_timestamp_ms("1970-01-01T01:00:00+01:00")
    0
    """
    stamp = datetime.fromisoformat(text.strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    delta = stamp - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _timestamps(source: Path, texts: list[str]) -> IntArray:
    """All timestamps at once; the slow path names the first bad line (or takes offsets)."""
    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns on offsets: parse those one by one
            fast: IntArray = np.array(texts, dtype="datetime64[ms]").astype(np.int64)
        return fast
    except (ValueError, UserWarning, DeprecationWarning):
        pass
    out = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        try:
            out[i] = parse_timestamp_ms(text)
        except ValueError as exc:
            raise InputError(f"{source}:{i + 2}: unparsable timestamp {text!r}") from exc
    return out


def _values(source: Path, texts: list[str]) -> FloatArray:
    import numpy as np

    try:
        out: FloatArray = np.array(texts, dtype=np.float64)
    except ValueError:
        out = np.full(len(texts), np.nan)
        for i, text in enumerate(texts):
            try:
                out[i] = float(text)
            except ValueError as exc:
                raise InputError(f"{source}:{i + 2}: non-numeric value {text!r}") from exc
    from cloud.core.detect_filters import MAX_ABS

    bad = np.flatnonzero(~(np.abs(out) <= MAX_ABS))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            f"{source}:{i + 2}: value must be a finite number within ±{MAX_ABS:g}, got {texts[i]!r}"
        )
    return out


def _column(header: list[str], name: str, path: Path) -> int:
    names = [h.strip().lower() for h in header]
    if name not in names:
        raise InputError(f"{path}:1: missing column '{name}' (header is {','.join(header)})")
    return names.index(name)


def read_series(source: Path, target: Path) -> Series:
    """Parse one input file, or raise ``InputError`` naming the file and line."""
    try:
        with source.open(newline="", encoding="utf-8-sig") as fh:  # tolerate a BOM
            lines = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{source}: cannot read: {exc}") from exc
    if not lines:
        raise InputError(f"{source}: empty file (expected a header timestamp,value)")
    header, rows = lines[0], lines[1:]
    t_col, v_col = _column(header, "timestamp", source), _column(header, "value", source)
    if not rows:
        raise InputError(f"{source}: no rows after the header")
    width = max(t_col, v_col)
    for line_no, row in enumerate(rows, start=2):
        if len(row) <= width:
            raise InputError(f"{source}:{line_no}: expected {len(header)} fields, got {len(row)}")
    ts_ms = _timestamps(source, [row[t_col] for row in rows])
    values = _values(source, [row[v_col] for row in rows])
    return Series(source, target, header, rows, ts_ms, values)


def _targets(files: Sequence[Path], out_dir: Path, root: Path | None) -> list[Path | InputError]:
    """The output path of each input, or the reason it cannot have one."""
    seen: dict[Path, Path] = {}
    result: list[Path | InputError] = []
    for src in files:
        if root is not None:
            try:
                rel = src.resolve().relative_to(root.resolve())
            except ValueError:
                result.append(InputError(f"{src}: not inside --input-root {root}"))
                continue
        else:
            rel = Path(src.name)
        target = out_dir / rel
        key = target.resolve()
        if key == src.resolve():
            result.append(
                InputError(
                    f"{src}: the output would overwrite this input; choose another --output-dir"
                )
            )
        elif key in seen:
            result.append(InputError(f"{src}: same output {target} as {seen[key]}"))
        else:
            seen[key] = src
            result.append(target)
    return result


def write_scored(series: Series, scores: Sequence[float]) -> None:
    """Write ``timestamp,value,anomaly_score`` rows in the input's order, atomically."""
    series.target.parent.mkdir(parents=True, exist_ok=True)
    t_col = _column(series.header, "timestamp", series.source)
    v_col = _column(series.header, "value", series.source)
    fd, tmp = tempfile.mkstemp(dir=series.target.parent, prefix=".detect-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(["timestamp", "value", "anomaly_score"])
            for row, score in zip(series.rows, scores, strict=True):
                out.writerow([row[t_col], row[v_col], f"{score:.8f}"])
        os.replace(tmp, series.target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    from cloud.core.detector import DetectorConfig, score_series

    started, cpu_started = time.perf_counter(), time.process_time()
    errors: list[str] = []
    parsed: list[Series] = []
    written = 0
    for src, target in zip(
        args.files, _targets(args.files, args.output_dir, args.input_root), strict=True
    ):
        if isinstance(target, InputError):
            errors.append(str(target))
            continue
        try:
            parsed.append(read_series(src, target))
        except InputError as exc:
            errors.append(str(exc))
    if parsed:
        scores = score_series(
            [s.ts_ms for s in parsed], [s.values for s in parsed], DetectorConfig()
        )
        for series, score in zip(parsed, scores, strict=True):
            try:
                write_scored(series, score.tolist())
                written += 1
            except OSError as exc:
                errors.append(f"{series.target}: cannot write: {exc}")
    for message in errors:
        sys.stderr.write(f"forewarn detect: {message}\n")
    rows = sum(len(s.values) for s in parsed)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    sys.stdout.write(
        f"forewarn detect: {written} file(s) written, {rows} rows scored in {elapsed:.2f} s "
        f"({cpu:.2f} s CPU); {len(errors)} error(s)\n"
    )
    return 2 if errors else 0
