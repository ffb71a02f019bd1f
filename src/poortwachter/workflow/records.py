"""One truth per object: what an unblock request, a grant or an exclusion is now, and how it got
there, read back from its row and the change log (`changes`), for the console to show.

- Effective scope: an approved request holds what ICT approved (its grant's sites, zones, roles
  and window, extended or not), never what the leidinggevende endorsed; before approval the
  proposal is the endorsed scope, and before endorsement only the blocked site.
- State: one of STATES, computed at `now`, so a grant whose end has passed is `expired` even
  before the expiry sweep has written its `expire` change.
- History: the object's changes (a request's together with its grant's), oldest first.
- People: the change log holds "role:username"; a Person carries the account's display name, or
  the username when the account no longer exists, and the role the step was taken in. The
  public side ("publiek") and the system ("systeem", "system:sensor") are not accounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..roles import ROLES
from ..store.models import BanRow, ChangeRow, GrantRow, UnblockRequestRow, UserRow
from .common import SYSTEM, aware
from .requests import PUBLIC, RequestView, find_request, get_request, list_requests, parse_extension

# A request's state: its status until it is approved, then the state of its grant.
REQUEST_STATES = ("submitted", "endorsed", "declined", "withdrawn")
# A grant's or an exclusion's state at a moment.
WINDOW_STATES = ("scheduled", "active", "expired", "revoked")
STATES = REQUEST_STATES + WINDOW_STATES
ENDINGS = ("extend", "revoke")   # the changes that say how a grant's window changed or ended
PUBLIC_ROLE = "publiek"    # Person.role of the requester on the public form
SYSTEM_ROLE = "systeem"    # Person.role of what nobody did by hand (expiry, the network sensor)


@dataclass(frozen=True)
class Person:
    actor: str     # as the change log has it: "ict:jan", "publiek", "systeem"
    role: str      # one of ROLES, PUBLIC_ROLE, SYSTEM_ROLE, or "" when the log does not say
    name: str      # the account's display name; the username if the account is gone


@dataclass(frozen=True)
class Event:
    at: dt.datetime
    kind: str                           # submit, endorse, approve, decline, withdraw, add, extend, revoke, expire
    obj: str                            # request, grant, ban
    object_id: int
    by: Person
    reason: str                         # an extension's reason without its ends
    until: dt.datetime | None = None    # an extension's new end
    was: dt.datetime | None = None      # an extension's old end


@dataclass(frozen=True)
class Scope:
    sites: tuple[str, ...]
    categories: tuple[str, ...]
    zones: tuple[str, ...]              # empty: every zone
    roles: tuple[str, ...]              # empty: every role
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass(frozen=True)
class Ending:
    at: dt.datetime
    by: Person | None                   # None: it expired
    reason: str                         # the revocation's reason ("" for an expiry)


@dataclass(frozen=True)
class GrantRecord:
    id: int
    scope: Scope
    state: str                          # scheduled | active | expired | revoked
    approved_by: Person
    created_at: dt.datetime
    source: str
    request_id: int | None
    ending: Ending | None               # how it ended, once it has
    extended: bool
    history: tuple[Event, ...]


@dataclass(frozen=True)
class RequestRecord:
    request: RequestView
    state: str                          # one of STATES
    effective: Scope                    # what holds (approved) or is proposed (before that)
    endorsed: Scope | None              # what the leidinggevende endorsed
    endorsed_by: Person | None
    decided_by: Person | None
    grant: GrantRecord | None
    history: tuple[Event, ...]          # the request's and its grant's (its `add` is the approval)

    @property
    def id(self) -> int:
        return self.request.id


@dataclass(frozen=True)
class ExclusionRecord:
    id: int
    subject: str
    source: str                         # the article or decision it names ("" if none)
    start: dt.datetime                  # from when (its creation when no start was set)
    until: dt.datetime
    reason: str
    created_by: Person
    created_at: dt.datetime
    state: str                          # scheduled | active | expired | revoked
    ending: Ending | None
    history: tuple[Event, ...]


# --- people -------------------------------------------------------------------------------------

def people(s: Session, actors: Iterable[str]) -> dict[str, Person]:
    """Every actor as a Person, looking up all accounts at once."""
    wanted = set(actors)
    usernames = {actor.partition(":")[2] for actor in wanted if actor.partition(":")[0] in ROLES}
    shown: dict[str, str] = {}
    if usernames:
        shown = dict(s.execute(select(UserRow.username, UserRow.display_name)
                               .where(UserRow.username.in_(sorted(usernames)))).all())
    return {actor: _person(actor, shown) for actor in wanted}


def person(s: Session, actor: str) -> Person:
    return people(s, [actor])[actor]


def _person(actor: str, shown: dict[str, str]) -> Person:
    role, sep, username = actor.partition(":")
    if actor == PUBLIC:
        return Person(actor, PUBLIC_ROLE, PUBLIC)
    if actor == SYSTEM or (sep and role == "system"):
        return Person(actor, SYSTEM_ROLE, username or SYSTEM)
    if sep and role in ROLES and username:
        return Person(actor, role, shown.get(username, username))
    return Person(actor, "", actor)


# --- states -------------------------------------------------------------------------------------

def window_state(*, start: dt.datetime | None, end: dt.datetime, revoked_at: dt.datetime | None,
                 expired_at: dt.datetime | None, now: dt.datetime) -> str:
    """The state of a grant or exclusion at `now` (one of WINDOW_STATES)."""
    if revoked_at is not None:
        return "revoked"
    if expired_at is not None or end <= now:
        return "expired"
    if start is not None and start > now:
        return "scheduled"
    return "active"


# --- requests -----------------------------------------------------------------------------------

def request_record(s: Session, request_id: int, *, now: dt.datetime) -> RequestRecord | None:
    view = get_request(s, request_id)
    return None if view is None else _request_records(s, [view], now)[0]


def request_record_by_token(s: Session, token: str, *, now: dt.datetime) -> RequestRecord | None:
    """The record behind a requester's status link (see find_request)."""
    view = find_request(s, token)
    return None if view is None else _request_records(s, [view], now)[0]


def request_records(s: Session, *, now: dt.datetime, history: bool = True) -> list[RequestRecord]:
    """Every request's record, in the order they came in; without `history` (a list of them all)
    only the changes that say how a grant ended are read."""
    return _request_records(s, list_requests(s), now, history=history)


def _request_records(s: Session, views: list[RequestView], now: dt.datetime, *,
                     history: bool = True) -> list[RequestRecord]:
    now = aware(now, "Tijd", "Time")
    grant_ids = [v.grant_id for v in views if v.grant_id is not None]
    grants = {g.id: g for g in _grant_records(s, _grant_rows(s, grant_ids), now, history=history)}
    events = _events(s, "request", [v.id for v in views]) if history else {}
    actors = [a for v in views for a in (v.endorsed_by, v.decided_by) if a]
    who = people(s, actors)
    out = []
    for view in views:
        grant = grants.get(view.grant_id) if view.grant_id is not None else None
        endorsed = (Scope(view.sites, (), view.zones, view.roles, view.start, view.end)
                    if view.ground is not None else None)
        if grant is not None:
            state, effective = grant.state, grant.scope
        elif view.status == "approved":   # a grant row removed by hand: nothing is open
            state, effective = "expired", endorsed or Scope(view.sites, (), (), (), None, None)
        else:
            state, effective = view.status, endorsed or Scope(view.sites, (), (), (), None, None)
        history = events.get(view.id, [])
        if grant is not None:
            history = sorted(history + [e for e in grant.history if e.kind != "add"], key=lambda e: e.at)
        out.append(RequestRecord(
            request=view, state=state, effective=effective, endorsed=endorsed,
            endorsed_by=who[view.endorsed_by] if view.endorsed_by else None,
            decided_by=who[view.decided_by] if view.decided_by else None,
            grant=grant, history=tuple(history)))
    return out


# --- grants -------------------------------------------------------------------------------------

def grant_record(s: Session, grant_id: int, *, now: dt.datetime) -> GrantRecord | None:
    records = _grant_records(s, _grant_rows(s, [grant_id]), aware(now, "Tijd", "Time"))
    return records[0] if records else None


def grant_records(s: Session, *, now: dt.datetime, ended: bool = False, limit: int | None = None) -> list[GrantRecord]:
    """Approved grants. Not ended (running or still to start), soonest end first; or, with
    `ended`, expired and revoked ones, the most recently ended first (at most `limit`)."""
    now = aware(now, "Tijd", "Time")
    query = select(GrantRow).where(GrantRow.status == "approved")
    if ended:
        ended_at = func.coalesce(GrantRow.revoked_at, GrantRow.end)
        query = (query.where(or_(GrantRow.revoked_at.is_not(None), GrantRow.end <= now))
                 .order_by(ended_at.desc(), GrantRow.id.desc()))
    else:
        query = query.where(GrantRow.revoked_at.is_(None), GrantRow.end > now).order_by(GrantRow.end, GrantRow.id)
    if limit is not None:
        query = query.limit(limit)
    return _grant_records(s, list(s.scalars(query)), now)


def _grant_rows(s: Session, ids: list[int]) -> list[GrantRow]:
    if not ids:
        return []
    return list(s.scalars(select(GrantRow).where(GrantRow.id.in_(ids)).order_by(GrantRow.id)))


def _grant_records(s: Session, rows: list[GrantRow], now: dt.datetime, *, history: bool = True) -> list[GrantRecord]:
    ids = [r.id for r in rows]
    events = _events(s, "grant", ids, kinds=None if history else ENDINGS)
    by_grant: dict[int, int] = {}
    if ids:
        by_grant = {grant_id: request_id for request_id, grant_id in s.execute(
            select(UnblockRequestRow.id, UnblockRequestRow.grant_id).where(UnblockRequestRow.grant_id.in_(ids)))}
    who = people(s, [r.approved_by or r.created_by for r in rows])
    out = []
    for row in rows:
        history = tuple(events.get(row.id, []))
        state = window_state(start=row.start, end=row.end, revoked_at=row.revoked_at, expired_at=row.expired_at,
                             now=now)
        out.append(GrantRecord(
            id=row.id, scope=Scope(tuple(row.sites), tuple(row.categories), tuple(row.zones), tuple(row.roles),
                                   row.start, row.end),
            state=state, approved_by=who[row.approved_by or row.created_by], created_at=row.created_at,
            source=row.source, request_id=by_grant.get(row.id),
            ending=_ending(state, row.revoked_at, row.expired_at or row.end, history),
            extended=any(e.kind == "extend" for e in history), history=history))
    return out


# --- exclusions ---------------------------------------------------------------------------------

def exclusion_record(s: Session, ban_id: int, *, now: dt.datetime) -> ExclusionRecord | None:
    records = _exclusion_records(s, list(s.scalars(select(BanRow).where(BanRow.id == ban_id))),
                                 aware(now, "Tijd", "Time"))
    return records[0] if records else None


def exclusion_records(s: Session, *, now: dt.datetime, ended_since: dt.datetime | None = None,
                      limit: int | None = None) -> list[ExclusionRecord]:
    """Exclusions not yet ended (running or still to start), soonest end first; or, with
    `ended_since`, those that ended (expired or revoked) since then, the most recent first."""
    now = aware(now, "Tijd", "Time")
    query = select(BanRow)
    if ended_since is None:
        query = query.where(BanRow.revoked_at.is_(None), BanRow.until > now).order_by(BanRow.until, BanRow.id)
    else:
        since = aware(ended_since, "Sinds", "Since")
        query = query.where(or_(BanRow.revoked_at >= since,
                                and_(BanRow.revoked_at.is_(None), BanRow.until <= now, BanRow.until >= since)))
        query = query.order_by(func.coalesce(BanRow.revoked_at, BanRow.until).desc(), BanRow.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return _exclusion_records(s, list(s.scalars(query)), now)


def _exclusion_records(s: Session, rows: list[BanRow], now: dt.datetime) -> list[ExclusionRecord]:
    events = _events(s, "ban", [r.id for r in rows])
    who = people(s, [r.created_by for r in rows])
    out = []
    for row in rows:
        history = tuple(events.get(row.id, []))
        state = window_state(start=row.start, end=row.until, revoked_at=row.revoked_at, expired_at=row.expired_at,
                             now=now)
        out.append(ExclusionRecord(
            id=row.id, subject=row.subject, source=row.source, start=row.start or row.created_at, until=row.until,
            reason=row.reason, created_by=who[row.created_by], created_at=row.created_at, state=state,
            ending=_ending(state, row.revoked_at, row.expired_at or row.until, history), history=history))
    return out


# --- the change log -----------------------------------------------------------------------------

def _events(s: Session, obj: str, ids: list[int], *, kinds: Iterable[str] | None = None) -> dict[int, list[Event]]:
    """The changes of these objects (only of these kinds), per object, oldest first."""
    if not ids:
        return {}
    query = select(ChangeRow).where(ChangeRow.object == obj, ChangeRow.object_id.in_(ids))
    if kinds is not None:
        query = query.where(ChangeRow.kind.in_(list(kinds)))
    rows = list(s.scalars(query.order_by(ChangeRow.at, ChangeRow.id)))
    who = people(s, [r.actor for r in rows])
    out: dict[int, list[Event]] = {}
    for row in rows:
        until = was = None
        reason = row.reason
        if row.kind == "extend" and (parsed := parse_extension(row.reason)) is not None:
            until, was, reason = parsed
        out.setdefault(row.object_id, []).append(
            Event(at=row.at, kind=row.kind, obj=row.object, object_id=row.object_id, by=who[row.actor],
                  reason=reason, until=until, was=was))
    return out


def _ending(state: str, revoked_at: dt.datetime | None, end: dt.datetime,
            history: tuple[Event, ...]) -> Ending | None:
    if state == "revoked":
        assert revoked_at is not None
        revoke = next((e for e in reversed(history) if e.kind == "revoke"), None)
        return Ending(revoked_at, revoke.by if revoke else None, revoke.reason if revoke else "")
    if state == "expired":
        return Ending(end, None, "")
    return None
