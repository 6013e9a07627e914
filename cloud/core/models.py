"""The core's models by name: every scorer and forecaster, for the contract battery and tools.

A scorer is a fault condition produced by a product kind's ``update`` (through
:func:`cloud.core.fleet.update`); a forecaster is a pure fold/forecast pair over count series.
Adding a model means adding it here, which puts it under the contract battery
(``tests/cloud/core/test_contract_battery.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy.typing as npt

from cloud.core import demand, fridge, tyres, vending
from cloud.core.demand import IntermittentState
from cloud.core.kernels import FloatArray


@dataclass(frozen=True, slots=True)
class Scorer:
    """One fault condition: ``kind``'s update emits a :class:`Condition` named ``fault``."""

    fault: str
    kind: str


@dataclass(frozen=True, slots=True)
class Forecaster:
    """A demand forecaster: fold periods into a state, forecast demand per period from it."""

    name: str
    update: Callable[[IntermittentState, npt.ArrayLike], IntermittentState]
    forecast: Callable[[IntermittentState], FloatArray]


SCORERS: Final = (
    Scorer(fridge.FAULT, "fridge"),
    Scorer(tyres.PRESSURE_FAULT, "tyres"),
    Scorer(tyres.TREAD_FAULT, "tyres"),
    Scorer(tyres.BATTERY_FAULT, "tyres"),
    Scorer(vending.RESTOCK_FAULT, "vending"),
    Scorer(vending.JAM_FAULT, "vending"),
    Scorer(vending.PAYMENT_FAULT, "vending"),
    Scorer(vending.COOLING_FAULT, "vending"),
)

FORECASTERS: Final = (
    Forecaster("croston", demand.croston_update, demand.croston_forecast),
    Forecaster("tsb", demand.tsb_update, demand.tsb_forecast),
)
