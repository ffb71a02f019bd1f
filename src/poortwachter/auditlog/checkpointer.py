"""The checkpointer: signs checkpoints of the audit logs, keeps them in an outbox, exports them.

Logs (audit/log.py): one per gateway for its events (`poortwachter/events/<gateway>`, in seq
order, retention's tombstones included) and one for the access ledger (`poortwachter/ledger`, in
id order). The `Checkpointer` keeps each log's compact Merkle range in memory, reads only the
leaves added since its last round, signs a checkpoint (audit/checkpoint.py, Ed25519 signed note)
of every log that grew (and of every log once per `heartbeat`, as a sign of life), keeps it in
audit_checkpoints (the outbox) and hands it to the exporters (auditlog/exporters.py: a directory,
syslog, mail). `CheckpointThread` runs it next to a gateway's recorder.

What leaves the box is what `poortwachter audit verify --checkpoints DIR` checks the database
against: a rewrite of history needs the signing key AND every exported copy.

Notes are exported only after their database row committed, and retried until every exporter
took them. A round that finds a log differing from, or behind, the last checkpoint it signed
(database restored from an old backup, rows changed) refuses to sign that log again: signing
would only bless the change. It says so in the log (no personal data) and in `status`.

Erasure records: retention (auditlog/retention.py) erases old events but keeps a tombstone with
each one's leaf hash, time and action; one signed erasure note (audit/notes.py) per run and log
commits to the tombstones, and leaves the box through `deliver_notes` like a checkpoint.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from ..audit import checkpoint as cpmod
from ..audit.log import LEDGER_LOG, Frontier, events_log, gateway_of
from ..audit.notes import Note
from ..store.db import Store
from ..store.models import (
    AuditCheckpointRow,
    AuditErasureRow,
    AuditEventRow,
    AuditTombstoneRow,
    LedgerRow,
)
from .exporters import DirectoryExporter, Exporter, ExportError

log = logging.getLogger("poortwachter")

YIELD = 10_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- reading the logs from the store ---------------------------------------------------------------

def event_leaves(s: Session, gateway: str, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(seq, stored leaf hash) of a gateway's log, events and tombstones together, in seq order."""
    ev = select(AuditEventRow.seq.label("seq"), AuditEventRow.leaf_hash.label("leaf")).where(
        AuditEventRow.gateway == gateway)
    tb = select(AuditTombstoneRow.seq.label("seq"), AuditTombstoneRow.leaf_hash.label("leaf")).where(
        AuditTombstoneRow.gateway == gateway)
    if after is not None:
        ev = ev.where(AuditEventRow.seq > after)
        tb = tb.where(AuditTombstoneRow.seq > after)
    both = union_all(ev, tb).subquery()
    stmt = select(both.c.seq, both.c.leaf).order_by(both.c.seq).execution_options(yield_per=YIELD)
    for seq, leaf in s.execute(stmt):
        yield int(seq), bytes(leaf)


def ledger_leaves(s: Session, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    stmt = select(LedgerRow.id, LedgerRow.leaf_hash)
    if after is not None:
        stmt = stmt.where(LedgerRow.id > after)
    for key, leaf in s.execute(stmt.order_by(LedgerRow.id).execution_options(yield_per=YIELD)):
        yield int(key), bytes(leaf)


def leaves_of(s: Session, log_name: str, after: int | None = None) -> Iterator[tuple[int, bytes]]:
    if log_name == LEDGER_LOG:
        return ledger_leaves(s, after)
    gateway = gateway_of(log_name)
    if gateway is None:
        raise ValueError(f"unknown log {log_name!r}")
    return event_leaves(s, gateway, after)


def gateways(s: Session) -> list[str]:
    both = union_all(select(AuditEventRow.gateway.label("g")).distinct(),
                     select(AuditTombstoneRow.gateway.label("g")).distinct()).subquery()
    return sorted({g for (g,) in s.execute(select(both.c.g).distinct())})


# --- the checkpointer ------------------------------------------------------------------------------

@dataclass
class _LogState:
    frontier: Frontier
    last_key: int | None
    signed_size: int | None = None
    signed_at: dt.datetime | None = None
    broken: str | None = None


@dataclass(frozen=True)
class RoundResult:
    signed: list[cpmod.Checkpoint]
    exported: int
    broken: dict[str, str]


class Checkpointer:
    """Signs checkpoints of the logs and exports them. One round: `run_once()`."""

    def __init__(self, store: Store, signing_key: bytes, *, gateways: Sequence[str] | None = None,
                 ledger: bool = True, exporters: Sequence[Exporter] = (),
                 now: Callable[[], dt.datetime] = utcnow,
                 heartbeat: dt.timedelta | None = dt.timedelta(hours=24)) -> None:
        self.store = store
        self._key = signing_key
        self.public_key = cpmod.public_key_of(signing_key)
        self.gateways = list(gateways) if gateways is not None else None
        self.ledger = ledger
        self.exporters = list(exporters)
        self.now = now
        self.heartbeat = heartbeat
        self._states: dict[str, _LogState] = {}
        self._lock = threading.Lock()
        self._published = False

    @property
    def status(self) -> dict[str, str]:
        """Logs this checkpointer refuses to sign, and why (no personal data)."""
        return {name: st.broken for name, st in self._states.items() if st.broken}

    def logs(self, s: Session) -> list[str]:
        names = [events_log(g) for g in (self.gateways if self.gateways is not None else gateways(s))]
        return names + ([LEDGER_LOG] if self.ledger else [])

    def run_once(self) -> RoundResult:
        with self._lock:
            now = self.now()
            signed: list[tuple[_LogState, cpmod.Checkpoint, int | None]] = []
            with self.store.read() as s:
                for name in self.logs(s):
                    state = self._states.get(name)
                    if state is None:
                        state = self._states[name] = self._load(s, name)
                    if state.broken:
                        continue
                    for key, leaf in leaves_of(s, name, state.last_key):
                        state.frontier.append(leaf)
                        state.last_key = key
                    cp = self._maybe_sign(name, state, now)
                    if cp is not None:
                        signed.append((state, cp, state.last_key))
            if signed:
                with self.store.write() as s:
                    s.add_all([AuditCheckpointRow(log=cp.log, size=cp.size, root=cp.root, at=cp.at, last_key=key,
                                                  note=cpmod.to_text(cp)) for _, cp, key in signed])
                for state, cp, _ in signed:        # only once stored: a failed write signs again next round
                    state.signed_size, state.signed_at = cp.size, cp.at
            exported = self.export_pending()
            return RoundResult([cp for _, cp, _ in signed], exported, self.status)

    def _maybe_sign(self, name: str, state: _LogState, now: dt.datetime) -> cpmod.Checkpoint | None:
        size = state.frontier.size
        if size == 0:
            return None            # nothing to vouch for yet
        grown = state.signed_size is None or size > state.signed_size
        stale = (self.heartbeat is not None and state.signed_at is not None
                 and now - state.signed_at >= self.heartbeat)
        if not grown and not stale:
            return None
        at = now
        if state.signed_at is not None and at <= state.signed_at:
            # The clock stepped back: a later checkpoint must carry a later time, or verify would
            # read the order of two checkpoints the wrong way round.
            at = state.signed_at + dt.timedelta(microseconds=1)
        return cpmod.sign(self._key, name, size, state.frontier.root(), at)

    def _load(self, s: Session, name: str) -> _LogState:
        """Read a log from the start and compare it with the last checkpoint signed of it."""
        baselines = self._baselines(s, name)
        sizes = {cp.size for cp in baselines}
        roots: dict[int, bytes] = {}
        frontier, last_key = Frontier(), None
        if 0 in sizes:
            roots[0] = frontier.root()
        for key, leaf in leaves_of(s, name):
            frontier.append(leaf)
            last_key = key
            if frontier.size in sizes:
                roots[frontier.size] = frontier.root()
        state = _LogState(frontier, last_key)
        if not baselines:
            return state
        newest = max(baselines, key=lambda cp: (cp.size, cp.at))
        state.signed_size = newest.size
        state.signed_at = max(cp.at for cp in baselines)
        for cp in sorted(baselines, key=lambda c: c.size):
            if cp.size > frontier.size:
                state.broken = "behind"
            elif roots.get(cp.size) != cp.root:
                state.broken = "changed"
            if state.broken:
                log.error("audit log %s %s its checkpoint of size %d: not signing it again until this is "
                          "resolved; run `poortwachter audit verify` (auditlog wijkt af van zijn controlepunt)",
                          name, "is behind" if state.broken == "behind" else "differs from", cp.size)
                break
        return state

    def _baselines(self, s: Session, name: str) -> list[cpmod.Checkpoint]:
        """The newest checkpoint of `name` in the outbox and in each exported directory that we
        signed ourselves (a row or file signed by another key proves nothing)."""
        found: list[cpmod.Checkpoint] = []
        row = s.execute(select(AuditCheckpointRow.note).where(AuditCheckpointRow.log == name)
                        .order_by(AuditCheckpointRow.size.desc(), AuditCheckpointRow.at.desc()).limit(1)).first()
        candidates: list[cpmod.Checkpoint | None] = []
        if row is not None:
            try:
                candidates.append(cpmod.from_text(row[0]))
            except cpmod.CheckpointError:
                pass
        for exporter in self.exporters:
            if isinstance(exporter, DirectoryExporter):
                candidates.append(exporter.latest(name))
        for cp in candidates:
            if cp is not None and cp.log == name and cpmod.verify(self.public_key, cp):
                found.append(cp)
        return found

    def export_pending(self) -> int:
        """Deliver every note of our logs not yet exported (oldest first); they are marked
        exported only when every exporter took them. Returns how many were."""
        if not self.exporters:
            return 0
        with self.store.read() as s:
            names = set(self.logs(s))
            cps = s.execute(select(AuditCheckpointRow.id, AuditCheckpointRow.log, AuditCheckpointRow.size,
                                   AuditCheckpointRow.at, AuditCheckpointRow.note)
                            .where(AuditCheckpointRow.exported_at.is_(None)).order_by(AuditCheckpointRow.id)).all()
            ers = s.execute(select(AuditErasureRow.id, AuditErasureRow.log, AuditErasureRow.at, AuditErasureRow.note)
                            .where(AuditErasureRow.exported_at.is_(None), AuditErasureRow.note.is_not(None))
                            .order_by(AuditErasureRow.id)).all()
        cp_notes = [(i, Note("checkpoint", lg, size, at, note)) for i, lg, size, at, note in cps if lg in names]
        er_notes = [(i, Note("erasure", lg, i, at, note)) for i, lg, at, note in ers if lg in names]
        if not cp_notes and not er_notes:
            return 0
        return deliver_notes(self.store, self.exporters, cp_notes, er_notes, self.now(),
                             public_key=None if self._published else self.public_key,
                             published=self._mark_published)

    def _mark_published(self) -> None:
        self._published = True


def deliver_notes(store: Store, exporters: Sequence[Exporter], checkpoints: Sequence[tuple[int, Note]],
                  erasures: Sequence[tuple[int, Note]], now: dt.datetime, *, public_key: bytes | None = None,
                  published: Callable[[], None] | None = None) -> int:
    """Hand the notes to every exporter; mark them exported if all of them took them."""
    notes = [n for _, n in checkpoints] + [n for _, n in erasures]
    ok = True
    for exporter in exporters:
        try:
            if public_key is not None:
                exporter.publish_key(public_key)
            exporter.deliver(notes, now)
        except (ExportError, OSError) as exc:
            ok = False
            # Only the kind of failure: a driver's or server's message may carry addresses.
            log.warning("audit checkpoints not exported by %s, tried again next round "
                        "(controlepunten niet geëxporteerd): %s", exporter.name,
                        exc if isinstance(exc, ExportError) else type(exc).__name__)
    if not ok:
        return 0
    if public_key is not None and published is not None:
        published()
    with store.write() as s:
        if checkpoints:
            s.execute(AuditCheckpointRow.__table__.update()
                      .where(AuditCheckpointRow.id.in_([i for i, _ in checkpoints])).values(exported_at=now))
        if erasures:
            s.execute(AuditErasureRow.__table__.update()
                      .where(AuditErasureRow.id.in_([i for i, _ in erasures])).values(exported_at=now))
    return len(notes)


class CheckpointThread:
    """Runs a Checkpointer every `interval` seconds, and soon after `poke()` (e.g. after a batch
    was stored), but never more often than every `min_interval` seconds. `checkpointer` may be a
    factory, called in the thread (and again after a failure), so opening the store never holds
    up whoever starts the thread."""

    def __init__(self, checkpointer: Checkpointer | Callable[[], Checkpointer], interval: float = 60.0,
                 min_interval: float = 5.0) -> None:
        self.checkpointer = checkpointer if isinstance(checkpointer, Checkpointer) else None
        self._factory = None if isinstance(checkpointer, Checkpointer) else checkpointer
        self.interval = interval
        self.min_interval = min_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poortwachter-checkpoints", daemon=True)

    def start(self) -> CheckpointThread:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> bool:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._round()
            self._wake.wait(self.interval)
            if self._stop.wait(self.min_interval if self._wake.is_set() else 0):
                break
            self._wake.clear()
        self._round()      # a last checkpoint of what was stored before stopping

    def _round(self) -> None:
        try:
            if self.checkpointer is None and self._factory is not None:
                self.checkpointer = self._factory()
            if self.checkpointer is not None:
                self.checkpointer.run_once()
        except Exception as exc:   # noqa: BLE001 - the next round tries again
            log.error("audit checkpoint round failed (controlepunt mislukt): %s", type(exc).__name__)


def gateway_checkpoints(url: str, data_dir: Path, gateway: str, exporters: Sequence[Exporter], *,
                        ledger: bool = True, interval: float = 60.0) -> CheckpointThread | None:
    """The checkpoint thread a gateway runs next to its recorder: its own events log (and the
    ledger, unless another process signs that). None (and a warning) without a signing key:
    `poortwachter keys init` makes it."""
    from ..store.db import open_store
    from .keys import load_checkpoint_key

    try:
        key = load_checkpoint_key(Path(data_dir))
    except FileNotFoundError:
        log.warning("no checkpoint signing key: audit logs are not checkpointed; run the key ceremony "
                    "(poortwachter keys init) (geen ondertekensleutel)")
        return None
    return CheckpointThread(lambda: Checkpointer(open_store(url), key, gateways=[gateway], ledger=ledger,
                                                 exporters=exporters), interval=interval)

