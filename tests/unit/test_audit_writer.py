"""The audit recorder's background writer (auditlog/writer.py) and its store side
(store/audit_repo.py, migration 0003) on SQLite and PostgreSQL: batches reach the store in order
and exactly once, through outages, slow writes, restarts and replays of the spool. These tests
run the writer in fast mode (the spool written only while the store fails);
test_audit_durable.py has durable recording.

The store is made to fail or hang through a thin wrapper around the real one; everything else
(sealing, the spool on disk, the database) is real.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from poortwachter import metrics
from poortwachter.audit.keystore import KeyStore, write_escrow_public
from poortwachter.audit.pseudonym import open_period_key, pseudonym
from poortwachter.audit.record import RESTART, AuditEvent, Seen, build_event
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.audit.sequence import SequenceFile
from poortwachter.audit.spool import Spool, read_records
from poortwachter.auditlog.writer import Writer
from poortwachter.decide import Verdict
from poortwachter.store import Store, downgrade, migrate
from poortwachter.store.audit_repo import insert_events, store_period_keys
from poortwachter.store.db import current_revision
from poortwachter.store.models import AuditEventRow, AuditPeriodKeyRow

from ..dbfixtures import BACKENDS, backend_url

DEADLINE = 20.0
BLOCK = Verdict("block", "verboden-categorieen", "004 art. 11a", "porno", "klas", "pupil", "1e-blok")
ALLOW = Verdict("allow", "standaard", "", None, "kantine", "pupil", "pauze")


def wait_until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        time.sleep(0.02)


def counted(result: str) -> float:
    return metrics.AUDIT_EVENTS.labels(result)._value.get()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with backend_url(request.param, tmp_path, sqlite_dir="db", schema_prefix="pw_audit", timezone=None) as url:
        yield url


class FlakyStore:
    """The real store, except that while `down` is set every write fails as a refused connection
    does, and while `gate` is clear every write waits (a silent network)."""

    def __init__(self, real: Store) -> None:
        self.real = real
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.attempts = 0

    def open(self, url: str) -> FlakyStore:
        if self.down.is_set():
            raise OperationalError("connect", {}, ConnectionRefusedError())
        return self

    @contextmanager
    def write(self) -> Iterator[Session]:
        self.attempts += 1
        if self.down.is_set():
            raise OperationalError("INSERT", {}, ConnectionResetError())
        self.gate.wait()
        with self.real.write() as session:
            yield session

    def close(self) -> None:
        pass


@dataclasses.dataclass
class Rig:
    data: Path
    flaky: FlakyStore
    escrow: tuple[bytes, bytes]
    queue: deque[Seen] = dataclasses.field(default_factory=deque)
    writer: Writer | None = None
    sent: int = 0

    def start(self, **kw: object) -> Writer:
        audit = self.data / "audit"
        options: dict[str, object] = {"interval": 0.05, "timeout": 0.5, "retry": 0.1, "durable": False}
        options.update(kw)
        mode = "durable" if options["durable"] else "fast"
        self.writer = Writer(queue=self.queue, keystore=KeyStore(audit), spool=Spool(audit / "spool"),
                             sequence=SequenceFile(audit / "seq", mode=mode), url="flaky://", gateway="gw-test",
                             urls=lambda seen: True, opener=self.flaky.open, **options).start()  # type: ignore[arg-type]
        return self.writer

    def send(self, n: int, verdict: Verdict = BLOCK) -> None:
        for _ in range(n):
            self.sent += 1
            client = ipaddress.ip_address(f"10.1.{self.sent // 250}.{self.sent % 250 + 1}")
            self.queue.append(Seen(time.time(), "http", verdict, client, ["www.pornhub.com"], f"/{self.sent}"))

    def rows(self) -> list[SimpleNamespace]:
        """The events recorded, without the restart marker that opens each run."""
        return [r for r in _rows(self.flaky.real) if r.kind != RESTART]

    def markers(self) -> list[SimpleNamespace]:
        return [r for r in _rows(self.flaky.real) if r.kind == RESTART]

    def all_in_store(self) -> bool:
        return len(self.rows()) == self.sent


@pytest.fixture
def rig(tmp_path: Path, store: Store) -> Iterator[Rig]:
    keys = generate_keypair()
    write_escrow_public(tmp_path / "audit", keys[1])
    r = Rig(tmp_path, FlakyStore(store), keys)
    yield r
    r.flaky.gate.set()
    if r.writer is not None:
        r.writer.stop(timeout=10)


def _rows(store: Store, table: Any = AuditEventRow) -> list[SimpleNamespace]:
    """Plain copies of the rows (a read unit of work ends in a rollback, which expires ORM objects)."""
    t = table.__table__
    with store.read() as session:
        found = session.execute(select(t).order_by(*t.primary_key.columns)).mappings().all()
    return [SimpleNamespace(**row) for row in found]


def _exactly_once_in_order(rig: Rig) -> list[SimpleNamespace]:
    rows = rig.rows()
    seqs = [row.seq for row in rows]
    assert len(rows) == rig.sent and len(set(seqs)) == len(seqs)        # every event, once
    assert seqs == sorted(seqs)                                          # ids follow seq
    paths = [json.loads(unseal(rig.escrow[0], row.sealed, _event_of(row).aad()))["details"]["path"]
             for row in rows]
    assert paths == [f"/{i}" for i in range(1, rig.sent + 1)]            # in the order decided
    return rows


def _event_of(row: SimpleNamespace) -> AuditEvent:
    return AuditEvent(**{f.name: getattr(row, f.name) for f in dataclasses.fields(AuditEvent) if f.init})


# --- the store side -----------------------------------------------------------------------------

def test_insert_is_idempotent_and_a_reused_seq_is_reported(store: Store) -> None:
    _, public = generate_keypair()
    at = dt.datetime(2026, 11, 24, 8, tzinfo=dt.UTC)
    events = [build_event(Seen(at.timestamp(), "tls", ALLOW, ipaddress.ip_address("10.0.0.1"), ["a.nl"], None),
                          seq=seq, gateway="gw", at=at, period="2026-W48", pseudonym="x" * 32,
                          escrow_public=public, urls=False) for seq in range(5)]
    with store.write() as s:
        assert insert_events(s, events[:3]).inserted == 3
    with store.write() as s:
        result = insert_events(s, events)           # a replay of an overlapping batch
    assert (result.inserted, result.duplicates, result.conflicts) == (2, 3, [])
    with store.write() as s:
        other = dataclasses.replace(events[1], rule="iets-anders")
        result = insert_events(s, [other])
    assert (result.inserted, result.duplicates, result.conflicts) == (0, 0, [1])
    rows = _rows(store)
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4] and rows[1].rule == "standaard"   # never overwritten
    assert [bytes(r.leaf_hash) for r in rows] == [e.leaf_hash() for e in events]
    assert all(_event_of(r) == e for r, e in zip(rows, events, strict=True))  # rows rebuild the events


def test_period_keys_keep_the_first_copy(store: Store) -> None:
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    with store.write() as s:
        store_period_keys(s, "gw", {"2026-W48": b"first"}, now=now)
    with store.write() as s:
        store_period_keys(s, "gw", {"2026-W48": b"second", "2026-W49": b"next"}, now=now)
        store_period_keys(s, "gw-2", {"2026-W48": b"other gateway"}, now=now)
    rows = {(r.gateway, r.period): bytes(r.sealed_key) for r in _rows(store, AuditPeriodKeyRow)}
    assert rows == {("gw", "2026-W48"): b"first", ("gw", "2026-W49"): b"next", ("gw-2", "2026-W48"): b"other gateway"}


def test_migration_0003_up_and_down(db_url: str) -> None:
    migrate(db_url, "0003")
    assert current_revision(db_url) == "0003"
    engine = create_engine(db_url)
    try:
        assert {"audit_events", "audit_period_keys", "audit_keys"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    downgrade(db_url, "0002")
    engine = create_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert not {"audit_events", "audit_period_keys", "audit_keys"} & tables and "bans" in tables


# --- the writer -------------------------------------------------------------------------------------

def test_events_reach_the_store_sealed_with_their_period_key(rig: Rig) -> None:
    rig.start()
    rig.send(50)
    rig.send(10, ALLOW)
    wait_until(rig.all_in_store, "60 events stored")
    rows = rig.rows()
    private = rig.escrow[0]
    (key_row,) = _rows(rig.flaky.real, AuditPeriodKeyRow)
    assert key_row.gateway == "gw-test" and key_row.period == rows[0].period
    period_key = open_period_key(private, key_row.period, bytes(key_row.sealed_key))
    for row in rows[:3]:
        opened = json.loads(unseal(private, row.sealed, _event_of(row).aad()))
        assert row.pseudonym == pseudonym(period_key, opened["subject"]["client"])
    assert [r.action for r in rows].count("allow") == 10
    # the sealed copy of the period key has reached the store: the local one goes (once the writer
    # has seen the commit, a moment after the rows are visible)
    wait_until(lambda: not list((rig.data / "audit").glob("sealed-period-key-*")), "the local sealed copy removed")


def test_store_outage_spools_then_replays_in_order_exactly_once(rig: Rig) -> None:
    writer = rig.start()
    spooled, replayed = counted("spooled"), counted("replayed")
    rig.send(100)
    wait_until(rig.all_in_store, "the first events stored")

    rig.flaky.down.set()                        # the database goes away
    rig.send(200)
    wait_until(lambda: len(list(read_records(rig.data / "audit" / "spool"))) == 200, "200 events spooled")
    assert len(rig.rows()) == 100
    rig.send(100)                               # more while it is away: behind the others
    wait_until(lambda: len(list(read_records(rig.data / "audit" / "spool"))) == 300, "300 events spooled")

    rig.flaky.down.clear()                      # back
    rig.send(100)                               # new events must not overtake the spooled ones
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "everything stored, spool empty")
    _exactly_once_in_order(rig)
    assert counted("spooled") - spooled >= 300 and counted("replayed") - replayed >= 300
    assert not list((rig.data / "audit" / "spool").glob("*.spool"))


def test_slow_store_write_goes_to_the_spool_and_is_not_doubled(rig: Rig) -> None:
    writer = rig.start(timeout=0.3)
    rig.send(20)
    wait_until(rig.all_in_store, "the first events stored")

    rig.flaky.gate.clear()                      # a silent network: the next write hangs
    rig.send(50)
    wait_until(lambda: len(list(read_records(rig.data / "audit" / "spool"))) >= 50,
               "the hanging batch is spooled after the timeout")
    rig.send(50)
    wait_until(lambda: len(list(read_records(rig.data / "audit" / "spool"))) == 100, "the next batch behind it")

    rig.flaky.gate.set()                        # the slow write completes after all ...
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "everything stored, spool empty")
    _exactly_once_in_order(rig)                 # ... and its replay did not double it


def test_stop_spools_what_the_store_cannot_take_and_a_restart_replays_it(rig: Rig) -> None:
    writer = rig.start()
    rig.send(30)
    wait_until(rig.all_in_store, "the first events stored")
    rig.flaky.down.set()
    rig.send(70)
    assert writer.stop(timeout=10)              # shutdown during the outage: nothing accepted is lost
    spooled = [AuditEvent.from_canonical(r) for r in read_records(rig.data / "audit" / "spool")]
    assert len(spooled) == 70 and len(rig.rows()) == 30
    first_run = max(e.seq for e in spooled)

    rig.flaky.down.clear()
    writer = rig.start()                        # the next run replays before anything new
    rig.send(10)
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "the spool replayed after the restart")
    rows = _exactly_once_in_order(rig)
    assert min(r.seq for r in rows[100:]) > first_run      # a restart never reuses a sequence number


def test_stop_with_the_store_up_writes_everything(rig: Rig) -> None:
    writer = rig.start(interval=5.0)            # no regular round before the stop
    rig.send(40)
    assert writer.stop(timeout=10)
    assert rig.all_in_store() and writer.spool.empty
    _exactly_once_in_order(rig)


def test_without_escrow_key_nothing_personal_is_recorded(rig: Rig) -> None:
    (rig.data / "audit" / "escrow.pub").unlink()
    rig.start()
    rig.send(5)
    wait_until(rig.all_in_store, "5 events stored")
    rows = rig.rows()
    assert all(r.sealed is None and r.pseudonym is None for r in rows)
    assert {(r.zone, r.action, r.category) for r in rows} == {("klas", "block", "porno")}
    assert not list((rig.data / "audit").glob("pseudonym-key-*"))


def test_stop_while_a_write_hangs_spools_everything_and_nothing_doubles(rig: Rig) -> None:
    writer = rig.start(timeout=0.3)
    rig.send(10)
    wait_until(rig.all_in_store, "the first events stored")
    rig.flaky.gate.clear()                      # the next write hangs, and is still hanging at the stop
    rig.send(30)
    wait_until(lambda: writer._job is not None and not writer._job.done.is_set(), "a write is hanging")
    hung = writer._job
    assert hung is not None
    rig.send(20)
    assert writer.stop(timeout=10)
    spooled = [AuditEvent.from_canonical(r) for r in read_records(rig.data / "audit" / "spool")]
    assert len(spooled) == 50                   # the hanging batch and everything after it

    rig.flaky.gate.set()                        # the hung write lands after all, after the stop ...
    wait_until(hung.done.is_set, "the late write")
    assert hung.error is None and len(rig.rows()) == 10 + len(hung.events)
    writer = rig.start()                        # ... and the next run's replay does not double it
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "the spool replayed")
    _exactly_once_in_order(rig)
