"""The outbox: e-mail notifications kept in the store until the console has sent them.

queue() runs inside the workflow step that causes the mails (submit, endorse, approve, decline,
withdraw), in that step's transaction: a step that is rolled back leaves no mail, and a committed
step always has its mails, whatever happens to the console or the mail server afterwards. What
the mails say and who gets them is decided by notify.py.

The sender (console/mailer.py) claims due rows, sends each, and records the outcome. A claim
counts the attempt and moves the row's due time LEASE ahead, so two consoles never send one row
at once, and a console that dies while sending leaves the row to be sent again after the lease: a
mail may arrive twice, never not at all. A failure is retried after a delay that doubles with
every attempt (RETRY_FIRST up to RETRY_MAX). A recipient the server refuses for good, and a mail
still unsent GIVE_UP after it was queued, is given up. A sent or given-up row keeps neither its
recipient nor its body.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..store.models import MAIL_ERROR, OutboxRow, UserRow
from .notify import Notices, Staff, Step, mails, readers

LEASE = dt.timedelta(minutes=5)
RETRY_FIRST = dt.timedelta(seconds=30)
RETRY_MAX = dt.timedelta(hours=1)
GIVE_UP = dt.timedelta(days=7)
BATCH = 20


@dataclass(frozen=True)
class Outgoing:
    """A claimed mail, ready to hand to the mail server."""

    id: int
    recipient: str
    subject: str
    body: str


def queue(s: Session, step: Step, notices: Notices | None, *, now: dt.datetime) -> int:
    """Write the mails `step` causes into the outbox, in the caller's transaction; none when
    notifications are off (`notices` None). Returns how many."""
    if notices is None:
        return 0
    found = mails(step, _staff(s, readers(step.status)), notices)
    for mail in found:
        s.add(OutboxRow(kind=mail.kind, request_id=step.request_id, recipient=mail.recipient,
                        subject=mail.subject, body=mail.body, status="pending", created_at=now, due_at=now,
                        sent_at=None, attempts=0, last_error=None))
    s.flush()
    return len(found)


def claim(s: Session, *, now: dt.datetime, limit: int = BATCH) -> list[Outgoing]:
    """The pending mails that are due, oldest first, each claimed for LEASE (see the module
    docstring). A row another sender claimed in the meantime is skipped."""
    due = list(s.scalars(select(OutboxRow).where(OutboxRow.status == "pending", OutboxRow.due_at <= now)
                         .order_by(OutboxRow.due_at, OutboxRow.id).limit(limit)))
    claimed: list[Outgoing] = []
    for row in due:
        # conditional on the attempt count this session read: of two senders, one wins the row
        taken = s.execute(update(OutboxRow)
                          .where(OutboxRow.id == row.id, OutboxRow.status == "pending",
                                 OutboxRow.attempts == row.attempts)
                          .values(due_at=now + LEASE, attempts=row.attempts + 1)
                          .execution_options(synchronize_session=False))
        if taken.rowcount == 1:
            claimed.append(Outgoing(row.id, row.recipient, row.subject, row.body))
    return claimed


def mark_sent(s: Session, mail_id: int, *, now: dt.datetime) -> None:
    """The server took the mail: keep only that it was sent, and when."""
    s.execute(update(OutboxRow).where(OutboxRow.id == mail_id, OutboxRow.status == "pending")
              .values(status="sent", sent_at=now, due_at=None, recipient="", body="", last_error=None)
              .execution_options(synchronize_session=False))


def mark_failed(s: Session, mail_id: int, *, error: str, permanent: bool, now: dt.datetime) -> str:
    """Sending failed with `error` (an exception type and an SMTP code; no addresses). The mail
    is tried again later, or given up when `permanent` or too old. Returns its status now."""
    row = s.scalar(select(OutboxRow).where(OutboxRow.id == mail_id).with_for_update())
    if row is None or row.status != "pending":
        return row.status if row is not None else "failed"
    row.last_error = error[:MAIL_ERROR]
    if permanent or now - row.created_at >= GIVE_UP:
        row.status, row.due_at, row.recipient, row.body = "failed", None, "", ""
    else:
        row.due_at = now + retry_delay(row.attempts)
    s.flush()
    return row.status


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the `attempts`-th failed attempt: RETRY_FIRST, doubling up to RETRY_MAX."""
    if attempts <= 1:
        return RETRY_FIRST
    # capped before multiplying, so a large attempt count cannot overflow
    doublings = min(attempts - 1, 32)
    return min(RETRY_FIRST * (2 ** doublings), RETRY_MAX)


def _staff(s: Session, roles: tuple[str, ...]) -> list[Staff]:
    if not roles:
        return []
    rows = s.scalars(select(UserRow).where(UserRow.role.in_(roles), UserRow.active.is_(True),
                                           UserRow.email.is_not(None)).order_by(UserRow.id))
    return [Staff(id=u.id, role=u.role, email=u.email, active=u.active) for u in rows]
