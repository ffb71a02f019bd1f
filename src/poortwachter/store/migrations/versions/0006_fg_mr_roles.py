"""Accounts for the privacy officer (fg) and the participation council (mr): read-only ledger.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

OLD = "role IN ('ict', 'leidinggevende', 'docent', 'directie', 'examencoordinator')"
NEW = "role IN ('ict', 'leidinggevende', 'docent', 'directie', 'examencoordinator', 'fg', 'mr')"


def _role_check(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table with the new one.
    with op.batch_alter_table("users", recreate="auto") as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.create_check_constraint(op.f("ck_users_role"), condition)


def upgrade() -> None:
    _role_check(NEW)


def downgrade() -> None:
    op.execute("DELETE FROM users WHERE role IN ('fg', 'mr')")
    _role_check(OLD)
