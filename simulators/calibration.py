"""Fit the vending demand model to real vending sales: ``python -m simulators.calibration CSV``.

Reads the public "Vending Machine Sales" export (one row per line item: machine, location,
product, category, coil, price, quantity, transaction date, payment type) and prints the figures
the simulator uses; ``--write FILE`` also stores them as JSON. The shipped
``simulators/vending_calibration.json`` was made this way, so the simulator never needs the raw
data at run time.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from simulators.climate import WEEKDAYS
from simulators.vending_catalogue import CALIBRATION_FILE, CalibrationError, load_calibration

__all__ = ["CALIBRATION_FILE", "CalibrationError", "fit", "load_calibration", "main", "read_sales"]

# How the sites of the data set are grouped into the simulator's location kinds.
LOCATION_KINDS: Final = {
    "GuttenPlans": "office",
    "Earle Asphalt": "office",
    "Brunswick Sq Mall": "retail",
    "EB Public Library": "public",
}
OTHER_CATEGORY: Final = "Other"  # rows without a category
_REQUIRED: Final = (
    "Location", "Machine", "Category", "TransDate", "Type", "RCoil", "RPrice", "RQty",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sale:
    machine: str
    location_kind: str
    coil: str
    category: str
    price_cents: int
    qty: int
    day: dt.date
    card: bool


def read_sales(path: Path) -> list[Sale]:
    """Every line item of the export; a row that cannot be read raises naming row and column."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read the sales file: {exc.strerror}") from exc
    sales: list[Sale] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise CalibrationError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            sales.append(_sale(path, line, row))
    if not sales:
        raise CalibrationError(f"{path}: no sales rows")
    return sales


def _sale(path: Path, line: int, row: Mapping[str, str]) -> Sale:
    column = "TransDate"
    try:
        day = dt.datetime.strptime(row[column].strip(), "%A, %B %d, %Y").date()  # noqa: DTZ007
        column = "RPrice"
        price = round(float(row[column]) * 100)
        column = "RQty"
        qty = int(row[column])
    except ValueError as exc:
        raise CalibrationError(f"{path}:{line}: bad {column} {row[column]!r}") from exc
    if qty < 1 or price < 0:
        raise CalibrationError(f"{path}:{line}: quantity must be >= 1 and price >= 0")
    location = row["Location"].strip()
    return Sale(
        machine=row["Machine"].strip(),
        location_kind=LOCATION_KINDS.get(location, "other"),
        coil=row["RCoil"].strip(),
        category=row["Category"].strip() or OTHER_CATEGORY,
        price_cents=price,
        qty=qty,
        day=day,
        card=row["Type"].strip().lower() != "cash",
    )


def fit(sales: Sequence[Sale]) -> dict[str, Any]:
    """The demand figures of ``sales`` (see ``docs/simulators.md`` for each one)."""
    span: dict[str, tuple[dt.date, dt.date]] = {}
    for s in sales:
        first, last = span.get(s.machine, (s.day, s.day))
        span[s.machine] = (min(first, s.day), max(last, s.day))
    days = {m: (last - first).days + 1 for m, (first, last) in span.items()}
    daily: dict[tuple[str, str], Counter[dt.date]] = defaultdict(Counter)
    for s in sales:
        daily[(s.machine, s.coil)][s.day] += s.qty
    rates, zero_share, excess = [], [], []
    for (machine, _coil), per_day in daily.items():
        first = span[machine][0]
        counts = np.zeros(days[machine])
        for day, qty in per_day.items():
            counts[(day - first).days] = qty
        mean = counts.mean()
        rates.append(mean)
        zero_share.append(float(np.mean(counts == 0)))
        # Negative binomial: variance = mean + mean² / shape, so 1/shape = (var − mean) / mean².
        if counts.shape[0] > 1:
            excess.append(max(counts.var(ddof=1) - mean, 0.0) / mean**2)
    rate = np.array(rates)
    log_rate = np.log(rate)
    items = sum(s.qty for s in sales)
    return {
        "source": {
            "rows": len(sales),
            "items": items,
            "machines": len(span),
            "slots": len(daily),
            "first_day": min(first for first, _ in span.values()).isoformat(),
            "last_day": max(last for _, last in span.values()).isoformat(),
        },
        "slot_rate_per_day": {
            "log_mean": round(float(log_rate.mean()), 4),
            "log_sd": round(float(log_rate.std(ddof=1)) if rate.shape[0] > 1 else 0.0, 4),
            "mean": round(float(rate.mean()), 4),
            "quantiles": _quantiles(rate),
        },
        "zero_day_share": {
            "mean": round(float(np.mean(zero_share)), 4),
            "quantiles": _quantiles(np.array(zero_share)),
        },
        "overdispersion": round(float(np.median(excess)) if excess else 0.0, 4),
        "weekday_profile": _weekday_profiles(sales, span),
        "month_profile": _month_profile(sales, span),
        "hour_profile": None,
        "slots_per_machine": _quantiles(np.array(list(Counter(m for m, _ in daily).values()))),
        "category_mix": _shares(Counter({c: n for c, n in _items_by(sales, "category").items()})),
        "price_cents": {
            category: _shares(Counter(s.price_cents for s in sales if s.category == category))
            for category in sorted({s.category for s in sales})
        },
        "price_levels_cents": _shares(Counter(s.price_cents for s in sales)),
        "qty_per_line": _shares(Counter(s.qty for s in sales)),
        "card_share": round(sum(s.card for s in sales) / len(sales), 4),
    }


def _items_by(sales: Iterable[Sale], attribute: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for s in sales:
        counts[str(getattr(s, attribute))] += s.qty
    return counts


def _quantiles(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {f"p{p}": round(float(v), 4) for p, v in zip((10, 25, 50, 75, 90), q, strict=True)}


def _shares(counts: Mapping[Any, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {str(k): round(v / total, 4) for k, v in sorted(counts.items())}


Span = Mapping[str, tuple[dt.date, dt.date]]


def _exposure(sales: Sequence[Sale], span: Span, key: str) -> dict[str, Counter[int]]:
    """Machine-days per weekday (``key="weekday"``) or month, per location kind and overall."""
    kind_of = {s.machine: s.location_kind for s in sales}
    by: dict[str, Counter[int]] = defaultdict(Counter)
    for machine, (first, last) in span.items():
        kind = kind_of[machine]
        for k in range((last - first).days + 1):
            day = first + dt.timedelta(days=k)
            slot = day.weekday() if key == "weekday" else day.month
            by[kind][slot] += 1
            by["all"][slot] += 1
    return by


def _weekday_profiles(sales: Sequence[Sale], span: Span) -> dict[str, list[float]]:
    """Items per machine-day on each weekday, relative to the mean over the week (mean = 1)."""
    exposure = _exposure(sales, span, "weekday")
    items: dict[str, Counter[int]] = defaultdict(Counter)
    for s in sales:
        items[s.location_kind][s.day.weekday()] += s.qty
        items["all"][s.day.weekday()] += s.qty
    profiles: dict[str, list[float]] = {}
    for kind in sorted(items):
        per_day = np.array([items[kind][d] / max(exposure[kind][d], 1) for d in range(7)])
        profiles[kind] = [round(float(v), 4) for v in per_day / per_day.mean()]
    return profiles


def _month_profile(sales: Sequence[Sale], span: Span) -> dict[str, float]:
    """Items per machine-day in each month of the data, relative to their mean."""
    exposure = _exposure(sales, span, "month")["all"]
    items = Counter[int]()
    for s in sales:
        items[s.day.month] += s.qty
    months = sorted(exposure)
    per_day = np.array([items[m] / exposure[m] for m in months])
    per_day /= per_day.mean()
    return {f"{m:02d}": round(float(v), 4) for m, v in zip(months, per_day, strict=True)}


def render(figures: Mapping[str, Any]) -> str:
    """The figures as a short human-readable report."""
    rate = figures["slot_rate_per_day"]
    lines = [
        "source: {rows} rows, {items} items, {machines} machines, {slots} slots, "
        "{first_day} .. {last_day}".format(**figures["source"]),
        f"slot rate per day: mean {rate['mean']}, lognormal mu {rate['log_mean']} "
        f"sigma {rate['log_sd']}, quantiles {rate['quantiles']}",
        f"share of zero days per slot: mean {figures['zero_day_share']['mean']}, "
        f"quantiles {figures['zero_day_share']['quantiles']}",
        f"overdispersion (1/negative-binomial shape, median): {figures['overdispersion']}",
    ]
    for kind, profile in figures["weekday_profile"].items():
        days = " ".join(f"{d} {v:.2f}" for d, v in zip(WEEKDAYS, profile, strict=True))
        lines.append(f"weekday profile {kind}: {days}")
    lines.append(f"month profile: {figures['month_profile']}")
    lines.append("hour profile: not in the data (dates only)")
    lines.append(f"category mix (items): {figures['category_mix']}")
    lines.append(f"price levels (cents, share of lines): {figures['price_levels_cents']}")
    lines.append(f"card share: {figures['card_share']}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.calibration", description=__doc__)
    parser.add_argument("csv", type=Path, help="vending_machine_sales.csv")
    parser.add_argument("--write", type=Path, help="also store the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        figures = fit(read_sales(args.csv))
    except CalibrationError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(render(figures))
    if args.write is not None:
        args.write.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
