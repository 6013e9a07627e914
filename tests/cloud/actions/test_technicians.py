"""The technician registry's checks, working hours across time zones, and documented examples."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import cloud.actions.outbox
import cloud.actions.priority
import cloud.actions.restock
import cloud.actions.technicians
import cloud.actions.tickets
import cloud.actions.webhooks
from cloud.actions import ActionService, EmailRenderer, EmlDirSender, create_engine_for
from cloud.actions.db import TechnicianRow
from cloud.actions.technicians import on_shift
from cloud.errors import RejectedInput
from tests.cloud.actions.conftest import HOUR_MS, T0_MS, Clock


@pytest.mark.parametrize(
    "module",
    [
        cloud.actions.outbox,
        cloud.actions.priority,
        cloud.actions.restock,
        cloud.actions.technicians,
        cloud.actions.tickets,
        cloud.actions.webhooks,
    ],
)
def test_documented_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.fixture
def service(tmp_path: Path, sqlite_template: Path, clock: Clock) -> Iterator[ActionService]:
    """Input checks refuse before touching storage: one database is enough."""
    path = tmp_path / "checks.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = create_engine_for(f"sqlite:///{path}")
    yield ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path / "eml"), clock)
    engine.dispose()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"technician_id": "Ann Smith"}, "technician id 'Ann Smith' must be a lower-case name"),
        ({"region": ""}, "region '' must be"),
        ({"name": "Ann\r\nBcc: x"}, "name must be 1..200 characters on one line"),
        ({"skills": []}, "skills must be lower-case names"),
        ({"skills": ["Fridges!"]}, "skills must be lower-case names"),
        ({"tz": "Mars/Olympus"}, "not an IANA zone name"),
        ({"work_days": [0, 1]}, "ISO weekdays"),
        ({"work_start_min": 17 * 60, "work_end_min": 8 * 60}, "working hours"),
        ({"work_end_min": 25 * 60}, "working hours"),
    ],
)
def test_bad_technicians_are_refused(
    service: ActionService, kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {
        "technician_id": "t-ann", "name": "Ann", "region": "north", "skills": ["refrigeration"],
    }  # fmt: skip
    args.update(kwargs)
    with pytest.raises(RejectedInput, match=match):
        service.technicians.upsert(**args)  # type: ignore[arg-type]
    assert service.technicians.list() == []


def test_upsert_replaces_and_lists_by_region(service: ActionService) -> None:
    service.technicians.upsert("t-ann", "Ann", "north", ["tyres", "refrigeration", "tyres"])
    again = service.technicians.upsert("t-ann", "Ann B.", "north", ["refrigeration"], tz="UTC")
    assert (again.name, again.skills, again.work_days) == (
        "Ann B.",
        ("refrigeration",),
        (1, 2, 3, 4, 5),
    )
    service.technicians.upsert("t-bob", "Bob", "south", ["tyres"])
    assert [t.id for t in service.technicians.list(region="north")] == ["t-ann"]
    assert service.technicians.set_active("t-bob", False)
    assert [t.id for t in service.technicians.list(active_only=True)] == ["t-ann"]
    assert not service.technicians.set_active("t-nobody", False)
    assert service.technicians.get("t-nobody") is None


def test_working_hours_are_read_in_the_technicians_own_time_zone() -> None:
    def tech(tz: str, days: list[int]) -> TechnicianRow:
        return TechnicianRow(tz=tz, work_days=days, work_start_min=8 * 60, work_end_min=17 * 60)

    thursday_noon_utc = T0_MS + 12 * HOUR_MS
    assert on_shift(tech("UTC", [4]), thursday_noon_utc)
    assert not on_shift(tech("UTC", [1, 2, 3, 5]), thursday_noon_utc)
    assert not on_shift(tech("Asia/Tokyo", [4]), thursday_noon_utc)  # 21:00 there
    assert on_shift(tech("America/New_York", [4]), thursday_noon_utc + 2 * HOUR_MS)  # 09:00
    assert not on_shift(tech("America/New_York", [4]), thursday_noon_utc)  # 07:00
    assert not on_shift(tech("UTC", [4]), T0_MS + 17 * HOUR_MS)  # the end is exclusive
