"""The store's tables as SQLAlchemy 2.0 typed models, one module per domain:

- base: the declarative base (one metadata, one naming convention), UTCDateTime, column lengths;
- state: what the gateway enforces (bans, grants, openings, exams, download limits), the state
  revision and the change log;
- workflow: accounts, sessions, password links, login throttling, unblock requests, the outbox;
- audit: audit events and keys, escrow holders, cases and the access ledger, checkpoints,
  erasures and tombstones.

Every schema change goes through a hand-written Alembic migration in migrations/versions/; the
test suite checks that these models and the migrations describe the same schema. Value lists
(statuses, modes, roles) are defined once and the CHECK constraints are built from them.
"""

from .audit import (
    CASE_STATUSES,
    LEDGER_ACTIONS,
    PERIOD,
    AuditCheckpointRow,
    AuditErasureRow,
    AuditEventRow,
    AuditKeyRow,
    AuditPeriodKeyRow,
    AuditTombstoneRow,
    CaseRow,
    EscrowHolderRow,
    LedgerRow,
)
from .base import BIG_ID, EMAIL, NAME, NAMING, SUBJECT, Base, UTCDateTime, one_of
from .state import (
    GRANT_STATUSES,
    OPENING_MODES,
    BanRow,
    ChangeRow,
    DownloadLimitRow,
    ExamRow,
    GrantRow,
    GrantStatus,
    MetaRow,
    OpeningRow,
)
from .workflow import (
    GROUNDS,
    MAIL_ERROR,
    MAIL_SUBJECT,
    OUTBOX_STATES,
    REQUEST_STATUSES,
    LoginThrottleRow,
    OutboxRow,
    PasswordResetRow,
    SessionRow,
    UnblockRequestRow,
    UserRow,
)

__all__ = [
    "BIG_ID",
    "CASE_STATUSES",
    "EMAIL",
    "GRANT_STATUSES",
    "GROUNDS",
    "LEDGER_ACTIONS",
    "MAIL_ERROR",
    "MAIL_SUBJECT",
    "NAME",
    "NAMING",
    "OPENING_MODES",
    "OUTBOX_STATES",
    "PERIOD",
    "REQUEST_STATUSES",
    "SUBJECT",
    "AuditCheckpointRow",
    "AuditErasureRow",
    "AuditEventRow",
    "AuditKeyRow",
    "AuditPeriodKeyRow",
    "AuditTombstoneRow",
    "BanRow",
    "Base",
    "CaseRow",
    "ChangeRow",
    "DownloadLimitRow",
    "EscrowHolderRow",
    "ExamRow",
    "GrantRow",
    "GrantStatus",
    "LedgerRow",
    "LoginThrottleRow",
    "MetaRow",
    "OpeningRow",
    "OutboxRow",
    "PasswordResetRow",
    "SessionRow",
    "UTCDateTime",
    "UnblockRequestRow",
    "UserRow",
    "one_of",
]
