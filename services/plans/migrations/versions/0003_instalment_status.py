"""plans: each instalment stores its status (due, partly_paid, paid), decided by the instalment machine

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plan_instalments", sa.Column("status", sa.String(), nullable=False, server_default="due"))
    # instalments paid before this column existed
    op.execute("UPDATE plan_instalments SET status = CASE WHEN paid_minor >= amount_minor THEN 'paid' "
               "WHEN paid_minor > 0 THEN 'partly_paid' ELSE 'due' END")


def downgrade() -> None:
    op.drop_column("plan_instalments", "status")
