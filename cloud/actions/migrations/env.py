"""Alembic environment of the actions database.

``init_schema`` runs it on a connection of its own (``config.attributes["connection"]``); the
``alembic`` command works too, with ``-x url=postgresql+psycopg://...`` or ``--sql`` for a
script a database administrator reviews and runs.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cloud.actions.db import Base, import_models, include_name

config = context.config
import_models()
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database as: alembic -x url=sqlite:///forewarn.db ...")
    return url


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = sa.create_engine(_url())
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()
    else:
        _run(connection)


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
