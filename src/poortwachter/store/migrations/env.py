"""Alembic environment for the Poortwachter store.

Run from the application, `poortwachter.store.db` hands over an open connection (inside a
transaction that already holds the migration lock) in `config.attributes["connection"]`. Run by
hand, the URL comes from POORTWACHTER_DB_URL or `sqlalchemy.url` in alembic.ini. Logging is left
alone on purpose: the application configures it, not a migration.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from poortwachter.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = os.environ.get("POORTWACHTER_DB_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("Geen database-URL: zet POORTWACHTER_DB_URL / No database URL: set POORTWACHTER_DB_URL")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from poortwachter.store.db import migration_lock, make_engine

    engine = make_engine(_url(), write=True)
    try:
        with engine.begin() as conn:
            migration_lock(conn)
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
