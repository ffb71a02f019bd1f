"""Account administration: an e-mail address on accounts and on unblock requests, one-time
password links, and login throttling per username with growing delays instead of a lockout
(`login_throttle` replaces `login_attempts`; the per-address brake lives in the console's memory,
never in the database).

Revision ID: 0008
Revises: 0007
Create Date: 2025-01-08

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on. The throttling rows are short-lived bookkeeping, not
an audit log: they are dropped, not converted, in both directions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
EMAIL = 254


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Nullable columns: SQLite adds them with a plain ALTER TABLE, no table rebuild.
    op.add_column("users", sa.Column("email", sa.String(EMAIL), nullable=True))
    op.add_column("unblock_requests", sa.Column("requester_email", sa.String(EMAIL), nullable=True))

    op.create_table(
        "password_resets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_resets")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_resets_token_hash")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_password_resets_user_id_users"),
                                ondelete="CASCADE"),
    )
    op.create_index(op.f("ix_password_resets_user_id"), "password_resets", ["user_id"])
    op.create_index(op.f("ix_password_resets_expires_at"), "password_resets", ["expires_at"])

    op.create_table(
        "login_throttle",
        sa.Column("username", sa.String(NAME), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        _when("last_failure_at"),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_login_throttle")),
        sa.CheckConstraint("failures > 0", name=op.f("ck_login_throttle_failures")),
    )
    op.create_index(op.f("ix_login_throttle_last_failure_at"), "login_throttle", ["last_failure_at"])

    op.drop_index(op.f("ix_login_attempts_username_at"), table_name="login_attempts")
    op.drop_index(op.f("ix_login_attempts_at"), table_name="login_attempts")
    op.drop_table("login_attempts")


def downgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(NAME), nullable=False),
        _when("at"),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    op.create_index(op.f("ix_login_attempts_at"), "login_attempts", ["at"])
    op.create_index(op.f("ix_login_attempts_username_at"), "login_attempts", ["username", "at"])

    op.drop_index(op.f("ix_login_throttle_last_failure_at"), table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_index(op.f("ix_password_resets_expires_at"), table_name="password_resets")
    op.drop_index(op.f("ix_password_resets_user_id"), table_name="password_resets")
    op.drop_table("password_resets")

    # SQLite >= 3.35 drops an unindexed, unconstrained column in place.
    op.drop_column("unblock_requests", "requester_email")
    op.drop_column("users", "email")
