"""Labelled fleet telemetry: vectorized fridges, vending machines and vehicle tyres."""

from simulators.customers import Customer, OwnedDevice
from simulators.fleet import MixedFleet
from simulators.fridge import FridgeFleet
from simulators.offline import generate
from simulators.types import DeviceSpec, FaultLabel, Fleet, StepOutput
from simulators.tyres import TyreFleet
from simulators.vending import VendingFleet

__all__ = [
    "Customer",
    "DeviceSpec",
    "FaultLabel",
    "Fleet",
    "FridgeFleet",
    "MixedFleet",
    "OwnedDevice",
    "StepOutput",
    "TyreFleet",
    "VendingFleet",
    "generate",
]
