"""Cases and the access ledger: the only way to open sealed audit events (004 art. 22), and the
record of every look; plus who holds a share of which escrow key (from the key ceremony).

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
SUBJECT = 64
CASE_STATUSES = "status IN ('open', 'approved', 'closed', 'expired')"
LEDGER_ACTIONS = ("action IN ('keys', 'open', 'approve', 'close', 'inform', 'expire', 'view', 'export', "
                  "'refused')")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _name(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(NAME), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        _name("reference"),
        _name("article"),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(SUBJECT), nullable=False),
        _when("window_start"),
        _when("window_end"),
        _when("ends_at"),
        sa.Column("status", sa.String(16), nullable=False),
        _name("opened_by"),
        _when("opened_at"),
        _name("approved_by", nullable=True),
        _when("approved_at", nullable=True),
        _name("closed_by", nullable=True),
        _when("closed_at", nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        _name("informed_by", nullable=True),
        _when("informed_at", nullable=True),
        sa.Column("informed_note", sa.Text(), nullable=False),
        _when("expired_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.CheckConstraint(CASE_STATUSES, name=op.f("ck_cases_status")),
    )
    op.create_index(op.f("ix_cases_status"), "cases", ["status"])

    op.create_table(
        "access_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at"),
        _name("actor"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("events", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(64), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_ledger")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_access_ledger_case_id_cases")),
        sa.CheckConstraint(LEDGER_ACTIONS, name=op.f("ck_access_ledger_action")),
    )
    op.create_index(op.f("ix_access_ledger_case_id"), "access_ledger", ["case_id"])

    op.create_table(
        "escrow_holders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(32), nullable=False),
        _name("name"),
        sa.Column("share_index", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escrow_holders")),
        sa.ForeignKeyConstraint(["key_id"], ["audit_keys.id"], name=op.f("fk_escrow_holders_key_id_audit_keys")),
        sa.UniqueConstraint("key_id", "holder", name=op.f("uq_escrow_holders_key_id")),
    )


def downgrade() -> None:
    op.drop_table("escrow_holders")
    op.drop_index(op.f("ix_access_ledger_case_id"), table_name="access_ledger")
    op.drop_table("access_ledger")
    op.drop_index(op.f("ix_cases_status"), table_name="cases")
    op.drop_table("cases")
