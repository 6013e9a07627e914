"""What vending slots hold and sell: the calibrated figures, product categories and prices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np

from simulators.types import IntArray

CALIBRATION_FILE: Final = Path(__file__).with_name("vending_calibration.json")


class CalibrationError(ValueError):
    """Sales cannot be fitted, or fitted figures cannot be read; the message says where."""


def load_calibration(path: Path = CALIBRATION_FILE) -> dict[str, Any]:
    """The fitted figures the simulator ships with (or another fit written by ``--write``)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot load the vending calibration: {exc}") from exc
    return data


# A few product names per category of the sales data; the names are illustrative.
PRODUCTS: Final = {
    "Carbonated": ("Cola 0.33l", "Cola Zero 0.33l", "Orange soda 0.33l", "Energy drink 0.25l"),
    "Food": (
        "Chocolate bar", "Peanut bar", "Salted crisps", "Paprika crisps", "Gummy bears",
        "Granola bar", "Pretzels", "Cookies", "Sandwich",
    ),
    "Non Carbonated": ("Iced tea 0.5l", "Apple juice 0.25l", "Cold brew coffee 0.25l"),
    "Water": ("Still water 0.5l", "Sparkling water 0.5l"),
    "Other": ("Mints", "Chewing gum"),
}  # fmt: skip


class Catalogue:
    """Products with their category; a slot's category follows the calibrated category mix and
    its price the calibrated price levels of that category."""

    def __init__(self, calibration: Mapping[str, Any]) -> None:
        mix: Mapping[str, float] = calibration["category_mix"]
        unknown = sorted(set(mix) - set(PRODUCTS))
        if unknown:
            raise ValueError(f"no products for calibrated category {unknown[0]!r}")
        self.categories = tuple(sorted(mix))
        share = np.array([mix[c] for c in self.categories], dtype=np.float64)
        self._category_p = share / share.sum()
        self.names: tuple[str, ...] = tuple(n for c in self.categories for n in PRODUCTS[c])
        self._first = np.cumsum([0] + [len(PRODUCTS[c]) for c in self.categories])
        self._prices: list[tuple[IntArray, np.ndarray]] = []
        for c in self.categories:
            levels: Mapping[str, float] = calibration["price_cents"][c]
            cents = np.array([int(k) for k in levels], dtype=np.int64)
            p = np.array(list(levels.values()), dtype=np.float64)
            self._prices.append((cents, p / p.sum()))

    def name(self, product: int) -> str:
        return self.names[product]

    def category(self, product: int) -> str:
        return self.categories[int(np.searchsorted(self._first, product, side="right")) - 1]

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[IntArray, IntArray]:
        """A product index and a price in cents for each slot of ``shape``."""
        category = rng.choice(len(self.categories), size=shape, p=self._category_p)
        sizes = np.diff(self._first)
        product = self._first[category] + (rng.random(shape) * sizes[category]).astype(np.int64)
        price = np.zeros(shape, dtype=np.int64)
        for c, (cents, p) in enumerate(self._prices):
            where = category == c
            price[where] = rng.choice(cents, size=int(where.sum()), p=p)
        return product.astype(np.int64), price
