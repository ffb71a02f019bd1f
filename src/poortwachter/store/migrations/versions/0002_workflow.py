"""The unblock / classroom / exam / exclusion workflow: console accounts, sessions, login attempts,
unblock requests, and `expired_at` on bans, grants, openings and exams (expiry logged once).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
STATE_TABLES = ("bans", "grants", "openings", "exams")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _name(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.String(NAME), nullable=nullable)


def _list(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=False)


def upgrade() -> None:
    # Nullable columns: SQLite adds them with a plain ALTER TABLE, no table rebuild.
    for table in STATE_TABLES:
        op.add_column(table, _when("expired_at", nullable=True))

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        _name("username"),
        _name("display_name"),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        _list("zones"),
        sa.Column("active", sa.Boolean(), nullable=False),
        _when("created_at"),
        _name("created_by"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.CheckConstraint(
            "role IN ('ict', 'leidinggevende', 'docent', 'directie', 'examencoordinator')",
            name=op.f("ck_users_role")),
    )

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        _when("created_at"),
        _when("last_seen_at"),
        _when("expires_at"),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"])
    op.create_index(op.f("ix_sessions_expires_at"), "sessions", ["expires_at"])

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        _name("username"),
        _when("at"),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_at"), "login_attempts", ["at"])
    op.create_index(op.f("ix_login_attempts_username_at"), "login_attempts", ["username", "at"])

    op.create_table(
        "unblock_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        _list("sites"),
        _name("category"),
        _name("rule"),
        _name("requester"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ground", sa.String(16), nullable=True),
        _list("zones"),
        _list("roles"),
        _when("start", nullable=True),
        _when("end", nullable=True),
        sa.Column("motivation", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _name("created_by"),
        _when("created_at"),
        _name("endorsed_by", nullable=True),
        _when("endorsed_at", nullable=True),
        _name("decided_by", nullable=True),
        _when("decided_at", nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unblock_requests")),
        sa.UniqueConstraint("token", name=op.f("uq_unblock_requests_token")),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"], name=op.f("fk_unblock_requests_grant_id_grants")),
        sa.CheckConstraint(
            "status IN ('submitted', 'endorsed', 'approved', 'declined', 'withdrawn')",
            name=op.f("ck_unblock_requests_status")),
        sa.CheckConstraint("ground IN ('lesstof', 'professioneel')", name=op.f("ck_unblock_requests_ground")),
    )
    op.create_index(op.f("ix_unblock_requests_status"), "unblock_requests", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_unblock_requests_status"), table_name="unblock_requests")
    op.drop_table("unblock_requests")
    op.drop_index(op.f("ix_login_attempts_username_at"), table_name="login_attempts")
    op.drop_index(op.f("ix_login_attempts_at"), table_name="login_attempts")
    op.drop_table("login_attempts")
    op.drop_index(op.f("ix_sessions_expires_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("users")
    # SQLite >= 3.35 drops an unindexed, unconstrained column in place.
    for table in reversed(STATE_TABLES):
        op.drop_column(table, "expired_at")
