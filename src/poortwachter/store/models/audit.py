"""The audit log and what guards it: recorded verdicts and their sealed pseudonym keys, the public
audit keys and who holds the escrow shares, cases (zaken) with their access ledger, signed
checkpoints, and the erasures and tombstones that keep retention verifiable (audit/)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from .base import BIG_ID, NAME, SUBJECT, Base, one_of

PERIOD = 16      # "2026-W48"
CASE_STATUSES = ("open", "approved", "closed", "expired")
LEDGER_ACTIONS = ("keys", "open", "approve", "close", "inform", "expire", "view", "export", "refused")


# --- the audit log ----------------------------------------------------------------------------

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

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(index=True)
    gateway: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(16))          # audit/record.py Kind: http, connect, tls, ...
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


class EscrowHolderRow(Base):
    """Who holds share `share_index` of the escrow key `key_id` (k = `threshold`); the share
    itself is only in the holder's file, protected by the holder's passphrase."""

    __tablename__ = "escrow_holders"
    __table_args__ = (UniqueConstraint("key_id", "holder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("audit_keys.id"))
    holder: Mapped[str] = mapped_column(String(32))           # the label: directie, ict, fg, ...
    name: Mapped[str] = mapped_column(String(NAME))
    share_index: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]


# --- cases and the access ledger --------------------------------------------------------------

class CaseRow(Base):
    """A case (zaak, 004 art. 22): an established violation for which directie may look at one
    subject's audit events in one time window, once a second person of another role approved.
    The subject (a client address) is in the clear here: the case file names whom it is about;
    it never goes into the ledger, a log line or an error message."""

    __tablename__ = "cases"
    __table_args__ = (one_of("status", CASE_STATUSES),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(NAME))      # e.g. the incident number
    article: Mapped[str] = mapped_column(String(NAME))        # the reglement article violated
    description: Mapped[str] = mapped_column(Text)            # the established violation
    reason: Mapped[str] = mapped_column(Text)                 # why the logs are needed
    subject: Mapped[str] = mapped_column(String(SUBJECT))     # normalised client address
    window_start: Mapped[dt.datetime]
    window_end: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]                              # no unsealing from then on
    status: Mapped[str] = mapped_column(String(16), index=True)
    opened_by: Mapped[str] = mapped_column(String(NAME))      # "role:username"
    opened_at: Mapped[dt.datetime]
    approved_by: Mapped[str | None] = mapped_column(String(NAME))
    approved_at: Mapped[dt.datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(NAME))
    closed_at: Mapped[dt.datetime | None]
    outcome: Mapped[str] = mapped_column(Text)                # why it was closed, the result
    informed_by: Mapped[str | None] = mapped_column(String(NAME))
    informed_at: Mapped[dt.datetime | None]
    informed_note: Mapped[str] = mapped_column(Text)          # how the subject was informed
    expired_at: Mapped[dt.datetime | None]


class LedgerRow(Base):
    """The access ledger: who did what to which case when, and how many events a look showed.
    Never content. Append-only; `leaf_hash` is the RFC 6962 leaf hash of the entry's canonical
    bytes (auditlog/ledger.py: ledger_canonical), for the ledger's Merkle log."""

    __tablename__ = "access_ledger"
    __table_args__ = (one_of("action", LEDGER_ACTIONS),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime]
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    events: Mapped[int | None] = mapped_column(Integer)       # how many events a look showed
    note: Mapped[str] = mapped_column(String(64))             # a fixed code (format, refusal), no text
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)


# --- checkpoints and verifiable retention -------------------------------------------------------

class AuditCheckpointRow(Base):
    """A checkpoint this installation signed (auditlog/checkpointer.py), kept as the outbox of the
    exporters. `audit verify` never trusts this table: it checks against the exported copies."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_log_size", "log", "size"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    log: Mapped[str] = mapped_column(String(NAME))
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[dt.datetime]
    last_key: Mapped[int | None] = mapped_column(BigInteger)   # seq (events) or id (ledger) of leaf size-1
    note: Mapped[str] = mapped_column(Text)                   # the signed note, as exported
    exported_at: Mapped[dt.datetime | None]


class AuditErasureRow(Base):
    """One retention run over one log: how many events it erased, a digest over their tombstones
    (seq, leaf hash, time, action) and the cut-off times, signed as a note that leaves the box."""

    __tablename__ = "audit_erasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    log: Mapped[str] = mapped_column(String(NAME))
    at: Mapped[dt.datetime]
    count: Mapped[int] = mapped_column(Integer)
    digest: Mapped[bytes] = mapped_column(LargeBinary)
    allowed_before: Mapped[dt.datetime]
    blocked_before: Mapped[dt.datetime]
    note: Mapped[str | None] = mapped_column(Text)            # None: no signing key was available
    exported_at: Mapped[dt.datetime | None]


class AuditTombstoneRow(Base):
    """What is left of an audit event after retention: its place in its gateway's log and its
    leaf hash (so the Merkle log still verifies), its time and action (so anyone can check it was
    due), nothing about whom or what it concerned."""

    __tablename__ = "audit_tombstones"
    __table_args__ = (PrimaryKeyConstraint("gateway", "seq"),)

    gateway: Mapped[str] = mapped_column(String(NAME))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime]
    action: Mapped[str] = mapped_column(String(16))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    erasure: Mapped[int | None] = mapped_column(ForeignKey("audit_erasures.id"), index=True)
