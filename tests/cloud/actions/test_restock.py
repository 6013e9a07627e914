"""Restock orders and route pick lists from vending decisions, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cloud.actions import ActionService, EmlDirSender
from cloud.actions.restock import pick_list_csv, pick_list_json
from cloud.decision_types import Action, Decision
from cloud.errors import RejectedInput
from tests.cloud.actions.conftest import (
    DAY_MS,
    HOUR_MS,
    T0_MS,
    Clock,
    ServiceFactory,
    make_decision,
)

FAULT = "vending.restock"


def restock(
    device_id: str, lead_ms: int, pick: str, *, episode: int = 1, ts_ms: int = T0_MS
) -> Decision:
    d = make_decision(
        device_id, FAULT, episode, kind="vending", action=Action.RESTOCK, lead_ms=lead_ms,
        ts_ms=ts_ms, score=0.8,
    )  # fmt: skip
    return replace(d, details=(("pick_list", pick),))


@pytest.fixture
def service(make_service: ServiceFactory, tmp_path: Path) -> ActionService:
    svc = make_service(EmlDirSender(tmp_path / "eml"))
    svc.upsert_device("vm-000002", "vending", None, region="north")
    svc.upsert_device("vm-000003", "vending", None, region="north", attributes={"route": "r-7"})
    svc.upsert_device("vm-000004", "vending", None, region="north")
    return svc


def test_a_route_day_lists_its_machines_by_stockout_risk_and_carries_over_open_stops(
    service: ActionService,
) -> None:
    service.apply(
        [
            restock("vm-000001", 16 * HOUR_MS, "A3×7, B1×2"),  # early bound 10 h: second
            restock("vm-000002", 10 * HOUR_MS, "C2×4"),  # early bound 4 h: first
            restock("vm-000003", 10 * HOUR_MS, "A1×1"),  # another route
            restock("vm-000004", 2 * DAY_MS + 10 * HOUR_MS, "D4×12"),  # due on day three
        ]
    )
    today = service.restock.pick_list("north", "2026-01-01")
    assert [s.device_id for s in today.stops] == ["vm-000002", "vm-000001"]
    assert today.stops[1].lines == (("A3", 7), ("B1", 2))
    assert today.items == 13
    assert today.stops[0].visit_day == "2026-01-01"
    later = service.restock.pick_list("north", "2026-01-03")  # day one not visited yet
    assert [s.device_id for s in later.stops] == ["vm-000002", "vm-000001", "vm-000004"]
    assert [s.device_id for s in service.restock.pick_list("r-7", "2026-01-01").stops] == [
        "vm-000003"
    ]
    assert service.restock.routes() == ["north", "r-7"]
    assert service.restock.pick_list("south", "2026-01-01").stops == ()


def test_a_route_with_fewer_stops_keeps_the_highest_priority_in_sell_out_order(
    service: ActionService,
) -> None:
    def scored(device_id: str, lead_ms: int, score: float) -> Decision:
        return replace(restock(device_id, lead_ms, "A1×1"), score=score)

    service.upsert_device("vm-000005", "vending", None, region="north")
    service.apply(
        [
            scored("vm-000002", 4 * HOUR_MS, 0.55),  # sells out first, a visit saves little
            scored("vm-000004", 8 * HOUR_MS, 0.9),
            scored("vm-000005", 12 * HOUR_MS, 0.7),
        ]
    )
    every = service.restock.pick_list("north", "2026-01-01")
    assert [s.device_id for s in every.stops] == ["vm-000002", "vm-000004", "vm-000005"]
    assert every.deferred == 0
    two = service.restock.pick_list("north", "2026-01-01", max_stops=2)
    assert [s.device_id for s in two.stops] == ["vm-000004", "vm-000005"]
    assert two.deferred == 1
    assert json.loads(pick_list_json(two))["deferred"] == 1
    assert service.restock.pick_list("north", "2026-01-01", max_stops=5) == every
    # The one left out stays open for the next day.
    assert len(service.restock.orders("open", "north")) == 3
    with pytest.raises(RejectedInput):
        service.restock.pick_list("north", "2026-01-01", max_stops=-1)


def test_duplicates_replays_and_new_evidence_keep_one_order_per_ticket(
    service: ActionService, clock: Clock
) -> None:
    first = restock("vm-000001", 16 * HOUR_MS, "A3×7")
    service.apply([first, first])
    service.apply([first])
    clock.advance(HOUR_MS)
    newer = replace(first, ts_ms=first.ts_ms + HOUR_MS, details=(("pick_list", "A3×8, B1×3"),))
    other_episode = restock("vm-000001", 8 * HOUR_MS, "A3×9", episode=2, ts_ms=newer.ts_ms + 1)
    service.apply([newer, other_episode])
    [order] = service.restock.orders()
    assert order.lines == (("A3", 9),)
    assert order.stockout_lo_ms == other_episode.ts_ms + 2 * HOUR_MS
    assert service.counts().tickets == {"new": 1}


def test_closing_an_order_closes_its_ticket_and_the_next_stockout_opens_a_new_one(
    service: ActionService, clock: Clock
) -> None:
    service.apply(
        [restock("vm-000001", 16 * HOUR_MS, "A3×7"), restock("vm-000002", DAY_MS, "C1×1")]
    )
    filled, dropped = service.restock.orders()
    done = service.close_restock(filled.id, actor="driver-7")
    assert done.status == "delivered"
    ticket = service.ticket(filled.ticket_id)
    assert ticket is not None
    assert (ticket.status, ticket.closure_code) == ("resolved", "fault_confirmed")
    assert ticket.events[-1].actor == "driver-7"
    service.close_restock(dropped.id, actor="dispatcher", delivered=False)
    cancelled = service.ticket(dropped.ticket_id)
    assert cancelled is not None
    assert cancelled.status == "cancelled"
    with pytest.raises(RejectedInput, match="already delivered"):
        service.close_restock(filled.id, actor="driver-7")
    with pytest.raises(RejectedInput, match="no restock order"):
        service.close_restock(999_999, actor="driver-7")
    assert service.restock.pick_list("north", "2026-01-02").stops == ()
    clock.advance(DAY_MS)
    service.apply([restock("vm-000001", 16 * HOUR_MS, "B2×5", episode=2, ts_ms=T0_MS + DAY_MS)])
    [again] = service.restock.orders()
    assert (again.device_id, again.lines) == ("vm-000001", (("B2", 5),))
    assert again.ticket_id != filled.ticket_id
    assert len(service.restock.orders(status="delivered")) == 1


def test_pick_lists_export_as_csv_and_json(service: ActionService) -> None:
    service.apply(
        [
            restock("vm-000001", 16 * HOUR_MS, "A3×7, B1×2"),
            restock("vm-000002", 10 * HOUR_MS, "C2×4"),
        ]
    )
    pick = service.restock.pick_list("north", "2026-01-01")
    rows = list(csv.DictReader(io.StringIO(pick_list_csv(pick))))
    assert [(r["stop"], r["device_id"], r["slot"], r["quantity"]) for r in rows] == [
        ("1", "vm-000002", "C2", "4"),
        ("2", "vm-000001", "A3", "7"),
        ("2", "vm-000001", "B1", "2"),
    ]
    assert rows[0]["stockout_utc"] == "2026-01-01T10:00+00:00"
    doc = json.loads(pick_list_json(pick))
    assert (doc["route"], doc["day"], doc["items"]) == ("north", "2026-01-01", 13)
    assert doc["stops"][1]["lines"] == [
        {"slot": "A3", "quantity": 7},
        {"slot": "B1", "quantity": 2},
    ]


def test_bad_requests_and_garbled_notes(service: ActionService) -> None:
    with pytest.raises(RejectedInput, match="not an ISO date"):
        service.restock.pick_list("north", "tomorrow")
    with pytest.raises(RejectedInput, match="unknown restock order status"):
        service.restock.orders(status="lost")
    service.apply([restock("vm-000001", 16 * HOUR_MS, "A3×7, ???, Z9×1, B1×0, B2x3")])
    [order] = service.restock.orders()
    assert order.lines == (("A3", 7), ("B2", 3))


def test_closing_the_ticket_directly_closes_its_order(service: ActionService) -> None:
    service.apply(
        [restock("vm-000001", 16 * HOUR_MS, "A3×7"), restock("vm-000002", DAY_MS, "C1×1")]
    )
    first, second = service.restock.orders()
    service.move(first.ticket_id, "resolved", actor="driver-7")
    service.move(second.ticket_id, "cancelled", actor="dispatcher")
    assert [o.id for o in service.restock.orders(status="delivered")] == [first.id]
    assert [o.id for o in service.restock.orders(status="cancelled")] == [second.id]
    assert service.restock.pick_list("north", "2026-01-09").stops == ()
