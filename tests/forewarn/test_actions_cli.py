"""``forewarn actions``: migrate, report the revision, print a pick list and the SQL."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from cloud.actions import ActionService, EmailRenderer, EmlDirSender, create_engine_for
from cloud.decision_types import Action, Decision, Severity, decision_id
from forewarn.cli import main

T0_MS = 1_767_225_600_000
HOUR_MS = 3_600_000


def restock(device_id: str, lead_h: int, pick: str) -> Decision:
    return Decision(
        decision_id=decision_id(device_id, "vending.restock", T0_MS),
        device_id=device_id,
        product_kind="vending",
        fault="vending.restock",
        action=Action.RESTOCK,
        severity=Severity.WARNING,
        episode=1,
        opened_ms=T0_MS,
        ts_ms=T0_MS,
        score=0.8,
        summary="A slot will sell out before the next visit",
        eta_ms=T0_MS + lead_h * HOUR_MS,
        eta_lo_ms=T0_MS + (lead_h - 2) * HOUR_MS,
        eta_hi_ms=T0_MS + (lead_h + 2) * HOUR_MS,
        details=(("pick_list", pick),),
    )


def test_migrate_then_print_a_pick_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FOREWARN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FOREWARN_DATABASE_URL", raising=False)
    assert main(["actions", "current"]) == 1  # an empty database is behind
    assert main(["actions", "migrate"]) == 0
    assert "database at 0002; newest 0002" in capsys.readouterr().out
    engine = create_engine_for(f"sqlite:///{(tmp_path / 'forewarn.db').resolve()}")
    service = ActionService(engine, EmailRenderer(), EmlDirSender(tmp_path / "eml"), lambda: T0_MS)
    for device in ("vm-000001", "vm-000002"):
        service.upsert_device(device, "vending", region="north")
    service.apply([restock("vm-000001", 20, "A3×7"), restock("vm-000002", 8, "B1×2")])
    engine.dispose()
    assert main(["actions", "pick-list", "north", "--day", "2026-01-01"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["stop"], r["device_id"], r["slot"]) for r in rows] == [
        ("1", "vm-000002", "B1"),
        ("2", "vm-000001", "A3"),
    ]
    assert main(["actions", "pick-list", "north", "--day", "2026-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 9
    # One stop only: the tie in priority goes to the earlier sell-out; the other is reported.
    assert main(["actions", "pick-list", "north", "--day", "2026-01-01", "--max-stops", "1"]) == 0
    out, err = capsys.readouterr()
    assert [r["device_id"] for r in csv.DictReader(io.StringIO(out))] == ["vm-000002"]
    assert "1 due machine(s) left for a later day" in err
    assert main(["actions", "pick-list", "north", "--day", "someday"]) == 2
    assert "not an ISO date" in capsys.readouterr().err


def test_sql_for_a_dba(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["actions", "sql", "--from", "0001"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE restock_orders" in out
    assert "CREATE TABLE customers" not in out  # already there at 0001
