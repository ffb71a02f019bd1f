"""Durable audit recording (addons/audit.py, auditlog/writer.py): an event is on disk, fsync'd
and numbered, before the hook that handed it over may answer; many events share one fsync; a
disk that does not confirm in time is answered anyway (counted, logged once); a full spool and a
store that is away drain once the store is back, and what cannot be kept is counted; each run
opens with a restart marker, and `audit verify` tells a restart from lost events.

The writer runs on SQLite and PostgreSQL with the real spool on disk; the store is made to fail
through the wrapper of test_audit_writer.py, the disk through a spool with a byte budget (the
end-to-end test, test_audit_crash.py, uses a real tiny file system).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from poortwachter_addons.audit import Waiters
from sqlalchemy import text

from poortwachter.audit.keystore import KeyStore, write_escrow_public
from poortwachter.audit.log import events_log
from poortwachter.audit.pseudonym import period_of
from poortwachter.audit.record import (
    RESTART,
    AuditEvent,
    Restart,
    restart_event,
    restart_of,
)
from poortwachter.audit.seal import generate_keypair, unseal
from poortwachter.audit.sequence import SequenceFile
from poortwachter.audit.spool import Spool, read_records
from poortwachter.auditlog.retention import RetentionPolicy, apply_retention
from poortwachter.auditlog.verify import verify
from poortwachter.auditlog.writer import Writer
from poortwachter.store import Store, open_store

from .test_audit_verify import T0, add_events, checkpoint_round, codes, event, run_cli
from .test_audit_writer import FlakyStore, Rig, _event_of, counted, wait_until

SPOOL = ("audit", "spool")


class CountingSpool(Spool):
    """The real spool, counting its appends (each one write and one fsync) and how many records
    each carried; with `budget`, a disk that holds only that many bytes (ENOSPC beyond)."""

    def __init__(self, directory: Path, budget: int | None = None) -> None:
        super().__init__(directory)
        self.budget = budget
        self.appends: list[int] = []
        self.refused: list[int] = []

    def append(self, records: Sequence[bytes]) -> None:
        size = sum(len(r) + 8 for r in records)
        if self.budget is not None and self.size_bytes + size + 8 > self.budget:
            self.refused.append(len(records))
            raise OSError(errno.ENOSPC, "No space left on device")
        super().append(records)
        self.appends.append(len(records))


@pytest.fixture
def rig(tmp_path: Path, store: Store) -> Iterator[Rig]:
    """test_audit_writer.py's rig: the real store behind a switch, an escrow key, a queue."""
    keys = generate_keypair()
    write_escrow_public(tmp_path / "audit", keys[1])
    r = Rig(tmp_path, FlakyStore(store), keys)
    yield r
    r.flaky.gate.set()
    r.flaky.down.clear()
    if r.writer is not None:
        r.writer.stop(timeout=10)


def start(rig: Rig, spool: Spool | None = None, **kw: object) -> Writer:
    """A durable writer on the rig (its spool: `spool`, default a counting one)."""
    audit = rig.data / "audit"
    options: dict[str, object] = {"interval": 0.05, "timeout": 0.5, "retry": 0.1}
    options.update(kw)
    rig.writer = Writer(queue=rig.queue, keystore=KeyStore(audit),
                        spool=spool if spool is not None else CountingSpool(audit / "spool"),
                        sequence=SequenceFile(audit / "seq", mode="durable"), url="flaky://", gateway="gw-test",
                        urls=lambda seen: True, opener=rig.flaky.open, durable=True,
                        **options).start()  # type: ignore[arg-type]
    return rig.writer


def spooled(rig: Rig) -> list[AuditEvent]:
    return [AuditEvent.from_canonical(r) for r in read_records(rig.data.joinpath(*SPOOL))]


def paths(rig: Rig, events: Sequence[object]) -> list[str]:
    """The paths sealed in events (or rows), restart markers left out."""
    out = []
    for item in events:
        e = item if isinstance(item, AuditEvent) else _event_of(item)  # type: ignore[arg-type]
        if e.kind == RESTART:
            continue
        assert e.sealed is not None
        out.append(json.loads(unseal(rig.escrow[0], e.sealed, e.aad()))["details"]["path"])
    return out


# --- group commit: on disk before it is reported ---------------------------------------------------

def test_every_event_is_on_disk_before_it_is_reported_durable_and_rounds_share_an_fsync(rig: Rig) -> None:
    missing: list[tuple[int, set[str]]] = []      # reported events that were neither on disk nor stored
    reported = 0

    def on_durable(n: int) -> None:                # in the writer's thread, right after its fsync
        nonlocal reported
        reported += n
        durable = set(paths(rig, spooled(rig))) | set(paths(rig, rig.rows()))
        gone = {f"/{i}" for i in range(1, reported + 1)} - durable
        if gone:
            missing.append((reported, gone))

    spool = CountingSpool(rig.data.joinpath(*SPOOL))
    writer = start(rig, spool, on_durable=on_durable, interval=0.5)
    for burst in range(20):                       # bursts, as requests arrive: 25 at a time
        rig.send(25)
        writer.wake.set()
        time.sleep(0.01)
    wait_until(lambda: reported == 500, "all 500 reported durable")
    assert missing == []                          # reported durable = on disk (or stored) already
    assert sum(spool.appends) == 501              # each event written once (with the restart marker)
    assert len(spool.appends) < 100               # ... in far fewer writes than events: group commit
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "stored, the spool removed")
    assert paths(rig, rig.rows()) == [f"/{i}" for i in range(1, 501)]


def test_waiters_release_a_round_when_the_writer_has_it_on_disk() -> None:
    async def main() -> None:
        waiters = Waiters(wait=5.0)
        first, second = waiters.ticket(), waiters.ticket()
        assert first is second is not None        # one round, one future
        waiters.durable(1)
        await asyncio.sleep(0.01)
        assert not first.done()                   # its second event is not on disk yet
        third = waiters.ticket()                  # after a report: the next round
        assert third is not first
        waiters.durable(1)
        await asyncio.wait_for(first, 1.0)
        assert not third.done()
        waiters.durable(1)
        await asyncio.wait_for(third, 1.0)
        waiters.close()

    asyncio.run(main())


def test_a_round_not_on_disk_in_time_is_answered_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        unconfirmed = counted("unconfirmed")
        waiters = Waiters(wait=0.05)
        late = [waiters.ticket() for _ in range(3)]
        started = time.monotonic()
        await asyncio.wait_for(late[0], 2.0)      # answered although the writer said nothing
        assert time.monotonic() - started >= 0.04
        assert counted("unconfirmed") - unconfirmed == 3
        assert waiters.ticket() is None           # until the disk confirms: answered at once, counted
        assert waiters.ticket() is None
        assert counted("unconfirmed") - unconfirmed == 5
        waiters.durable(5)                        # the disk took everything after all
        await asyncio.sleep(0.01)
        again = waiters.ticket()
        assert again is not None and not again.done()    # waiting again
        waiters.durable(1)
        await asyncio.wait_for(again, 1.0)

    with caplog.at_level(logging.ERROR, logger="poortwachter"):
        asyncio.run(main())
    assert sum("not on disk within" in r.getMessage() for r in caplog.records) == 1


def test_a_hook_waiting_on_its_ticket_finds_its_event_on_disk(rig: Rig) -> None:
    """The recorder's path end to end in one process: queue, ticket, the writer's thread, the
    event loop. When the awaited future is done, the event is in the spool with its number."""

    async def main() -> None:
        waiters = Waiters(wait=10.0)
        writer = start(rig, on_durable=waiters.durable, interval=5.0)   # no store batch meanwhile
        for i in range(1, 31):
            rig.send(1)
            ticket = waiters.ticket()
            if writer.sleeping:
                writer.wake.set()
            assert ticket is not None
            await asyncio.wait_for(ticket, 5.0)
            assert f"/{i}" in paths(rig, spooled(rig))
        waiters.close()

    asyncio.run(main())


# --- the spool always drains ----------------------------------------------------------------------------

def test_a_full_spool_with_the_store_away_drains_when_the_store_is_back(rig: Rig) -> None:
    dropped = counted("dropped")
    spool = CountingSpool(rig.data.joinpath(*SPOOL), budget=40_000)     # about 60 events
    writer = start(rig, spool, retry=0.2, batch=50)
    rig.send(20)
    wait_until(rig.all_in_store, "the first events stored")

    rig.flaky.down.set()                          # the store goes away ...
    rig.send(300)                                 # ... and the disk fills up
    wait_until(lambda: len(spool.refused) >= 3, "the full disk refused writes")
    degraded_since = time.monotonic()
    time.sleep(1.0)
    rig.send(100)
    time.sleep(0.5)
    attempts = len(spool.refused)
    elapsed = time.monotonic() - degraded_since
    # bounded cost while degraded: one attempt per `retry` seconds, at most `batch` events each
    assert attempts <= 3 + elapsed / 0.2 + 2, attempts
    assert max(spool.refused) <= writer.batch
    assert len(rig.rows()) == 20

    rig.flaky.down.clear()                        # the store comes back: the spool drains, the rest follows
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "everything stored, the spool empty")
    assert paths(rig, rig.rows()) == [f"/{i}" for i in range(1, 421)]    # every event, once, in order
    assert counted("dropped") == dropped
    wait_until(lambda: writer._mem == [] and not rig.queue, "nothing left in memory")


def test_what_neither_disk_nor_store_takes_is_dropped_counted_and_verify_finds_the_gap(
        rig: Rig, tmp_path: Path) -> None:
    dropped = counted("dropped")
    spool = CountingSpool(rig.data.joinpath(*SPOOL), budget=20_000)
    writer = start(rig, spool, max_pending=100)
    rig.send(10)
    wait_until(rig.all_in_store, "the first events stored")
    rig.flaky.down.set()
    rig.send(400)
    wait_until(lambda: not rig.queue and counted("dropped") > dropped, "events dropped")
    rig.flaky.down.clear()
    wait_until(lambda: len(rig.rows()) + counted("dropped") - dropped == 410 and writer.spool.empty,
               "every event stored or counted as dropped")
    lost = int(counted("dropped") - dropped)
    assert 0 < lost < 400
    rows = rig.rows()
    assert paths(rig, rows) == sorted(paths(rig, rows), key=lambda p: int(p[1:]))     # in order

    # the gap they left is in the log, and `audit verify` reports exactly that many lost events
    store = rig.flaky.real
    exported = tmp_path / "exported"
    checkpoint_round(store, exported, dt.datetime.now(dt.UTC))
    report = verify(store, exported)
    lost_findings = [f for f in report.findings if f.code == "lost"]
    assert not report.ok and len(lost_findings) == 1
    assert f" {lost} events after sequence number " in lost_findings[0].en


def test_events_kept_only_on_disk_are_replayed_before_newer_ones(rig: Rig) -> None:
    """Memory bounded below what the outage brings: the oldest events are forgotten from memory
    (they are on disk) and read back from the spool, oldest segment first, before the newer
    ones in memory; nothing is lost."""
    dropped = counted("dropped")
    writer = start(rig, max_pending=50)
    rig.send(5)
    wait_until(rig.all_in_store, "the first events stored")
    rig.flaky.down.set()
    rig.send(300)
    wait_until(lambda: not rig.queue and len(writer._mem) <= 50, "memory bounded")
    assert writer._disk_only_upto is not None
    rig.flaky.down.clear()
    wait_until(lambda: rig.all_in_store() and writer.spool.empty, "everything stored")
    assert paths(rig, rig.rows()) == [f"/{i}" for i in range(1, 306)]
    assert counted("dropped") == dropped


# --- restart markers ------------------------------------------------------------------------------------

def _crash(writer: Writer) -> None:
    """End a writer as SIGKILL would: no flush, no clean mark in the sequence file."""
    writer._final = lambda: None            # type: ignore[method-assign]
    assert writer.stop(timeout=10)


def test_each_run_opens_with_a_marker_of_how_the_previous_one_ended(rig: Rig) -> None:
    writer = start(rig)
    rig.send(10)
    wait_until(rig.all_in_store, "run 1 stored")
    assert writer.stop(timeout=10)
    first_last = max(r.seq for r in rig.rows())

    writer = start(rig)                            # run 2: after a clean stop
    rig.send(10)
    wait_until(lambda: len(rig.markers()) == 2 and rig.all_in_store(), "run 2 stored")
    marker = rig.markers()[-1]
    assert restart_of(marker.kind, marker.rule, marker.source) == Restart("stopped", first_last)
    assert marker.seq == first_last + 1            # a clean restart leaves no gap
    rig.flaky.down.set()                           # the store away: the next events stay on disk
    rig.send(5)
    wait_until(lambda: len(paths(rig, spooled(rig))) == 5, "on disk")
    _crash(writer)                                 # run 2 crashes
    on_disk = max(e.seq for e in spooled(rig))
    rig.flaky.down.clear()

    writer = start(rig)                            # run 3: after a crash in durable mode
    wait_until(lambda: len(rig.markers()) == 3 and rig.all_in_store(), "run 3 replayed run 2's spool")
    marker = rig.markers()[-1]
    assert restart_of(marker.kind, marker.rule, marker.source) == Restart("crashed", on_disk)
    assert marker.seq > on_disk + 1                # the rest of the block is skipped
    _crash(writer)

    rig.start(durable=False)                       # run 4: fast; crashes too
    wait_until(lambda: len(rig.markers()) == 4, "run 4's marker")
    assert rig.writer is not None
    _crash(rig.writer)
    writer = start(rig)                            # run 5 says run 4 was recording fast
    wait_until(lambda: len(rig.markers()) == 5, "run 5's marker")
    marker = rig.markers()[-1]
    assert restart_of(marker.kind, marker.rule, marker.source).previous == "crashed-fast"   # type: ignore[union-attr]
    assert all(m.pseudonym is None and m.sealed is None and m.zone == "" for m in rig.markers())


def test_sequence_file_states(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    first = SequenceFile(path, block=100, now=lambda: 5.0)
    assert first.previous.state == "new"
    assert [first.next() for _ in range(3)] == [5_000_000, 5_000_001, 5_000_002]
    assert path.read_text() == "5000100 durable\n"
    first.give_back(5_000_002)                     # its event could not be built: no gap for it
    assert first.next() == 5_000_002
    first.set_mode("degraded")
    assert path.read_text() == "5000100 degraded\n"
    first.stop(dropped=2)
    assert path.read_text() == "5000003 stopped dropped=2\n"
    second = SequenceFile(path, block=100, mode="fast")
    assert second.previous == ("stopped", 5_000_003, 2)
    assert second.next() == 5_000_003              # exactly where the clean stop left off
    third = SequenceFile(path, block=100)          # second "crashed" (never stopped)
    assert third.previous.state == "fast" and third.next() == 5_000_103
    path.write_text("42\n")                        # a file from before the states existed
    assert SequenceFile(path).previous == ("unknown", 42, 0)


# --- `audit verify`: a restart, a crash and lost events ---------------------------------------------

def marker(seq: int, at: dt.datetime, previous: str, last: int | None, gateway: str = "gw1") -> AuditEvent:
    return restart_event(Restart(previous, last), seq=seq, gateway=gateway, at=at, period=period_of(at))


def test_verify_tells_a_crash_that_lost_nothing_from_one_that_lost_events(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """gw1: run 1 (seq 100-104), a clean restart (105), a crash after 109 with 109 the last on disk
    (the next run opens at 200: the rest of the block skipped): nothing lost. gw2: the same crash,
    but its marker says 109 was on disk while the log stops at 107: two answered events lost.
    gw3: a crash while recording fast: the last moments may be lost, nobody can count them."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = open_store(url)
    minute = dt.timedelta(minutes=1)
    for gw, stop_at, previous in (("gw1", 110, "crashed"), ("gw2", 108, "crashed"), ("gw3", 110, "crashed-fast")):
        events = [marker(100, T0, "new", None, gw)]
        events += [event(s, T0 + (s - 100) * minute, gateway=gw) for s in range(101, 105)]
        events += [marker(105, T0 + 5 * minute, "stopped", 104, gw)]
        events += [event(s, T0 + (s - 100) * minute, gateway=gw) for s in range(106, stop_at)]
        events += [marker(200, T0 + 20 * minute, previous, 109, gw), event(201, T0 + 21 * minute, gateway=gw)]
        add_events(store, events)
    exported = tmp_path / "exported"
    checkpoint_round(store, exported, T0 + 30 * minute)
    report = verify(store, exported)
    assert codes(report, events_log("gw1")) == {"crash"}
    assert codes(report, events_log("gw1"), tamper=True) == set()
    assert codes(report, events_log("gw2"), tamper=True) == {"lost"}
    assert codes(report, events_log("gw3"), tamper=True) == {"crash-fast"}
    lost = next(f for f in report.findings if f.code == "lost")
    assert "2 events after sequence number 107 are missing: they were on disk before the restart" in lost.en

    argv = ["audit", "verify", "--checkpoints", str(exported), "--db", url]
    assert run_cli(argv, tmp_path) == 1
    out = capsys.readouterr().out
    assert "nothing that was answered is missing (durable recording)" in out
    assert "were on disk before the restart, but were lost" in out and "FOUT" in out
    assert "may be lost, how many cannot be told" in out
    store.close()


def test_verify_passes_clean_restarts_and_crashes_that_lost_nothing(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = open_store(url)
    minute = dt.timedelta(minutes=1)
    add_events(store, [event(7, T0), event(9, T0 + minute)])          # gaps from before markers: not judged
    add_events(store, [marker(20, T0 + 2 * minute, "unknown", None), event(21, T0 + 3 * minute),
                       marker(22, T0 + 4 * minute, "stopped", 21), event(23, T0 + 5 * minute),
                       marker(40, T0 + 6 * minute, "crashed", None), event(41, T0 + 7 * minute)])
    exported = tmp_path / "exported"
    checkpoint_round(store, exported, T0 + 30 * minute)
    argv = ["audit", "verify", "--checkpoints", str(exported), "--db", url]
    assert run_cli(argv, tmp_path) == 0
    out = capsys.readouterr().out
    assert "1 restart(s) after a crash (after sequence number 23)" in out and "Result: OK" in out

    # an event deleted inside a run, never checkpointed: the numbers show it
    add_events(store, [event(s, T0 + (10 + s) * minute) for s in (42, 43, 44)])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_events WHERE seq = 43")
    assert run_cli(argv, tmp_path) == 1
    assert "1 events after sequence number 42 are missing, with no restart in between" in capsys.readouterr().out
    store.close()


def test_restart_markers_are_never_erased(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    add_events(store, [marker(1, T0, "new", None), event(2, T0), event(3, T0)])
    result = apply_retention(store, now=T0 + dt.timedelta(days=400), policy=RetentionPolicy(),
                             signing_key=None, holds=[])
    assert result.total == 2
    with store.read() as s:
        assert s.execute(text("SELECT seq, kind FROM audit_events")).all() == [(1, RESTART)]
    store.close()
