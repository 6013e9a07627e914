"""Scenarios: a fleet, its faults, a time span and a restock policy, read from a TOML file.

A scenario file has five tables and nothing else; every key is checked, and an unknown key or a
bad value stops loading with a ``ScenarioError`` that names the file, the table and the key::

    [scenario]
    name = "quick"
    seed = 7
    start = 2026-01-05T00:00:00Z   # an offset date-time, or a date (midnight UTC)
    days = 4                      # simulated days
    dt_s = 600                    # seconds between samples
    batch_steps = 6               # samples per device in one message to the core

    [fleet]                       # devices per product kind
    fridges = 30
    vending = 12
    vehicles = 20
    fridge_variants = { household = 0.6, commercial = 0.25, freezer = 0.15 }  # optional
    vending_demand_scale = 1.0    # optional: multiplies every slot's calibrated demand

    [faults]
    share = 0.3                   # share of devices given one planned fault
    # optional: relative weight of each fault within its kind; a fault left out weighs 0, and a
    # kind whose faults all weigh 0 gets none (default: the simulator's own mix)
    weights = { refrigerant_leak = 2, condenser_fouling = 1, slow_leak = 1, jammed_coil = 1 }

    [restock]                     # visits ordered by restock decisions
    delay_h = 4                   # earliest visit after the order
    visit_days = ["mon", "tue", "wed", "thu", "fri"]
    visit_hours = [8, 17]         # local working hours [start, end)
    route = "on-demand"           # or "weekly-plus": the weekly route stays, decisions add visits

    [customers]
    email_share = 0.9             # share of customers with an email address on file
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cloud.errors import ConfigError
from simulators import fridge, tyres, vending
from simulators.climate import WEEKDAYS
from simulators.fleet import MixedFleet

SCENARIO_DIR: Final = Path(__file__).resolve().parent / "scenarios"
ROUTES: Final = ("on-demand", "weekly-plus")  # [restock] route
MAX_DAYS: Final = 366.0
MIN_DT_S: Final = 10.0
MAX_DT_S: Final = 3600.0
MAX_BATCH_STEPS: Final = 720
MAX_DEVICES: Final = 1_000_000
FAULTS_BY_KIND: Final = {"fridge": fridge.FAULTS, "vending": vending.FAULTS, "tyres": tyres.FAULTS}


class ScenarioError(ConfigError):
    """A scenario file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class FleetSize:
    """Devices per product kind."""

    fridges: int
    vending: int
    vehicles: int
    fridge_variants: tuple[float, float, float] | None = None  # household, commercial, freezer
    vending_demand_scale: float = 1.0

    @property
    def total(self) -> int:
        return self.fridges + self.vending + self.vehicles


@dataclass(frozen=True, slots=True)
class RestockPolicy:
    """When a route driver can serve a restock order.

    A visit happens at the first moment, at least ``delay_h`` after the order, that falls on one
    of ``visit_days`` (0 = Monday) between ``visit_start_h`` and ``visit_end_h`` local time.
    """

    delay_h: float
    visit_days: tuple[int, ...]
    visit_start_h: int
    visit_end_h: int
    # "on-demand": restock decisions replace the weekly route, with no more visits than it;
    # "weekly-plus": the weekly route stays, the machines tell the core when it comes, and
    # restock decisions order extra visits between its rounds.
    route: str = "on-demand"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    source: str  # where it was read from, for messages
    seed: int
    start_ms: int
    days: float
    dt_s: float
    batch_steps: int
    fleet: FleetSize
    fault_share: float
    restock: RestockPolicy
    email_share: float
    fault_weights: tuple[tuple[str, float], ...] | None = None  # (fault, relative weight)

    @property
    def n_steps(self) -> int:
        return round(self.days * 86_400 / self.dt_s)

    @property
    def end_ms(self) -> int:
        return self.step_ms(self.n_steps)

    def step_ms(self, k: int) -> int:
        """Time of sample ``k`` (1-based), as :func:`simulators.offline.generate` steps."""
        return self.start_ms + round(k * self.dt_s * 1000)


class _Table:
    """One TOML table being read: a check of its keys, then typed getters."""

    def __init__(self, source: str, name: str, data: object, keys: tuple[str, ...]) -> None:
        self.source = source
        self.name = name
        if not isinstance(data, Mapping):
            raise self.error(f"[{name}] must be a table, got {type(data).__name__}")
        self.data = dict(data)
        unknown = sorted(set(self.data) - set(keys))
        if unknown:  # before anything is missing: a misspelt key is the likelier mistake
            raise self.error(f"[{name}] unknown key {unknown[0]!r} (known: {', '.join(keys)})")

    def error(self, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {message}")

    def _get(self, key: str, default: object) -> object:
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise self.error(f"[{self.name}] {key}: missing (required)")
        return default

    def _bad(self, key: str, expected: str, value: object) -> ScenarioError:
        return self.error(f"[{self.name}] {key}: must be {expected}, got {value!r}")

    def integer(self, key: str, low: int, high: int, default: object = None) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self._bad(key, f"an integer in [{low}, {high}]", value)
        return value

    def number(self, key: str, low: float, high: float, default: object = None) -> float:
        value = self._get(key, _REQUIRED if default is None else default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            raise self._bad(key, f"a number in [{low:g}, {high:g}]", value)
        return float(value)

    def text(self, key: str, default: object = None) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def raw(self, key: str, default: object = None) -> object:
        return self._get(key, _REQUIRED if default is None else default)


_REQUIRED: Final = object()
_ABSENT: Final = object()
_TABLES: Final = ("scenario", "fleet", "faults", "restock", "customers")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; a bare name such as ``quick`` means a shipped scenario."""
    file = resolve(path)
    try:
        with file.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ScenarioError(f"{file}: cannot read the scenario: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{file}: not valid TOML: {exc}") from exc
    return parse_scenario(data, str(file))


def resolve(path: str | Path) -> Path:
    """``path`` itself if it exists, else the shipped scenario of that name."""
    file = Path(path)
    if file.exists():
        return file
    shipped = SCENARIO_DIR / f"{file.name}.toml"
    if file.suffix == "" and file.parent == Path() and shipped.exists():
        return shipped
    names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
    raise ScenarioError(f"{file}: no such scenario file (shipped scenarios: {names})")


def parse_scenario(data: Mapping[str, object], source: str = "<scenario>") -> Scenario:
    """Check the tables of a scenario already read from TOML."""
    unknown = sorted(set(data) - set(_TABLES))
    if unknown:
        raise ScenarioError(f"{source}: unknown table [{unknown[0]}] (known: {', '.join(_TABLES)})")
    head = _Table(
        source,
        "scenario",
        data.get("scenario", {}),
        ("name", "description", "seed", "start", "days", "dt_s", "batch_steps"),
    )
    name = head.text("name")
    description = head.text("description", "")
    seed = head.integer("seed", 0, 2**63 - 1)
    start_ms = _start_ms(head, head.raw("start"))
    days = head.number("days", 1.0 / 24.0, MAX_DAYS)
    dt_s = head.number("dt_s", MIN_DT_S, MAX_DT_S)
    batch_steps = head.integer("batch_steps", 1, MAX_BATCH_STEPS, 6)

    fleet_t = _Table(
        source,
        "fleet",
        data.get("fleet", {}),
        ("fridges", "vending", "vehicles", "fridge_variants", "vending_demand_scale"),
    )
    fleet = FleetSize(
        fridges=fleet_t.integer("fridges", 0, MAX_DEVICES, 0),
        vending=fleet_t.integer("vending", 0, MAX_DEVICES, 0),
        vehicles=fleet_t.integer("vehicles", 0, MAX_DEVICES, 0),
        fridge_variants=_variants(fleet_t, fleet_t.raw("fridge_variants", _ABSENT)),
        vending_demand_scale=fleet_t.number("vending_demand_scale", 0.01, 100.0, 1.0),
    )
    if fleet.total == 0:
        raise fleet_t.error("[fleet] fridges, vending, vehicles: the fleet has no devices")

    faults = _Table(source, "faults", data.get("faults", {}), ("share", "weights"))
    fault_share = faults.number("share", 0.0, 1.0)
    fault_weights = _fault_weights(faults, faults.raw("weights", _ABSENT))

    restock_t = _Table(
        source,
        "restock",
        data.get("restock", {}),
        ("delay_h", "visit_days", "visit_hours", "route"),
    )
    route = restock_t.raw("route", ROUTES[0])
    if route not in ROUTES:
        raise restock_t.error(f"[restock] route: must be one of {', '.join(ROUTES)}, got {route!r}")
    hours = restock_t.raw("visit_hours", [8, 17])
    if (
        not isinstance(hours, list)
        or len(hours) != 2
        or not all(isinstance(h, int) and not isinstance(h, bool) for h in hours)
        or not 0 <= hours[0] < hours[1] <= 24
    ):
        raise restock_t.error(
            f"[restock] visit_hours: must be [start, end] whole hours with 0 <= start < end "
            f"<= 24, got {hours!r}"
        )
    restock = RestockPolicy(
        delay_h=restock_t.number("delay_h", 0.0, 7 * 24.0, 4.0),
        visit_days=_weekdays(restock_t, restock_t.raw("visit_days", list(WEEKDAYS[:5]))),
        visit_start_h=hours[0],
        visit_end_h=hours[1],
        route=str(route),
    )

    customers = _Table(source, "customers", data.get("customers", {}), ("email_share",))
    email_share = customers.number("email_share", 0.0, 1.0, 1.0)

    return Scenario(
        name=name,
        description=description,
        source=source,
        seed=seed,
        start_ms=start_ms,
        days=days,
        dt_s=dt_s,
        batch_steps=batch_steps,
        fleet=fleet,
        fault_share=fault_share,
        restock=restock,
        email_share=email_share,
        fault_weights=fault_weights,
    )


def _start_ms(table: _Table, value: object) -> int:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise table.error(
                f"[scenario] start: needs a UTC offset (e.g. 2026-01-05T00:00:00Z), got {value}"
            )
        return int(value.timestamp() * 1000)
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()) * (
            1000
        )
    raise table.error(f"[scenario] start: must be a TOML date or offset date-time, got {value!r}")


def _weekdays(table: _Table, value: object) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.lower() in WEEKDAYS for v in value)
    ):
        raise table.error(
            f"[restock] visit_days: must be a non-empty list of {', '.join(WEEKDAYS)}, "
            f"got {value!r}"
        )
    return tuple(sorted({WEEKDAYS.index(v.lower()) for v in value}))


def _variants(table: _Table, value: object) -> tuple[float, float, float] | None:
    if value is _ABSENT:
        return None
    key = "fridge_variants"
    if not isinstance(value, Mapping):
        raise table.error(f"[fleet] {key}: must be a table of shares, got {value!r}")
    unknown = sorted(set(value) - set(fridge.VARIANTS))
    if unknown:
        raise table.error(
            f"[fleet] {key}: unknown variant {unknown[0]!r} (known: {', '.join(fridge.VARIANTS)})"
        )
    shares = []
    for name in fridge.VARIANTS:
        share = value.get(name, 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
            raise table.error(f"[fleet] {key}.{name}: must be a number >= 0, got {share!r}")
        shares.append(float(share))
    if not math.isfinite(sum(shares)) or sum(shares) <= 0:
        raise table.error(f"[fleet] {key}: the shares must have a positive sum, got {value!r}")
    return shares[0], shares[1], shares[2]


def _fault_weights(table: _Table, value: object) -> tuple[tuple[str, float], ...] | None:
    if value is _ABSENT:
        return None
    if not isinstance(value, Mapping) or not value:
        raise table.error(f"[faults] weights: must be a table of fault = weight, got {value!r}")
    known = [name for names in FAULTS_BY_KIND.values() for name in names]
    out = []
    for name, weight in value.items():
        if name not in known:
            raise table.error(
                f"[faults] weights: unknown fault {name!r} (known: {', '.join(known)})"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight < 0
        ):
            raise table.error(
                f"[faults] weights.{name}: must be a finite number >= 0, got {weight!r}"
            )
        out.append((str(name), float(weight)))
    return tuple(out)


def build_fleet(scenario: Scenario) -> MixedFleet:
    """The scenario's mixed fleet: exact device counts per kind, one seed, planned faults."""
    size = scenario.fleet
    options: dict[str, Any] = {}
    if scenario.fault_weights is not None:
        options["fault_weights"] = dict(scenario.fault_weights)
    if size.fridge_variants is not None:
        options["fridge_variant_shares"] = size.fridge_variants
    if size.vending_demand_scale != 1.0:
        options["vending_demand_scale"] = size.vending_demand_scale
    return MixedFleet(
        size.total,
        scenario.start_ms,
        scenario.seed,
        fault_share=scenario.fault_share,
        horizon_days=scenario.days,
        mix=(size.fridges, size.vending, size.vehicles),
        **options,
    )
