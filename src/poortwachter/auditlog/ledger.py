"""The access ledger: every decision on a case and every look at sealed events, with counts only.

An entry says when, who, what, which case and how many events; never content. Cases
(auditlog/cases.py) append one for every decision (open, approve, close, inform, expire), every
look (view, export) and every refused unseal attempt ("refused", with a fixed code); the key
ceremony (auditlog/keys.py) appends a "keys" entry without a case. Writers hold the store's
writer lock (the `meta` row), so ledger ids are committed in order on PostgreSQL too: the
ledger's Merkle log (`poortwachter/ledger`, audit/log.py) appends by id. Each entry's leaf hash
(RFC 6962, over `ledger_canonical`) is stored with it, for that log and its signed checkpoints.

The ledger is read-only for LEDGER_READERS: directie and ICT, and the roles "fg" (privacy officer)
and "mr" (participation council) as soon as the accounts know them. Adding those two roles means
changing the users table's role check and the workflow's role list, which this module does not
own; until then the FG and the MR get the ledger from `poortwachter case ledger` (read-only, no
shares needed: `ledger_entries`) or from a directie/ICT screen.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit.merkle import leaf_hash
from ..audit.record import format_time
from ..store.models import CaseRow, LedgerRow
from ..workflow import ROLES
from ..workflow.common import User, require_role

# The FG and MR read the ledger once the accounts have those roles (see the module docstring).
LEDGER_READERS = tuple(r for r in ("directie", "ict", "fg", "mr") if r in ROLES)
LEDGER_FORMAT = 1


@dataclass(frozen=True)
class LedgerView:
    id: int
    at: dt.datetime
    actor: str
    action: str
    case_id: int | None
    events: int | None
    note: str
    reference: str | None         # the case's reference and article: which case, never whom
    article: str | None


def list_ledger(s: Session, *, user: User | None, case_id: int | None = None,
                limit: int | None = None) -> list[LedgerView]:
    """The access ledger, newest first (one case's entries with `case_id`)."""
    require_role(user, *LEDGER_READERS)
    return _ledger_views(s, case_id=case_id, limit=limit)


def ledger_entries(s: Session, *, case_id: int | None = None, limit: int | None = None) -> list[LedgerView]:
    """The ledger without a role check, for the command line (shell access to the store)."""
    return _ledger_views(s, case_id=case_id, limit=limit)


def ledger_canonical(*, at: dt.datetime, actor: str, action: str, case_id: int | None, events: int | None,
                     note: str) -> bytes:
    """An entry's bytes for its Merkle leaf: sorted-key ASCII JSON, rebuilt exactly from its row."""
    return json.dumps({"v": LEDGER_FORMAT, "at": format_time(at), "actor": actor, "action": action,
                       "case": case_id, "events": events, "note": note},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def ledger_canonical_of(row: LedgerRow) -> bytes:
    return ledger_canonical(at=row.at, actor=row.actor, action=row.action, case_id=row.case_id,
                            events=row.events, note=row.note)


def append_ledger(s: Session, *, at: dt.datetime, actor: str, action: str, case_id: int | None,
                  events: int | None = None, note: str = "") -> LedgerRow:
    """Append one entry (the caller holds the writer's lock: ids follow commit order)."""
    at = at.astimezone(dt.UTC)
    note = note[:64]   # the column's width: the hash must cover exactly what is stored
    data = ledger_canonical(at=at, actor=actor, action=action, case_id=case_id, events=events, note=note)
    row = LedgerRow(at=at, actor=actor, action=action, case_id=case_id, events=events, note=note,
                    leaf_hash=leaf_hash(data))
    s.add(row)
    return row


def _ledger_views(s: Session, *, case_id: int | None, limit: int | None) -> list[LedgerView]:
    stmt = (select(LedgerRow, CaseRow.reference, CaseRow.article)
            .outerjoin(CaseRow, LedgerRow.case_id == CaseRow.id).order_by(LedgerRow.id.desc()))
    if case_id is not None:
        stmt = stmt.where(LedgerRow.case_id == case_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [LedgerView(id=r.id, at=r.at, actor=r.actor, action=r.action, case_id=r.case_id, events=r.events,
                       note=r.note, reference=ref, article=art) for r, ref, art in s.execute(stmt)]
