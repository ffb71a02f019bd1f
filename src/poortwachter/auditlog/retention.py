"""Retention: audit events are erased when their period is over, and the erasure stays verifiable.

Periods (configurable): 30 days for allowed traffic, 180 days for blocks (and anything else that
is not "allow"). An event is kept longer only while a case that may still be used (open or
approved, not past its end time) holds it: see `Hold`. Restart markers (audit/record.py) are
never erased.

Erasing keeps the Merkle log whole. An erased event leaves a TOMBSTONE (audit_tombstones): its
place (gateway, seq), its leaf hash, its time and its action; nothing about whom or what it
concerned (the sealed part, the pseudonym, zone, role and category are gone with the row). Each
batch of one log gets an erasure record (audit_erasures) with the count, a SHA-256 digest over the
tombstones (seq, leaf hash, time, action) and the cut-off times, signed with the checkpoint key
and exported like a checkpoint. So `audit verify` still checks every leaf of every log after
retention, and tells an erasure the rules asked for from a deletion nobody signed for (or one
that came too early).

Safety rules:
- only events already covered by a signed checkpoint are erased (when a signing key is given),
  so their leaf hashes were pinned while their content still existed;
- an event whose content no longer matches its leaf hash is NOT erased: it is evidence of
  tampering, and erasing it would hide that. It is counted in the result.

Holds: a case names a subject (a client address) and a window. Events carry the subject only as
a per-period pseudonym, whose key the gateway no longer has for any period old enough to be
erased (only the escrow shares open it, i.e. an approved case looking). So by default a usable
case holds EVERY event in its window; a `Hold` that also carries the case's pseudonyms (gateway,
period, pseudonym: known once a case has looked) narrows that to the subject's events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, false, func, not_, or_, select
from sqlalchemy.orm import Session

from ..audit.log import events_log
from ..audit.notes import Note, Tombstone, erasure_digest, erasure_to_text, sign_erasure
from ..audit.record import RESTART, AuditEvent
from ..store import repo
from ..store.db import Store
from ..store.models import AuditCheckpointRow, AuditErasureRow, AuditEventRow, AuditTombstoneRow
from .checkpointer import deliver_notes, gateways, utcnow
from .exporters import Exporter

DEFAULT_ALLOWED = dt.timedelta(days=30)
DEFAULT_BLOCKED = dt.timedelta(days=180)
BATCH = 5_000


@dataclass(frozen=True)
class RetentionPolicy:
    allowed: dt.timedelta = DEFAULT_ALLOWED     # events whose action is "allow"
    blocked: dt.timedelta = DEFAULT_BLOCKED     # every other event (blocks)

    def __post_init__(self) -> None:
        if self.allowed <= dt.timedelta(0) or self.blocked <= dt.timedelta(0):
            raise ValueError("retention periods must be positive")

    def cutoffs(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(allowed_before, blocked_before): events older than these are due."""
        return now - self.allowed, now - self.blocked

    def due(self, at: dt.datetime, action: str, now: dt.datetime) -> bool:
        allowed_before, blocked_before = self.cutoffs(now)
        return at < (allowed_before if action == "allow" else blocked_before)


@dataclass(frozen=True)
class Hold:
    """Events a case still needs: those in [start, end]; with `pseudonyms`, only the subject's."""

    start: dt.datetime
    end: dt.datetime
    pseudonyms: frozenset[tuple[str, str, str]] | None = None    # (gateway, period, pseudonym)

    def covers(self, gateway: str, at: dt.datetime, period: str, pseudonym: str | None) -> bool:
        if not self.start <= at <= self.end:
            return False
        return self.pseudonyms is None or (gateway, period, pseudonym or "") in self.pseudonyms

    def condition(self) -> ColumnElement[bool]:
        e = AuditEventRow
        window = and_(e.at >= self.start, e.at <= self.end)
        if self.pseudonyms is None:
            return window
        if not self.pseudonyms:
            return false()
        return and_(window, or_(*(and_(e.gateway == g, e.period == p, e.pseudonym == ps)
                                  for g, p, ps in sorted(self.pseudonyms))))


def case_holds(s: Session, now: dt.datetime) -> list[Hold]:
    """The holds of every case that may still be used (auditlog/cases.py: held_windows)."""
    from .cases import held_windows

    return [Hold(start, end) for start, end in held_windows(s, now=now)]


@dataclass
class RetentionResult:
    erased: dict[str, int] = field(default_factory=dict)    # per log
    held: int = 0               # due, but kept for a case
    changed: int = 0            # due, but kept: content does not match its leaf hash (tampering?)
    uncovered: int = 0          # due, but not yet under a checkpoint
    erasures: list[int] = field(default_factory=list)     # ids of the erasure records made
    exported: int = 0

    @property
    def total(self) -> int:
        return sum(self.erased.values())


def apply_retention(store: Store, *, now: dt.datetime | None = None, policy: RetentionPolicy = RetentionPolicy(),
                    signing_key: bytes | None = None, holds: Sequence[Hold] | None = None,
                    exporters: Sequence[Exporter] = (), gateway_names: Sequence[str] | None = None,
                    batch: int = BATCH, clock: Callable[[], dt.datetime] = utcnow) -> RetentionResult:
    """Erase every due event of every gateway (or of `gateway_names`) that nothing holds.
    `holds=None` reads them from the cases. Without `signing_key` the erasure records are not
    signed (and `audit verify` will say so): retention is a legal duty, it is never skipped."""
    now = clock() if now is None else now
    allowed_before, blocked_before = policy.cutoffs(now)
    result = RetentionResult()
    with store.read() as s:
        names = list(gateway_names) if gateway_names is not None else gateways(s)
        hold_list = list(holds) if holds is not None else case_holds(s, now)
    for gateway in names:
        name = events_log(gateway)
        with store.read() as s:
            covered = _covered(s, name) if signing_key is not None else None
            due = _due(gateway, allowed_before, blocked_before)
            result.held += _count(s, and_(due, or_(*(h.condition() for h in hold_list)))) if hold_list else 0
            if signing_key is not None:
                beyond = AuditEventRow.seq > covered if covered is not None else AuditEventRow.seq.is_not(None)
                result.uncovered += _count(s, and_(due, beyond, *_not_held(hold_list)))
        if signing_key is not None and covered is None:
            continue
        after: int | None = None
        while True:
            done, after = _erase_batch(store, gateway, name, now, allowed_before, blocked_before,
                                       list(holds) if holds is not None else None,
                                       covered, after, batch, signing_key, result)
            if done:
                break
    if exporters and result.erasures:
        result.exported = export_erasures(store, exporters, result.erasures, now)
    return result


def _erase_batch(store: Store, gateway: str, name: str, now: dt.datetime, allowed_before: dt.datetime,
                 blocked_before: dt.datetime, holds: Sequence[Hold] | None, covered: int | None,
                 after: int | None, batch: int, signing_key: bytes | None,
                 result: RetentionResult) -> tuple[bool, int | None]:
    """One transaction: up to `batch` due rows after seq `after`; (no more rows?, new cursor)."""
    e = AuditEventRow
    with store.write() as s:
        repo.lock_revision(s)      # one writer order with the cases and the workflow (PostgreSQL)
        if holds is None:
            # Read under the same lock the cases take: a case opened a moment ago holds already.
            holds = case_holds(s, now)
        stmt = select(e).where(_due(gateway, allowed_before, blocked_before), *_not_held(holds))
        if covered is not None:
            stmt = stmt.where(e.seq <= covered)
        if after is not None:
            stmt = stmt.where(e.seq > after)
        rows = list(s.scalars(stmt.order_by(e.seq).limit(batch)))
        if not rows:
            return True, after
        tombstones: list[Tombstone] = []
        ids: list[int] = []
        for row in rows:
            if _leaf_of(row) != bytes(row.leaf_hash):
                result.changed += 1        # evidence: keep it for `audit verify` to report
                continue
            tombstones.append(Tombstone(row.seq, row.at, row.action, bytes(row.leaf_hash)))
            ids.append(row.id)
        cursor = rows[-1].seq
        if not tombstones:
            return len(rows) < batch, cursor
        digest = erasure_digest(tombstones)
        record = AuditErasureRow(log=name, at=now, count=len(tombstones), digest=digest,
                                 allowed_before=allowed_before, blocked_before=blocked_before, note=None)
        s.add(record)
        s.flush()
        if signing_key is not None:
            record.note = erasure_to_text(sign_erasure(signing_key, name, record.id, len(tombstones), digest,
                                                       allowed_before, blocked_before, now))
        s.execute(AuditTombstoneRow.__table__.insert(),
                  [{"gateway": gateway, "seq": t.seq, "at": t.at, "action": t.action, "leaf_hash": t.leaf_hash,
                    "erasure": record.id} for t in tombstones])
        s.execute(AuditEventRow.__table__.delete().where(AuditEventRow.id.in_(ids)))
        result.erased[name] = result.erased.get(name, 0) + len(tombstones)
        result.erasures.append(record.id)
    return len(rows) < batch, cursor


def export_erasures(store: Store, exporters: Sequence[Exporter], ids: Sequence[int], now: dt.datetime) -> int:
    with store.read() as s:
        rows = s.execute(select(AuditErasureRow.id, AuditErasureRow.log, AuditErasureRow.at, AuditErasureRow.note)
                         .where(AuditErasureRow.id.in_(list(ids)), AuditErasureRow.note.is_not(None),
                                AuditErasureRow.exported_at.is_(None))
                         .order_by(AuditErasureRow.id)).all()
    notes = [(i, Note("erasure", lg, i, at, note)) for i, lg, at, note in rows]
    return deliver_notes(store, exporters, [], notes, now) if notes else 0


def _due(gateway: str, allowed_before: dt.datetime, blocked_before: dt.datetime) -> ColumnElement[bool]:
    e = AuditEventRow
    # Restart markers are never due: they hold nothing personal, and `audit verify` needs them to
    # tell a restart from lost events for as long as the log exists.
    return and_(e.gateway == gateway, e.kind != RESTART,
                or_(and_(e.action == "allow", e.at < allowed_before),
                    and_(e.action != "allow", e.at < blocked_before)))


def _not_held(holds: Sequence[Hold]) -> list[ColumnElement[bool]]:
    return [not_(or_(*(h.condition() for h in holds)))] if holds else []


def _count(s: Session, condition: ColumnElement[bool]) -> int:
    return int(s.scalar(select(func.count()).select_from(AuditEventRow).where(condition)) or 0)


def _covered(s: Session, name: str) -> int | None:
    """The seq of the last event under a checkpoint of this log (from the outbox)."""
    return s.scalar(select(func.max(AuditCheckpointRow.last_key)).where(AuditCheckpointRow.log == name))


def _leaf_of(row: AuditEventRow) -> bytes:
    try:
        return AuditEvent(seq=row.seq, at=row.at, gateway=row.gateway, kind=row.kind, zone=row.zone, role=row.role,
                          slot=row.slot, category=row.category, action=row.action, rule=row.rule,
                          source=row.source, period=row.period, pseudonym=row.pseudonym,
                          sealed=bytes(row.sealed) if row.sealed is not None else None).leaf_hash()
    except (ValueError, TypeError):
        return b""
