"""The outbox: e-mail notifications of the unblock-request workflow, one row per mail and
recipient, written in the transaction of the step that causes them and sent by the console.

Revision ID: 0009
Revises: 0008
Create Date: 2025-01-09

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on. Downgrading drops the outbox with any mails still
waiting in it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

EMAIL = 254
MAIL_SUBJECT = 200
MAIL_ERROR = 200


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(EMAIL), nullable=False),
        sa.Column("subject", sa.String(MAIL_SUBJECT), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _when("created_at"),
        _when("due_at", nullable=True),
        _when("sent_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(MAIL_ERROR), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.ForeignKeyConstraint(["request_id"], ["unblock_requests.id"],
                                name=op.f("fk_outbox_request_id_unblock_requests")),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_outbox_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts")),
    )
    op.create_index(op.f("ix_outbox_request_id"), "outbox", ["request_id"])
    op.create_index(op.f("ix_outbox_status_due_at"), "outbox", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_status_due_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_request_id"), table_name="outbox")
    op.drop_table("outbox")
