"""segmentation: accounts, segment history, payments, inbox, outbox

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.alembic_env import create_messaging_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "accounts",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False, index=True),
        sa.Column("product", sa.String, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("outstanding_minor", sa.BigInteger, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("days_past_due", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("credit_rating", sa.String, nullable=True),
        sa.Column("credit_score", sa.Integer, nullable=True),
        sa.Column("segment", sa.String, nullable=False),
        sa.Column("dpd_bucket", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("name_sealed", sa.String, nullable=False),
        sa.Column("phone_sealed", sa.String, nullable=True),
        sa.Column("email_sealed", sa.String, nullable=True),
        sa.Column("address_sealed", sa.String, nullable=True),
        sa.Column("time_zone", sa.String, nullable=False),
        sa.Column("locale", sa.String, nullable=False),
        sa.Column("co_lenders", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "segment_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("segment", sa.String, nullable=False),
        sa.Column("dpd_bucket", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_segment_history_account", "segment_history", ["tenant", "account_id"])
    op.create_table(
        "payments",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("payments", "segment_history", "accounts", "outbox", "inbox"):
        op.drop_table(table)
