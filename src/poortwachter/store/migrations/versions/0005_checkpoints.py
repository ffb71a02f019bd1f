"""Signed checkpoints of the audit logs, and retention that stays verifiable: tombstones that keep
an erased event's leaf hash, and the signed erasure record of each retention run.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
# SQLite auto-numbers only an INTEGER PRIMARY KEY (the rowid); elsewhere a 64-bit key.
AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", AUDIT_ID, nullable=False, autoincrement=True),
        sa.Column("log", sa.String(NAME), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        _when("at"),
        sa.Column("last_key", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        _when("exported_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index("ix_audit_checkpoints_log_size", "audit_checkpoints", ["log", "size"])

    op.create_table(
        "audit_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("log", sa.String(NAME), nullable=False),
        _when("at"),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        _when("allowed_before"),
        _when("blocked_before"),
        sa.Column("note", sa.Text(), nullable=True),
        _when("exported_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_erasures")),
    )

    op.create_table(
        "audit_tombstones",
        sa.Column("gateway", sa.String(NAME), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        _when("at"),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("erasure", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("gateway", "seq", name=op.f("pk_audit_tombstones")),
        sa.ForeignKeyConstraint(["erasure"], ["audit_erasures.id"],
                                name=op.f("fk_audit_tombstones_erasure_audit_erasures")),
    )
    op.create_index(op.f("ix_audit_tombstones_erasure"), "audit_tombstones", ["erasure"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_tombstones_erasure"), table_name="audit_tombstones")
    op.drop_table("audit_tombstones")
    op.drop_table("audit_erasures")
    op.drop_index("ix_audit_checkpoints_log_size", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
