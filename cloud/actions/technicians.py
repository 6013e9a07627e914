"""The technician registry and who gets a ticket: same region, right skill, on shift, least busy."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cloud.actions.db import InsertFn, TechnicianRow, TicketRow, transaction
from cloud.actions.records import Technician
from cloud.errors import RejectedInput

OPEN_STATUSES: Final = ("new", "assigned", "en_route", "on_site")
# The skill a fault needs, by fault-name prefix; otherwise the product kind is the skill.
SKILL_FOR_FAULT: Final = (
    ("fridge.cooling", "refrigeration"),
    ("vending.cooling", "refrigeration"),
    ("vending.jammed_coil", "vending_mechanics"),
    ("tyres.", "tyres"),
)
_NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def skill_for(product_kind: str, fault: str) -> str:
    """The skill a technician needs for a fault.

    >>> skill_for("fridge", "fridge.cooling_loss"), skill_for("vending", "vending.jammed_coil.A3")
    ('refrigeration', 'vending_mechanics')
    >>> skill_for("fridge", "fridge.door_seal")
    'fridge'
    """
    for prefix, skill in SKILL_FOR_FAULT:
        if fault.startswith(prefix):
            return skill
    return product_kind


def on_shift(row: TechnicianRow, now_ms: int) -> bool:
    """Whether ``now_ms`` falls in the technician's working hours, in their own time zone."""
    local = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(ZoneInfo(row.tz))
    minute = local.hour * 60 + local.minute
    return local.isoweekday() in row.work_days and row.work_start_min <= minute < row.work_end_min


def _record(row: TechnicianRow, open_tickets: int = 0) -> Technician:
    return Technician(
        id=row.id,
        name=row.name,
        region=row.region,
        skills=tuple(row.skills),
        tz=row.tz,
        work_days=tuple(row.work_days),
        work_start_min=row.work_start_min,
        work_end_min=row.work_end_min,
        active=row.active,
        open_tickets=open_tickets,
    )


def _open_counts(session: Session, ids: Sequence[str]) -> dict[str, int]:
    rows = session.execute(
        sa.select(TicketRow.assignee_id, sa.func.count())
        .where(TicketRow.assignee_id.in_(ids), TicketRow.status.in_(OPEN_STATUSES))
        .group_by(TicketRow.assignee_id)
    )
    return {str(tech): int(n) for tech, n in rows}


def pick_technician(
    session: Session, region: str | None, skill: str, now_ms: int
) -> TechnicianRow | None:
    """The best active technician of ``region`` with ``skill``: on shift first, then least busy.

    ``None`` when nobody matches; the ticket then waits for a manual assignment.
    """
    if region is None:
        return None
    rows = [
        row
        for row in session.scalars(
            sa.select(TechnicianRow).where(
                TechnicianRow.region == region, TechnicianRow.active.is_(True)
            )
        )
        if skill in row.skills
    ]
    if not rows:
        return None
    load = _open_counts(session, [row.id for row in rows])
    return min(rows, key=lambda r: (not on_shift(r, now_ms), load.get(r.id, 0), r.id))


class TechnicianRegistry:
    """Who can be sent where: region, skills, working hours in their time zone, active or not."""

    def __init__(
        self, sessions: sessionmaker[Session], insert: InsertFn, clock_ms: Callable[[], int]
    ) -> None:
        self._sessions = sessions
        self._insert = insert
        self._clock_ms = clock_ms

    def upsert(
        self,
        technician_id: str,
        name: str,
        region: str,
        skills: Sequence[str],
        *,
        tz: str = "UTC",
        work_days: Sequence[int] = (1, 2, 3, 4, 5),
        work_start_min: int = 8 * 60,
        work_end_min: int = 17 * 60,
        active: bool = True,
    ) -> Technician:
        """Create or replace a technician. Ids, regions and skills are lower-case names."""
        for label, value in (("technician id", technician_id), ("region", region)):
            if not _NAME_RE.match(value):
                raise RejectedInput(f"{label} {value!r} must be a lower-case name like 'north-1'")
        if not name.strip() or len(name) > 200 or any(ord(ch) < 32 for ch in name):
            raise RejectedInput("technician name must be 1..200 characters on one line")
        bad = [s for s in skills if not _NAME_RE.match(s)]
        if bad or not skills:
            raise RejectedInput(f"skills must be lower-case names like 'refrigeration': {bad}")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RejectedInput(f"time zone {tz!r} is not an IANA zone name") from exc
        if not work_days or any(d not in range(1, 8) for d in work_days):
            raise RejectedInput("work_days are ISO weekdays 1 (Monday) .. 7 (Sunday)")
        if not 0 <= work_start_min < work_end_min <= 24 * 60:
            raise RejectedInput("working hours must satisfy 0 <= start < end <= 1440 minutes")
        now = self._clock_ms()
        values = {
            "name": name,
            "region": region,
            "skills": sorted(set(skills)),
            "tz": tz,
            "work_days": sorted(set(work_days)),
            "work_start_min": work_start_min,
            "work_end_min": work_end_min,
            "active": active,
            "updated_ms": now,
        }
        stmt = self._insert(TechnicianRow).values(id=technician_id, created_ms=now, **values)
        with transaction(self._sessions) as session:
            session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
            load = _open_counts(session, [technician_id]).get(technician_id, 0)
        return _record(TechnicianRow(id=technician_id, created_ms=now, **values), load)

    def get(self, technician_id: str) -> Technician | None:
        with transaction(self._sessions) as session:
            row = session.get(TechnicianRow, technician_id)
            if row is None:
                return None
            return _record(row, _open_counts(session, [row.id]).get(row.id, 0))

    def list(self, region: str | None = None, *, active_only: bool = False) -> list[Technician]:
        query = sa.select(TechnicianRow).order_by(TechnicianRow.id)
        if region is not None:
            query = query.where(TechnicianRow.region == region)
        if active_only:
            query = query.where(TechnicianRow.active.is_(True))
        with transaction(self._sessions) as session:
            rows = session.scalars(query).all()
            load = _open_counts(session, [row.id for row in rows])
            return [_record(row, load.get(row.id, 0)) for row in rows]

    def set_active(self, technician_id: str, active: bool) -> bool:
        """Take a technician off (or back on) the roster; open tickets stay with them."""
        with transaction(self._sessions) as session:
            row = session.get(TechnicianRow, technician_id, with_for_update=True)
            if row is None:
                return False
            row.active = active
            row.updated_ms = self._clock_ms()
            return True
