"""Writing audit events: batches from the recorder, idempotent on (gateway, seq).

A gateway that crashes between the store's commit and deleting its spool segment replays that
segment after the restart; the rows already there are skipped (ON CONFLICT DO NOTHING on both
backends), so a replay never duplicates an event. A skipped row whose content differs from the
event offered is not a replay but a reused sequence number: it is reported, never overwritten.

Works inside the caller's unit of work (a Session from `Store.write()`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..audit.record import AuditEvent
from .models import AuditEventRow, AuditPeriodKeyRow

EVENTS = AuditEventRow.__table__
PERIOD_KEYS = AuditPeriodKeyRow.__table__


@dataclass(frozen=True)
class Inserted:
    inserted: int                                        # new rows
    duplicates: int                                      # already there, same content: a replay
    conflicts: list[int] = field(default_factory=list)   # seqs already there with OTHER content


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"audit store on {dialect}")


def insert_events(session: Session, events: Sequence[AuditEvent]) -> Inserted:
    """Insert a batch in its order (ids follow seq); rows already present are skipped."""
    if not events:
        return Inserted(0, 0)
    rows = [event.row() for event in events]
    stmt = _insert(session, EVENTS).on_conflict_do_nothing(index_elements=["gateway", "seq"])
    new = {(gateway, seq) for gateway, seq in session.execute(stmt.returning(EVENTS.c.gateway, EVENTS.c.seq), rows)}
    if len(new) == len(rows):
        return Inserted(len(rows), 0)
    skipped = {(row["gateway"], row["seq"]): row["leaf_hash"] for row in rows
               if (row["gateway"], row["seq"]) not in new}
    found = session.execute(
        select(EVENTS.c.gateway, EVENTS.c.seq, EVENTS.c.leaf_hash)
        .where(tuple_(EVENTS.c.gateway, EVENTS.c.seq).in_(list(skipped)))).all()
    conflicts = sorted(seq for gateway, seq, leaf in found if skipped[(gateway, seq)] != bytes(leaf))
    return Inserted(len(new), len(skipped) - len(conflicts), conflicts)


def store_period_keys(session: Session, gateway: str, sealed: Mapping[str, bytes], *, now: dt.datetime) -> None:
    """Keep the sealed pseudonym key of each period (the first copy stored stays)."""
    if not sealed:
        return
    rows = [{"gateway": gateway, "period": period, "sealed_key": key, "created_at": now}
            for period, key in sorted(sealed.items())]
    session.execute(_insert(session, PERIOD_KEYS).on_conflict_do_nothing(index_elements=["gateway", "period"]),
                    rows)


def last_seq(session: Session, gateway: str) -> int | None:
    return session.execute(select(func.max(EVENTS.c.seq)).where(EVENTS.c.gateway == gateway)).scalar()


def count_events(session: Session, gateway: str | None = None) -> int:
    stmt = select(func.count()).select_from(EVENTS)
    if gateway is not None:
        stmt = stmt.where(EVENTS.c.gateway == gateway)
    return int(session.execute(stmt).scalar_one())
