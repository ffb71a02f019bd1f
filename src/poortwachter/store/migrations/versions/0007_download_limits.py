"""Download limits: the network sensor's verdict on excessive downloading (004 art. 13), which the
gateway enforces on one client address until the end of the day.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-07

Written by hand and self-contained (no imports from the models), so it keeps describing this
revision's schema when the models move on.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

NAME = 200
SUBJECT = 64


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "download_limits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(SUBJECT), nullable=False),
        sa.Column("zone", sa.String(NAME), nullable=False),
        sa.Column("max_bytes", sa.BigInteger(), nullable=False),
        _when("start", nullable=True),
        _when("until"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(NAME), nullable=False),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        _when("expired_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_download_limits")),
        sa.CheckConstraint("max_bytes >= 0", name=op.f("ck_download_limits_max_bytes")),
    )
    op.create_index(op.f("ix_download_limits_address"), "download_limits", ["address"])
    op.create_index(op.f("ix_download_limits_until"), "download_limits", ["until"])


def downgrade() -> None:
    op.drop_index(op.f("ix_download_limits_until"), table_name="download_limits")
    op.drop_index(op.f("ix_download_limits_address"), table_name="download_limits")
    op.drop_table("download_limits")
