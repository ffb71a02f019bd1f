"""The state the gateway enforces besides the policy: bans, grants, classroom openings, exams and
download limits (loaded as poortwachter.state objects by store/snapshot.py), and the state
revision with the change log.

Every change, to this state or to a request or an account, bumps the revision in `meta` and
writes a `changes` row in the same transaction (store/repo.py), so a gateway polls one integer.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ...state import OpeningMode
from .base import NAME, SUBJECT, Base, one_of

GrantStatus = Literal["pending", "approved", "rejected"]
GRANT_STATUSES: tuple[GrantStatus, ...] = get_args(GrantStatus)
OPENING_MODES: tuple[OpeningMode, ...] = get_args(OpeningMode)


class BanRow(Base):
    """Uitsluiting van het netwerk: a client address or network excluded for a window."""

    __tablename__ = "bans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(SUBJECT))
    start: Mapped[dt.datetime | None]
    until: Mapped[dt.datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(NAME))
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


class GrantRow(Base):
    """A temporary unblock. Only `approved`, unrevoked grants reach the gateway."""

    __tablename__ = "grants"
    __table_args__ = (one_of("status", GRANT_STATUSES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sites: Mapped[list[str]]
    categories: Mapped[list[str]]
    zones: Mapped[list[str]]
    roles: Mapped[list[str]]
    start: Mapped[dt.datetime]
    end: Mapped[dt.datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(NAME))
    status: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(NAME))
    approved_by: Mapped[str | None] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


class OpeningRow(Base):
    """A teacher's classroom opening (`open`) or restriction (`allowlist`)."""

    __tablename__ = "openings"
    __table_args__ = (one_of("mode", OPENING_MODES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(NAME))
    mode: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str]]
    categories: Mapped[list[str]]
    start: Mapped[dt.datetime | None]
    until: Mapped[dt.datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(NAME))
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


class ExamRow(Base):
    """Exam mode for a zone: only the allowlist is reachable."""

    __tablename__ = "exams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(NAME))
    sites: Mapped[list[str]]
    categories: Mapped[list[str]]
    start: Mapped[dt.datetime | None]
    until: Mapped[dt.datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(NAME))
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


class DownloadLimitRow(Base):
    """Downloadlimiet (004 art. 13, overmatig downloaden): until `until` the client at `address`
    may not fetch a response larger than `max_bytes`. Imposed by the network sensor; modelled like
    a ban, but always on one address, never a network."""

    __tablename__ = "download_limits"
    __table_args__ = (CheckConstraint("max_bytes >= 0", name="max_bytes"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(SUBJECT), index=True)
    zone: Mapped[str] = mapped_column(String(NAME))
    max_bytes: Mapped[int] = mapped_column(BigInteger)
    start: Mapped[dt.datetime | None]
    until: Mapped[dt.datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


class ChangeRow(Base):
    """Who changed what, when and why. Written in the same transaction as the change itself;
    `revision` is the state revision that change produced."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_object", "object", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(32))       # add, revoke, expire, submit, endorse, approve, ...
    object: Mapped[str] = mapped_column(String(32))     # ban, grant, opening, exam, download_limit, request, user
    object_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)


class MetaRow(Base):
    """One row: the state revision, bumped by every change, so a gateway can poll one integer
    instead of reloading everything."""

    __tablename__ = "meta"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_revision: Mapped[int] = mapped_column(Integer)
