"""channels: the debtor's borrower key on each attempt (carried to its outcomes, for compliance's ledger)

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
    op.add_column("contact_attempts", sa.Column("borrower_key", sa.String, nullable=True))


def downgrade() -> None:
    op.drop_column("contact_attempts", "borrower_key")
