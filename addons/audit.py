"""Records an audit event for every final verdict the policy says to record; with durable
recording (the default) the answer to the request waits until its event is on disk.

The enforcing addon hands each final verdict over through `accept` (one bounded deque append,
see addons/enforce.py); the background writer (auditlog/writer.py) seals, numbers and writes
them to <data dir>/audit/spool (one fsync per round for all that was queued: a group commit) and
batches them into the store. `accept` returns what the hook awaits before mitmproxy sends the
answer: a future shared by every event of one round (`Waiters`), resolved from the writer's
thread through the event loop (call_soon_threadsafe), never by blocking the loop. A round that
is not on disk within `poortwachter_audit_wait` seconds is answered anyway (fail-open for the
audit only: the gateway keeps filtering when its disk hangs), counted in
poortwachter_audit_events_total{result="unconfirmed"} and logged once; until the disk confirms
again, requests are answered at once (and counted) instead of each waiting the full time.

Options (mitmproxy options rather than policy settings: what to record is the school's choice,
but it is fixed per installation and documented with the key ceremony):
- poortwachter_audit: "blocks_and_hosts" (default: every block, and every allowed connection or
  request with its host only), "all" (like blocks_and_hosts, but the path is kept for allowed
  requests too when urls are on), "blocks" (blocks only) or "off".
- poortwachter_audit_urls: "true" to seal the request path with the host; default "false".
- poortwachter_audit_commit: "durable" (default: on disk before the answer) or "fast" (answer at
  once; the writer stores every `interval` and writes the spool only while the store fails: a
  crash loses what was still in memory, README "Audit logs").
- poortwachter_audit_wait: seconds an answer waits for its event to be on disk (durable).
- poortwachter_audit_gateway: this gateway's name in the audit log (default: the host name).
- poortwachter_audit_interval / _timeout: seconds between store batches (fast: between rounds),
  and how long a store write may take before its events wait in the spool.
- poortwachter_checkpoint_dir / _syslog / _mail / _interval: where the signed checkpoints of this
  gateway's events log and of the access ledger go (auditlog/exporters.py): a directory (default
  <data dir>/audit/checkpoints), a syslog collector ("udp://HOST:PORT", "tcp://HOST:PORT" or
  "HOST:PORT"; empty: off), mail to the privacy officer ("smtp-host[:port]/recipient[,recipient]";
  empty: off), and the seconds between rounds (a round also follows each stored batch, at most
  every min(5, interval) seconds). Without <data dir>/audit/checkpoint.key (the key ceremony)
  nothing is checkpointed, and the log says so once.

Without an escrow public key (<data dir>/audit/escrow.pub, from the key ceremony) events keep
their clear fields only: nothing personal is recorded, and the log says so once.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import deque
from collections.abc import Awaitable
from pathlib import Path

from mitmproxy import ctx, exceptions

from poortwachter import metrics
from poortwachter.audit.keystore import EscrowKeyError, KeyStore, audit_dir
from poortwachter.audit.record import Seen
from poortwachter.audit.sequence import SequenceFile
from poortwachter.audit.spool import Spool, SpoolLocked
from poortwachter.auditlog.checkpointer import CheckpointThread, gateway_checkpoints
from poortwachter.auditlog.exporters import Exporter, exporters_from_options
from poortwachter.auditlog.writer import Writer
from poortwachter.paths import resolve_data_dir
from poortwachter.store import default_url

from .engine import EngineAddon
from .options import seconds
from .state_sync import store_url

log = logging.getLogger("poortwachter")

MODES = ("blocks_and_hosts", "all", "blocks", "off")
COMMITS = ("durable", "fast")
QUEUE_MAX = 100_000       # events waiting in memory; beyond this they are dropped (and counted)
# (data dir, store url, gateway), directory, syslog, mail, interval
CheckpointWhere = tuple[tuple[str, str, str], str, str, str, float]
CHECKPOINT_MIN_INTERVAL = 5.0   # seconds: stored batches never cause rounds more often than this
CHECKPOINT_STOP_TIMEOUT = 10.0  # seconds `done` waits for the last checkpoint round


class _Round:
    """The events accepted between two reports of the writer: one future for all of them."""

    __slots__ = ("first", "future", "last", "timer")

    def __init__(self, future: asyncio.Future[None], first: int) -> None:
        self.future = future
        self.first = first
        self.last = first
        self.timer: asyncio.TimerHandle | None = None


class Waiters:
    """Hooks waiting for their events to be on disk. Event n is the n-th accepted; the writer
    reports (from its thread) how many more it has dealt with, in order; a round's future is
    resolved when all of its events are. Everything but `durable` runs on the event loop."""

    def __init__(self, wait: float, accepted: int = 0) -> None:
        self.wait = wait
        self.accepted = accepted          # events queued so far (those already queued count as taken)
        self.confirmed = 0                # ... of which the writer has dealt with
        self._rounds: deque[_Round] = deque()
        self._open: _Round | None = None
        try:            # configure runs on the event loop: reports then always go through it, in order
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._late = 0                    # > 0: the disk did not confirm in time; answer at once until it does
        self._unconfirmed = metrics.AUDIT_EVENTS.labels("unconfirmed")
        self.closed = False

    def ticket(self) -> Awaitable[None] | None:
        """The hot path, for an event just queued: what its hook awaits (None: nothing)."""
        self.accepted += 1
        if self._late:
            self._unconfirmed.inc()
            return None
        current = self._open
        if current is None:
            loop = self._loop
            if loop is None:
                try:
                    loop = self._loop = asyncio.get_running_loop()
                except RuntimeError:      # not on an event loop (a test calling a hook directly)
                    return None
            current = self._open = _Round(loop.create_future(), self.accepted)
            current.timer = loop.call_later(self.wait, self._expire, current)
            self._rounds.append(current)
        current.last = self.accepted
        return current.future

    def durable(self, n: int) -> None:
        """The writer's thread: `n` more events are on disk (or stored, or given up)."""
        loop = self._loop
        if loop is None:
            self.confirmed += n           # no round was ever opened: nothing waits
            return
        try:
            loop.call_soon_threadsafe(self._release, n)
        except RuntimeError:              # the loop is closed: nobody waits any more
            pass

    def _release(self, n: int) -> None:
        self.confirmed += n
        self._open = None                 # events accepted from now on wait for the next report
        rounds, confirmed = self._rounds, self.confirmed
        while rounds and rounds[0].last <= confirmed:
            done = rounds.popleft()
            if done.timer is not None:
                done.timer.cancel()
            if not done.future.done():
                done.future.set_result(None)
        if self._late and confirmed >= self._late:
            self._late = 0
            log.info("audit: the disk confirms events again, answers wait for it (audit-schijf bevestigt weer)")

    def _expire(self, late: _Round) -> None:
        if late.future.done():
            return
        late.future.set_result(None)
        self._unconfirmed.inc(late.last - late.first + 1)
        if self._open is late:
            self._open = None
        if not self._late:
            log.error("audit: events not on disk within %g s, requests answered without waiting for them "
                      "(audit niet op tijd op schijf)", self.wait)
        self._late = max(self._late, late.last)

    def close(self) -> None:
        """Nobody waits any more (the recorder stops): every open round is answered."""
        self.closed = True
        while self._rounds:
            waiting = self._rounds.popleft()
            if waiting.timer is not None:
                waiting.timer.cancel()
            if not waiting.future.done():
                waiting.future.set_result(None)
        self._open = None


class AuditRecorder:
    def __init__(self, engine: EngineAddon) -> None:
        self.engine = engine   # not needed to record (events carry the verdict); kept as every addon has it
        self.queue: deque[Seen] = deque()
        self.writer: Writer | None = None
        self.waiters: Waiters | None = None                 # durable: the hooks waiting for the disk
        self._where: tuple[str, str, str, str] | None = None   # (data dir, store url, gateway, commit) of the writer
        self._on = True
        self._allowed_too = True
        self._names_too = False
        self._urls = False
        self._urls_allowed = False
        self._full = False                                  # said once per overflow
        self._wake_at = 5000
        self._wake: threading.Event | None = None
        self.checkpoints: CheckpointThread | None = None
        self._checkpoint_where: CheckpointWhere | None = None   # what the checkpointer was started with

    def load(self, loader) -> None:  # type: ignore[no-untyped-def]
        loader.add_option("poortwachter_audit", str, "blocks_and_hosts",
                          f"Which verdicts get an audit event: {', '.join(MODES)}.")
        loader.add_option("poortwachter_audit_urls", str, "false",
                          "Seal the request path with the host in audit events (true/false).")
        loader.add_option("poortwachter_audit_commit", str, "durable",
                          "durable: an answer waits until its audit event is on disk (fsync); fast: answer at "
                          "once, a crash loses the events still in memory.", choices=COMMITS)
        loader.add_option("poortwachter_audit_wait", str, "1.0",
                          "Seconds an answer waits for its audit event to be on disk before it is sent anyway.")
        loader.add_option("poortwachter_audit_gateway", str, "",
                          "This gateway's name in the audit log; empty: the host name.")
        loader.add_option("poortwachter_audit_interval", str, "0.2",
                          "Seconds between audit batches to the store.")
        loader.add_option("poortwachter_audit_timeout", str, "2.0",
                          "Seconds an audit store write may take before its events wait in the disk spool.")
        loader.add_option("poortwachter_checkpoint_dir", str, "",
                          "Directory for signed audit checkpoints; empty: <data dir>/audit/checkpoints.")
        loader.add_option("poortwachter_checkpoint_syslog", str, "",
                          "Syslog collector for signed audit checkpoints (udp://HOST:PORT, tcp://HOST:PORT, "
                          "HOST:PORT); empty: off.")
        loader.add_option("poortwachter_checkpoint_mail", str, "",
                          "Mail signed audit checkpoints: smtp-host[:port]/recipient[,recipient]; empty: off.")
        loader.add_option("poortwachter_checkpoint_interval", str, "60",
                          "Seconds between audit checkpoint rounds (also one soon after each stored batch).")

    def configure(self, updated: set[str]) -> None:
        if "poortwachter_audit" in updated:
            mode = ctx.options.poortwachter_audit
            if mode not in MODES:
                raise exceptions.OptionsError(f"poortwachter_audit: not one of {', '.join(MODES)}: {mode!r}")
            self._on = mode != "off"
            self._allowed_too = mode in ("blocks_and_hosts", "all")
            self._names_too = mode == "all"     # allowed DNS answers: every page asks many names
        if updated & {"poortwachter_audit", "poortwachter_audit_urls"}:
            urls = ctx.options.poortwachter_audit_urls.strip().lower()
            if urls not in ("true", "false"):
                raise exceptions.OptionsError(f"poortwachter_audit_urls: not true or false: {urls!r}")
            self._urls = urls == "true"
            self._urls_allowed = self._urls and ctx.options.poortwachter_audit == "all"
        interval = seconds("poortwachter_audit_interval", ctx.options.poortwachter_audit_interval, low=0.01, high=60)
        timeout = seconds("poortwachter_audit_timeout", ctx.options.poortwachter_audit_timeout, low=0.1, high=600)
        wait = seconds("poortwachter_audit_wait", ctx.options.poortwachter_audit_wait, low=0.01, high=60)
        cp_interval = seconds("poortwachter_checkpoint_interval", ctx.options.poortwachter_checkpoint_interval,
                              low=0.1, high=86400)
        if self.writer is not None:
            self.writer.interval, self.writer.timeout = interval, timeout
        if self.waiters is not None:
            self.waiters.wait = wait
        if not self._on:
            self._stop()
            self._stop_checkpoints()
            return
        data_dir = str(resolve_data_dir(ctx.options.poortwachter_data_dir or None))
        url = ctx.options.poortwachter_db or default_url(resolve_data_dir(data_dir))
        gateway = ctx.options.poortwachter_audit_gateway or socket.gethostname()
        where = (data_dir, url, gateway, ctx.options.poortwachter_audit_commit)
        cp_dir = ctx.options.poortwachter_checkpoint_dir or str(audit_dir(Path(data_dir)) / "checkpoints")
        cp_where: CheckpointWhere = ((data_dir, url, gateway), cp_dir, ctx.options.poortwachter_checkpoint_syslog.strip(),
                                     ctx.options.poortwachter_checkpoint_mail.strip(), cp_interval)
        exporters = _exporters(cp_dir, cp_where[2], cp_where[3])   # checked before anything restarts
        if where != self._where:
            self._stop()
            self._start(where, interval, timeout, wait)
        if cp_where != self._checkpoint_where:
            self._stop_checkpoints()
            self._start_checkpoints(cp_where, exporters)

    # --- the hot path --------------------------------------------------------------------------
    def accept(self, seen: Seen) -> Awaitable[None] | None:
        """Called by Enforce for each final verdict: filter, then one append (never blocks).
        Durable: returns what the hook awaits before the answer goes out (None: nothing)."""
        if not self._on or (seen.verdict.action != "block" and (
                not self._allowed_too or (seen.kind == "dns" and not self._names_too))):
            return None
        queue = self.queue
        if len(queue) >= QUEUE_MAX:
            metrics.AUDIT_EVENTS.labels("dropped").inc()
            if not self._full:
                self._full = True
                log.error("audit queue full, events dropped (audit-wachtrij vol)")
            return None
        waiters = self.waiters
        if waiters is None:
            queue.append(seen)
            if len(queue) == self._wake_at and self._wake is not None:
                self._wake.set()          # a burst: do not wait for the interval
            return None
        ticket = waiters.ticket()         # before the append: the writer may take the event at once
        queue.append(seen)
        writer = self.writer
        if writer is not None and writer.sleeping:
            writer.wake.set()             # the writer waits for work: a round starts now
        return ticket

    def _wants_path(self, seen: Seen) -> bool:
        return self._urls and (self._urls_allowed or seen.verdict.action == "block")

    # --- the writer --------------------------------------------------------------------------
    def _start(self, where: tuple[str, str, str, str], interval: float, timeout: float, wait: float) -> None:
        data_dir, url, gateway, commit = where
        durable = commit == "durable"
        directory = audit_dir(resolve_data_dir(data_dir))
        keystore = KeyStore(directory, load=False)
        try:
            keystore.load()
        except EscrowKeyError as exc:   # the proxy keeps filtering; the log gets nothing personal
            log.error("escrow key unusable, audit events keep their clear fields only "
                      "(escrow-sleutel onbruikbaar): %s", exc)
        if keystore.escrow_public is None:
            log.warning("no escrow key (geen escrow-sleutel) in %s: audit events keep their clear fields only, "
                        "nothing personal is recorded; run the key ceremony (poortwachter keys init)", directory)
        try:
            spool = Spool(directory / "spool")
        except SpoolLocked:
            raise exceptions.OptionsError(
                "Audit-spool in gebruik door een ander proces / Audit spool in use by another process: "
                f"{directory / 'spool'}") from None
        if spool.dropped_bytes:
            log.warning("audit spool: a torn record from a crash was dropped (%d bytes)", spool.dropped_bytes)
        self.waiters = Waiters(wait, accepted=len(self.queue)) if durable else None
        self.writer = Writer(queue=self.queue, keystore=keystore, spool=spool,
                             sequence=SequenceFile(directory / "seq", mode=commit), url=store_url(url),
                             gateway=gateway, urls=self._wants_path, durable=durable,
                             on_durable=self.waiters.durable if self.waiters is not None else None,
                             interval=interval, timeout=timeout, on_stored=self._stored).start()
        self._wake = self.writer.wake
        self._wake_at = self.writer.batch
        self._where = where
        self._full = False
        if not spool.empty:
            log.info("audit spool holds %d bytes from before: replayed once the store answers", spool.size_bytes)

    def _stop(self) -> None:
        writer, self.writer, self._where, self._wake = self.writer, None, None, None
        waiters, self.waiters = self.waiters, None      # from here accept answers at once
        if writer is not None and not writer.stop():
            log.error("audit writer did not finish in time (audit-schrijver niet op tijd klaar)")
        if waiters is not None:
            waiters.close()

    # --- checkpoints -----------------------------------------------------------------------------
    def _start_checkpoints(self, cp_where: CheckpointWhere, exporters: list[Exporter]) -> None:
        (data_dir, url, gateway), _, _, _, cp_interval = cp_where
        self._checkpoint_where = cp_where
        try:
            thread = gateway_checkpoints(store_url(url), Path(data_dir), gateway, exporters, interval=cp_interval)
        except ValueError as exc:    # a damaged key file: recording goes on, unsigned
            log.error("checkpoint signing key unusable, audit logs are not checkpointed "
                      "(ondertekensleutel onbruikbaar): %s", exc)
            return
        if thread is not None:
            thread.min_interval = min(CHECKPOINT_MIN_INTERVAL, cp_interval)
            self.checkpoints = thread.start()

    def _stop_checkpoints(self) -> None:
        thread, self.checkpoints, self._checkpoint_where = self.checkpoints, None, None
        if thread is not None and not thread.stop(CHECKPOINT_STOP_TIMEOUT):
            log.error("audit checkpoints did not finish in time (controlepunten niet op tijd klaar)")

    def _stored(self) -> None:
        """The writer stored a batch (its thread): checkpoint it soon."""
        thread = self.checkpoints
        if thread is not None:
            thread.poke()

    def done(self) -> None:
        self._on = False      # from here nothing is accepted: all that was is flushed or spooled
        self._stop()
        self._stop_checkpoints()   # after the writer: its last round signs what the writer flushed


def _exporters(directory: str, syslog: str, mail: str) -> list[Exporter]:
    """The exporters the checkpoint options ask for; OptionsError on a malformed one."""
    mail_host, mail_to = "", []
    if mail:
        mail_host, sep, recipients = mail.partition("/")
        mail_to = [r.strip() for r in recipients.split(",") if r.strip()]
        if not sep or not mail_host or not mail_to:
            raise exceptions.OptionsError(
                f"poortwachter_checkpoint_mail: expected smtp-host[:port]/recipient: {mail!r}")
    try:
        return exporters_from_options(directory=directory, syslog=syslog or None, mail_host=mail_host or None,
                                      mail_to=mail_to)
    except ValueError as exc:
        raise exceptions.OptionsError(f"poortwachter_checkpoint: {exc}") from None
