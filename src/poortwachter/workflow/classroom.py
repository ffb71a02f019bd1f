"""Classroom openings (004 art. 9), exam mode, network exclusions (000, 004), and the sweep that
writes each expiry (download limits included, see limits.py) into the change log once.

Who may do what:
- open_classroom / end_opening: a docent for the zones on their account, or ICT;
- start_exam / end_exam: the examencoordinator or ICT;
- exclude / end_exclusion: directie or ICT (a leidinggevende cannot exclude anyone).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from ..state import OpeningMode
from ..store import repo
from ..store.models import (
    OPENING_MODES,
    BanRow,
    CaseRow,
    ChangeRow,
    DownloadLimitRow,
    ExamRow,
    GrantRow,
    OpeningRow,
    UnblockRequestRow,
)
from .common import SYSTEM, User, actor_of, aware, names, repo_input, require_role, text
from .errors import Conflict, Forbidden, Invalid, NotFound
from .requests import PENDING, _sites

# A typo like "10.0.0.0/8" would take the whole school off the network.
MIN_PREFIX = {4: 16, 6: 48}


@dataclass(frozen=True)
class OpeningView:
    id: int
    zone: str
    mode: str
    sites: tuple[str, ...]
    categories: tuple[str, ...]
    start: dt.datetime | None
    until: dt.datetime
    created_by: str
    created_at: dt.datetime
    reason: str = ""


@dataclass(frozen=True)
class ExamView:
    id: int
    zone: str
    sites: tuple[str, ...]
    categories: tuple[str, ...]
    start: dt.datetime | None
    until: dt.datetime
    created_by: str
    created_at: dt.datetime
    reason: str = ""              # the exam's name (the form asks "Welk examen?")


@dataclass(frozen=True)
class ExclusionView:
    id: int
    subject: str
    start: dt.datetime | None
    until: dt.datetime
    reason: str
    created_by: str
    created_at: dt.datetime


# --- classroom openings ----------------------------------------------------------------------

def open_classroom(s: Session, *, user: User, zone: str, mode: OpeningMode,
                   sites: Iterable[str] = (), categories: Iterable[str] = (), until: dt.datetime,
                   reason: str, now: dt.datetime, start: dt.datetime | None = None,
                   openable: Iterable[str] | None = None) -> int:
    """`open`: let these sites/categories through in the zone until `until` (usually the end of
    the lesson); `allowlist`: restrict the zone to only these (none: close the room). `start`
    plans it ahead (a later lesson); `openable`: the categories a teacher may open (the policy's
    `opened_by: [docent]`; None: any). A decision that starts now replaces what the room had
    (the earlier opening or restriction ends, recorded as replaced)."""
    require_role(user, "docent", "ict")
    zone_name = text(zone, "Zone", "Zone")
    _own_zone(user, zone_name)
    if mode not in OPENING_MODES:
        raise Invalid("Modus moet 'open' of 'allowlist' zijn / Mode must be 'open' or 'allowlist'")
    now, begin, end = _window(start, until, now)
    site_list, category_list = _sites(sites), names(categories, "Categorieën", "Categories")
    _openable(category_list, openable, "een docent", "a teacher")
    why = text(reason, "Reden", "Reason")
    if begin is None:
        for row in s.scalars(_not_ended(OpeningRow, now).where(OpeningRow.zone == zone_name)
                             .where(or_(OpeningRow.start.is_(None), OpeningRow.start <= now))):
            with repo_input():
                repo.revoke_opening(s, row.id, actor=actor_of(user), now=now,
                                    reason="vervangen door een nieuw besluit / replaced by a new decision")
    with repo_input():
        return repo.add_opening(s, zone=zone_name, mode=mode, sites=site_list, categories=category_list,
                                until=end, start=begin, actor=actor_of(user), reason=why, now=now)


def end_opening(s: Session, opening_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    require_role(user, "docent", "ict")
    _end(s, OpeningRow, "opening", opening_id, user=user, reason=reason, now=now,
         check=lambda row: _own_zone(user, row.zone))


# --- exams -----------------------------------------------------------------------------------

def start_exam(s: Session, *, user: User, zone: str, sites: Iterable[str] = (),
               categories: Iterable[str] = (), until: dt.datetime, reason: str, now: dt.datetime,
               start: dt.datetime | None = None, openable: Iterable[str] | None = None) -> int:
    """Exam mode for the zone until `until` (from `start`: planned ahead): only the allowlist
    (sites, categories) is reachable; `openable`: the categories an exam may allow (the policy's
    `opened_by: [examencoordinator]`; None: any)."""
    require_role(user, "examencoordinator", "ict")
    zone_name = text(zone, "Zone", "Zone")
    now, begin, end = _window(start, until, now)
    site_list, category_list = _sites(sites), names(categories, "Categorieën", "Categories")
    _openable(category_list, openable, "een examen", "an exam")
    why = text(reason, "Reden", "Reason")
    with repo_input():
        return repo.add_exam(s, zone=zone_name, sites=site_list, categories=category_list, until=end,
                             start=begin, actor=actor_of(user), reason=why, now=now)


def end_exam(s: Session, exam_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    require_role(user, "examencoordinator", "ict")
    _end(s, ExamRow, "exam", exam_id, user=user, reason=reason, now=now)


# --- exclusions ------------------------------------------------------------------------------

def exclude(s: Session, *, user: User, subject: str, until: dt.datetime, reason: str,
            now: dt.datetime) -> int:
    """Exclude a device (address) or a network from the network until `until`."""
    require_role(user, "directie", "ict")
    now, end = _ahead(until, now)
    why = text(reason, "Reden", "Reason")
    with repo_input():
        canonical = repo.normalize_subject(subject)
    net = ipaddress.ip_network(canonical, strict=False)
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise Invalid(f"Netwerk te groot (min. /{MIN_PREFIX[net.version]}) / "
                      f"Network too large (min. /{MIN_PREFIX[net.version]})")
    with repo_input():
        return repo.add_ban(s, subject=canonical, until=end, actor=actor_of(user), reason=why, now=now)


def end_exclusion(s: Session, ban_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    require_role(user, "directie", "ict")
    _end(s, BanRow, "ban", ban_id, user=user, reason=reason, now=now)


# --- expiry and counts -----------------------------------------------------------------------

def record_expiries(s: Session, *, now: dt.datetime) -> int:
    """Write one `expire` change (actor "systeem", at the moment it ended) for every grant,
    opening, exam, exclusion and download limit whose end has passed and that was neither revoked
    nor recorded before; returns how many. Safe to run from several places at once: the writer's lock
    serialises the sweeps and `expired_at` marks what is done."""
    now = aware(now, "Tijd", "Time")
    repo.lock_revision(s)
    ended: list[tuple[dt.datetime, str, GrantRow | OpeningRow | ExamRow | BanRow | DownloadLimitRow]] = []
    for model, obj in ((GrantRow, "grant"), (OpeningRow, "opening"), (ExamRow, "exam"), (BanRow, "ban"),
                       (DownloadLimitRow, "download_limit")):
        end = GrantRow.end if model is GrantRow else model.until  # type: ignore[union-attr]
        query = (select(model).where(model.revoked_at.is_(None), model.expired_at.is_(None), end <= now)
                 .order_by(model.id).with_for_update().execution_options(populate_existing=True))
        if model is GrantRow:
            query = query.where(GrantRow.status == "approved")
        ended += [(row.end if isinstance(row, GrantRow) else row.until, obj, row) for row in s.scalars(query)]
    # one log in the order things ended, whatever their kind
    for when, obj, row in sorted(ended, key=lambda e: (e[0], e[2].id)):
        row.expired_at = when
        revision = repo.bump_revision(s)
        repo.record_change(s, revision=revision, actor=SYSTEM, kind="expire", obj=obj, object_id=row.id,
                           reason="verlopen / expired", at=when)
    s.flush()
    return len(ended)


def counts(s: Session, *, now: dt.datetime) -> dict[str, int]:
    """What is pending and in force at `now` (for the console's front page and the gateway's
    metrics): counts only. `open_cases` are audit cases opened or approved and not yet closed or
    past their end (004 art. 22)."""
    now = aware(now, "Tijd", "Time")

    def running(model: type[OpeningRow] | type[ExamRow] | type[BanRow] | type[DownloadLimitRow]) -> int:
        return s.scalar(select(func.count()).select_from(model).where(
            model.revoked_at.is_(None), or_(model.start.is_(None), model.start <= now), model.until > now)) or 0

    by_status: dict[str, int] = {
        status: n for status, n in s.execute(select(UnblockRequestRow.status, func.count())
                                             .where(UnblockRequestRow.status.in_(PENDING))
                                             .group_by(UnblockRequestRow.status))}
    grants = s.scalar(select(func.count()).select_from(GrantRow).where(
        GrantRow.status == "approved", GrantRow.revoked_at.is_(None), GrantRow.start <= now,
        GrantRow.end > now)) or 0
    cases = s.scalar(select(func.count()).select_from(CaseRow).where(
        CaseRow.status.in_(("open", "approved")), CaseRow.ends_at > now)) or 0
    return {
        "pending_requests": sum(by_status.values()),
        "submitted_requests": by_status.get("submitted", 0),
        "endorsed_requests": by_status.get("endorsed", 0),
        "active_grants": grants,
        "active_openings": running(OpeningRow),
        "active_exams": running(ExamRow),
        "active_exclusions": running(BanRow),
        "active_download_limits": running(DownloadLimitRow),
        "open_cases": cases,
    }


# --- listing -------------------------------------------------------------------------------

def list_openings(s: Session, *, now: dt.datetime, zones: Iterable[str] | None = None) -> list[OpeningView]:
    """Openings not yet ended (running or still to start), by id; optionally only some zones."""
    query = _not_ended(OpeningRow, now)
    if zones is not None:
        query = query.where(OpeningRow.zone.in_(list(zones)))
    rows = list(s.scalars(query))
    reasons = _added_because(s, "opening", [r.id for r in rows])
    return [OpeningView(id=r.id, zone=r.zone, mode=r.mode, sites=tuple(r.sites), categories=tuple(r.categories),
                        start=r.start, until=r.until, created_by=r.created_by, created_at=r.created_at,
                        reason=reasons.get(r.id, ""))
            for r in rows]


def list_exams(s: Session, *, now: dt.datetime) -> list[ExamView]:
    rows = list(s.scalars(_not_ended(ExamRow, now)))
    reasons = _added_because(s, "exam", [r.id for r in rows])
    return [ExamView(id=r.id, zone=r.zone, sites=tuple(r.sites), categories=tuple(r.categories),
                     start=r.start, until=r.until, created_by=r.created_by, created_at=r.created_at,
                     reason=reasons.get(r.id, ""))
            for r in rows]


def _added_because(s: Session, kind: str, ids: list[int]) -> dict[int, str]:
    """The reason each object was added with (the change log's "add" entry): the rows keep none."""
    if not ids:
        return {}
    query = select(ChangeRow.object_id, ChangeRow.reason).where(
        ChangeRow.object == kind, ChangeRow.kind == "add", ChangeRow.object_id.in_(ids))
    return {object_id: reason for object_id, reason in s.execute(query)}


def list_exclusions(s: Session, *, now: dt.datetime) -> list[ExclusionView]:
    return [ExclusionView(id=r.id, subject=r.subject, start=r.start, until=r.until, reason=r.reason,
                          created_by=r.created_by, created_at=r.created_at)
            for r in s.scalars(_not_ended(BanRow, now))]


# --- helpers ---------------------------------------------------------------------------------

def _not_ended[R: (OpeningRow, ExamRow, BanRow)](model: type[R], now: dt.datetime) -> Select[tuple[R]]:
    now = aware(now, "Tijd", "Time")
    return select(model).where(model.revoked_at.is_(None), model.until > now).order_by(model.id)


def _own_zone(user: User, zone: str) -> None:
    if user.role == "docent" and zone not in user.zones:
        raise Forbidden("Alleen voor je eigen lokalen / Only for your own classrooms")


def _window(start: dt.datetime | None, until: dt.datetime,
            now: dt.datetime) -> tuple[dt.datetime, dt.datetime | None, dt.datetime]:
    """(now, start or None for "from now", end): the end in the future, a start before the end."""
    now, end = _ahead(until, now)
    if start is None:
        return now, None, end
    begin = aware(start, "Begin", "Start")
    if begin >= end:
        raise Invalid("Begin ligt niet voor het einde / Start is not before the end")
    return now, (begin if begin > now else None), end


def _openable(categories: Iterable[str], openable: Iterable[str] | None, nl: str, en: str) -> None:
    """Refuse categories the policy does not let this kind of decision open (opened_by)."""
    if openable is None:
        return
    closed = sorted(set(categories) - set(openable))
    if closed:
        raise Forbidden(f"Deze categorie kan {nl} niet openzetten: {', '.join(closed)} (vraag via de "
                        f"leidinggevende een deblokkering aan bij ICT) / {en.capitalize()} cannot open this "
                        f"category: {', '.join(closed)} (ask ICT for an unblock through your manager)")


def _ahead(until: dt.datetime, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    now, end = aware(now, "Tijd", "Time"), aware(until, "Einde", "End")
    if end <= now:
        raise Invalid("Einde ligt niet in de toekomst / End is not in the future")
    return now, end


def _end[R: (OpeningRow, ExamRow, BanRow)](
    s: Session, model: type[R], obj: str, object_id: int, *, user: User, reason: str, now: dt.datetime,
    check: Callable[[R], None] | None = None,
) -> None:
    """End early: lock, re-read, authorise against the row, revoke once."""
    now = aware(now, "Tijd", "Time")
    why = text(reason, "Reden", "Reason")
    repo.lock_revision(s)
    row = s.scalar(select(model).where(model.id == object_id).with_for_update()
                   .execution_options(populate_existing=True))
    if row is None:
        raise NotFound("Niet gevonden / Not found")
    if check is not None:
        check(row)
    if row.revoked_at is not None or row.expired_at is not None or row.until <= now:
        raise Conflict("Is al beëindigd / Has already ended")
    revoke = {"opening": repo.revoke_opening, "exam": repo.revoke_exam, "ban": repo.revoke_ban}[obj]
    with repo_input():
        if not revoke(s, object_id, actor=actor_of(user), reason=why, now=now):
            raise Conflict("Is al beëindigd / Has already ended")
