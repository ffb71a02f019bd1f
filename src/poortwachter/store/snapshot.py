"""The gateway's view of the store: an immutable State of what is active now or later.

The intended loop: poll `state_revision` (one integer) and call `load_snapshot` only when it
moved. Objects that expire need no reload: State checks start/until itself. If the database is
away, these raise sqlalchemy.exc.SQLAlchemyError and the gateway keeps its last State.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..state import Ban, DownloadLimit, Exam, Grant, Opening, OpeningMode, Sites, State
from .db import Store
from .models import BanRow, DownloadLimitRow, ExamRow, GrantRow, MetaRow, OpeningRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    revision: int   # the state revision this State was read at
    state: State


def load_snapshot(store: Store, now: dt.datetime) -> Snapshot:
    """Active and future bans, approved grants, openings, exams and download limits (not expired
    at `now`, not revoked), read in one transaction together with the revision they belong to."""
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass an aware 'now'")
    bans = select(BanRow).where(BanRow.revoked_at.is_(None), BanRow.until > now).order_by(BanRow.id)
    grants = (select(GrantRow)
              .where(GrantRow.revoked_at.is_(None), GrantRow.end > now, GrantRow.status == "approved")
              .order_by(GrantRow.id))
    openings = (select(OpeningRow).where(OpeningRow.revoked_at.is_(None), OpeningRow.until > now)
                .order_by(OpeningRow.id))
    exams = select(ExamRow).where(ExamRow.revoked_at.is_(None), ExamRow.until > now).order_by(ExamRow.id)
    limits = (select(DownloadLimitRow).where(DownloadLimitRow.revoked_at.is_(None), DownloadLimitRow.until > now)
              .order_by(DownloadLimitRow.id))
    with store.read() as session:
        revision = _revision(session)
        state = State(
            bans=tuple(_ban(r) for r in session.scalars(bans) if _valid_subject(r)),
            grants=tuple(_grant(r) for r in session.scalars(grants)),
            openings=tuple(_opening(r) for r in session.scalars(openings)),
            exams=tuple(_exam(r) for r in session.scalars(exams)),
            download_limits=tuple(_limit(r) for r in session.scalars(limits) if _valid_address(r)),
        )
    return Snapshot(revision, state)


def load_state(store: Store, now: dt.datetime) -> State:
    return load_snapshot(store, now).state


def state_revision(store: Store) -> int:
    """Bumped by every change; cheap enough to poll every second."""
    with store.read() as session:
        return _revision(session)


def _revision(session: Session) -> int:
    return session.execute(select(MetaRow.state_revision).where(MetaRow.id == 1)).scalar_one()


def _valid_subject(row: BanRow) -> bool:
    # The repo validates subjects; a hand-edited row must not take the whole snapshot down.
    try:
        ipaddress.ip_network(row.subject, strict=False)
    except ValueError:
        log.error("ban %d skipped: subject is not an address or network", row.id)
        return False
    return True


def _valid_address(row: DownloadLimitRow) -> bool:
    try:
        ipaddress.ip_address(row.address)
    except ValueError:
        log.error("download limit %d skipped: not an address", row.id)
        return False
    return True


def _ban(row: BanRow) -> Ban:
    return Ban(id=row.id, subject=row.subject, until=row.until, source=row.source, start=row.start)


def _grant(row: GrantRow) -> Grant:
    return Grant(
        id=row.id,
        sites=Sites.of(row.sites, row.categories),
        start=row.start,
        end=row.end,
        zones=frozenset(row.zones),
        roles=frozenset(row.roles),
        source=row.source,
    )


def _opening(row: OpeningRow) -> Opening:
    mode: OpeningMode = "allowlist" if row.mode == "allowlist" else "open"
    return Opening(id=row.id, zone=row.zone, mode=mode, sites=Sites.of(row.sites, row.categories),
                   until=row.until, source=row.source, start=row.start)


def _exam(row: ExamRow) -> Exam:
    return Exam(id=row.id, zone=row.zone, allowlist=Sites.of(row.sites, row.categories),
                until=row.until, source=row.source, start=row.start)


def _limit(row: DownloadLimitRow) -> DownloadLimit:
    return DownloadLimit(id=row.id, address=row.address, max_bytes=row.max_bytes, until=row.until, start=row.start)
