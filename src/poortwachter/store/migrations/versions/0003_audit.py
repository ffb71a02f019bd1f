"""The audit log: sealed audit events, the sealed pseudonym keys per gateway and period, and the
public halves of the audit keys.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
PERIOD = 16
# SQLite auto-numbers only an INTEGER PRIMARY KEY (the rowid); elsewhere a 64-bit key.
AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _name(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(NAME), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", AUDIT_ID, nullable=False, autoincrement=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _when("at"),
        _name("gateway"),
        sa.Column("kind", sa.String(16), nullable=False),
        _name("zone"),
        _name("role"),
        _name("slot", nullable=True),
        _name("category", nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        _name("rule"),
        _name("source"),
        sa.Column("period", sa.String(PERIOD), nullable=False),
        sa.Column("pseudonym", sa.String(64), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("gateway", "seq", name=op.f("uq_audit_events_gateway")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index("ix_audit_events_period_pseudonym", "audit_events", ["period", "pseudonym"])

    op.create_table(
        "audit_period_keys",
        _name("gateway"),
        sa.Column("period", sa.String(PERIOD), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("gateway", "period", name=op.f("pk_audit_period_keys")),
    )

    op.create_table(
        "audit_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escrow_public", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint_public", sa.LargeBinary(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_keys")),
    )


def downgrade() -> None:
    op.drop_table("audit_keys")
    op.drop_table("audit_period_keys")
    op.drop_index("ix_audit_events_period_pseudonym", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
