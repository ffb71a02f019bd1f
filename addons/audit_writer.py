"""The audit recorder's background side: seal, number, batch and write events; spool when the
store cannot take them; replay the spool in order once it can.

Two daemon threads, so the proxy's event loop never waits for either:
- the writer drains the hot path's queue every `interval` seconds, seals each event
  (audit/record.py), gives it the next sequence number, and decides where batches go;
- the store thread runs one store job at a time (insert a batch, or replay a spool segment).

Order and durability:
- While the spool holds anything, new batches are appended to it, behind what is there, and the
  spool is replayed oldest segment first: the store receives every event in seq order.
- A store job that fails, or takes longer than `timeout` (a silent network), has its batch
  appended to the spool (fsync) before anything newer; if the slow job succeeds after all, the
  replay of that batch finds its rows present and skips them (idempotent on (gateway, seq)).
- Shutdown (`stop`) seals what is queued and writes it to the store if the store answers within
  `timeout`, else spools it. What a SIGKILL can lose is only what was still in memory: at most
  `interval` seconds of events, or `timeout` seconds while a store write hangs.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from poortwachter import metrics
from poortwachter.audit.keystore import KeyStore
from poortwachter.audit.pseudonym import period_of
from poortwachter.audit.record import AuditEvent, Seen, build_event, subject_of
from poortwachter.audit.seal import Sealer
from poortwachter.audit.sequence import SequenceFile
from poortwachter.audit.spool import Segment, Spool
from poortwachter.store import Store, open_store
from poortwachter.store.audit_repo import Inserted, insert_events, store_period_keys

log = logging.getLogger("poortwachter")

ESCROW_RECHECK = 30.0     # seconds between looks for an escrow key that was missing


@dataclass
class Job:
    """One unit of store work: insert a fresh batch, or replay one spool segment."""

    kind: str                               # "insert" or "replay"
    events: list[AuditEvent]
    keys: dict[str, bytes]                  # sealed period keys to store first
    segment: Segment | None = None
    spooled: bool = False                   # its events are safe in the spool already
    timed_out: bool = False                 # took longer than the writer's timeout
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Inserted | None = None
    error: BaseException | None = None


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
        with self._store.write() as session:
            store_period_keys(session, self.gateway, job.keys, now=dt.datetime.now(dt.UTC))
            return insert_events(session, job.events)


class Writer:
    def __init__(self, *, queue: deque[Seen], keystore: KeyStore, spool: Spool, sequence: SequenceFile,
                 url: str, gateway: str, urls: Callable[[Seen], bool], interval: float = 0.2,
                 timeout: float = 2.0, retry: float = 1.0, batch: int = 5000, max_pending: int = 200_000,
                 opener: Callable[[str], Store] = open_store,
                 on_stored: Callable[[], None] | None = None) -> None:
        self.queue = queue
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
        self.wake = threading.Event()
        self.store = StoreThread(url, gateway, self.wake, opener)
        self._pending: list[AuditEvent] = []     # sealed, not yet in the store nor in the spool
        self._job: Job | None = None
        self._confirmed: set[str] = set()        # periods whose sealed key the store has
        self._first_job = True
        self._healthy = True
        self._retry_at = 0.0
        self._spool_failing = False
        self._escrow_checked = time.monotonic()
        self._sealer: Sealer | None = None      # one key exchange per 256 events (audit/seal.py)
        self._sealer_key: bytes | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poortwachter-audit", daemon=True)
        self._publish()

    # --- life --------------------------------------------------------------------------------
    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Flush or spool everything accepted; True if the writer finished in time."""
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
        return not self.queue and not self._pending and self._job is None and self.spool.empty

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.wake.wait(self.interval)
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
        self._pending.extend(self._seal(self.batch))
        job = self._job
        if job is not None:
            if not job.done.is_set():
                if not job.timed_out and time.monotonic() - job.started > self.timeout:
                    job.timed_out = True
                    self._unhealthy(f"no answer within {self.timeout:g} s (geen antwoord)")
                if job.timed_out and not job.spooled:
                    job.spooled = self._spool_events(job.events)
                if job.timed_out and job.spooled:
                    self._spool_pending()       # behind the slow job's batch, in order
                self._publish()
                return
            self._job = None
            if not self._finish(job):
                self._spool_pending()
                self._publish()
                return
        self._next_job()
        self._publish()

    def _next_job(self) -> None:
        if self._job is not None:
            return
        if not self._healthy and time.monotonic() < self._retry_at:
            self._spool_pending()
            return
        if not self.spool.empty:
            if not self._spool_pending():
                return                          # the spool must take them first, to keep the order
            segment = self.spool.oldest()
            if segment is None:
                return
            events = self._decode(segment)
            self._submit(Job("replay", events, self._keys(events), segment=segment, spooled=True))
        elif self._pending:
            events, self._pending = self._pending[:self.batch], self._pending[self.batch:]
            self._submit(Job("insert", events, self._keys(events)))

    def _submit(self, job: Job) -> None:
        self._job = job
        self.store.submit(job)

    def _finish(self, job: Job) -> bool:
        """Account for a finished job; False if it failed."""
        if job.error is not None:
            if isinstance(job.error, (SQLAlchemyError, OSError)):
                self._unhealthy(type(job.error).__name__)
            else:
                log.error("audit store write failed (audit niet opgeslagen)", exc_info=job.error)
                self._unhealthy(type(job.error).__name__)
            if not job.spooled:
                job.spooled = self._spool_events(job.events)
                if not job.spooled:           # the disk failed too: keep them in memory, first
                    self._pending[:0] = job.events
            return False
        assert job.result is not None
        if not self._healthy:
            log.info("audit: database reachable again, replaying the spool (audit-database weer bereikbaar)")
            self._healthy = True
        if job.kind == "replay":
            assert job.segment is not None
            metrics.AUDIT_EVENTS.labels("replayed").inc(job.result.inserted)   # counted before the
            self.spool.ack(job.segment)                                       # spool shows empty
        else:
            metrics.AUDIT_EVENTS.labels("recorded").inc(job.result.inserted)
        for period in job.keys:
            self.keystore.stored(period)
            self._confirmed.add(period)
        self._first_job = False
        if job.result.conflicts:
            # never a replay: the store holds OTHER events under these numbers (a copied data dir?)
            metrics.AUDIT_EVENTS.labels("dropped").inc(len(job.result.conflicts))
            log.error("audit: %d events not stored, their sequence numbers are taken by other events of "
                      "gateway %r (volgnummers al gebruikt)", len(job.result.conflicts), self.gateway)
        if self.on_stored is not None:
            try:
                self.on_stored()
            except Exception:   # noqa: BLE001 - a checkpoint hook must not stop recording
                log.exception("audit: after-store hook failed")
        return True

    def _unhealthy(self, why: str) -> None:
        # Only the kind of failure: a driver's message may carry the database host or a query.
        if self._healthy:
            log.warning("audit: database unreachable, events go to the disk spool (audit-database onbereikbaar): %s",
                        why)
            self._healthy = False
        self._retry_at = time.monotonic() + self.retry

    # --- sealing ----------------------------------------------------------------------------------
    def _seal(self, limit: int | None) -> list[AuditEvent]:
        out: list[AuditEvent] = []
        keystore, queue = self.keystore, self.queue
        escrow = keystore.escrow_public
        if escrow is not None and (self._sealer is None or self._sealer_key != escrow):
            self._sealer, self._sealer_key = Sealer(escrow), escrow
        while queue and (limit is None or len(out) < limit):
            seen = queue.popleft()
            try:
                at = dt.datetime.fromtimestamp(seen.at, dt.UTC)
                period, pseudonym = keystore.pseudonym(subject_of(seen), at) if escrow else (period_of(at), None)
                out.append(build_event(seen, seq=self.sequence.next(), gateway=self.gateway, at=at,
                                       period=period, pseudonym=pseudonym, escrow_public=escrow,
                                       urls=self.urls(seen), sealer=self._sealer if escrow else None))
            except Exception as exc:  # one bad event must not hold up the others
                metrics.AUDIT_EVENTS.labels("dropped").inc()
                log.error("audit event not recorded (%s)", type(exc).__name__)
        overflow = len(self._pending) + len(out) - self.max_pending
        if overflow > 0:   # neither the store nor the disk takes anything: memory is the last limit
            metrics.AUDIT_EVENTS.labels("dropped").inc(overflow)
            log.error("audit: %d events dropped, neither store nor spool takes them", overflow)
            older = min(overflow, len(self._pending))
            del self._pending[:older]
            del out[:overflow - older]
        return out

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

    def _decode(self, segment: Segment) -> list[AuditEvent]:
        events = []
        for record in segment.records:
            try:
                events.append(AuditEvent.from_canonical(record))
            except (ValueError, KeyError, TypeError) as exc:   # CRC-valid but unreadable: a format bug
                metrics.AUDIT_EVENTS.labels("dropped").inc()
                log.error("audit spool record unreadable (%s), skipped", type(exc).__name__)
        return events

    def _maybe_escrow(self) -> None:
        if self.keystore.escrow_public is not None or time.monotonic() - self._escrow_checked < ESCROW_RECHECK:
            return
        self._escrow_checked = time.monotonic()
        try:
            if self.keystore.load():
                log.info("escrow key found: audit events are sealed from now on (escrow-sleutel gevonden)")
        except ValueError as exc:
            log.error("escrow key unusable (escrow-sleutel onbruikbaar): %s", exc)

    # --- the spool ---------------------------------------------------------------------------------
    def _spool_events(self, events: list[AuditEvent]) -> bool:
        if not events:
            return True
        try:
            self.spool.append([e.canonical() for e in events])
        except OSError as exc:
            if not self._spool_failing:
                log.error("audit spool not writable, events held in memory (audit-spool niet schrijfbaar): %s",
                          type(exc).__name__)
                self._spool_failing = True
            return False
        self._spool_failing = False
        metrics.AUDIT_EVENTS.labels("spooled").inc(len(events))
        return True

    def _spool_pending(self) -> bool:
        if self._spool_events(self._pending):
            self._pending = []
            return True
        return False

    def _publish(self) -> None:
        metrics.AUDIT_SPOOL_BYTES.set(self.spool.size_bytes)
        metrics.AUDIT_QUEUE_DEPTH.set(len(self.queue) + len(self._pending))

    # --- stopping --------------------------------------------------------------------------------
    def _final(self) -> None:
        """Stopping: what is in the store's hands, pending or queued is stored if the store answers
        within `timeout`, else spooled; sealed and made durable batch by batch, oldest first."""
        deadline = time.monotonic() + self.timeout
        job, self._job = self._job, None
        if job is not None:
            job.done.wait(max(0.0, deadline - time.monotonic()))
            if job.done.is_set():
                self._finish(job)
            elif not job.spooled:
                job.spooled = self._spool_events(job.events)
        # the store only if nothing is spooled (order) and it answered its last job in time
        to_store = job is None or job.done.is_set()
        to_store = to_store and self._healthy and self.spool.empty
        while True:
            self._pending.extend(self._seal(self.batch))
            if not self._pending:
                break
            if to_store:
                events, self._pending = self._pending[:self.batch], self._pending[self.batch:]
                job = Job("insert", events, self._keys(events))
                self.store.submit(job)
                job.done.wait(max(0.0, deadline - time.monotonic()))
                if job.done.is_set() and self._finish(job):
                    continue
                to_store = False
                if not job.spooled and not self._spool_events(job.events):
                    self._pending[:0] = job.events
                    break
            elif not self._spool_pending():
                break
        self._publish()
        if self._pending or self.queue:
            log.error("audit: %d events could be neither stored nor spooled at shutdown",
                      len(self._pending) + len(self.queue))
