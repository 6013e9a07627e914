"""Where readings come from: the ``SensorSource`` port and a CSV replay source."""

from __future__ import annotations

import csv
import math
import statistics
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

from edge.errors import EdgeConfigError, SourceError

Reading = tuple[int, dict[str, float | None]]
TIME_COLUMNS: Final = ("ts_ms", "timestamp")
_MISSING: Final = frozenset({"", "null", "nan", "na"})


class SensorSource(Protocol):
    """A device's sensors: rows (``ts_ms``, channel -> value) that are due by ``now_ms``."""

    def read(self, now_ms: int) -> list[Reading]:
        """Rows due up to ``now_ms`` that were not returned before, oldest first."""
        ...

    @property
    def exhausted(self) -> bool:
        """True once no row will ever be due again."""
        ...

    def next_due_ms(self) -> int | None:
        """When the next row is due (device clock, UTC ms); ``None`` when exhausted."""
        ...


class ReplaySource(SensorSource, Protocol):
    """A source the ``forewarn edge`` command can run: it also describes itself."""

    @property
    def channels(self) -> tuple[str, ...]: ...

    @property
    def sample_interval_s(self) -> float: ...

    @property
    def model(self) -> str:
        """Model name for the birth message ("" if unknown)."""
        ...

    @property
    def attributes(self) -> dict[str, object]:
        """Birth attributes of the contract (empty if unknown)."""
        ...


class CsvReplaySource:
    """Replays a CSV file as if its sensors were live.

    The file has a header with a time column, ``ts_ms`` (UTC ms) or ``timestamp`` (ISO 8601
    with a UTC offset, e.g. ``2026-01-01T00:00:00Z``), and one column per channel. An empty
    cell (or ``null``, ``nan``, ``NA``) is a missing reading. Rows must be in strictly
    increasing time order.

    Time is shifted so that the first row is due at the first ``read`` and each later row
    ``(ts - first_ts) / speed`` after it; returned rows carry that shifted, compressed time,
    so their timestamps never run ahead of the clock that reads them.

    The whole file is checked when the source is made; errors name the line and the column.
    """

    def __init__(self, path: Path, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise EdgeConfigError(f"replay speed must be a positive number, got {speed}")
        self.path = path
        self.speed = speed
        self.channels, rows = _load(path)
        self._values = [values for _, values in rows]
        first_ms = rows[0][0]
        self._source_ts_ms = [ts_ms for ts_ms, _ in rows]
        self._offsets_ms: list[int] = []
        previous = -1
        for ts_ms, _ in rows:
            offset = max(round((ts_ms - first_ms) / speed), previous + 1)
            self._offsets_ms.append(offset)
            previous = offset
        self._start_ms: int | None = None
        self._next = 0

    @property
    def sample_interval_s(self) -> float:
        """Median spacing of the rows in replayed time (seconds), 1 s for a single row."""
        if len(self._offsets_ms) < 2:
            return 1.0
        steps = [b - a for a, b in zip(self._offsets_ms, self._offsets_ms[1:], strict=False)]
        return statistics.median(steps) / 1000

    @property
    def model(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, object]:
        return {}

    @property
    def row_count(self) -> int:
        return len(self._values)

    @property
    def exhausted(self) -> bool:
        return self._next >= len(self._values)

    def next_due_ms(self) -> int | None:
        if self.exhausted:
            return None
        if self._start_ms is None:
            return 0  # due at once: the first read anchors the replay
        return self._start_ms + self._offsets_ms[self._next]

    def read(self, now_ms: int) -> list[Reading]:
        if self._start_ms is None:
            self._start_ms = now_ms
        due: list[Reading] = []
        while self._next < len(self._values):
            ts_ms = self._start_ms + self._offsets_ms[self._next]
            if ts_ms > now_ms:
                break
            due.append((ts_ms, dict(self._values[self._next])))
            self._next += 1
        return due


def _load(path: Path) -> tuple[tuple[str, ...], list[Reading]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            lines = list(csv.reader(handle))
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path} is not a UTF-8 CSV file: {exc}") from exc
    if not lines or not any(cell.strip() for cell in lines[0]):
        raise SourceError(f"{path} is empty: it needs a header line")
    header = [cell.strip() for cell in lines[0]]
    _check_header(path, header)
    time_column = "ts_ms" if "ts_ms" in header else "timestamp"
    time_index = header.index(time_column)
    channels = tuple(name for name in header if name != time_column)
    rows: list[Reading] = []
    for line_no, cells in enumerate(lines[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise SourceError(
                f"{path}, line {line_no}: {len(cells)} fields, but the header has {len(header)}"
            )
        ts_ms = _parse_time(path, line_no, time_column, cells[time_index].strip())
        if rows and ts_ms <= rows[-1][0]:
            raise SourceError(
                f"{path}, line {line_no}: column {time_column!r} does not increase "
                f"({cells[time_index].strip()} is not after the previous row)"
            )
        values = {
            name: _parse_value(path, line_no, name, cell.strip())
            for name, cell in zip(header, cells, strict=True)
            if name != time_column
        }
        rows.append((ts_ms, values))
    if not rows:
        raise SourceError(f"{path} has a header but no data rows")
    return channels, rows


def _check_header(path: Path, header: list[str]) -> None:
    present = [name for name in TIME_COLUMNS if name in header]
    if not present:
        raise SourceError(
            f"{path}: no time column; expected 'ts_ms' (UTC ms) or 'timestamp' (ISO 8601), "
            f"found: {', '.join(header)}"
        )
    if len(present) > 1:
        raise SourceError(f"{path}: has both 'ts_ms' and 'timestamp'; keep one time column")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise SourceError(f"{path}: duplicate column(s) {', '.join(duplicates)}")
    if "" in header:
        raise SourceError(f"{path}: column {header.index('') + 1} has no name")
    if len(header) < 2:
        raise SourceError(f"{path}: no channel columns next to {present[0]!r}")


def _parse_time(path: Path, line_no: int, column: str, text: str) -> int:
    where = f"{path}, line {line_no}, column {column!r}"
    if column == "ts_ms":
        try:
            ts_ms = int(text)
        except ValueError:
            raise SourceError(f"{where}: {text!r} is not an integer (UTC ms)") from None
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise SourceError(f"{where}: {text!r} is not an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            raise SourceError(f"{where}: {text!r} has no UTC offset (add 'Z' or '+00:00')")
        ts_ms = round(moment.timestamp() * 1000)
    if ts_ms < 0:
        raise SourceError(f"{where}: {text!r} is before 1970")
    return ts_ms


def _parse_value(path: Path, line_no: int, column: str, text: str) -> float | None:
    if text.lower() in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        raise SourceError(
            f"{path}, line {line_no}, column {column!r}: {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise SourceError(f"{path}, line {line_no}, column {column!r}: {text!r} is not finite")
    return value
