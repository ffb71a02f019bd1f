"""Download limits (004 art. 13, overmatig downloaden): the network sensor's verdict on a client,
which the gateway enforces on responses until the end of the day.

Who may do what:
- impose_download_limit: the sensor (actor "system:sensor"); it opens its own write transaction,
  so the sensor needs no unit of work of its own, and is idempotent per address;
- revoke_download_limit: directie or ICT, like an exclusion (the console's exclusions page, the CLI);
- list_download_limits: read-only, for whoever may see the exclusions page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..store import repo
from ..store.db import Store
from ..store.models import DownloadLimitRow
from .common import User, actor_of, aware, repo_input, require_role, text
from .errors import Conflict, Invalid, NotFound

SENSOR = "system:sensor"   # the actor of limits the network sensor imposes


@dataclass(frozen=True)
class DownloadLimitView:
    id: int
    address: str
    zone: str
    max_bytes: int
    start: dt.datetime | None
    until: dt.datetime
    reason: str
    created_by: str
    created_at: dt.datetime


def impose_download_limit(store: Store, *, address: str, zone: str, max_bytes: int, until: dt.datetime,
                          reason: str, now: dt.datetime, actor: str = SENSOR) -> int | None:
    """Limit the client at `address` to responses of at most `max_bytes` from `now` until `until`.
    Returns the new limit's id, or None when the address already has a limit in force (the sensor
    may report the same client every window: only the first report counts). Raises Invalid on
    bad input (Dutch / English, without the address)."""
    now, end = aware(now, "Tijd", "Time"), aware(until, "Einde", "End")
    if end <= now:
        raise Invalid("Einde ligt niet in de toekomst / End is not in the future")
    why = text(reason, "Reden", "Reason")
    with repo_input():
        canonical = repo.normalize_address(address)
    with store.write() as s:
        # The writer's lock first: two sensors (or two windows) reporting the same client at once
        # queue here, and the second sees the first one's limit.
        repo.lock_revision(s)
        if _in_force(s, canonical, now) is not None:
            return None
        with repo_input():
            return repo.add_download_limit(s, address=canonical, zone=zone, max_bytes=max_bytes, until=end,
                                           actor=actor, reason=why, start=now, now=now)


def revoke_download_limit(s: Session, limit_id: int, *, user: User, reason: str, now: dt.datetime) -> None:
    """Lift a download limit early (directie or ICT), in the caller's unit of work."""
    require_role(user, "directie", "ict")
    now = aware(now, "Tijd", "Time")
    why = text(reason, "Reden", "Reason")
    repo.lock_revision(s)
    row = s.scalar(select(DownloadLimitRow).where(DownloadLimitRow.id == limit_id).with_for_update()
                   .execution_options(populate_existing=True))
    if row is None:
        raise NotFound("Niet gevonden / Not found")
    if row.revoked_at is not None or row.expired_at is not None or row.until <= now:
        raise Conflict("Is al beëindigd / Has already ended")
    with repo_input():
        if not repo.revoke_download_limit(s, limit_id, actor=actor_of(user), reason=why, now=now):
            raise Conflict("Is al beëindigd / Has already ended")


def list_download_limits(s: Session, *, now: dt.datetime) -> list[DownloadLimitView]:
    """Limits not yet ended (not revoked, `until` still ahead), by id."""
    now = aware(now, "Tijd", "Time")
    query = (select(DownloadLimitRow).where(DownloadLimitRow.revoked_at.is_(None), DownloadLimitRow.until > now)
             .order_by(DownloadLimitRow.id))
    return [DownloadLimitView(id=r.id, address=r.address, zone=r.zone, max_bytes=r.max_bytes, start=r.start,
                              until=r.until, reason=r.reason, created_by=r.created_by, created_at=r.created_at)
            for r in s.scalars(query)]


def _in_force(s: Session, address: str, now: dt.datetime) -> int | None:
    return s.scalar(select(DownloadLimitRow.id).where(
        DownloadLimitRow.address == address, DownloadLimitRow.revoked_at.is_(None),
        or_(DownloadLimitRow.start.is_(None), DownloadLimitRow.start <= now), DownloadLimitRow.until > now)
        .limit(1))
