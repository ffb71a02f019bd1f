"""Keeps the gateway's in-memory snapshot of bans, grants, openings and exams in step with the store.

The store is polled for its revision number (one tiny query); the snapshot is reloaded only when
it moved. When the database is unreachable the gateway goes on enforcing the last snapshot it had:
grants still expire on time because every object carries its own window.
"""

from __future__ import annotations

import asyncio
import logging

from mitmproxy import ctx
from sqlalchemy.exc import SQLAlchemyError

from poortwachter.paths import resolve_data_dir
from poortwachter.store import Store, default_url, open_store
from poortwachter.store.snapshot import Snapshot, load_snapshot, state_revision

from .engine import EngineAddon
from .options import seconds

log = logging.getLogger("poortwachter")


class StateSync:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine
        self.store: Store | None = None
        self.revision: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._healthy = True
        self._interval = 2.0

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_db", str, "",
                          "Store URL (SQLAlchemy); empty: SQLite poortwachter.db in the data directory.")
        loader.add_option("poortwachter_state_interval", str, "2.0", "Seconds between checks of the store.")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_state_interval" in updated:
            self._interval = seconds("poortwachter_state_interval", ctx.options.poortwachter_state_interval)

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.store is not None:
            self.store.close()

    def _url(self) -> str:
        return ctx.options.poortwachter_db or default_url(resolve_data_dir(ctx.options.poortwachter_data_dir or None))

    def _refresh(self) -> Snapshot | None:
        """Runs in a worker thread: returns a new snapshot, or None when nothing changed."""
        engine = self.engine.engine
        if engine is None:
            return None
        if self.store is None:
            self.store = open_store(self._url())
        if state_revision(self.store) == self.revision:
            return None
        return load_snapshot(self.store, engine.clock())

    async def _loop(self) -> None:
        while True:
            try:
                snapshot = await asyncio.to_thread(self._refresh)
                if not self._healthy:
                    log.info("store reachable again (opslag weer bereikbaar)")
                    self._healthy = True
                if snapshot is not None and self.engine.engine is not None:
                    self.revision = snapshot.revision
                    self.engine.engine.set_state(snapshot.state)
                    log.info("state snapshot loaded (toestand geladen): revision %d", self.revision)
            except (SQLAlchemyError, OSError) as exc:
                if self._healthy:
                    log.warning("store unreachable, enforcing the last snapshot (opslag onbereikbaar): %s",
                                type(exc).__name__)
                    self._healthy = False
            except Exception:
                log.exception("state refresh failed")
            await asyncio.sleep(self._interval)
