"""Ground truth beside the data: fault labels as JSON lines or CSV, and back."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from simulators.types import FaultLabel

FIELDS: Final = tuple(f.name for f in dataclasses.fields(FaultLabel))


def write_labels_jsonl(labels: Iterable[FaultLabel], path: Path) -> int:
    """Write one JSON object per label (keys as :class:`FaultLabel`); returns the count."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for label in labels:
            out.write(json.dumps(dataclasses.asdict(label), separators=(",", ":")) + "\n")
            count += 1
    return count


def write_labels_csv(labels: Iterable[FaultLabel], path: Path) -> int:
    """Write the labels as CSV with a header; empty cells for ``None``. Returns the count."""
    count = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for label in labels:
            row = dataclasses.astuple(label)
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


def read_labels_jsonl(path: Path) -> list[FaultLabel]:
    """Labels written by :func:`write_labels_jsonl`; a bad line raises naming file and line."""
    labels: list[FaultLabel] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                data = json.loads(line)
                labels.append(FaultLabel(**{k: data.get(k) for k in FIELDS}))
            except (json.JSONDecodeError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a fault label: {exc}") from exc
            missing = [k for k in ("device_id", "kind", "fault", "onset_ms") if data.get(k) is None]
            if missing:
                raise ValueError(f"{path}:{number}: missing {', '.join(missing)}")
    return labels
