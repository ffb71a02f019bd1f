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

from sqlalchemy import func, select, text, tuple_
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


# PostgreSQL: the whole batch as one statement over arrays (one round trip, one short statement
# to parse, a reliable rowcount), inserted in the batch's order so ids follow seq.
_COLUMNS = ("seq", "at", "gateway", "kind", "zone", "role", "slot", "category", "action", "rule", "source",
            "period", "pseudonym", "sealed", "leaf_hash")
_PG_TYPES = {"seq": "bigint", "at": "timestamptz", "sealed": "bytea", "leaf_hash": "bytea"}
_PG_INSERT = text(
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM unnest("
    + ", ".join(f"CAST(:{c} AS {_PG_TYPES.get(c, 'varchar')}[])" for c in _COLUMNS)
    + f") WITH ORDINALITY AS batch({', '.join(_COLUMNS)}, ord) ORDER BY ord "
    "ON CONFLICT (gateway, seq) DO NOTHING")


def insert_events(session: Session, events: Sequence[AuditEvent]) -> Inserted:
    """Insert a batch in its order (ids follow seq); rows already present are skipped."""
    if not events:
        return Inserted(0, 0)
    rows = [event.row() for event in events]
    if session.get_bind().dialect.name == "postgresql":
        for row in rows:
            if row["at"].tzinfo is None:
                raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
        inserted = session.execute(_PG_INSERT, {c: [row[c] for row in rows] for c in _COLUMNS}).rowcount
    else:
        # SQLite: executemany of one short statement; its rowcount is the sum over the rows
        stmt = _insert(session, EVENTS).on_conflict_do_nothing(index_elements=["gateway", "seq"])
        inserted = session.execute(stmt, rows).rowcount
    if inserted == len(rows):
        return Inserted(inserted, 0)
    # a replay (some rows were there): tell a repeat of the same event from a reused number
    ours = {(row["gateway"], row["seq"]): row["leaf_hash"] for row in rows}
    conflicts: list[int] = []
    keys = list(ours)
    for i in range(0, len(keys), 1000):
        found = session.execute(
            select(EVENTS.c.gateway, EVENTS.c.seq, EVENTS.c.leaf_hash)
            .where(tuple_(EVENTS.c.gateway, EVENTS.c.seq).in_(keys[i:i + 1000]))).all()
        conflicts += [seq for gateway, seq, leaf in found if ours[(gateway, seq)] != bytes(leaf)]
    return Inserted(inserted, len(rows) - inserted - len(conflicts), sorted(conflicts))


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
