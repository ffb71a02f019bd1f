"""Initial schema: bans, grants, classroom openings, exams, the change log and the state revision.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
SUBJECT = 64


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _name(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(NAME), nullable=nullable)


def _list(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(SUBJECT), nullable=False),
        _when("start", nullable=True),
        _when("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        _name("source"),
        _name("created_by"),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bans")),
    )
    op.create_index(op.f("ix_bans_until"), "bans", ["until"])

    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), nullable=False),
        _list("sites"),
        _list("categories"),
        _list("zones"),
        _list("roles"),
        _when("start"),
        _when("end"),
        _name("source"),
        sa.Column("status", sa.String(16), nullable=False),
        _name("created_by"),
        _name("approved_by", nullable=True),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
        sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')", name=op.f("ck_grants_status")),
    )
    op.create_index(op.f("ix_grants_end"), "grants", ["end"])

    op.create_table(
        "openings",
        sa.Column("id", sa.Integer(), nullable=False),
        _name("zone"),
        sa.Column("mode", sa.String(16), nullable=False),
        _list("sites"),
        _list("categories"),
        _when("start", nullable=True),
        _when("until"),
        _name("source"),
        _name("created_by"),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_openings")),
        sa.CheckConstraint("mode IN ('open', 'allowlist')", name=op.f("ck_openings_mode")),
    )
    op.create_index(op.f("ix_openings_until"), "openings", ["until"])

    op.create_table(
        "exams",
        sa.Column("id", sa.Integer(), nullable=False),
        _name("zone"),
        _list("sites"),
        _list("categories"),
        _when("start", nullable=True),
        _when("until"),
        _name("source"),
        _name("created_by"),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
    )
    op.create_index(op.f("ix_exams_until"), "exams", ["until"])

    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at"),
        _name("actor"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("object", sa.String(32), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_changes")),
    )
    op.create_index(op.f("ix_changes_object"), "changes", ["object", "object_id"])

    meta = op.create_table(
        "meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meta")),
        sa.CheckConstraint("id = 1", name=op.f("ck_meta_single_row")),
    )
    op.bulk_insert(meta, [{"id": 1, "state_revision": 0}])


def downgrade() -> None:
    op.drop_table("meta")
    op.drop_index(op.f("ix_changes_object"), table_name="changes")
    op.drop_table("changes")
    op.drop_index(op.f("ix_exams_until"), table_name="exams")
    op.drop_table("exams")
    op.drop_index(op.f("ix_openings_until"), table_name="openings")
    op.drop_table("openings")
    op.drop_index(op.f("ix_grants_end"), table_name="grants")
    op.drop_table("grants")
    op.drop_index(op.f("ix_bans_until"), table_name="bans")
    op.drop_table("bans")
