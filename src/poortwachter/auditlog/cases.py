"""Cases (zaken): the one way to open sealed audit events (004 art. 22).

A service on top of the store, like the workflow (no web framework here): the console and the CLI
call it. The crypto modules (audit/) stay pure; this module is the shell around them.

Life of a case::

    open (directie) -> approved (a second person, of another role: ICT) -> closed -> informed
                \\-> expired (its end time passed, before it was closed)      (closed from any state)

- A case names an established violation: reference (e.g. the incident number), article,
  description, why the logs are needed, the subject (a client address) and a time window.
  The window must lie in the past when the case is opened: a case looks back, it is never a
  wiretap for what comes next. The window is at most MAX_WINDOW long; the case ends (can no
  longer be used) at `ends_at`, by default DEFAULT_DURATION after opening, at most MAX_DURATION.
- `unseal_case` is the only code path that opens sealed events. It needs, in this order: a role
  that may look (directie, ICT), an approved case whose end time has not passed, and enough
  escrow shares with their holders' passphrases. It then recombines the escrow private key in
  memory (checked against the public keys of the key ceremony in audit_keys), opens the sealed
  pseudonym keys of the window's periods, computes the subject's pseudonym per gateway and
  period, selects only the events with those pseudonyms inside the window, and opens those. The
  private key lives only in that call (Python cannot wipe memory; nothing keeps a reference).
- Every decision (open, approve, close, inform, expire) and every look (view, export) appends an
  entry to the access ledger (auditlog/ledger.py): when, who, what, which case, how many events;
  never content. An unseal attempt that is refused is on record too ("refused", with a fixed
  code).

Roles: directie opens; ICT approves (APPROVERS); directie and ICT list, view, export, close and
inform (CASE_ROLES). Who reads the ledger: auditlog/ledger.py (LEDGER_READERS).

Writers take the store's writer lock (the `meta` row) first, like the workflow, so ledger ids are
committed in order on PostgreSQL too (the Merkle log appends by id). Cases do not bump the state
revision: gateways have nothing to reload for them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.pseudonym import open_period_key, periods_between, pseudonym
from ..audit.record import AuditEvent
from ..audit.seal import SealError, public_key_of, unseal
from ..audit.shares import BadPassphrase, Share, ShareError, combine, unprotect
from ..store import repo
from ..store.db import Store
from ..store.models import (
    NAME,
    AuditEventRow,
    AuditKeyRow,
    AuditPeriodKeyRow,
    CaseRow,
    EscrowHolderRow,
)
from ..workflow.common import SYSTEM, User, actor_of, aware, require_role, text
from ..workflow.errors import Conflict, Forbidden, Invalid, NotFound
from .ledger import append_ledger

OPENERS = ("directie",)
APPROVERS = ("ict",)
CASE_ROLES = ("directie", "ict")

DEFAULT_DURATION = dt.timedelta(days=30)
MAX_DURATION = dt.timedelta(days=90)
MAX_WINDOW = dt.timedelta(days=31)
MAX_SHARES = 16
MAX_SHARE_TEXT = 8192
# A pasted share names its own scrypt cost; more than this is a memory bomb, not a share.
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**17, 8, 2
EXPORT_FORMATS = ("", "json", "csv")   # the ledger note of a look

Purpose = Literal["view", "export"]


class SharesRefused(Invalid):
    """The shares did not give the escrow key: too few, unreadable, a wrong passphrase, or shares
    of another key. One message per cause, none repeating what was entered."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class CaseNotUsable(Conflict):
    """The case does not allow looking (not approved, closed, or past its end time)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


# --- views -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseView:
    id: int
    reference: str
    article: str
    description: str
    reason: str
    subject: str
    window_start: dt.datetime
    window_end: dt.datetime
    ends_at: dt.datetime
    status: str                   # as stored; see `state(now)` for the effective one
    opened_by: str
    opened_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None
    closed_by: str | None
    closed_at: dt.datetime | None
    outcome: str
    informed_by: str | None
    informed_at: dt.datetime | None
    informed_note: str
    expired_at: dt.datetime | None

    def state(self, now: dt.datetime) -> str:
        """The status at `now`: an open or approved case past its end time is expired, whether
        or not the sweep has written that down yet."""
        if self.status in ("open", "approved") and now >= self.ends_at:
            return "expired"
        return self.status

    def usable(self, now: dt.datetime) -> bool:
        return self.state(now) == "approved"


@dataclass(frozen=True)
class HolderView:
    holder: str
    name: str
    share_index: int
    threshold: int


@dataclass(frozen=True)
class CaseEvent:
    """One opened event: its clear fields and what was sealed."""

    at: dt.datetime
    gateway: str
    kind: str
    zone: str
    role: str
    slot: str | None
    category: str | None
    action: str
    rule: str
    source: str
    client: str
    host: str
    names: tuple[str, ...]
    path: str | None


@dataclass(frozen=True)
class CaseReport:
    case: CaseView
    events: tuple[CaseEvent, ...]
    periods: tuple[str, ...]            # the pseudonym periods the window spans
    missing_periods: tuple[str, ...]    # periods without any stored key: their events cannot be found
    unopened_periods: tuple[str, ...]   # periods whose key did not open with these shares
    unreadable: int                     # selected events whose seal did not open (altered rows)
    made_at: dt.datetime
    made_by: str
    purpose: str
    ledger_id: int


# --- decisions -----------------------------------------------------------------------------------

def open_case(s: Session, *, user: User | None, reference: str, article: str, description: str,
              reason: str, subject: str, window_start: dt.datetime, window_end: dt.datetime,
              now: dt.datetime, ends_at: dt.datetime | None = None) -> int:
    """Directie opens a case for an established violation; returns its number."""
    who = require_role(user, *OPENERS)
    now = aware(now, "Tijd", "Time")
    ref = text(reference, "Kenmerk", "Reference", limit=NAME)
    art = text(article, "Artikel", "Article", limit=NAME)
    desc = text(description, "Vastgestelde overtreding", "Established violation")
    why = text(reason, "Waarom de logs nodig zijn", "Why the logs are needed")
    subj = normalise_subject(subject)
    start = aware(window_start, "Begin van het tijdvak", "Start of the window")
    end = aware(window_end, "Einde van het tijdvak", "End of the window")
    if end <= start:
        raise Invalid("Het tijdvak eindigt voor het begint / The window ends before it starts")
    if end > now:
        raise Invalid("Het tijdvak moet voorbij zijn: een zaak kijkt terug, nooit vooruit / "
                      "The window must be over: a case looks back, never ahead")
    if end - start > MAX_WINDOW:
        raise Invalid(f"Tijdvak te lang (max. {MAX_WINDOW.days} dagen) / "
                      f"Window too long (max. {MAX_WINDOW.days} days)")
    ends = now + DEFAULT_DURATION if ends_at is None else aware(ends_at, "Einddatum", "End date")
    if not now < ends <= now + MAX_DURATION:
        raise Invalid(f"De zaak moet na nu en binnen {MAX_DURATION.days} dagen eindigen / "
                      f"The case must end after now and within {MAX_DURATION.days} days")
    repo.lock_revision(s)
    row = CaseRow(reference=ref, article=art, description=desc, reason=why, subject=subj,
                  window_start=start, window_end=end, ends_at=ends, status="open",
                  opened_by=actor_of(who), opened_at=now, outcome="", informed_note="")
    s.add(row)
    s.flush()
    append_ledger(s, at=now, actor=actor_of(who), action="open", case_id=row.id)
    return row.id


def approve_case(s: Session, case_id: int, *, user: User | None, now: dt.datetime) -> None:
    """A second person, of another role than the one who opened it, approves the case."""
    who = require_role(user, *APPROVERS)
    now = aware(now, "Tijd", "Time")
    repo.lock_revision(s)
    row = _row(s, case_id)
    _check_state(row, now, "open", "Alleen een open zaak kan worden goedgekeurd / Only an open case can be approved")
    opener_role, _, opener_name = row.opened_by.partition(":")
    if who.username == opener_name or who.role == opener_role:
        raise Forbidden("Een zaak keurt iemand anders goed, met een andere rol dan wie haar opende / "
                         "A case is approved by someone else, with another role than its opener")
    row.status, row.approved_by, row.approved_at = "approved", actor_of(who), now
    append_ledger(s, at=now, actor=actor_of(who), action="approve", case_id=row.id)


def close_case(s: Session, case_id: int, *, user: User | None, outcome: str, now: dt.datetime) -> None:
    """Close a case (open, approved or expired): no more looking; then the subject is informed."""
    who = require_role(user, *CASE_ROLES)
    now = aware(now, "Tijd", "Time")
    result = text(outcome, "Uitkomst", "Outcome")
    repo.lock_revision(s)
    row = _row(s, case_id)
    if row.status == "closed":
        raise Conflict("De zaak is al gesloten / The case is already closed")
    row.status, row.closed_by, row.closed_at, row.outcome = "closed", actor_of(who), now, result
    append_ledger(s, at=now, actor=actor_of(who), action="close", case_id=row.id)


def inform_case(s: Session, case_id: int, *, user: User | None, note: str, now: dt.datetime) -> None:
    """Record that the subject of a closed case was informed (how, in `note`)."""
    who = require_role(user, *CASE_ROLES)
    now = aware(now, "Tijd", "Time")
    how = text(note, "Hoe geïnformeerd", "How informed")
    repo.lock_revision(s)
    row = _row(s, case_id)
    if row.status != "closed":
        raise Conflict("Eerst de zaak sluiten, dan de betrokkene informeren / "
                       "Close the case first, then inform the subject")
    if row.informed_at is not None:
        raise Conflict("De betrokkene is al geïnformeerd / The subject has already been informed")
    row.informed_by, row.informed_at, row.informed_note = actor_of(who), now, how
    append_ledger(s, at=now, actor=actor_of(who), action="inform", case_id=row.id)


def expire_cases(s: Session, *, now: dt.datetime) -> int:
    """Mark open and approved cases past their end time as expired (ledger: "expire", by the
    system, dated when recorded so the ledger stays in time order). Returns how many."""
    now = aware(now, "Tijd", "Time")
    repo.lock_revision(s)
    rows = s.scalars(select(CaseRow).where(CaseRow.status.in_(("open", "approved")), CaseRow.ends_at <= now)
                     .order_by(CaseRow.id)).all()
    for row in rows:
        _expire(s, row, now)
    return len(rows)


# --- reading -------------------------------------------------------------------------------------

def get_case(s: Session, case_id: int, *, user: User | None) -> CaseView:
    require_role(user, *CASE_ROLES)
    return _view(_row(s, case_id))


def list_cases(s: Session, *, user: User | None) -> list[CaseView]:
    """Every case, newest first."""
    require_role(user, *CASE_ROLES)
    return [_view(r) for r in s.scalars(select(CaseRow).order_by(CaseRow.id.desc()))]


def escrow_holders(s: Session) -> list[HolderView]:
    """The share holders of the newest escrow key (empty before the key ceremony)."""
    key_id = s.scalar(select(AuditKeyRow.id).order_by(AuditKeyRow.id.desc()).limit(1))
    if key_id is None:
        return []
    rows = s.scalars(select(EscrowHolderRow).where(EscrowHolderRow.key_id == key_id)
                     .order_by(EscrowHolderRow.share_index))
    return [HolderView(r.holder, r.name, r.share_index, r.threshold) for r in rows]


def held_windows(s: Session, *, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """For retention: the windows of cases that may still be used (open or approved, not past
    their end time). Events in these windows must not be deleted yet."""
    now = aware(now, "Tijd", "Time")
    rows = s.execute(select(CaseRow.window_start, CaseRow.window_end)
                     .where(CaseRow.status.in_(("open", "approved")), CaseRow.ends_at > now)).all()
    return [(start, end) for start, end in rows]


# --- looking: the one path that unseals ----------------------------------------------------------

def unseal_case(store: Store, case_id: int, *, user: User | None,
                shares: Sequence[tuple[Mapping[str, Any] | str, str]], now: dt.datetime,
                purpose: Purpose = "view", note: str = "") -> CaseReport:
    """Open the subject's events in the window of an approved, unexpired case.

    `shares` are (protected share blob or its JSON text, passphrase) pairs; at least the
    threshold of them. `note` is the export format ("json", "csv"; "" for a view). The ledger
    entry (with the number of events) is committed before the report is returned; a refused
    attempt is committed as "refused" before the error is raised.
    Raises Forbidden (role), NotFound, CaseNotUsable (409) or SharesRefused (400)."""
    who = require_role(user, *CASE_ROLES)
    now = aware(now, "Tijd", "Time")
    if purpose not in ("view", "export") or note not in EXPORT_FORMATS:
        raise Invalid("Onbekend doel of formaat / Unknown purpose or format")   # the ledger takes codes only
    actor = actor_of(who)
    with store.read() as s:
        case = _view(_row(s, case_id))
        publics = list(s.scalars(select(AuditKeyRow.escrow_public)))
    try:
        _check_usable(case, now)
        escrow = _escrow_key(shares, [bytes(p) for p in publics])
    except (CaseNotUsable, SharesRefused) as exc:
        _refused(store, case_id, actor, now, f"{purpose}:{exc.code}")
        raise
    try:
        with store.read() as s:
            found = _open_events(s, case, escrow)
    finally:
        del escrow   # the only reference: nothing keeps the private key after this call
    refusal: CaseNotUsable | None = None
    ledger_id = 0
    with store.write() as s:
        repo.lock_revision(s)
        row = _row(s, case_id)
        try:
            _check_usable(_view(row), now)   # closed or expired while we were opening?
        except CaseNotUsable as exc:
            refusal = exc
            if exc.code == "expired" and row.status in ("open", "approved"):
                _expire(s, row, now)
            append_ledger(s, at=now, actor=actor, action="refused", case_id=case_id,
                          note=f"{purpose}:{exc.code}")
        else:
            entry = append_ledger(s, at=now, actor=actor, action=purpose, case_id=case_id,
                                  events=len(found.events), note=note)
            s.flush()
            ledger_id = entry.id
    if refusal is not None:
        raise refusal
    return CaseReport(case=case, events=found.events, periods=found.periods,
                      missing_periods=found.missing, unopened_periods=found.unopened,
                      unreadable=found.unreadable, made_at=now, made_by=actor, purpose=purpose,
                      ledger_id=ledger_id)


@dataclass(frozen=True)
class _Found:
    events: tuple[CaseEvent, ...]
    periods: tuple[str, ...]
    missing: tuple[str, ...]
    unopened: tuple[str, ...]
    unreadable: int


def _open_events(s: Session, case: CaseView, escrow: bytes) -> _Found:
    periods = tuple(periods_between(case.window_start, case.window_end))
    keys = s.execute(select(AuditPeriodKeyRow.gateway, AuditPeriodKeyRow.period, AuditPeriodKeyRow.sealed_key)
                     .where(AuditPeriodKeyRow.period.in_(periods))
                     .order_by(AuditPeriodKeyRow.period, AuditPeriodKeyRow.gateway)).all()
    keyed = {period for _, period, _ in keys}
    unopened: set[str] = set()
    events: list[tuple[dt.datetime, int, CaseEvent]] = []
    unreadable = 0
    for gateway, period, sealed_key in keys:
        try:
            period_key = open_period_key(escrow, period, bytes(sealed_key))
        except (SealError, ValueError):
            unopened.add(period)     # sealed to another escrow key (a rotation) or altered
            continue
        mine = pseudonym(period_key, case.subject)
        rows = s.scalars(select(AuditEventRow).where(
            AuditEventRow.gateway == gateway, AuditEventRow.period == period,
            AuditEventRow.pseudonym == mine,
            AuditEventRow.at >= case.window_start, AuditEventRow.at <= case.window_end))
        for row in rows:
            opened = _open_event(row, escrow, case.subject)
            if opened is None:
                unreadable += 1
            else:
                events.append((row.at, row.id, opened))
    events.sort(key=lambda item: (item[0], item[1]))
    return _Found(events=tuple(e for _, _, e in events), periods=periods,
                  missing=tuple(p for p in periods if p not in keyed), unopened=tuple(sorted(unopened)),
                  unreadable=unreadable)


def _open_event(row: AuditEventRow, escrow: bytes, subject: str) -> CaseEvent | None:
    """The event of a row, or None if its seal does not open or is about someone else."""
    if row.sealed is None:
        return None
    event = AuditEvent(seq=row.seq, at=row.at, gateway=row.gateway, kind=row.kind, zone=row.zone,
                       role=row.role, slot=row.slot, category=row.category, action=row.action,
                       rule=row.rule, source=row.source, period=row.period, pseudonym=row.pseudonym,
                       sealed=bytes(row.sealed))
    try:
        plain = json.loads(unseal(escrow, bytes(row.sealed), event.aad()))
        client = str(plain["subject"]["client"])
        details = plain["details"]
        host = str(details.get("host", ""))
        names = tuple(str(n) for n in details.get("names", [host]))
        path = details.get("path")
    except (SealError, ValueError, KeyError, TypeError, AttributeError):
        return None
    # A matching pseudonym with another subject inside means a forged row: never show it.
    if client != subject:
        return None
    return CaseEvent(at=row.at, gateway=row.gateway, kind=row.kind, zone=row.zone, role=row.role,
                     slot=row.slot, category=row.category, action=row.action, rule=row.rule,
                     source=row.source, client=client, host=host, names=names,
                     path=str(path) if path is not None else None)


def _escrow_key(shares: Sequence[tuple[Mapping[str, Any] | str, str]], publics: list[bytes]) -> bytes:
    if not publics:
        raise SharesRefused("Er is nog geen sleutelceremonie gehouden / No key ceremony has been held yet",
                            "no-keys")
    given = [(blob, passphrase) for blob, passphrase in shares if blob]
    if not given:
        raise SharesRefused("Geen deelsleutels gegeven / No shares given", "shares")
    if len(given) > MAX_SHARES:
        raise SharesRefused("Te veel deelsleutels / Too many shares", "shares")
    opened: list[Share] = []
    for blob, passphrase in given:
        parsed = parse_share(blob)
        try:
            opened.append(unprotect(parsed, passphrase or ""))
        except BadPassphrase:
            raise SharesRefused("Wachtzin onjuist of deelsleutel gewijzigd / Wrong passphrase or altered share",
                                "shares") from None
    try:
        secret = combine(opened)
    except ShareError:
        needed = opened[0].threshold
        raise SharesRefused(f"Er zijn {needed} verschillende deelsleutels nodig / "
                            f"{needed} different shares are needed", "shares") from None
    try:
        public = public_key_of(secret)
    except ValueError:
        public = b""
    if public not in publics:
        raise SharesRefused("Deze deelsleutels horen niet bij de sleutel van deze school / "
                            "These shares do not belong to this school's key", "wrong-key")
    return secret


def parse_share(blob: Mapping[str, Any] | str) -> dict[str, Any]:
    """A share file's content (pasted text or parsed JSON), checked for size and scrypt cost."""
    if isinstance(blob, str):
        if len(blob) > MAX_SHARE_TEXT:
            raise SharesRefused("Deelsleutel onleesbaar / Share unreadable", "shares")
        try:
            value = json.loads(blob)
        except ValueError:
            raise SharesRefused("Deelsleutel onleesbaar / Share unreadable", "shares") from None
    else:
        value = dict(blob)
    if not isinstance(value, dict):
        raise SharesRefused("Deelsleutel onleesbaar / Share unreadable", "shares")
    try:
        kdf = value["kdf"]
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (KeyError, TypeError, ValueError):
        raise SharesRefused("Deelsleutel onleesbaar / Share unreadable", "shares") from None
    if n > MAX_SCRYPT_N or r > MAX_SCRYPT_R or p > MAX_SCRYPT_P:
        raise SharesRefused("Deelsleutel onleesbaar / Share unreadable", "shares")
    return value


def _refused(store: Store, case_id: int, actor: str, now: dt.datetime, note: str) -> None:
    with store.write() as s:
        repo.lock_revision(s)
        row = _row(s, case_id)
        if note.endswith(":expired") and row.status in ("open", "approved"):
            _expire(s, row, now)
        append_ledger(s, at=now, actor=actor, action="refused", case_id=case_id, note=note)


def _check_usable(case: CaseView, now: dt.datetime) -> None:
    state = case.state(now)
    if state == "approved":
        return
    if state == "open":
        raise CaseNotUsable("De zaak is nog niet goedgekeurd / The case has not been approved yet", "not-approved")
    if state == "expired":
        raise CaseNotUsable("De zaak is verlopen / The case has expired", "expired")
    raise CaseNotUsable("De zaak is gesloten / The case is closed", "closed")


# --- reports ---------------------------------------------------------------------------------------

EVENT_FIELDS = ("at", "gateway", "kind", "zone", "role", "slot", "category", "action", "rule", "source",
                "client", "host", "names", "path")


def report_dict(report: CaseReport) -> dict[str, Any]:
    c = report.case
    return {
        "case": {"id": c.id, "reference": c.reference, "article": c.article, "description": c.description,
                 "reason": c.reason, "subject": c.subject, "window_start": c.window_start.isoformat(),
                 "window_end": c.window_end.isoformat(), "opened_by": c.opened_by,
                 "approved_by": c.approved_by},
        "made_at": report.made_at.isoformat(), "made_by": report.made_by, "purpose": report.purpose,
        "ledger_entry": report.ledger_id,
        "periods": list(report.periods), "periods_without_key": list(report.missing_periods),
        "periods_not_opened": list(report.unopened_periods), "unreadable_events": report.unreadable,
        "events": [_event_dict(e) for e in report.events],
    }


def report_json(report: CaseReport) -> str:
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2) + "\n"


def report_csv(report: CaseReport) -> str:
    """One row per event. Cells that a spreadsheet would run as a formula are quoted with '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EVENT_FIELDS)
    for event in report.events:
        values = _event_dict(event)
        writer.writerow([_cell(values[name]) for name in EVENT_FIELDS])
    return out.getvalue()


def _event_dict(e: CaseEvent) -> dict[str, Any]:
    return {"at": e.at.isoformat(), "gateway": e.gateway, "kind": e.kind, "zone": e.zone, "role": e.role,
            "slot": e.slot, "category": e.category, "action": e.action, "rule": e.rule, "source": e.source,
            "client": e.client, "host": e.host, "names": list(e.names), "path": e.path}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " ".join(value)
    value = str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# --- plumbing --------------------------------------------------------------------------------------

def normalise_subject(value: str) -> str:
    """A client address as the gateway records it (gateway.client_address): no zone index, an
    IPv4-mapped IPv6 address as the IPv4 address. One address, never a network: pseudonyms are
    per address."""
    try:
        addr = ipaddress.ip_address((value or "").strip().split("%", 1)[0])
    except ValueError:
        raise Invalid("Betrokkene: geen geldig IP-adres / Subject: not a valid IP address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _row(s: Session, case_id: int) -> CaseRow:
    row = s.get(CaseRow, case_id)
    if row is None:
        raise NotFound("Deze zaak bestaat niet / This case does not exist")
    return row


def _check_state(row: CaseRow, now: dt.datetime, wanted: str, message: str) -> None:
    if _view(row).state(now) != wanted:
        raise Conflict(message)


def _expire(s: Session, row: CaseRow, now: dt.datetime) -> None:
    row.status, row.expired_at = "expired", row.ends_at
    append_ledger(s, at=now, actor=SYSTEM, action="expire", case_id=row.id)


def _view(row: CaseRow) -> CaseView:
    return CaseView(id=row.id, reference=row.reference, article=row.article, description=row.description,
                    reason=row.reason, subject=row.subject, window_start=row.window_start,
                    window_end=row.window_end, ends_at=row.ends_at, status=row.status,
                    opened_by=row.opened_by, opened_at=row.opened_at, approved_by=row.approved_by,
                    approved_at=row.approved_at, closed_by=row.closed_by, closed_at=row.closed_at,
                    outcome=row.outcome, informed_by=row.informed_by, informed_at=row.informed_at,
                    informed_note=row.informed_note, expired_at=row.expired_at)

