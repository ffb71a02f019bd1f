"""Unblock requests (004 art. 11a, 12): submitted from the block page, endorsed by a leidinggevende
with a ground and a scope, approved by ICT (-> a grant the gateways pick up within seconds) or
declined; ICT may revoke a grant early.

    submitted --endorse--> endorsed --approve--> approved (+ grant)
        |                     |
        +------decline / withdraw-----> declined / withdrawn

ICT may also extend a grant that has not ended (a later end, with a reason): the `extend` change
keeps the old and the new end (extension_reason / parse_extension).

Every step takes the writer's lock (the `meta` row) first and then re-reads the request row under
FOR UPDATE, and the status change itself is a conditional UPDATE checked by row count: of two ICT
members approving the same request at once, one gets the grant and the other a Conflict.

With `notices` (e-mail notifications on), every step writes the mails it causes into the outbox
in its own transaction (outbox.py, notify.py). The requester's address is kept only while the
request is open: the step that ends it (approve, decline, withdraw) erases it, with or without
notifications, after queueing the mail that tells them.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..hosts import BadHost, parse_url
from ..store import repo
from ..store.models import GROUNDS, NAME, REQUEST_STATUSES, GrantRow, UnblockRequestRow
from . import outbox
from .common import User, actor_of, aware, change, email_address, names, repo_input, require_role, text
from .errors import Conflict, Invalid, NotFound
from .notify import Notices, Step

PUBLIC = "publiek"          # created_by of a request from the public form
MAX_SITES = 20
MAX_URL = 4096              # longer blocked URLs are kept cut short; the host is what matters
PENDING = ("submitted", "endorsed")
# The steps whose reason the requester sees (on the status page, and in the mail that tells them
# of a decline or withdrawal); the forms that ask for these reasons say so.
PUBLIC_REASONS = frozenset({"decline", "withdraw", "extend", "revoke"})

Locked = Callable[[str], str | None]


@dataclass(frozen=True)
class RequestView:
    id: int
    url: str
    sites: tuple[str, ...]
    category: str                 # "" when the block page named none
    rule: str
    requester: str
    ground: str | None            # "lesstof" | "professioneel" once endorsed
    zones: tuple[str, ...]        # empty: every zone
    roles: tuple[str, ...]        # empty: every role
    start: dt.datetime | None
    end: dt.datetime | None
    motivation: str               # the endorser's motivation ("" before endorsement)
    status: str                   # submitted | endorsed | approved | declined | withdrawn
    endorsed_by: str | None       # actor, e.g. "leidinggevende:anna"
    decided_by: str | None
    decision_reason: str
    grant_id: int | None
    created_at: dt.datetime
    # further fields (defaults keep positional construction working):
    reason: str = ""              # the requester's own why, from the form
    token: str = ""               # unguessable lookup key for the requester's status link
    grant_status: str | None = None   # "approved" | "revoked" | "expired" (recorded) for grant_id
    endorsed_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None


@dataclass(frozen=True)
class GrantView:
    id: int
    sites: tuple[str, ...]
    categories: tuple[str, ...]
    zones: tuple[str, ...]
    roles: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    created_by: str
    approved_by: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expired_at: dt.datetime | None


# --- steps -----------------------------------------------------------------------------------

def submit_request(s: Session, *, url: str, category: str, rule: str, requester: str, reason: str,
                   now: dt.datetime, user: User | None = None, ground: str | None = None,
                   sites: Iterable[str] = (), zones: Iterable[str] = (), roles: Iterable[str] = (),
                   start: dt.datetime | None = None, end: dt.datetime | None = None,
                   requester_email: str | None = None, notices: Notices | None = None) -> int:
    """A new request. From the public form (user None) or by a staff member: status `submitted`.
    A leidinggevende or ICT submitting with a ground and a full scope (sites, end) endorses it
    at once: status `endorsed`, ready for ICT. Without sites, the blocked URL's host is the site.
    `requester_email` is kept only when notifications are on (`notices`): it has no other use."""
    now = aware(now, "Tijd", "Time")
    url_text = (url or "").strip()[:MAX_URL]
    site_list = _sites(sites)
    if not site_list:
        site_list = (_host_of(url_text),)
    who = text(requester, "Naam aanvrager", "Requester name", limit=NAME, required=user is None)
    if not who and user is not None:
        who = user.display_name
    why = text(reason, "Reden", "Reason")
    endorse = ground is not None and user is not None and user.role in ("leidinggevende", "ict")
    zone_names = names(zones, "Zones", "Zones")
    role_names = names(roles, "Rollen", "Roles")
    window_start, window_end = _optional_window(start, end, now, required=endorse)
    if ground is not None and ground not in GROUNDS:
        raise Invalid("Grond moet 'lesstof' of 'professioneel' zijn / Ground must be 'lesstof' or 'professioneel'")
    created_by = actor_of(user) if user is not None else PUBLIC
    address = email_address(requester_email) if notices is not None else None

    repo.lock_revision(s)
    row = UnblockRequestRow(
        token=secrets.token_urlsafe(16), url=url_text, sites=list(site_list),
        category=text(category, "Categorie", "Category", limit=NAME, required=False),
        rule=text(rule, "Regel", "Rule", limit=NAME, required=False),
        requester=who, reason=why, ground=ground, zones=list(zone_names), roles=list(role_names),
        start=window_start, end=window_end, motivation="", status="submitted",
        created_by=created_by, created_at=now, decision_reason="", requester_email=address)
    s.add(row)
    s.flush()
    change(s, actor=created_by, kind="submit", obj="request", object_id=row.id, reason=why, at=now)
    if endorse:
        assert user is not None
        row.status, row.motivation = "endorsed", why
        row.endorsed_by, row.endorsed_at = actor_of(user), now
        change(s, actor=actor_of(user), kind="endorse", obj="request", object_id=row.id,
               reason=f"{ground}: {why}", at=now)
        s.flush()
    outbox.queue(s, _step(row, row.status, user), notices, now=now)
    return row.id


def endorse_request(s: Session, request_id: int, *, user: User, ground: str, sites: Iterable[str],
                    zones: Iterable[str], roles: Iterable[str], start: dt.datetime | None,
                    end: dt.datetime, motivation: str, now: dt.datetime, notices: Notices | None = None) -> None:
    """A leidinggevende (or ICT) backs a submitted request with its ground and scope."""
    require_role(user, "leidinggevende", "ict")
    now = aware(now, "Tijd", "Time")
    if ground not in GROUNDS:
        raise Invalid("Grond moet 'lesstof' of 'professioneel' zijn / Ground must be 'lesstof' or 'professioneel'")
    site_list = _sites(sites)
    if not site_list:
        raise Invalid("Geen sites / No sites")
    zone_names, role_names = names(zones, "Zones", "Zones"), names(roles, "Rollen", "Roles")
    window_start, window_end = _optional_window(start, end, now, required=True)
    why = text(motivation, "Motivering", "Motivation")
    who = actor_of(user)

    step = _step(_lock_request(s, request_id), "endorsed", user)
    _transition(s, request_id, ("submitted",), status="endorsed", ground=ground, sites=list(site_list),
                zones=list(zone_names), roles=list(role_names), start=window_start, end=window_end,
                motivation=why, endorsed_by=who, endorsed_at=now)
    change(s, actor=who, kind="endorse", obj="request", object_id=request_id, reason=f"{ground}: {why}", at=now)
    outbox.queue(s, step, notices, now=now)


def approve_request(s: Session, request_id: int, *, user: User, now: dt.datetime, reason: str = "",
                    sites: Iterable[str] | None = None, zones: Iterable[str] | None = None,
                    roles: Iterable[str] | None = None, start: dt.datetime | None = None,
                    end: dt.datetime | None = None, locked: Locked = lambda site: None,
                    notices: Notices | None = None) -> int:
    """ICT approves an endorsed request, optionally narrowing it (fewer sites, zones or roles, a
    shorter window; never wider). `locked(site)` names the not-overridable category a site is in,
    which no one may open. Returns the new grant's id."""
    require_role(user, "ict")
    now = aware(now, "Tijd", "Time")
    why = text(reason, "Reden", "Reason", required=False)
    row = _lock_request(s, request_id)
    if row.status != "endorsed":
        raise Conflict("Verzoek wacht niet (meer) op goedkeuring / Request is no longer awaiting approval")
    assert row.start is not None and row.end is not None

    site_list = row.sites if sites is None else list(_sites(sites))
    if not site_list:
        raise Invalid("Geen sites / No sites")
    for n, site in enumerate(site_list, 1):
        if not _site_within(site, row.sites):
            raise Invalid(f"Site {n} valt buiten het verzoek / Site {n} is outside the request")
    zone_list = _narrowed(row.zones, zones, "Zones", "Zones")
    role_list = _narrowed(row.roles, roles, "Rollen", "Roles")
    window_start = row.start if start is None else aware(start, "Begin", "Start")
    window_end = row.end if end is None else aware(end, "Einde", "End")
    if window_start < row.start or window_end > row.end:
        raise Invalid("Periode valt buiten het verzoek / Window is outside the request")
    if window_end <= window_start:
        raise Invalid("Einde ligt niet na begin / End is not after start")
    if window_end <= now:
        raise Invalid("Periode is al voorbij / Window is already over")
    _refuse_locked(site_list, locked)

    who = actor_of(user)
    step = _step(row, "approved", user)   # before the transition erases the requester's address
    grant_reason = f"verzoek {request_id} ({row.ground})" + (f": {why}" if why else "")
    with repo_input():
        grant_id = repo.add_grant(s, sites=site_list, zones=zone_list, roles=role_list, start=window_start,
                                  end=window_end, actor=who, reason=grant_reason, approved_by=who, now=now)
    _transition(s, request_id, ("endorsed",), status="approved", decided_by=who, decided_at=now,
                decision_reason=why, grant_id=grant_id, requester_email=None)
    change(s, actor=who, kind="approve", obj="request", object_id=request_id,
           reason=why or f"goedgekeurd, grant {grant_id} / approved, grant {grant_id}", at=now)
    outbox.queue(s, step, notices, now=now)
    return grant_id


def decline_request(s: Session, request_id: int, *, user: User, reason: str, now: dt.datetime,
                    notices: Notices | None = None) -> None:
    """ICT declines a submitted or endorsed request, with a reason the requester will see."""
    require_role(user, "ict")
    _close(s, request_id, user=user, reason=reason, now=now, status="declined", kind="decline", notices=notices)


def withdraw_request(s: Session, request_id: int, *, user: User, reason: str, now: dt.datetime,
                     notices: Notices | None = None) -> None:
    """A leidinggevende or ICT withdraws a pending request, e.g. one the
    leidinggevende will not endorse."""
    require_role(user, "leidinggevende", "ict")
    _close(s, request_id, user=user, reason=reason, now=now, status="withdrawn", kind="withdraw", notices=notices)


def create_grant(s: Session, *, user: User, sites: Iterable[str], start: dt.datetime | None = None,
                 end: dt.datetime, reason: str, now: dt.datetime, zones: Iterable[str] = (),
                 roles: Iterable[str] = (), locked: Locked = lambda site: None) -> int:
    """(The CLI's `grant add`.) ICT opens sites without a request."""
    require_role(user, "ict")
    now = aware(now, "Tijd", "Time")
    site_list = _sites(sites)
    if not site_list:
        raise Invalid("Geen sites / No sites")
    zone_list, role_list = names(zones, "Zones", "Zones"), names(roles, "Rollen", "Roles")
    window_start, window_end = _optional_window(start, end, now, required=True)
    assert window_start is not None and window_end is not None
    why = text(reason, "Reden", "Reason")
    _refuse_locked(site_list, locked)
    with repo_input():
        return repo.add_grant(s, sites=site_list, zones=zone_list, roles=role_list, start=window_start,
                              end=window_end, actor=actor_of(user), reason=why, now=now)


def revoke_grant(s: Session, grant_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    """ICT ends a grant early. Conflict if it already ended (revoked or expired)."""
    require_role(user, "ict")
    now = aware(now, "Tijd", "Time")
    why = text(reason, "Reden", "Reason")
    _lock_running_grant(s, grant_id, now)
    with repo_input():
        if not repo.revoke_grant(s, grant_id, actor=actor_of(user), reason=why, now=now):
            raise Conflict("Deblokkering is al ingetrokken / Grant already revoked")


def extend_grant(s: Session, grant_id: int, *, user: User, end: dt.datetime, reason: str, now: dt.datetime,
                 locked: Locked = lambda site: None) -> None:
    """ICT moves the end of a grant that is running or still to start to a later moment, with a
    reason; the `extend` change keeps the old and the new end. Conflict if the grant already
    ended (revoked, expired); Invalid if the new end is not later than the current one, or a site
    is (now) in a category that no one may open."""
    require_role(user, "ict")
    now = aware(now, "Tijd", "Time")
    new_end = aware(end, "Einde", "End")
    why = text(reason, "Reden", "Reason")
    row = _lock_running_grant(s, grant_id, now)
    if new_end <= row.end:
        raise Invalid("Het nieuwe einde ligt niet na het huidige / The new end is not after the current one")
    _refuse_locked(row.sites, locked)
    old_end, row.end = row.end, new_end
    s.flush()
    change(s, actor=actor_of(user), kind="extend", obj="grant", object_id=grant_id,
           reason=extension_reason(old_end, new_end, why), at=now)


def _lock_running_grant(s: Session, grant_id: int, now: dt.datetime) -> GrantRow:
    """The grant, locked for this change, if it is running or still to start; NotFound or Conflict
    (already revoked, expired or ended) otherwise."""
    repo.lock_revision(s)
    row = s.scalar(select(GrantRow).where(GrantRow.id == grant_id).with_for_update()
                   .execution_options(populate_existing=True))
    if row is None:
        raise NotFound("Deblokkering niet gevonden / Grant not found")
    if row.revoked_at is not None:
        raise Conflict("Deblokkering is al ingetrokken / Grant already revoked")
    if row.status != "approved" or row.expired_at is not None or row.end <= now:
        raise Conflict("Deblokkering is niet meer actief / Grant is no longer active")
    return row


_EXTENSION = re.compile(r"tot / until (\S+) \(was (\S+)\): (.*)", re.S)


def extension_reason(old_end: dt.datetime, new_end: dt.datetime, why: str) -> str:
    """The reason of an `extend` change: the new and the old end (ISO 8601, UTC) and the why."""
    return f"tot / until {new_end.astimezone(dt.UTC).isoformat()} (was {old_end.astimezone(dt.UTC).isoformat()}): {why}"


def parse_extension(reason: str) -> tuple[dt.datetime, dt.datetime, str] | None:
    """(new end, old end, why) of an `extend` change's reason; None if it is not one."""
    match = _EXTENSION.fullmatch(reason)
    if match is None:
        return None
    try:
        new_end, old_end = dt.datetime.fromisoformat(match.group(1)), dt.datetime.fromisoformat(match.group(2))
    except ValueError:
        return None
    if new_end.tzinfo is None or old_end.tzinfo is None:
        return None
    return new_end, old_end, match.group(3)


# --- reading ---------------------------------------------------------------------------------

def get_request(s: Session, request_id: int) -> RequestView | None:
    row = s.get(UnblockRequestRow, request_id)
    return None if row is None else _views(s, [row])[0]


def find_request(s: Session, token: str) -> RequestView | None:
    """The request behind a requester's status link. Request numbers are
    sequential, so a public status page must look up by this token, never by number."""
    if not token or not isinstance(token, str) or len(token) > 64:
        return None
    row = s.scalar(select(UnblockRequestRow).where(UnblockRequestRow.token == token))
    return None if row is None else _views(s, [row])[0]


def list_requests(s: Session, *, status: str | Iterable[str] | None = None) -> list[RequestView]:
    """Requests in the order they came in; `status` one status or several."""
    query = select(UnblockRequestRow).order_by(UnblockRequestRow.id)
    if status is not None:
        wanted = (status,) if isinstance(status, str) else tuple(status)
        if not set(wanted) <= set(REQUEST_STATUSES):
            raise Invalid("Onbekende status / Unknown status")
        query = query.where(UnblockRequestRow.status.in_(wanted))
    return _views(s, list(s.scalars(query)))


def list_grants(s: Session, *, now: dt.datetime, include_ended: bool = False) -> list[GrantView]:
    """Approved grants, by id; by default only those not yet ended
    (running or still to start, not revoked)."""
    now = aware(now, "Tijd", "Time")
    query = select(GrantRow).where(GrantRow.status == "approved").order_by(GrantRow.id)
    if not include_ended:
        query = query.where(GrantRow.revoked_at.is_(None), GrantRow.end > now)
    return [GrantView(id=r.id, sites=tuple(r.sites), categories=tuple(r.categories), zones=tuple(r.zones),
                      roles=tuple(r.roles), start=r.start, end=r.end, created_by=r.created_by,
                      approved_by=r.approved_by, created_at=r.created_at, revoked_at=r.revoked_at,
                      expired_at=r.expired_at)
            for r in s.scalars(query)]


# --- helpers ---------------------------------------------------------------------------------

def _lock_request(s: Session, request_id: int) -> UnblockRequestRow:
    """Writer's lock, then the request row, read fresh (not from this session's identity map)."""
    repo.lock_revision(s)
    row = s.scalar(select(UnblockRequestRow).where(UnblockRequestRow.id == request_id)
                   .with_for_update().execution_options(populate_existing=True))
    if row is None:
        raise NotFound("Verzoek niet gevonden / Request not found")
    return row


def _transition(s: Session, request_id: int, allowed: tuple[str, ...], **values: object) -> None:
    """Change the request only if it is still in an allowed status (checked by row count, not by
    what this session read earlier)."""
    stmt = (update(UnblockRequestRow)
            .where(UnblockRequestRow.id == request_id, UnblockRequestRow.status.in_(allowed))
            .values(**values).execution_options(synchronize_session="fetch"))
    if s.execute(stmt).rowcount != 1:
        raise Conflict("Verzoek is intussen al behandeld / Request was handled in the meantime")


def _close(s: Session, request_id: int, *, user: User, reason: str, now: dt.datetime, status: str,
           kind: str, notices: Notices | None) -> None:
    now = aware(now, "Tijd", "Time")
    why = text(reason, "Reden", "Reason")
    who = actor_of(user)
    step = _step(_lock_request(s, request_id), status, user, reason=why if kind in PUBLIC_REASONS else "")
    _transition(s, request_id, PENDING, status=status, decided_by=who, decided_at=now, decision_reason=why,
                requester_email=None)
    change(s, actor=who, kind=kind, obj="request", object_id=request_id, reason=why, at=now)
    outbox.queue(s, step, notices, now=now)


def _step(row: UnblockRequestRow, status: str, user: User | None, *, reason: str = "") -> Step:
    """What the outbox needs to know of a step on `row` (read before the step changes the row)."""
    return Step(status=status, request_id=row.id, token=row.token, url=row.url, sites=tuple(row.sites),
                requester_email=row.requester_email, reason=reason, actor_id=user.id if user is not None else None)


def _sites(sites: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(sites, str):
        raise Invalid("Sites: lijst verwacht / Sites: list expected")
    with repo_input():
        out = tuple(repo.normalize_sites(s for s in sites if s and s.strip()))
    if len(out) > MAX_SITES:
        raise Invalid(f"Te veel sites (max. {MAX_SITES}) / Too many sites (max. {MAX_SITES})")
    return out


def _host_of(url: str) -> str:
    try:
        return parse_url(url).host
    except (BadHost, ValueError):
        raise Invalid("URL ongeldig / URL not valid") from None


def _optional_window(start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, *,
                     required: bool) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A proposed window: start defaults to now; the end must be after start and still ahead."""
    if end is None and not required and start is None:
        return None, None
    window_end = aware(end, "Einde", "End")
    window_start = now if start is None else aware(start, "Begin", "Start")
    if window_end <= window_start:
        raise Invalid("Einde ligt niet na begin / End is not after start")
    if window_end <= now:
        raise Invalid("Periode is al voorbij / Window is already over")
    return window_start, window_end


def _narrowed(endorsed: list[str], approved: Iterable[str] | None, nl: str, en: str) -> list[str]:
    """Approved zones or roles: a subset of the endorsed ones (empty endorsed = all, so anything
    goes; empty approved = all, so only if the endorsed scope was all too)."""
    if approved is None:
        return list(endorsed)
    chosen = list(names(approved, nl, en))
    if endorsed and (not chosen or not set(chosen) <= set(endorsed)):
        raise Invalid(f"{nl} vallen buiten het verzoek / {en} are outside the request")
    return chosen


def _site_within(site: str, endorsed: Iterable[str]) -> bool:
    """Is `site` (host or host/path) inside one of the endorsed sites, by the gateway's own
    matching rules (subdomains, path prefixes)?"""
    host, _, path = site.partition("/")
    for other in endorsed:
        other_host, _, other_path = other.partition("/")
        if host != other_host and not host.endswith("." + other_host):
            continue
        if not other_path or (path and ("/" + path).startswith("/" + other_path)):
            return True
    return False


def _refuse_locked(sites: Iterable[str], locked: Locked) -> None:
    for site in sites:
        category = locked(site.partition("/")[0])
        if category:
            raise Invalid(f"Categorie '{category}' kan nooit worden opengesteld / "
                          f"Category '{category}' can never be opened")


def _views(s: Session, rows: list[UnblockRequestRow]) -> list[RequestView]:
    grant_ids = [r.grant_id for r in rows if r.grant_id is not None]
    grants = {g.id: g for g in s.scalars(select(GrantRow).where(GrantRow.id.in_(grant_ids)))} if grant_ids else {}
    return [_view(r, grants.get(r.grant_id) if r.grant_id is not None else None) for r in rows]


def _view(row: UnblockRequestRow, grant: GrantRow | None) -> RequestView:
    grant_status = None
    if grant is not None:
        grant_status = "revoked" if grant.revoked_at else "expired" if grant.expired_at else "approved"
    return RequestView(
        id=row.id, url=row.url, sites=tuple(row.sites), category=row.category, rule=row.rule,
        requester=row.requester, ground=row.ground, zones=tuple(row.zones), roles=tuple(row.roles),
        start=row.start, end=row.end, motivation=row.motivation, status=row.status,
        endorsed_by=row.endorsed_by, decided_by=row.decided_by, decision_reason=row.decision_reason,
        grant_id=row.grant_id, created_at=row.created_at, reason=row.reason, token=row.token,
        grant_status=grant_status, endorsed_at=row.endorsed_at, decided_at=row.decided_at)
