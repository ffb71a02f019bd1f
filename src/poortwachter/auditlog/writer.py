"""The audit recorder's background side: seal, number and journal events, tell the waiting hooks,
batch them into the store; keep them on disk while the store cannot take them; replay the disk
oldest first whenever it can.

Two daemon threads, so the proxy's event loop never waits for either:
- the writer takes what the hot path queued, seals each event (audit/record.py) and gives it the
  next sequence number, writes it to the disk spool (audit/spool.py: one write and one fsync per
  round, a group commit) and decides where store batches go;
- the store thread runs one store job at a time (insert a batch, or replay a spool segment).

Two ways to record (`durable`):
- durable (the default): every round appends what it sealed to the spool and fsyncs before it
  reports the events durable (`on_durable`, with how many of the queued events it has dealt with),
  which is what the hooks waiting for their answer wait for (addons/audit.py). A round starts as
  soon as something is queued, so many requests share one fsync. The store gets batches from
  memory every `interval`; appends move to a new spool segment every 256 KiB, and once the store
  has committed a segment's events the segment is removed (the one being written too, once
  nothing newer waits), so the spool stays small while the store keeps up.
- fast: the queue is drained every `interval` and batches go to the store straight from memory;
  the spool is written only while the store fails or is slow. What a SIGKILL can lose is what
  was still in memory: at most `interval` seconds of events, `timeout` while a store write hangs.

Order, drain and bounds:
- The store receives every event in seq order: events only on disk (left by an earlier run, or
  dropped from memory to bound it) are older than those in memory and are replayed first, the
  oldest segment first, whenever the store answers, whatever happens to newer events.
- A store job that fails, or takes longer than `timeout` (a silent network), leaves its events
  where they are: in memory and on disk. If the slow job succeeds after all, a replay of the same
  events finds them present and skips them (idempotent on (gateway, seq)).
- A disk that refuses a write (full, read-only) is tried again every `retry` seconds with at most
  `batch` events: what is sealed once stays sealed, and the writer's cost while degraded is
  bounded. Memory holds at most `max_pending` events; beyond that, events already on disk are
  forgotten from memory (read back from disk later), and only events on neither the disk nor in
  the store are dropped, counted in poortwachter_audit_events_total{result="dropped"} and logged.
- Each run opens with a restart marker (audit/record.py) saying how the previous one ended (the
  sequence file and the spool it left), so `audit verify` can tell a restart from lost events.
  Shutdown (`stop`) stores what the store takes within `timeout`, keeps the rest on disk, and
  marks the sequence file "stopped" with the number of events it had to give up.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..audit.keystore import KeyStore
from ..audit.pseudonym import period_of
from ..audit.record import (
    AuditEvent,
    Restart,
    Seen,
    build_event,
    restart_event,
    subject_of,
)
from ..audit.seal import Sealer
from ..audit.sequence import SequenceFile
from ..audit.spool import HEADER, Segment, Spool
from ..store import Store, open_store
from ..store.audit_repo import Inserted, insert_events, store_period_keys

log = logging.getLogger("poortwachter")

ESCROW_RECHECK = 30.0     # seconds between looks for an escrow key that was missing
ROLL_BYTES = 256 << 10    # durable: appends move to a new spool segment once one is this large
ENDED = {"stopped": "stopped", "durable": "crashed", "fast": "crashed-fast", "degraded": "crashed-fast"}


def _seq(event: AuditEvent) -> int:
    return event.seq


@dataclass
class Job:
    """One unit of store work: insert a batch from memory, or replay events of a spool segment."""

    kind: str                               # "insert" or "replay"
    events: list[AuditEvent]
    keys: dict[str, bytes]                  # sealed period keys to store first
    segment: Segment | None = None
    unreadable: int = 0                     # replay: records of the segment that did not decode
    timed_out: bool = False                 # took longer than the writer's timeout
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Inserted | None = None
    error: BaseException | None = None

    @property
    def last(self) -> int:
        return self.events[-1].seq


class StoreThread:
    """Runs store jobs one at a time in a daemon thread. A job stuck in a silent network blocks
    only this thread, which the process does not wait for when it exits."""

    def __init__(self, url: str, gateway: str, wake: threading.Event,
                 opener: Callable[[str], Store] = open_store) -> None:
        self.url = url
        self.gateway = gateway
        self._wake = wake
        self._opener = opener
        self._store: Store | None = None
        self._cv = threading.Condition()
        self._job: Job | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="poortwachter-audit-store", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cv:
            assert self._job is None, "one store job at a time"
            job.started = time.monotonic()
            self._job = job
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._closing:
                    self._cv.wait()
                job = self._job
                if job is None:       # closing and idle
                    break
            try:
                job.result = self._write(job)
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which reports it
                job.error = exc
            with self._cv:
                self._job = None
            job.done.set()
            self._wake.set()
        if self._store is not None:
            self._store.close()

    def _write(self, job: Job) -> Inserted:
        if self._store is None:
            self._store = self._opener(self.url)     # migrates to the newest schema
            _full_sync(self._store)
        with self._store.write() as session:
            store_period_keys(session, self.gateway, job.keys, now=dt.datetime.now(dt.UTC))
            return insert_events(session, job.events)


def _full_sync(store: Store) -> None:
    """SQLite: every commit of the writer's own connections reaches the disk (synchronous=FULL; the
    store's default, NORMAL, can lose its last commits in a power cut). A spool segment is removed
    once the store has committed its events, so that commit must be as durable as the spool."""
    engine = getattr(store, "engine", None)
    if engine is None or engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_full)
    engine.dispose()        # connections made before (migrations) are replaced by ones that sync


def _sqlite_full(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous = FULL")


class Writer:
    def __init__(self, *, queue: deque[Seen], keystore: KeyStore, spool: Spool, sequence: SequenceFile,
                 url: str, gateway: str, urls: Callable[[Seen], bool], durable: bool = True,
                 on_durable: Callable[[int], None] | None = None, interval: float = 0.2,
                 timeout: float = 2.0, retry: float = 1.0, batch: int = 5000, max_pending: int = 200_000,
                 roll_bytes: int = ROLL_BYTES, opener: Callable[[str], Store] = open_store,
                 on_stored: Callable[[], None] | None = None) -> None:
        self.queue = queue
        self.durable = durable
        self.on_durable = on_durable             # durable: n more queued events are dealt with
        self.on_stored = on_stored               # after each successful store job (checkpoints)
        self.keystore = keystore
        self.spool = spool
        self.sequence = sequence
        self.gateway = gateway
        self.urls = urls
        self.interval = interval
        self.timeout = timeout
        self.retry = retry
        self.batch = batch
        self.max_pending = max_pending
        self.roll_bytes = roll_bytes
        self.wake = threading.Event()
        self.sleeping = False                    # durable: waiting for the queue (the hot path wakes it)
        self.store = StoreThread(url, gateway, self.wake, opener)
        # Sealed, numbered, not yet in the store, in seq order; the newest `_unwritten` of them
        # are not on disk either.
        self._mem: list[AuditEvent] = []
        self._unwritten = 0
        self._taken = 0                          # queued events taken (sealed, or dropped)
        self._reported = 0                       # ... of which reported to on_durable
        self._stored_upto: int | None = None     # the store has every event up to this seq
        self._disk_only_upto: int | None = None  # events up to this seq are on disk only
        self._earlier = set(spool.segments())    # segments an earlier run left, not yet replayed
        self._seg_last: dict[Path, int] = {}     # this run's segments: the last seq in each
        self._chunks: deque[tuple[int, int]] = deque()   # (last seq, bytes) of each write, until stored
        self._unstored_bytes = 0
        self._held_upto: int | None = None       # events up to here waited on disk for the store
        self._job: Job | None = None
        self._last_insert = time.monotonic()     # the first batch after `interval`, as every other
        self._confirmed: set[str] = set()        # periods whose sealed key the store has
        self._first_job = True
        self._healthy = True
        self._retry_at = 0.0
        self._disk_failing = False
        self._disk_retry_at = 0.0
        self._dropping = False                   # said once per episode of dropped events
        self._escrow_checked = time.monotonic()
        self._sealer: Sealer | None = None       # one key exchange per 256 events (audit/seal.py)
        self._sealer_key: bytes | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poortwachter-audit", daemon=True)
        self._open_run()
        self._publish()

    # --- life --------------------------------------------------------------------------------
    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Store or keep on disk everything accepted; True if the writer finished in time."""
        self._stopping.set()
        self.wake.set()
        # _final bounds itself (store waits by `timeout`); the margin is for sealing what is queued
        self._thread.join(timeout if timeout is not None else self.timeout + 5)
        finished = not self._thread.is_alive()
        if finished:
            self.spool.close()
        self.store.close()
        return finished

    @property
    def idle(self) -> bool:
        """Nothing queued, pending, in the store's hands or in the spool (for tests and shutdown)."""
        return not self.queue and not self._mem and self._job is None and self.spool.empty

    def _open_run(self) -> None:
        """The restart marker that opens this run: how the previous one ended (audit/record.py)."""
        previous = self.sequence.previous
        if previous.dropped:
            metrics.AUDIT_EVENTS.labels("dropped").inc(previous.dropped)
            log.error("audit: the previous run dropped %d events while stopping (verloren bij stoppen)",
                      previous.dropped)
        if previous.state == "stopped":
            restart = Restart("stopped", previous.next - 1 if previous.next is not None else None)
        else:
            restart = Restart(ENDED.get(previous.state, previous.state), self._spool_last())
            if previous.state in ENDED:
                log.warning("audit: the previous run ended without stopping (%s recording); its spool is "
                            "replayed first (vorige run niet netjes gestopt)", previous.state)
        at = dt.datetime.now(dt.UTC)
        self._mem.append(restart_event(restart, seq=self.sequence.next(), gateway=self.gateway, at=at,
                                       period=period_of(at)))
        self._unwritten = 1

    def _spool_last(self) -> int | None:
        record = self.spool.last_record
        if record is None:
            return None
        try:
            return AuditEvent.from_canonical(record).seq
        except (ValueError, KeyError, TypeError):
            return None

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not (self.durable and self.queue):
                self.sleeping = True
                if not (self.durable and self.queue):   # again: the hot path looks at `sleeping` after it queues
                    self.wake.wait(self.interval)
                self.sleeping = False
                self.wake.clear()
            if self._stopping.is_set():
                break
            try:
                self._tick()
            except Exception:   # a bug here must not end recording for good
                log.exception("audit writer failed (audit-schrijver fout)")
                time.sleep(self.interval)
        try:
            self._final()
        except Exception:
            log.exception("audit writer failed while stopping (audit-schrijver fout bij stoppen)")

    # --- one round -------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._maybe_escrow()
        self._take(self.batch)
        if self.durable or self._held():
            self._write_out()
        if self._held():
            self._hold()
        self._bound_memory()
        self._report()
        self._store_step()
        self._publish()

    def _held(self) -> bool:
        """Is the store failing, or slower than `timeout`?"""
        return not self._healthy or (self._job is not None and self._job.timed_out)

    def _store_step(self) -> None:
        job = self._job
        if job is not None:
            if not job.done.is_set():
                if not job.timed_out and time.monotonic() - job.started > self.timeout:
                    job.timed_out = True
                    self._unhealthy(f"no answer within {self.timeout:g} s (geen antwoord)")
                    if not self.durable:
                        self._write_out()       # its events, and everything after them, to disk
                    self._hold()
                return
            self._job = None
            self._finish(job)
        self._next_job()

    def _next_job(self, final: bool = False) -> None:
        if self._job is not None:
            return
        now = time.monotonic()
        if not self._healthy and now < self._retry_at and not final:
            return
        if self._behind():
            job = self._replay_job()
            if job is not None:
                self._submit(job)
                return
        if self._mem and (final or not self.durable or len(self._mem) >= self.batch
                          or now - self._last_insert >= self.interval):
            events = self._mem[:self.batch]
            self._last_insert = now
            self._submit(Job("insert", events, self._keys(events)))

    def _submit(self, job: Job) -> None:
        self._job = job
        self.store.submit(job)

    def _finish(self, job: Job) -> bool:
        """Account for a finished job; False if it failed."""
        if job.error is not None:
            if not isinstance(job.error, (SQLAlchemyError, OSError)):
                log.error("audit store write failed (audit niet opgeslagen)", exc_info=job.error)
            self._unhealthy(type(job.error).__name__)
            return False
        assert job.result is not None
        if not self._healthy:
            log.info("audit: database reachable again, replaying the spool (audit-database weer bereikbaar)")
            self._healthy = True
        inserted = job.result.inserted
        if job.kind == "replay":
            assert job.segment is not None
            metrics.AUDIT_EVENTS.labels("replayed").inc(inserted)
            if job.unreadable:
                metrics.AUDIT_EVENTS.labels("dropped").inc(job.unreadable)
                log.error("audit: %d spool records unreadable, skipped (spoolrecords onleesbaar)", job.unreadable)
            if job.segment.path in self._earlier:
                self._earlier.discard(job.segment.path)
                self.spool.ack(job.segment)     # all of it was older than this run: committed now
        else:
            waited = bisect_right(job.events, self._held_upto, key=_seq) if self._held_upto is not None else 0
            replayed = min(waited, inserted)
            metrics.AUDIT_EVENTS.labels("replayed").inc(replayed)
            metrics.AUDIT_EVENTS.labels("recorded").inc(inserted - replayed)
        for period in job.keys:
            self.keystore.stored(period)
            self._confirmed.add(period)
        self._first_job = False
        if job.result.conflicts:
            # never a replay: the store holds OTHER events under these numbers (a copied data dir?)
            metrics.AUDIT_EVENTS.labels("dropped").inc(len(job.result.conflicts))
            log.error("audit: %d events not stored, their sequence numbers are taken by other events of "
                      "gateway %r (volgnummers al gebruikt)", len(job.result.conflicts), self.gateway)
        self._stored(job.last)
        if self.on_stored is not None:
            try:
                self.on_stored()
            except Exception:   # noqa: BLE001 - a checkpoint hook must not stop recording
                log.exception("audit: after-store hook failed")
        return True

    def _stored(self, upto: int) -> None:
        """The store has every event up to seq `upto`: forget them, and the disk they took."""
        if self._stored_upto is not None and upto <= self._stored_upto:
            return
        self._stored_upto = upto
        done = bisect_right(self._mem, upto, key=_seq)
        if done:
            on_disk = len(self._mem) - self._unwritten
            self._unwritten -= max(0, done - on_disk)       # stored before they reached the disk
            del self._mem[:done]
        while self._chunks and self._chunks[0][0] <= upto:
            self._unstored_bytes -= self._chunks.popleft()[1]
        if self._disk_only_upto is not None and self._disk_only_upto <= upto:
            self._disk_only_upto = None
        self._retire()
        self._report()

    def _unhealthy(self, why: str) -> None:
        # Only the kind of failure: a driver's message may carry the database host or a query.
        if self._healthy:
            log.warning("audit: database unreachable, events wait in the disk spool (audit-database onbereikbaar): %s",
                        why)
            self._healthy = False
        self._retry_at = time.monotonic() + self.retry

    # --- sealing ----------------------------------------------------------------------------------
    def _take(self, limit: int | None) -> None:
        """Seal up to `limit` queued events into memory (not yet on disk)."""
        keystore, queue, taken = self.keystore, self.queue, 0
        escrow = keystore.escrow_public
        if escrow is not None and (self._sealer is None or self._sealer_key != escrow):
            self._sealer, self._sealer_key = Sealer(escrow), escrow
        sealer = self._sealer if escrow else None
        mem = self._mem
        while queue and (limit is None or taken < limit):
            seen = queue.popleft()
            taken += 1
            seq = None
            try:
                at = dt.datetime.fromtimestamp(seen.at, dt.UTC)
                period, pseudonym = keystore.pseudonym(subject_of(seen), at) if escrow else (period_of(at), None)
                seq = self.sequence.next()
                mem.append(build_event(seen, seq=seq, gateway=self.gateway, at=at, period=period,
                                       pseudonym=pseudonym, escrow_public=escrow, urls=self.urls(seen),
                                       sealer=sealer))
                self._unwritten += 1
            except Exception as exc:  # one bad event must not hold up the others
                if seq is not None:
                    self.sequence.give_back(seq)    # no gap for an event that never existed
                metrics.AUDIT_EVENTS.labels("dropped").inc()
                log.error("audit event not recorded (%s)", type(exc).__name__)
        self._taken += taken

    def _keys(self, events: list[AuditEvent]) -> dict[str, bytes]:
        periods = {e.period for e in events if e.pseudonym is not None} - self._confirmed
        if self._first_job:
            periods.update(self.keystore.unstored_periods())
        out = {}
        for period in periods:
            sealed = self.keystore.sealed_copy(period)
            if sealed is not None:
                out[period] = sealed
        return out

    def _maybe_escrow(self) -> None:
        if self.keystore.escrow_public is not None or time.monotonic() - self._escrow_checked < ESCROW_RECHECK:
            return
        self._escrow_checked = time.monotonic()
        try:
            if self.keystore.load():
                log.info("escrow key found: audit events are sealed from now on (escrow-sleutel gevonden)")
        except ValueError as exc:
            log.error("escrow key unusable (escrow-sleutel onbruikbaar): %s", exc)

    def _report(self) -> None:
        """Durable: once nothing sealed is off the disk (and out of the store), every event taken
        so far is dealt with: written, stored or dropped."""
        if self.on_durable is not None and not self._unwritten and self._taken > self._reported:
            n, self._reported = self._taken - self._reported, self._taken
            self.on_durable(n)

    # --- the disk ---------------------------------------------------------------------------------
    def _write_out(self, force: bool = False) -> None:
        """Append what is sealed and not yet on disk, `batch` events per write (one fsync each).
        A refusing disk is tried again only after `retry` seconds (`force`: now, when stopping)."""
        while self._unwritten:
            if not force and time.monotonic() < self._disk_retry_at:
                return
            start = len(self._mem) - self._unwritten
            chunk = self._mem[start:start + self.batch]
            records = [e.canonical() for e in chunk]
            active = self.spool.active
            if active is not None and self.spool.size_of(active) >= self.roll_bytes:
                self.spool.roll()           # the full one goes once the store has its events
            try:
                self.spool.append(records)
            except OSError as exc:
                self._disk_retry_at = time.monotonic() + self.retry
                if not self._disk_failing:
                    self._disk_failing = True
                    log.error("audit spool not writable, events held in memory (audit-spool niet schrijfbaar): %s",
                              type(exc).__name__)
                    self._set_mode("degraded")
                return
            if self._disk_failing:
                self._disk_failing = False
                log.info("audit spool writable again (audit-spool weer schrijfbaar)")
                self._set_mode("durable" if self.durable else "fast")
            last = chunk[-1].seq
            size = sum(len(r) for r in records) + HEADER.size * len(records)
            self._unwritten -= len(chunk)
            active = self.spool.active
            if active is not None:
                self._seg_last[active] = last
            self._chunks.append((last, size))
            self._unstored_bytes += size

    def _set_mode(self, mode: str) -> None:
        try:
            self.sequence.set_mode(mode)
        except OSError:
            pass        # the disk that failed: the next run then assumes the worse

    def _hold(self) -> None:
        """The store cannot take events now: those on disk wait there (counted once as spooled)."""
        on_disk = len(self._mem) - self._unwritten
        if not on_disk:
            return
        newest = self._mem[on_disk - 1].seq
        if self._held_upto is not None and newest <= self._held_upto:
            return
        start = bisect_right(self._mem, self._held_upto, key=_seq) if self._held_upto is not None else 0
        metrics.AUDIT_EVENTS.labels("spooled").inc(on_disk - start)
        self._held_upto = newest

    def _bound_memory(self) -> None:
        over = len(self._mem) - self.max_pending
        if over <= 0:
            return
        if over > len(self._mem) - self._unwritten and not self.durable:
            self._write_out()
        on_disk = len(self._mem) - self._unwritten
        forget = min(over, on_disk)
        if forget:      # safe on disk: read back from there when the store takes them
            self._disk_only_upto = self._mem[forget - 1].seq
            del self._mem[:forget]
            over -= forget
        if over > 0:    # neither the store nor the disk takes anything: memory is the last limit
            metrics.AUDIT_EVENTS.labels("dropped").inc(over)
            if not self._dropping:
                self._dropping = True
                log.error("audit: events dropped, neither store nor spool takes them (audit-gebeurtenissen "
                          "verloren)")
            del self._mem[:over]
            self._unwritten -= over
        else:
            self._dropping = False

    def _behind(self) -> bool:
        """Does the disk hold events older than everything in memory that the store has not?"""
        if self._earlier:
            return True
        return self._disk_only_upto is not None and (self._stored_upto is None
                                                     or self._stored_upto < self._disk_only_upto)

    def _replay_job(self) -> Job | None:
        """The store's next job from disk: the oldest segment's events it does not have."""
        for path in self.spool.segments():
            earlier = path in self._earlier
            if not earlier:
                last = self._seg_last.get(path)
                if last is None or (self._stored_upto is not None and last <= self._stored_upto):
                    continue
            segment = self.spool.read(path)
            if segment is None:
                self._earlier.discard(path)
                continue
            events, unreadable = self._decode(segment)
            if not earlier and self._disk_only_upto is not None:
                events = events[:bisect_right(events, self._disk_only_upto, key=_seq)]
            if self._stored_upto is not None:
                events = events[bisect_right(events, self._stored_upto, key=_seq):]
            if events:
                return Job("replay", events, self._keys(events), segment=segment, unreadable=unreadable)
            if earlier:     # nothing in it to store (stored already, or unreadable)
                if unreadable:
                    metrics.AUDIT_EVENTS.labels("dropped").inc(unreadable)
                self._earlier.discard(path)
                self.spool.ack(segment)
            elif self._disk_only_upto is not None and not self._behind():
                break
        if not self._earlier:
            self._disk_only_upto = None      # nothing older on disk after all
        return None

    @staticmethod
    def _decode(segment: Segment) -> tuple[list[AuditEvent], int]:
        events, unreadable = [], 0
        for record in segment.records:
            try:
                events.append(AuditEvent.from_canonical(record))
            except (ValueError, KeyError, TypeError):   # CRC-valid but unreadable: a format bug
                unreadable += 1
        events.sort(key=_seq)
        return events, unreadable

    def _retire(self) -> None:
        """Remove the segments whose every event the store has (in seq order, so stop at the
        first that still holds one). The one being written stays while newer events wait for the
        store (a new file per round would cost more than it saves) unless the disk is full."""
        for path in self.spool.segments():
            if path in self._earlier:
                continue
            last = self._seg_last.get(path)
            if last is None:                 # rolled, but its write failed: nothing in it
                if path != self.spool.active:
                    self.spool.remove(path)
                continue
            if self._stored_upto is None or last > self._stored_upto:
                break
            if path == self.spool.active and self._mem and not self._disk_failing:
                break
            self.spool.remove(path)
            del self._seg_last[path]

    def _publish(self) -> None:
        earlier = sum(self.spool.size_of(p) for p in self._earlier) if self._earlier else 0
        metrics.AUDIT_SPOOL_BYTES.set(self._unstored_bytes + earlier)
        metrics.AUDIT_QUEUE_DEPTH.set(len(self.queue) + len(self._mem))

    # --- stopping --------------------------------------------------------------------------------
    def _final(self) -> None:
        """Stopping: what is in the store's hands, in memory or queued is stored if the store
        answers within `timeout`, else kept on disk; then the sequence file says how this run
        ended."""
        deadline = time.monotonic() + self.timeout
        job, self._job = self._job, None
        if job is not None:
            job.done.wait(max(0.0, deadline - time.monotonic()))
            if job.done.is_set():
                self._finish(job)
        while self.queue:
            self._take(self.batch)
            self._bound_memory()
        if self.durable or self._held() or job is not None and not job.done.is_set():
            self._write_out(force=True)
        store_ok = (job is None or job.done.is_set()) and self._healthy
        while store_ok and self._mem and time.monotonic() < deadline:
            self._next_job(final=True)
            job, self._job = self._job, None
            if job is None:
                break
            job.done.wait(max(0.0, deadline - time.monotonic()))
            store_ok = job.done.is_set() and self._finish(job)
        self._write_out(force=True)
        self._retire()
        lost = self._unwritten + len(self.queue)
        self._report()
        self._publish()
        if lost:
            metrics.AUDIT_EVENTS.labels("dropped").inc(lost)
            log.error("audit: %d events could be neither stored nor spooled at shutdown", lost)
        try:
            self.sequence.stop(dropped=lost)
        except OSError as exc:
            log.error("audit sequence file not written at shutdown (%s): the next run reports a crash",
                      type(exc).__name__)
