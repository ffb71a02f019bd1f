"""The store's tables as SQLAlchemy 2.0 typed models.

Every schema change goes through a hand-written Alembic migration in migrations/versions/; the
test suite checks that these models and the migrations describe the same schema.

Datetimes are always timezone-aware UTC in Python. On PostgreSQL they are `timestamptz`; SQLite
has no time zones, so they are stored as naive UTC text in one fixed format, which keeps
comparisons in SQL (e.g. `until > now`) correct.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Named constraints, so that migrations (and SQLite batch migrations) can refer to them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

GRANT_STATUSES = ("pending", "approved", "rejected")
OPENING_MODES = ("open", "allowlist")
# The console's accounts and the unblock workflow (004 art. 11a, 12).
ROLES = ("ict", "leidinggevende", "docent", "directie", "examencoordinator", "fg", "mr")
REQUEST_STATUSES = ("submitted", "endorsed", "approved", "declined", "withdrawn")
GROUNDS = ("lesstof", "professioneel")

# Short identifiers (actor, zone, source) and free text (reason) have separate types so the
# migration and the models can be compared column by column.
NAME = 200
SUBJECT = 64   # an IPv6 network with prefix fits in 43 characters
EMAIL = 254    # the longest address SMTP carries (RFC 5321)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, on every backend. Naive datetimes are refused: a naive
    time is ambiguous (local? UTC?) and a ban ending an hour early is a real bug."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime: the store only takes timezone-aware datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime(), list[str]: JSON()}


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
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
    )

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
    __table_args__ = (CheckConstraint("mode IN ('open', 'allowlist')", name="mode"),)

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


class ChangeRow(Base):
    """Who changed what, when and why. Written in the same transaction as the change itself;
    `revision` is the state revision that change produced."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_object", "object", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(32))       # add, revoke, expire, submit, endorse, approve, ...
    object: Mapped[str] = mapped_column(String(32))     # ban, grant, opening, exam, request, user
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


class UserRow(Base):
    """A console account. Pupils have none: they use the public request form."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('ict', 'leidinggevende', 'docent', 'directie', 'examencoordinator', 'fg', 'mr')", name="role"),
    )

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


class UnblockRequestRow(Base):
    """A request to open a site (004 art. 12): submitted (block page), endorsed by a
    leidinggevende with ground and scope, then approved (-> a grant) or declined by ICT."""

    __tablename__ = "unblock_requests"
    __table_args__ = (
        CheckConstraint(
            "status IN ('submitted', 'endorsed', 'approved', 'declined', 'withdrawn')", name="status"),
        CheckConstraint("ground IN ('lesstof', 'professioneel')", name="ground"),
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


# --- the audit log ----------------------------------------------------------------------------
# Appended section; its imports are here so that edits above and below do not collide.
from sqlalchemy import BigInteger, LargeBinary, PrimaryKeyConstraint, UniqueConstraint  # noqa: E402

# SQLite auto-numbers only an INTEGER PRIMARY KEY (the rowid); elsewhere a 64-bit key.
AUDIT_ID = BigInteger().with_variant(Integer(), "sqlite")
PERIOD = 16      # "2026-W48"


class AuditEventRow(Base):
    """One recorded verdict (audit/record.py). Counts need only the clear columns; who and what
    is in `sealed`, encrypted to the escrow public key: nobody holding only the database (or the
    gateway) can read it. `id` is the event's place in the Merkle log; (gateway, seq) makes a
    replay from a gateway's spool idempotent."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("gateway", "seq"),
        Index("ix_audit_events_period_pseudonym", "period", "pseudonym"),
    )

    id: Mapped[int] = mapped_column(AUDIT_ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    gateway: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))          # http, connect, tls
    zone: Mapped[str] = mapped_column(String(NAME))
    role: Mapped[str] = mapped_column(String(NAME))
    slot: Mapped[str | None] = mapped_column(String(NAME))  # the timetable block of the verdict
    category: Mapped[str | None] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[str] = mapped_column(String(NAME))
    period: Mapped[str] = mapped_column(String(PERIOD))    # the pseudonym period (ISO week)
    pseudonym: Mapped[str | None] = mapped_column(String(64))
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


class AuditPeriodKeyRow(Base):
    """A gateway's pseudonym key of one period, sealed to the escrow key: only an approved case
    (the escrow shares) opens it to find one subject's events."""

    __tablename__ = "audit_period_keys"
    __table_args__ = (PrimaryKeyConstraint("gateway", "period"),)

    gateway: Mapped[str] = mapped_column(String(NAME))
    period: Mapped[str] = mapped_column(String(PERIOD))
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


class AuditKeyRow(Base):
    """The public halves of the audit keys, from the key ceremony: what events are sealed to and
    what checkpoints are verified with."""

    __tablename__ = "audit_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    escrow_public: Mapped[bytes] = mapped_column(LargeBinary)
    checkpoint_public: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime]


# --- cases and the access ledger --------------------------------------------------------------
# Appended section; its imports are here so that edits above and below do not collide.
from sqlalchemy import CheckConstraint as _Check  # noqa: E402
from sqlalchemy import ForeignKey as _ForeignKey  # noqa: E402
from sqlalchemy import Integer as _Integer  # noqa: E402
from sqlalchemy import LargeBinary as _LargeBinary  # noqa: E402
from sqlalchemy import String as _String  # noqa: E402
from sqlalchemy import Text as _Text  # noqa: E402
from sqlalchemy import UniqueConstraint as _Unique  # noqa: E402

CASE_STATUSES = ("open", "approved", "closed", "expired")
LEDGER_ACTIONS = ("keys", "open", "approve", "close", "inform", "expire", "view", "export", "refused")


class CaseRow(Base):
    """A case (zaak, 004 art. 22): an established violation for which directie may look at one
    subject's audit events in one time window, once a second person of another role approved.
    The subject (a client address) is in the clear here: the case file names whom it is about;
    it never goes into the ledger, a log line or an error message."""

    __tablename__ = "cases"
    __table_args__ = (_Check("status IN ('open', 'approved', 'closed', 'expired')", name="status"),)

    id: Mapped[int] = mapped_column(_Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(_String(NAME))      # e.g. the incident number
    article: Mapped[str] = mapped_column(_String(NAME))        # the reglement article violated
    description: Mapped[str] = mapped_column(_Text)            # the established violation
    reason: Mapped[str] = mapped_column(_Text)                 # why the logs are needed
    subject: Mapped[str] = mapped_column(_String(SUBJECT))     # normalised client address
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]                               # no unsealing from then on
    status: Mapped[str] = mapped_column(_String(16), index=True)
    opened_by: Mapped[str] = mapped_column(_String(NAME))      # "role:username"
    opened_at: Mapped[dt.datetime]
    approved_by: Mapped[str | None] = mapped_column(_String(NAME))
    approved_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(_String(NAME))
    closed_at: Mapped[dt.datetime | None]
    outcome: Mapped[str] = mapped_column(_Text)                # why it was closed, the result
    informed_by: Mapped[str | None] = mapped_column(_String(NAME))
    informed_at: Mapped[dt.datetime | None]
    informed_note: Mapped[str] = mapped_column(_Text)          # how the subject was informed
    expired_at: Mapped[dt.datetime | None]


class LedgerRow(Base):
    """The access ledger: who did what to which case when, and how many events a look showed.
    Never content. Append-only; `leaf_hash` is the RFC 6962 leaf hash of the entry's canonical
    bytes (audit/cases.py: ledger_canonical), for the ledger's Merkle log."""

    __tablename__ = "access_ledger"
    __table_args__ = (
        _Check("action IN ('keys', 'open', 'approve', 'close', 'inform', 'expire', 'view', 'export', "
               "'refused')", name="action"),
    )

    id: Mapped[int] = mapped_column(_Integer, primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(_String(NAME))
    action: Mapped[str] = mapped_column(_String(16))
    case_id: Mapped[int | None] = mapped_column(_ForeignKey("cases.id"), index=True)
    events: Mapped[int | None] = mapped_column(_Integer)       # how many events a look showed
    note: Mapped[str] = mapped_column(_String(64))             # a fixed code (format, refusal), no text
    leaf_hash: Mapped[bytes] = mapped_column(_LargeBinary)


class EscrowHolderRow(Base):
    """Who holds share `share_index` of the escrow key `key_id` (k = `threshold`); the share
    itself is only in the holder's file, protected by the holder's passphrase."""

    __tablename__ = "escrow_holders"
    __table_args__ = (_Unique("key_id", "holder"),)

    id: Mapped[int] = mapped_column(_Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(_ForeignKey("audit_keys.id"))
    holder: Mapped[str] = mapped_column(_String(32))           # the label: directie, ict, fg, ...
    name: Mapped[str] = mapped_column(_String(NAME))
    share_index: Mapped[int] = mapped_column(_Integer)
    threshold: Mapped[int] = mapped_column(_Integer)
    created_at: Mapped[dt.datetime]


# --- checkpoints and verifiable retention -------------------------------------------------------
# Appended section; its imports are here so that edits above and below do not collide.
from sqlalchemy import BigInteger as _CpBigInteger  # noqa: E402
from sqlalchemy import ForeignKey as _CpForeignKey  # noqa: E402
from sqlalchemy import Index as _CpIndex  # noqa: E402
from sqlalchemy import Integer as _CpInteger  # noqa: E402
from sqlalchemy import LargeBinary as _CpLargeBinary  # noqa: E402
from sqlalchemy import PrimaryKeyConstraint as _CpPrimaryKey  # noqa: E402
from sqlalchemy import String as _CpString  # noqa: E402
from sqlalchemy import Text as _CpText  # noqa: E402

_CP_ID = _CpBigInteger().with_variant(_CpInteger(), "sqlite")


class AuditCheckpointRow(Base):
    """A checkpoint this installation signed (audit/checkpoints.py), kept as the outbox of the
    exporters. `audit verify` never trusts this table: it checks against the exported copies."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (_CpIndex("ix_audit_checkpoints_log_size", "log", "size"),)

    id: Mapped[int] = mapped_column(_CP_ID, primary_key=True)
    log: Mapped[str] = mapped_column(_CpString(NAME))
    size: Mapped[int] = mapped_column(_CpBigInteger)
    root: Mapped[bytes] = mapped_column(_CpLargeBinary)
    at: Mapped[dt.datetime]
    last_key: Mapped[int | None] = mapped_column(_CpBigInteger)   # seq (events) or id (ledger) of leaf size-1
    note: Mapped[str] = mapped_column(_CpText)                   # the signed note, as exported
    exported_at: Mapped[dt.datetime | None]


class AuditErasureRow(Base):
    """One retention run over one log: how many events it erased, a digest over their tombstones
    (seq, leaf hash, time, action) and the cut-off times, signed as a note that leaves the box."""

    __tablename__ = "audit_erasures"

    id: Mapped[int] = mapped_column(_CpInteger, primary_key=True)
    log: Mapped[str] = mapped_column(_CpString(NAME))
    at: Mapped[dt.datetime]
    count: Mapped[int] = mapped_column(_CpInteger)
    digest: Mapped[bytes] = mapped_column(_CpLargeBinary)
    allowed_before: Mapped[dt.datetime]
    blocked_before: Mapped[dt.datetime]
    note: Mapped[str | None] = mapped_column(_CpText)            # None: no signing key was available
    exported_at: Mapped[dt.datetime | None]


class AuditTombstoneRow(Base):
    """What is left of an audit event after retention: its place in its gateway's log and its
    leaf hash (so the Merkle log still verifies), its time and action (so anyone can check it was
    due), nothing about whom or what it concerned."""

    __tablename__ = "audit_tombstones"
    __table_args__ = (_CpPrimaryKey("gateway", "seq"),)

    gateway: Mapped[str] = mapped_column(_CpString(NAME))
    seq: Mapped[int] = mapped_column(_CpBigInteger)
    at: Mapped[dt.datetime]
    action: Mapped[str] = mapped_column(_CpString(16))
    leaf_hash: Mapped[bytes] = mapped_column(_CpLargeBinary)
    erasure: Mapped[int | None] = mapped_column(_CpForeignKey("audit_erasures.id"), index=True)


# --- download limits (the sensor's "overmatig downloaden" verdict) -----------------------------
# Appended section; its imports are here so that edits above and below do not collide.
from sqlalchemy import BigInteger as _DlBigInteger  # noqa: E402
from sqlalchemy import CheckConstraint as _DlCheck  # noqa: E402
from sqlalchemy import Integer as _DlInteger  # noqa: E402
from sqlalchemy import String as _DlString  # noqa: E402
from sqlalchemy import Text as _DlText  # noqa: E402


class DownloadLimitRow(Base):
    """Downloadlimiet (004 art. 13, overmatig downloaden): until `until` the client at `address`
    may not fetch a response larger than `max_bytes`. Imposed by the network sensor; modelled like
    a ban, but always on one address, never a network."""

    __tablename__ = "download_limits"
    __table_args__ = (_DlCheck("max_bytes >= 0", name="max_bytes"),)

    id: Mapped[int] = mapped_column(_DlInteger, primary_key=True)
    address: Mapped[str] = mapped_column(_DlString(SUBJECT), index=True)
    zone: Mapped[str] = mapped_column(_DlString(NAME))
    max_bytes: Mapped[int] = mapped_column(_DlBigInteger)
    start: Mapped[dt.datetime | None]
    until: Mapped[dt.datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(_DlText)
    created_by: Mapped[str] = mapped_column(_DlString(NAME))
    created_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]
    expired_at: Mapped[dt.datetime | None]   # set once by the expiry sweep (workflow)


# --- account administration: one-time password links, login throttling -------------------------
# Appended section; its imports are here so that edits above and below do not collide.
from sqlalchemy import Boolean as _AcBoolean  # noqa: E402
from sqlalchemy import CheckConstraint as _AcCheck  # noqa: E402
from sqlalchemy import ForeignKey as _AcForeignKey  # noqa: E402
from sqlalchemy import Integer as _AcInteger  # noqa: E402
from sqlalchemy import String as _AcString  # noqa: E402


class PasswordResetRow(Base):
    """A one-time link with which a user chooses a new password. Only the SHA-256 of the link's
    token is stored: a copy of the database does not let anyone set a password."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(_AcInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(_AcString(64), unique=True)
    user_id: Mapped[int] = mapped_column(_AcForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used: Mapped[bool] = mapped_column(_AcBoolean)


class LoginThrottleRow(Base):
    """Failed logins per username since its last success, as long as throttling needs them
    (workflow/throttle.py). Never a client address: the per-address brake lives in the console's
    memory. Unknown usernames get a row too, so the throttle does not tell which names exist."""

    __tablename__ = "login_throttle"
    __table_args__ = (_AcCheck("failures > 0", name="failures"),)

    username: Mapped[str] = mapped_column(_AcString(NAME), primary_key=True)
    failures: Mapped[int] = mapped_column(_AcInteger)
    last_failure_at: Mapped[dt.datetime] = mapped_column(index=True)


# --- e-mail notifications: the outbox -----------------------------------------------------------
# A section of its own; its imports are here so that edits above and below do not collide.
from sqlalchemy import CheckConstraint as _MlCheck  # noqa: E402
from sqlalchemy import ForeignKey as _MlForeignKey  # noqa: E402
from sqlalchemy import Index as _MlIndex  # noqa: E402
from sqlalchemy import Integer as _MlInteger  # noqa: E402
from sqlalchemy import String as _MlString  # noqa: E402
from sqlalchemy import Text as _MlText  # noqa: E402

# pending: still to send (at `due_at`); sent; failed: given up (refused for good, or too old).
OUTBOX_STATES = ("pending", "sent", "failed")
MAIL_SUBJECT = 200
MAIL_ERROR = 200   # an exception's type and an SMTP code, never a server's words (they echo addresses)


class OutboxRow(Base):
    """One e-mail to one recipient, written in the transaction of the workflow step that causes
    it and sent later by the console (workflow/outbox.py). Once sent or given up, its recipient
    and body are erased: the row then only says that a mail of this kind went out, or did not."""

    __tablename__ = "outbox"
    __table_args__ = (
        _MlCheck(f"status IN ({', '.join(repr(s) for s in OUTBOX_STATES)})", name="status"),
        _MlCheck("attempts >= 0", name="attempts"),
        _MlIndex("ix_outbox_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(_MlInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(_MlString(32))     # the request's new status: submitted, endorsed, ...
    request_id: Mapped[int | None] = mapped_column(_MlForeignKey("unblock_requests.id"), index=True)
    recipient: Mapped[str] = mapped_column(_MlString(EMAIL))   # "" once sent or given up
    subject: Mapped[str] = mapped_column(_MlString(MAIL_SUBJECT))
    body: Mapped[str] = mapped_column(_MlText)                 # "" once sent or given up
    status: Mapped[str] = mapped_column(_MlString(16))
    created_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime | None]        # the next attempt; None once sent or given up
    sent_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(_MlInteger)
    last_error: Mapped[str | None] = mapped_column(_MlString(MAIL_ERROR))
