"""Opening the store: engines, sessions scoped to a unit of work, and migrations.

SQLite (embedded, one gateway) and PostgreSQL (gateways sharing state) behave the same to callers:
- reads see one consistent snapshot per unit of work (SQLite: a deferred transaction under WAL;
  PostgreSQL: REPEATABLE READ), so a State and its revision always belong together;
- writes serialise: SQLite takes the write lock at BEGIN (BEGIN IMMEDIATE, waiting up to
  busy_timeout) instead of failing half-way when a read transaction tries to upgrade; PostgreSQL
  writers queue on the single `meta` row that every change bumps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

ALEMBIC_INI = Path(__file__).with_name("alembic.ini")
BUSY_TIMEOUT_MS = 10_000
# pg_advisory_xact_lock key: two gateways starting at once must not both create the schema.
MIGRATION_LOCK = 0x706F6F7274  # "poort"
_WRITE = "poortwachter_write"  # execution option: this connection's transactions will write


def default_url(data_dir: Path) -> str:
    """The embedded database: sqlite:///<data_dir>/poortwachter.db (absolute path)."""
    return f"sqlite:///{(Path(data_dir) / 'poortwachter.db').resolve()}"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take BEGIN away from the sqlite3 module (it skips it for SELECT, breaking snapshot reads);
    # _sqlite_begin emits it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")   # readers never block the writer, nor it them
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL, far fewer fsyncs
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


def make_engine(url: str, *, write: bool = False) -> Engine:
    """An engine with the store's connection settings. `write=True` marks its transactions as
    writing (SQLite: BEGIN IMMEDIATE). Creates the directory of a SQLite file if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        # pre_ping: after a database restart a gateway reconnects instead of failing one reload.
        engine = create_engine(parsed, pool_pre_ping=True)
    return engine.execution_options(**{_WRITE: True}) if write else engine


@dataclass(frozen=True)
class Store:
    """An open store. Use `read()` / `write()` for a unit of work; `sessions` makes write-capable
    sessions for callers that manage the transaction themselves."""

    engine: Engine
    sessions: sessionmaker[Session]
    _reads: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """One consistent snapshot; nothing is written (the transaction is rolled back)."""
        with self._reads() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, upgrade: bool = True) -> Store:
    """Open the store at `url`, migrating it to the newest schema first (unless upgrade=False)."""
    engine = make_engine(url)
    if upgrade:
        _alembic(engine, lambda cfg: command.upgrade(cfg, "head"))
    writes = engine.execution_options(**{_WRITE: True})
    reads = engine
    if engine.dialect.name == "postgresql":
        reads = engine.execution_options(isolation_level="REPEATABLE READ")
    return Store(
        engine=engine,
        sessions=sessionmaker(writes, expire_on_commit=False),
        _reads=sessionmaker(reads, expire_on_commit=False),
    )


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the newest)."""
    engine = make_engine(url)
    try:
        _alembic(engine, lambda cfg: command.upgrade(cfg, revision))
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    """Downgrade the database at `url` to `revision` ("base" drops every table)."""
    engine = make_engine(url)
    try:
        _alembic(engine, lambda cfg: command.downgrade(cfg, revision))
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The Alembic revision the database at `url` is at (None: not migrated)."""
    from alembic.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def migration_lock(conn: Connection) -> None:
    """Serialise migrations between processes for the rest of this transaction. SQLite needs
    nothing more: the migrating transaction began with BEGIN IMMEDIATE."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def alembic_config() -> Config:
    return Config(str(ALEMBIC_INI))


def _alembic(engine: Engine, run: Callable[[Config], None]) -> None:
    # The whole migration runs in one transaction on our connection (PostgreSQL and SQLite both
    # have transactional DDL), behind the migration lock.
    with engine.execution_options(**{_WRITE: True}).begin() as conn:
        migration_lock(conn)
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        run(cfg)


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
