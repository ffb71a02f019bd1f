"""Keeps the gateway's in-memory snapshot of bans, grants, openings, exams and download limits in step
with the store.

The store is polled for its revision number (one tiny query); the snapshot is reloaded only when
it moved. When the database is unreachable the gateway goes on enforcing the last snapshot it had:
grants still expire on time because every object carries its own window.

- The first snapshot is loaded while the addon is configured at startup, before the proxy decides
  anything: otherwise a banned pupil gets through in the first moments after every restart.
- Every check runs in its own daemon thread, one at a time. A database that stops answering
  (a silent network, not a refused connection) can then neither block the event loop nor keep the
  process from exiting; after `poortwachter_state_timeout` seconds without an answer the store
  counts as unreachable, and that same check is waited for (never a second one piled on top).
- A new Engine (the policy path, data directory or clock option changed) starts with an empty
  state; it gets the last snapshot at once, without waiting for the database.
- Every snapshot is also written to `state-snapshot.json` in the data directory: a gateway that
  restarts while the database is away enforces that one until the database answers again.
- Each check also counts pending requests, active grants, openings, exams, exclusions and
  download limits, and open audit cases, for the metrics (counts only: workflow.classroom.counts,
  published under the names in metrics.WORKFLOW).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from mitmproxy import ctx
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from poortwachter import metrics
from poortwachter.gateway import Engine
from poortwachter.paths import resolve_data_dir
from poortwachter.state import State, state_from_dict, state_to_dict
from poortwachter.store import Store, default_url, open_store
from poortwachter.store.snapshot import Snapshot, load_snapshot, state_revision
from poortwachter.workflow.classroom import counts

from .engine import EngineAddon
from .options import seconds

log = logging.getLogger("poortwachter")

# libpq settings for PostgreSQL URLs that do not choose their own: without them a connection
# attempt into a silent network waits for the kernel's SYN retries (minutes), and a query on a
# pooled connection whose peer vanished waits for TCP retransmission to give up (~15 minutes).
PG_TIMEOUTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",   # ms
}
LIBPQ_DRIVERS = ("psycopg", "psycopg2")


def store_url(url: str) -> str:
    """The URL the gateway connects with: PostgreSQL over libpq gets PG_TIMEOUTS unless set."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() not in LIBPQ_DRIVERS:
        return url
    missing = {k: v for k, v in PG_TIMEOUTS.items() if k not in parsed.query}
    return parsed.update_query_dict(missing).render_as_string(hide_password=False) if missing else url


class _Check:
    """One check of the store in a daemon thread; the event loop waits for it without blocking."""

    def __init__(self, url: str, work: Callable[[], Snapshot | None]) -> None:
        self.url = url
        self.finished = threading.Event()
        self.snapshot: Snapshot | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._wake: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        threading.Thread(target=self._run, args=(work,), name="poortwachter-state", daemon=True).start()

    def _run(self, work: Callable[[], Snapshot | None]) -> None:
        try:
            self.snapshot = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop, which reports it
            self.error = exc
        with self._lock:
            self.finished.set()
            wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):   # the loop is closed: the gateway is stopping
                wake[0].call_soon_threadsafe(wake[1].set)

    async def wait(self, timeout: float) -> bool:
        """True if the check finished, False if it is still running after `timeout` seconds."""
        with self._lock:
            if self.finished.is_set():
                return True
            if self._wake is None:
                self._wake = (asyncio.get_running_loop(), asyncio.Event())
            event = self._wake[1]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class StateSync:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine
        self.store: Store | None = None       # used only by the check thread (one at a time)
        self._store_url = ""
        self.revision: int | None = None      # of the snapshot in force
        self._state: State | None = None      # the snapshot in force
        self._given: Engine | None = None     # the Engine that has it
        self._url = ""
        self._check: _Check | None = None
        self._first_tried = False
        self._task: asyncio.Task[None] | None = None
        self._healthy = True
        self._failing: str | None = None      # an unexpected error already logged
        self._interval = 2.0
        self._timeout = 10.0
        self._data_dir: Path | None = None
        self._counts: dict[str, int] | None = None   # written by the check thread, read by the loop

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_db", str, "",
                          "Store URL (SQLAlchemy); empty: SQLite poortwachter.db in the data directory.")
        loader.add_option("poortwachter_state_interval", str, "2.0", "Seconds between checks of the store.")
        loader.add_option("poortwachter_state_timeout", str, "10.0",
                          "Seconds a check of the store may take before it counts as unreachable; "
                          "also how long startup waits for the first snapshot.")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_state_interval" in updated:
            self._interval = seconds("poortwachter_state_interval", ctx.options.poortwachter_state_interval)
        if "poortwachter_state_timeout" in updated:
            self._timeout = seconds("poortwachter_state_timeout", ctx.options.poortwachter_state_timeout, low=0.5)
        if not self._url or updated & {"poortwachter_db", "poortwachter_data_dir"}:
            self._data_dir = resolve_data_dir(ctx.options.poortwachter_data_dir or None)
            url = ctx.options.poortwachter_db or default_url(self._data_dir)
            if url != self._url:
                self._url = url
                self.revision = None   # another store: load it whole
        engine = self.engine.engine
        if engine is None or engine is self._given:
            return
        if self._state is not None:
            self._give(engine)
        elif not self._first_tried and self._task is None:
            self._first_load()

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
        check = self._check
        if self.store is not None and (check is None or check.finished.is_set()):
            self.store.close()
        # else the check thread is stuck in the database: a daemon thread, it ends with the process

    # --- the checks ------------------------------------------------------------------------
    def _first_load(self) -> None:
        """Startup: wait (boundedly) for the first snapshot, so that no request is decided
        without the bans and exams in force. Blocking here is fine: nothing is served yet."""
        self._first_tried = True
        check = self._start()
        if check.finished.wait(self._timeout):
            self._finish(check)
        else:
            self._unreachable(f"no answer within {self._timeout:g} s (geen antwoord)")
        if self._state is None:
            self._load_saved()

    def _start(self) -> _Check:
        engine = self.engine.engine
        assert engine is not None
        url, known, now = self._url, self.revision, engine.clock()
        self._check = _Check(url, lambda: self._refresh(url, known, now))
        return self._check

    def _refresh(self, url: str, known: int | None, now: dt.datetime) -> Snapshot | None:
        """In the check thread: a new snapshot, or None when the revision did not move."""
        if self.store is None or self._store_url != url:
            if self.store is not None:
                self.store.close()
                self.store = None
            self.store = open_store(store_url(url))
            self._store_url = url
        with self.store.read() as session:
            self._counts = counts(session, now=now)
        if known is not None and state_revision(self.store) == known:
            return None
        return load_snapshot(self.store, now)

    async def _loop(self) -> None:
        while True:
            await self._sync()
            await asyncio.sleep(self._interval)

    async def _sync(self) -> None:
        engine = self.engine.engine
        if engine is None:
            return
        if self._state is not None and engine is not self._given:
            self._give(engine)
        check = self._check or self._start()
        if not await check.wait(self._timeout):
            self._unreachable(f"no answer within {self._timeout:g} s (geen antwoord)")
            return   # the same check is waited for next time
        self._finish(check)

    def _finish(self, check: _Check) -> None:
        self._check = None
        error = check.error
        if error is None:
            if not self._healthy:
                log.info("store reachable again (opslag weer bereikbaar)")
                self._healthy = True
            self._failing = None
            self._publish_counts()
            if check.snapshot is not None and check.url == self._url:
                self._apply(check.snapshot)
        elif isinstance(error, (SQLAlchemyError, OSError)):
            self._unreachable(type(error).__name__)
        elif type(error).__name__ != self._failing:   # once, not every interval
            self._failing = type(error).__name__
            log.error("state refresh failed (toestand niet geladen)", exc_info=error)

    def _unreachable(self, why: str) -> None:
        # Only the kind of failure: a driver's message may carry the database host or a query.
        if self._healthy:
            log.warning("store unreachable, enforcing the last snapshot (opslag onbereikbaar): %s", why)
            self._healthy = False

    def _apply(self, snapshot: Snapshot) -> None:
        self.revision = snapshot.revision
        self._state = snapshot.state
        engine = self.engine.engine
        if engine is not None:
            self._give(engine)
        self._save(snapshot)
        log.info("state snapshot loaded (toestand geladen): revision %d", snapshot.revision)

    def _publish_counts(self) -> None:
        found = self._counts
        if found is not None:
            for name, gauge in metrics.WORKFLOW.items():
                gauge.set(found.get(name, 0))

    # --- the snapshot on disk ---------------------------------------------------------------
    def _saved_path(self) -> Path | None:
        return self._data_dir / "state-snapshot.json" if self._data_dir is not None else None

    def _save(self, snapshot: Snapshot) -> None:
        path = self._saved_path()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"revision": snapshot.revision, "state": state_to_dict(snapshot.state)}))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("state snapshot not saved (toestand niet bewaard): %s", type(exc).__name__)

    def _load_saved(self) -> None:
        """The database did not answer at startup: enforce the snapshot saved last time."""
        path = self._saved_path()
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
            self._state = state_from_dict(saved["state"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("saved state snapshot unusable (bewaarde toestand onbruikbaar): %s", type(exc).__name__)
            return
        engine = self.engine.engine
        if engine is not None:
            self._give(engine)
        log.warning("enforcing the saved state snapshot of revision %s (bewaarde toestand)", saved.get("revision"))

    def _give(self, engine: Engine) -> None:
        assert self._state is not None
        engine.set_state(self._state)
        self._given = engine
