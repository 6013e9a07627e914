"""Alembic migrations: they build exactly the models' schema, upgrade old databases, run offline."""

from __future__ import annotations

import importlib
import io
import pkgutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

import cloud
from cloud.actions.db import (
    BASELINE_REVISION,
    MODEL_MODULES,
    Base,
    alembic_config,
    create_engine_for,
    import_models,
    include_name,
    init_schema,
)
from cloud.errors import ConfigError


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database, never migrated."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = create_engine_for(url)
    yield engine
    engine.dispose()


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_every_module_with_tables_is_known_to_the_migrations() -> None:
    for info in pkgutil.walk_packages(cloud.__path__, "cloud."):
        if not info.name.startswith("cloud.actions.migrations"):
            importlib.import_module(info.name)
    declaring = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    assert declaring <= set(MODEL_MODULES), "add these modules to MODEL_MODULES"


def test_the_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    import_models()
    engine = create_engine_for(db_url)
    try:
        assert current(engine) == head()
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_name": include_name}
            )
            assert compare_metadata(context, Base.metadata) == []
            tables = set(sa.inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_is_stamped_and_upgraded_with_its_data(
    fresh_engine: Engine,
) -> None:
    with fresh_engine.begin() as conn:
        command.upgrade(alembic_config(conn), BASELINE_REVISION)
        conn.execute(
            sa.text(
                "INSERT INTO tickets (correlation_id, device_id, product_kind, fault, action, "
                "status, severity, priority, due_ms, score, summary, evidence_ts_ms, "
                "evidence_count, opened_ms, updated_ms) VALUES ('c-1', 'fr-000001', 'fridge', "
                "'fridge.cooling', 'dispatch', 'new', 'warning', 'P2', 10, 0.5, 's', 1, 1, 1, 1)"
            )
        )
        conn.execute(sa.text("DROP TABLE alembic_version"))  # as made by create_all
    init_schema(fresh_engine)
    assert current(fresh_engine) == head()
    with fresh_engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT correlation_id, skill, escalation_level, assignee_id FROM tickets")
        ).one()
    assert tuple(row) == ("c-1", "", 0, None)
    init_schema(fresh_engine)  # a second start changes nothing
    assert current(fresh_engine) == head()


def test_downgrade_to_nothing_and_up_again(fresh_engine: Engine) -> None:
    init_schema(fresh_engine)
    with fresh_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with fresh_engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
    init_schema(fresh_engine)
    assert current(fresh_engine) == head()


def test_two_services_starting_at_once_migrate_once(fresh_engine: Engine) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: init_schema(fresh_engine), range(2)))
    assert current(fresh_engine) == head()


def test_a_database_administrator_can_get_the_sql_script() -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql+psycopg://dba@db.example/forewarn")
    buffer = io.StringIO()
    config.output_buffer = buffer
    command.upgrade(config, "head", sql=True)
    script = buffer.getvalue()
    assert "CREATE TABLE technicians" in script
    assert "ALTER TABLE tickets ADD COLUMN escalation_level SMALLINT DEFAULT '0' NOT NULL" in script
    assert f"UPDATE alembic_version SET version_num='{head()}'" in script


def test_a_database_that_matches_no_migration_is_a_clear_error(fresh_engine: Engine) -> None:
    import_models()
    Base.metadata.create_all(fresh_engine)  # a development build's tables, never migrated
    with pytest.raises(ConfigError, match="match no migration"):
        init_schema(fresh_engine)
