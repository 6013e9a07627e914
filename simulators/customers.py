"""Synthetic customers who own the simulated devices, for demos and tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from simulators.types import DeviceSpec

LOCALE: Final = "en"
FIRST_NAMES: Final = (
    "Alex", "Sam", "Jordan", "Maria", "Lena", "Tom", "Priya", "Noah", "Emma", "Lucas", "Mia",
    "Oliver", "Sofia", "Jonas", "Chloe", "Ravi", "Hannah", "Leo", "Aisha", "Finn", "Clara", "Omar",
)  # fmt: skip
LAST_NAMES: Final = (
    "Smith", "Meyer", "Garcia", "Novak", "Jensen", "Rossi", "Kowalski", "Brown", "Schmidt",
    "Dubois", "Larsen", "Silva", "Keller", "Patel", "Murphy", "Weber", "Costa", "Berg",
)  # fmt: skip
BUSINESSES: Final = (
    "Trattoria Luigi", "Corner Deli", "Blue Harbour Bistro", "Green Leaf Cafe", "Sunrise Bakery",
    "Old Mill Pub", "Fresh Market", "Noodle House",
)  # fmt: skip
OPERATORS: Final = (
    "Snackline Vending", "CoolBox Refreshments", "Metro Vend", "QuickBite Services",
    "Refresh Point", "Northern Vending", "Harbour Snacks", "Pacific Vend",
)  # fmt: skip
_HOUSEHOLD_NICKNAMES: Final = ("Kitchen fridge", "Fridge", "Kitchen fridge", "Main fridge")
_FREEZER_NICKNAMES: Final = ("Garage freezer", "Basement freezer", "Chest freezer")
_COMMERCIAL_NICKNAMES: Final = ("Walk-in cooler", "Back kitchen fridge", "Bar fridge")
_MACHINE_PLACES: Final = ("Lobby", "Canteen", "Platform", "Entrance", "Floor")
MACHINES_PER_OPERATOR: Final = 50


@dataclass(frozen=True, slots=True)
class OwnedDevice:
    """A device as its owner calls it."""

    device_id: str
    nickname: str


@dataclass(frozen=True, slots=True)
class Customer:
    """Someone to tell about their devices, in their language and time zone."""

    customer_id: str
    name: str
    email: str
    locale: str
    tz: str
    devices: tuple[OwnedDevice, ...]


def make_customers(
    fridges: Sequence[DeviceSpec],
    machines: Sequence[DeviceSpec],
    vehicles: Sequence[DeviceSpec],
    rng: np.random.Generator,
) -> list[Customer]:
    """One customer per fridge and per vehicle; vending machines go to regional operators.

    Operators own the machines of one time zone, at most ``MACHINES_PER_OPERATOR`` each.
    Customer ids are ``cu-000001`` ... in the order fridges, vehicles, operators.
    """
    people: list[tuple[str, str, tuple[OwnedDevice, ...]]] = []
    for spec in fridges:
        variant = spec.attributes.get("variant")
        if variant == "commercial":
            name = str(rng.choice(BUSINESSES))
            nickname = str(rng.choice(_COMMERCIAL_NICKNAMES))
        else:
            name = _person(rng)
            pool = _FREEZER_NICKNAMES if variant == "freezer" else _HOUSEHOLD_NICKNAMES
            nickname = str(rng.choice(pool))
        people.append((name, spec.tz, (OwnedDevice(spec.device_id, nickname),)))
    for spec in vehicles:
        nickname = str(spec.attributes.get("vehicle", "Car"))
        people.append((_person(rng), spec.tz, (OwnedDevice(spec.device_id, nickname),)))
    by_tz: dict[str, list[DeviceSpec]] = {}
    for spec in machines:
        by_tz.setdefault(spec.tz, []).append(spec)
    operator = 0
    for tz, specs in sorted(by_tz.items()):
        for first in range(0, len(specs), MACHINES_PER_OPERATOR):
            group = specs[first : first + MACHINES_PER_OPERATOR]
            owned = tuple(
                OwnedDevice(
                    s.device_id, f"{_MACHINE_PLACES[k % len(_MACHINE_PLACES)]} {k // 5 + 1}"
                )
                for k, s in enumerate(group)
            )
            people.append(
                (f"{OPERATORS[operator % len(OPERATORS)]} {tz.split('/')[-1]}", tz, owned)
            )
            operator += 1
    return [
        Customer(
            customer_id=f"cu-{number:06d}",
            name=name,
            email=f"{_mailbox(name)}.{number}@example.com",
            locale=LOCALE,
            tz=tz,
            devices=owned,
        )
        for number, (name, tz, owned) in enumerate(people, start=1)
    ]


def _person(rng: np.random.Generator) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _mailbox(name: str) -> str:
    return "".join(c if c.isalnum() else "." for c in name.lower()).strip(".").replace("..", ".")
