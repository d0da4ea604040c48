"""scheduler: treatment payments (dedupe by payment id)

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
    op.create_table(
        "treatment_payments",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("treatment_payments")
