"""The store backends the tests run on: SQLite (a file in tmp_path) and the PostgreSQL server at
127.0.0.1:5432 (database `test`; POORTWACHTER_TEST_PG_URL to use another server), where every test
gets its own fresh schema, dropped afterwards, so tests never see each other's rows.

`db_url` and `store` are exported as fixtures by tests/conftest.py; files that need a variant (another
SQLite directory, no session time zone) build their own fixture on `backend_url`."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from poortwachter.store import Store, default_url, open_store

PG_URL = os.environ.get("POORTWACHTER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# A session time zone far from UTC and Amsterdam (UTC+12:45/+13:45), so any time-zone slip shows.
PG_SESSION_TZ = "Pacific/Chatham"

# Parametrisation of the two backends; the ids ([sqlite], [postgres]) are part of the test ids.
BACKENDS: list[Any] = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@functools.cache
def pg_unreachable() -> str | None:
    """Why the PostgreSQL test server cannot be used, or None if it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        url = make_url(PG_URL)
        return f"PostgreSQL at {url.host}:{url.port} unreachable: {type(exc).__name__}"
    finally:
        engine.dispose()
    return None


def pg_address() -> tuple[str, int]:
    url = make_url(PG_URL)
    return url.host or "127.0.0.1", url.port or 5432


@contextmanager
def pg_schema(prefix: str = "pw_test") -> Iterator[str]:
    """A fresh schema on the test server, dropped (with everything in it) afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield schema
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


def pg_url(schema: str, address: tuple[str, int] | None = None, *, timezone: str | None = PG_SESSION_TZ) -> str:
    """The test server's URL in `schema`, optionally reached at another address (a forwarder)."""
    options = f"-csearch_path={schema}" + (f" -ctimezone={timezone}" if timezone else "")
    url = make_url(PG_URL).update_query_dict({"options": options})
    if address is not None:
        url = url.set(host=address[0], port=address[1])
    return url.render_as_string(hide_password=False)


@contextmanager
def backend_url(backend: str, tmp_path: Path, *, sqlite_dir: str = "data", schema_prefix: str = "pw_test",
                timezone: str | None = PG_SESSION_TZ) -> Iterator[str]:
    """A store URL on `backend` ("sqlite" or "postgres"); skips the test when PostgreSQL is not there."""
    if backend == "sqlite":
        yield default_url(tmp_path / sqlite_dir)
        return
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    with pg_schema(schema_prefix) as schema:
        yield pg_url(schema, timezone=timezone)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()
