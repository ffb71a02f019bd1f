"""The console's accounts and the unblock workflow (004 art. 11a, 12): users, their sessions,
one-time password links and login throttling, unblock requests, and the outbox of the e-mail
notifications those requests cause."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ...roles import ROLES
from .base import EMAIL, NAME, Base, one_of

REQUEST_STATUSES = ("submitted", "endorsed", "approved", "declined", "withdrawn")
GROUNDS = ("lesstof", "professioneel")
# pending: still to send (at `due_at`); sent; failed: given up (refused for good, or too old).
OUTBOX_STATES = ("pending", "sent", "failed")
MAIL_SUBJECT = 200
MAIL_ERROR = 200   # an exception's type and an SMTP code, never a server's words (they echo addresses)


class UserRow(Base):
    """A console account. Pupils have none: they use the public request form."""

    __tablename__ = "users"
    __table_args__ = (one_of("role", ROLES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(NAME), unique=True)
    display_name: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(Text)          # argon2id, PHC string
    zones: Mapped[list[str]]                                   # the classroom zones a docent controls
    active: Mapped[bool] = mapped_column(Boolean)           # False: disabled, cannot log in
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(NAME))
    email: Mapped[str | None] = mapped_column(String(EMAIL))  # for notifications; optional


class SessionRow(Base):
    """A console login. Only the SHA-256 of the token is stored: a copy of the database does not
    let anyone in."""

    __tablename__ = "sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class PasswordResetRow(Base):
    """A one-time link with which a user chooses a new password. Only the SHA-256 of the link's
    token is stored: a copy of the database does not let anyone set a password."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used: Mapped[bool] = mapped_column(Boolean)


class LoginThrottleRow(Base):
    """Failed logins per username since its last success, as long as throttling needs them
    (workflow/throttle.py). Never a client address: the per-address brake lives in the console's
    memory. Unknown usernames get a row too, so the throttle does not tell which names exist."""

    __tablename__ = "login_throttle"
    __table_args__ = (CheckConstraint("failures > 0", name="failures"),)

    username: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[dt.datetime] = mapped_column(index=True)


class UnblockRequestRow(Base):
    """A request to open a site (004 art. 12): submitted (block page), endorsed by a
    leidinggevende with ground and scope, then approved (-> a grant) or declined by ICT."""

    __tablename__ = "unblock_requests"
    __table_args__ = (
        one_of("status", REQUEST_STATUSES),
        one_of("ground", GROUNDS),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)   # the requester's lookup link
    url: Mapped[str] = mapped_column(Text)
    sites: Mapped[list[str]]
    category: Mapped[str] = mapped_column(String(NAME))
    rule: Mapped[str] = mapped_column(String(NAME))
    requester: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)                       # the requester's why
    ground: Mapped[str | None] = mapped_column(String(16))
    zones: Mapped[list[str]]
    roles: Mapped[list[str]]
    start: Mapped[dt.datetime | None]
    end: Mapped[dt.datetime | None]
    motivation: Mapped[str] = mapped_column(Text)                   # the endorser's why
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[dt.datetime]
    endorsed_by: Mapped[str | None] = mapped_column(String(NAME))
    endorsed_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(NAME))
    decided_at: Mapped[dt.datetime | None]
    decision_reason: Mapped[str] = mapped_column(Text)
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("grants.id"))
    requester_email: Mapped[str | None] = mapped_column(String(EMAIL))  # the requester may leave one


class OutboxRow(Base):
    """One e-mail to one recipient, written in the transaction of the workflow step that causes
    it and sent later by the console (workflow/outbox.py). Once sent or given up, its recipient
    and body are erased: the row then only says that a mail of this kind went out, or did not."""

    __tablename__ = "outbox"
    __table_args__ = (
        one_of("status", OUTBOX_STATES),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_outbox_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))     # the request's new status: submitted, endorsed, ...
    request_id: Mapped[int | None] = mapped_column(ForeignKey("unblock_requests.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(EMAIL))   # "" once sent or given up
    subject: Mapped[str] = mapped_column(String(MAIL_SUBJECT))
    body: Mapped[str] = mapped_column(Text)                 # "" once sent or given up
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime | None]        # the next attempt; None once sent or given up
    sent_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(MAIL_ERROR))
