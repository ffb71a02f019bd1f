"""Helpers of the state tests (test_state.py): a gateway started with store options, a writer that
records what a test put in the store (so it can be revoked afterwards), and a TCP forwarder the
test can cut to make PostgreSQL unreachable without touching the shared server."""

from __future__ import annotations

import datetime as dt
import re
import socket
import struct
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any
from zoneinfo import ZoneInfo

from poortwachter.store import Store, repo, state_revision

from ..dbfixtures import pg_address, pg_unreachable, pg_url  # noqa: F401  (re-exported for the e2e tests)
from ..dbfixtures import pg_schema as shared_pg_schema
from .proxy import Gateway, wait_until

STATE_INTERVAL = "0.2"   # seconds between the gateway's polls of the store revision
STATE_TIMEOUT = "1.0"    # seconds without an answer before the gateway calls the store unreachable
SYNC_DEADLINE = 5.0      # "within seconds": a store change must be enforced by then

AMS = ZoneInfo("Europe/Amsterdam")
ACTOR = "ict:e2e"

_LOADED = re.compile(r"state snapshot loaded \(toestand geladen\): revision (\d+)")


def at(hhmm: str) -> dt.datetime:
    """A moment on the test day of proxy.LESSON (Tuesday 24 November 2026), Amsterdam time."""
    hour, minute = map(int, hhmm.split(":"))
    return dt.datetime(2026, 11, 24, hour, minute, tzinfo=AMS)


class StateGateway(Gateway):
    """The harness's gateway with the store options: a fast state poll, a short check timeout and,
    optionally, a store URL (default: SQLite poortwachter.db in the gateway's data directory)."""

    def __init__(self, *args: Any, db_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.db_url = db_url

    def argv(self) -> list[str]:
        extra = ["--set", f"poortwachter_state_interval={STATE_INTERVAL}",
                 "--set", f"poortwachter_state_timeout={STATE_TIMEOUT}"]
        if self.db_url:
            extra += ["--set", f"poortwachter_db={self.db_url}"]
        return super().argv() + extra

    def loaded_revision(self) -> int | None:
        """The newest store revision the gateway says it loaded (from its stderr)."""
        found = _LOADED.findall(self.stderr())
        return int(found[-1]) if found else None

    def snapshot_loads(self) -> int:
        return len(_LOADED.findall(self.stderr()))

    def wait_for_revision(self, revision: int, timeout: float = SYNC_DEADLINE) -> None:
        wait_until(lambda: (self.loaded_revision() or 0) >= revision, timeout,
                   f"gateway loaded store revision {revision}")


class StoreChanges:
    """Adds bans, grants, openings and exams through the repository, each in its own unit of work
    (as the console will), and remembers them so `revoke_all` can leave the store empty."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.added: list[tuple[str, int]] = []

    def _add(self, kind: str, add: Callable[..., int], **kwargs: Any) -> int:
        with self.store.write() as session:
            object_id = add(session, actor=ACTOR, reason=f"e2e: {kind}", **kwargs)
        self.added.append((kind, object_id))
        return object_id

    def ban(self, subject: str, until: dt.datetime, **kwargs: Any) -> int:
        return self._add("ban", repo.add_ban, subject=subject, until=until, **kwargs)

    def grant(self, start: dt.datetime, end: dt.datetime, **kwargs: Any) -> int:
        return self._add("grant", repo.add_grant, start=start, end=end, **kwargs)

    def opening(self, zone: str, mode: str, until: dt.datetime, **kwargs: Any) -> int:
        return self._add("opening", repo.add_opening, zone=zone, mode=mode, until=until, **kwargs)

    def exam(self, zone: str, until: dt.datetime, **kwargs: Any) -> int:
        return self._add("exam", repo.add_exam, zone=zone, until=until, **kwargs)

    def revoke(self, kind: str, object_id: int) -> bool:
        revoke = {"ban": repo.revoke_ban, "grant": repo.revoke_grant,
                  "opening": repo.revoke_opening, "exam": repo.revoke_exam}[kind]
        with self.store.write() as session:
            return revoke(session, object_id, actor=ACTOR, reason="e2e: opgeruimd")

    def revoke_all(self) -> None:
        for kind, object_id in self.added:
            self.revoke(kind, object_id)
        self.added.clear()

    def revision(self) -> int:
        return state_revision(self.store)


# --- PostgreSQL ------------------------------------------------------------------------------

def pg_schema() -> AbstractContextManager[str]:
    """A fresh schema on the test server for one test, dropped afterwards (tests/dbfixtures.py)."""
    return shared_pg_schema("pw_e2e")


# --- a TCP forwarder the test can cut ----------------------------------------------------------

class TcpForwarder:
    """127.0.0.1:<port> -> target, one pair of pump threads per connection.

    `cut()` is the database going away as a client sees it when the server is down or a firewall
    rejects: open connections are reset and new ones are accepted and closed at once (counted in
    `refused`, so a test can wait until the gateway has really tried again). `stall()` is a
    network that silently drops everything: bytes are no longer passed on either way and new
    connections are accepted but never answered (counted in `held`). `restore()` lets everything
    through again, including what a stall held back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)   # so the accept loop notices close()
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._open = True
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._held: list[socket.socket] = []
        self.refused = 0
        self.held = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name="e2e-forwarder")
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def cut(self) -> None:
        with self._lock:
            self._open = False
            conns, self._conns = self._conns, set()
        for conn in conns:
            _reset(conn)

    def stall(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        with self._lock:
            self._open = True
            held, self._held = self._held, []
        self._flowing.set()
        for client in held:   # connected during the stall: connect them now
            self._forward(client)

    def close(self) -> None:
        self._closed = True
        self._flowing.set()
        self.cut()
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            _reset(sock)
        self._thread.join(timeout=5)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                allowed = self._open and not self._closed
                if not allowed:
                    self.refused += 1
                elif not self._flowing.is_set():
                    self._held.append(client)
                    self.held += 1
                    continue
            if not allowed:
                _reset(client)
                continue
            self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=5)
            server.settimeout(None)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._conns.update((client, server))
        for src, dst in ((client, server), (server, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                self._flowing.wait()       # a stall holds the bytes back, the sockets stay open
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in (src, dst):
            with self._lock:
                self._conns.discard(sock)
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees the connection die, not a polite goodbye."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
