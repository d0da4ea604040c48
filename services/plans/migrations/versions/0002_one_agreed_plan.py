"""plans: at most one agreed plan per account (partial unique index)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("uq_plans_one_agreed", "plans", ["tenant", "account_id"], unique=True,
                    postgresql_where=sa.text("status = 'agreed'"))


def downgrade() -> None:
    op.drop_index("uq_plans_one_agreed", table_name="plans")
