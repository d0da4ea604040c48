"""scheduler: the debtor's borrower key on treatments and steps (carried to contact requests)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("treatments", sa.Column("borrower_key", sa.String, nullable=True))
    op.add_column("treatment_steps", sa.Column("borrower_key", sa.String, nullable=True))


def downgrade() -> None:
    op.drop_column("treatment_steps", "borrower_key")
    op.drop_column("treatments", "borrower_key")
