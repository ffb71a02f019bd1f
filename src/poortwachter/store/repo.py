"""Changing the state: add and revoke bans, grants, classroom openings, exams and download limits.

Every function works inside the caller's unit of work (a Session from `Store.write()`), so a
workflow step can change several things atomically. Each change, in that same transaction,
bumps the state revision and writes a `changes` row saying who, when and why.

Writers lock the single `meta` row (bump_revision / lock_revision) *before* any other row, so
on PostgreSQL concurrent writers queue in one order and cannot deadlock.

Input is validated here, at the edge (aware datetimes, windows that end after they start, real
addresses, normalised site names), so the snapshot a gateway loads is always usable. Error
messages are Dutch first, English second, and never repeat the address or site they refuse.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterable
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..hosts import BadHost, normalize_host
from ..state import Exam, Grant, Opening, OpeningMode
from .db import _WRITE
from .models import (
    GRANT_STATUSES,
    OPENING_MODES,
    BanRow,
    ChangeRow,
    DownloadLimitRow,
    ExamRow,
    GrantRow,
    GrantStatus,
    MetaRow,
    OpeningRow,
)

ObjectKind = Literal["ban", "grant", "opening", "exam", "download_limit"]


# --- the change log and the revision --------------------------------------------------------

def lock_revision(session: Session) -> None:
    """Take the writer's lock (the `meta` row) before touching any other row. SQLite: the
    write transaction already holds the database lock, FOR UPDATE is left out."""
    session.execute(select(MetaRow.id).where(MetaRow.id == 1).with_for_update())


def writing(session: Session) -> bool:
    """Is this a write unit of work (Store.write())? A read (Store.read()) is rolled back, and on
    SQLite a write inside it can fail outright, so optional writes (a session's sliding expiry)
    are skipped there."""
    return bool(session.connection().get_execution_options().get(_WRITE))


def bump_revision(session: Session) -> int:
    """Increment the state revision in the current transaction; returns the new value."""
    stmt = update(MetaRow).where(MetaRow.id == 1).values(state_revision=MetaRow.state_revision + 1)
    return session.execute(stmt.returning(MetaRow.state_revision)).scalar_one()


def record_change(session: Session, *, revision: int, actor: str, kind: str, obj: str,
                  object_id: int, reason: str, at: dt.datetime) -> ChangeRow:
    row = ChangeRow(at=at, actor=actor, kind=kind, object=obj, object_id=object_id,
                    reason=reason, revision=revision)
    session.add(row)
    return row


# --- bans ------------------------------------------------------------------------------------

def add_ban(session: Session, *, subject: str, until: dt.datetime, actor: str, reason: str,
            source: str = "", start: dt.datetime | None = None, now: dt.datetime | None = None) -> int:
    """Exclude a client address or network ("10.1.2.3", "10.1.2.0/28") until `until`."""
    why = _text(reason, "Reden", "Reason")
    row = BanRow(subject=_subject(subject), start=start, until=until, reason=why,
                 source=source.strip(), created_by=_text(actor, "Wie", "Actor"), created_at=_now(now))
    return _add(session, "ban", row, start, until, why)


def revoke_ban(session: Session, ban_id: int, *, actor: str, reason: str,
               now: dt.datetime | None = None) -> bool:
    return _revoke(session, BanRow, "ban", ban_id, actor, reason, now)


# --- grants ----------------------------------------------------------------------------------

def add_grant(session: Session, *, start: dt.datetime, end: dt.datetime, actor: str, reason: str,
              sites: Iterable[str] = (), categories: Iterable[str] = (), zones: Iterable[str] = (),
              roles: Iterable[str] = (), source: str | None = None, status: GrantStatus = "approved",
              approved_by: str | None = None, now: dt.datetime | None = None) -> int:
    """A temporary unblock of sites/categories for some zones and roles (empty: all). Only
    `approved` grants reach the gateway; approved_by defaults to the actor for those."""
    if status not in GRANT_STATUSES:
        raise ValueError("Onbekende status / Unknown status")
    site_list, category_list = _sites(sites), _names(categories)
    if not site_list and not category_list:
        raise ValueError("Geen sites of categorieën / No sites or categories")
    created_by = _text(actor, "Wie", "Actor")
    if status == "approved" and approved_by is None:
        approved_by = created_by
    row = GrantRow(sites=site_list, categories=category_list, zones=_names(zones), roles=_names(roles),
                   start=start, end=end, source=_source(source, Grant), status=status,
                   created_by=created_by, approved_by=approved_by, created_at=_now(now))
    return _add(session, "grant", row, start, end, _text(reason, "Reden", "Reason"))


def revoke_grant(session: Session, grant_id: int, *, actor: str, reason: str,
                 now: dt.datetime | None = None) -> bool:
    return _revoke(session, GrantRow, "grant", grant_id, actor, reason, now)


# --- classroom openings ----------------------------------------------------------------------

def add_opening(session: Session, *, zone: str, mode: OpeningMode, until: dt.datetime,
                actor: str, reason: str, sites: Iterable[str] = (), categories: Iterable[str] = (),
                source: str | None = None, start: dt.datetime | None = None,
                now: dt.datetime | None = None) -> int:
    """`open`: let the sites through in this zone; `allowlist`: only these sites (none at all if
    empty, a teacher closing the room)."""
    if mode not in OPENING_MODES:
        raise ValueError("Onbekende modus / Unknown mode")
    site_list, category_list = _sites(sites), _names(categories)
    if mode == "open" and not site_list and not category_list:
        raise ValueError("Geen sites of categorieën / No sites or categories")
    row = OpeningRow(zone=_text(zone, "Zone", "Zone"), mode=mode, sites=site_list, categories=category_list,
                     start=start, until=until, source=_source(source, Opening),
                     created_by=_text(actor, "Wie", "Actor"), created_at=_now(now))
    return _add(session, "opening", row, start, until, _text(reason, "Reden", "Reason"))


def revoke_opening(session: Session, opening_id: int, *, actor: str, reason: str,
                   now: dt.datetime | None = None) -> bool:
    return _revoke(session, OpeningRow, "opening", opening_id, actor, reason, now)


# --- exams -----------------------------------------------------------------------------------

def add_exam(session: Session, *, zone: str, until: dt.datetime, actor: str, reason: str,
             sites: Iterable[str] = (), categories: Iterable[str] = (), source: str | None = None,
             start: dt.datetime | None = None, now: dt.datetime | None = None) -> int:
    """Exam mode for `zone`: only the allowlist (sites, categories) is reachable."""
    row = ExamRow(zone=_text(zone, "Zone", "Zone"), sites=_sites(sites), categories=_names(categories),
                  start=start, until=until, source=_source(source, Exam),
                  created_by=_text(actor, "Wie", "Actor"), created_at=_now(now))
    return _add(session, "exam", row, start, until, _text(reason, "Reden", "Reason"))


def revoke_exam(session: Session, exam_id: int, *, actor: str, reason: str,
                now: dt.datetime | None = None) -> bool:
    return _revoke(session, ExamRow, "exam", exam_id, actor, reason, now)


# --- download limits -------------------------------------------------------------------------

def add_download_limit(session: Session, *, address: str, zone: str, max_bytes: int, until: dt.datetime,
                       actor: str, reason: str, start: dt.datetime | None = None,
                       now: dt.datetime | None = None) -> int:
    """Until `until`, the client at `address` (one address, not a network) may not fetch a
    response larger than `max_bytes` (004 art. 13)."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError("Maximum moet een geheel aantal bytes zijn / Maximum must be a whole number of bytes")
    why = _text(reason, "Reden", "Reason")
    row = DownloadLimitRow(address=_address(address), zone=_text(zone, "Zone", "Zone"), max_bytes=max_bytes,
                           start=start, until=until, reason=why, created_by=_text(actor, "Wie", "Actor"),
                           created_at=_now(now))
    return _add(session, "download_limit", row, start, until, why)


def revoke_download_limit(session: Session, limit_id: int, *, actor: str, reason: str,
                          now: dt.datetime | None = None) -> bool:
    return _revoke(session, DownloadLimitRow, "download_limit", limit_id, actor, reason, now)


# --- shared ----------------------------------------------------------------------------------

type _Row = BanRow | GrantRow | OpeningRow | ExamRow | DownloadLimitRow


def _add(session: Session, obj: ObjectKind, row: _Row, start: dt.datetime | None, end: dt.datetime,
         why: str) -> int:
    _window(start, end)
    revision = bump_revision(session)
    session.add(row)
    session.flush()   # assigns row.id
    record_change(session, revision=revision, actor=row.created_by, kind="add", obj=obj,
                  object_id=row.id, reason=why, at=row.created_at)
    return row.id


def _revoke[R: (BanRow, GrantRow, OpeningRow, ExamRow, DownloadLimitRow)](
    session: Session, model: type[R], obj: ObjectKind, object_id: int, actor: str, reason: str,
    now: dt.datetime | None,
) -> bool:
    """Revoke once; False (and no change, no revision bump) if absent or already revoked."""
    who, why, at = _text(actor, "Wie", "Actor"), _text(reason, "Reden", "Reason"), _now(now)
    lock_revision(session)
    row = session.get(model, object_id, with_for_update=True)
    if row is None or row.revoked_at is not None:
        return False
    revision = bump_revision(session)
    row.revoked_at = at
    record_change(session, revision=revision, actor=who, kind="revoke", obj=obj,
                  object_id=object_id, reason=why, at=at)
    session.flush()
    return True


def normalize_sites(sites: Iterable[str]) -> list[str]:
    """Sites as the store keeps them (see _sites); ValueError on a bad one."""
    return _sites(sites)


def normalize_subject(subject: str) -> str:
    """A ban subject as the store keeps it (see _subject); ValueError on a bad one."""
    return _subject(subject)


def normalize_address(address: str) -> str:
    """A single client address as the store keeps it (see _address); ValueError on a bad one."""
    return _address(address)


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    _aware(now)
    return now


def _aware(when: dt.datetime) -> None:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("Tijd zonder tijdzone / Time without time zone")


def _window(start: dt.datetime | None, end: dt.datetime) -> None:
    _aware(end)
    if start is not None:
        _aware(start)
        if end <= start:
            raise ValueError("Einde ligt niet na begin / End is not after start")


def _text(value: str, nl: str, en: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{nl} ontbreekt / {en} missing")
    return value


def _subject(subject: str) -> str:
    """Canonical address ("10.1.2.3", "2001:db8::1") or network ("10.1.2.0/28")."""
    try:
        net = ipaddress.ip_network(subject.strip(), strict=False)
    except ValueError:
        raise ValueError("Geen geldig adres of netwerk / Not an address or network") from None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _address(address: str) -> str:
    """Canonical single address ("10.1.2.3", "2001:db8::1"); an IPv4-mapped IPv6 address is the
    IPv4 client it is, as the gateway sees it (gateway.client_address)."""
    try:
        addr = ipaddress.ip_address(address.strip())
    except ValueError:
        raise ValueError("Geen geldig adres / Not an address") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


def _sites(sites: Iterable[str]) -> list[str]:
    """Normalise the host part the way the gateway normalises requests, or a grant silently
    never matches ("YouTube.com." must become "youtube.com"). Paths are kept as given."""
    out: list[str] = []
    for n, site in enumerate(sites, 1):
        host, slash, path = site.strip().partition("/")
        try:
            host = normalize_host(host)
        except BadHost:
            raise ValueError(f"Site {n} is ongeldig / Site {n} is not valid") from None
        out.append(f"{host}/{path}" if slash and path else host)
    return list(dict.fromkeys(out))


def _names(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(n.strip() for n in names if n.strip()))


def _source(source: str | None, domain: type[Grant] | type[Opening] | type[Exam]) -> str:
    """Default to the article the domain object names (004 art. 12 for grants, ...)."""
    if source is not None:
        return source.strip()
    return next(str(f.default) for f in dataclasses.fields(domain) if f.name == "source")
