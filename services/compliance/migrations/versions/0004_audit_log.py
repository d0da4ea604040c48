"""compliance: the audit log (who changed which record, and why: shared/audit.py, docs/access.md)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from shared.alembic_env import create_audit_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_table()


def downgrade() -> None:
    op.drop_table("audit_log")
