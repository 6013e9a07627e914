"""``forewarn actions``: migrate the actions database, print its SQL, print a route's pick list."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from forewarn.argtypes import positive_int

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

HELP = "actions database migrations and restock pick lists (database of FOREWARN_DATABASE_URL)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="actions_command", required=True, metavar="ACTION")
    sub.add_parser("migrate", help="bring the database to the newest schema (alembic upgrade)")
    sub.add_parser("current", help="print the schema revision of the database and the newest")
    sql = sub.add_parser("sql", help="print the migration SQL for a DBA to review and run")
    sql.add_argument(
        "--dialect", choices=("postgresql", "sqlite"), default="postgresql", help="(postgresql)"
    )
    sql.add_argument("--from", dest="start", help="revision the database is at (none: empty)")
    rev = sub.add_parser(
        "revision", help="write a new migration from the models (for developers; review it)"
    )
    rev.add_argument("-m", "--message", required=True, help="what the migration changes")
    pick = sub.add_parser("pick-list", help="a route's pre-kit for a day, riskiest machine first")
    pick.add_argument("route")
    pick.add_argument("--day", help="ISO date (today, UTC)")
    pick.add_argument("--json", action="store_true", help="JSON instead of CSV")
    pick.add_argument(
        "--max-stops",
        type=positive_int,
        help="machines the route can serve that day: keep those with the highest route "
        "priority (all)",
    )


def run(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from cloud.actions.db import alembic_config, create_engine_for, init_schema
    from cloud.config import load_settings
    from cloud.errors import ForewarnError

    if args.actions_command == "revision":
        return _revision(args.message)
    if args.actions_command == "sql":
        config = alembic_config()
        config.set_main_option("sqlalchemy.url", f"{args.dialect}://")
        config.output_buffer = sys.stdout
        span = f"{args.start}:head" if args.start else "head"
        command.upgrade(config, span, sql=True)
        return 0
    try:
        engine = create_engine_for(load_settings().resolved_database_url)
    except ForewarnError as exc:
        sys.stderr.write(f"forewarn actions: {exc}\n")
        return 2
    try:
        if args.actions_command == "migrate":
            init_schema(engine)
        if args.actions_command in ("migrate", "current"):
            with engine.connect() as conn:
                at = MigrationContext.configure(conn).get_current_revision()
            newest = ScriptDirectory.from_config(alembic_config()).get_current_head()
            sys.stdout.write(f"database at {at or 'no revision'}; newest {newest}\n")
            return 0 if at == newest else 1
        return _pick_list(engine, args)
    except ForewarnError as exc:
        sys.stderr.write(f"forewarn actions: {exc}\n")
        return 2
    finally:
        engine.dispose()


def _pick_list(engine: Engine, args: argparse.Namespace) -> int:
    from sqlalchemy.orm import sessionmaker

    from cloud.actions.restock import RestockPlanner, pick_list_csv, pick_list_json
    from cloud.mqtt import wall_clock_ms

    day = args.day or datetime.now(tz=UTC).date().isoformat()
    planner = RestockPlanner(sessionmaker(engine), wall_clock_ms)
    pick = planner.pick_list(args.route, day, args.max_stops)
    sys.stdout.write(pick_list_json(pick) + "\n" if args.json else pick_list_csv(pick))
    if pick.deferred:
        sys.stderr.write(f"{pick.deferred} due machine(s) left for a later day (--max-stops)\n")
    return 0


def _revision(message: str) -> int:
    """Autogenerate against a scratch SQLite database migrated to the newest revision."""
    import tempfile
    from pathlib import Path

    from alembic import command
    from alembic.script import ScriptDirectory

    from cloud.actions.db import alembic_config, create_engine_for, init_schema

    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'scratch.db'}"
        engine = create_engine_for(url)
        init_schema(engine)
        engine.dispose()
        config = alembic_config()
        config.set_main_option("sqlalchemy.url", url)
        newest = ScriptDirectory.from_config(config).get_current_head() or "0"
        script = command.revision(
            config, message=message, autogenerate=True, rev_id=f"{int(newest) + 1:04d}"
        )
    path = getattr(script, "path", None)
    sys.stdout.write(f"wrote {path}: review it, then run the migration tests\n")
    return 0
