"""plans: plans, instalments, applied payments, inbox, outbox

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
        "plans",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("idempotency_key", sa.String, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("tenant", "idempotency_key", name="uq_plans_idempotency"),
    )
    op.create_index("ix_plans_account", "plans", ["tenant", "account_id"])
    op.create_table(
        "plan_instalments",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_minor", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "applied_payments",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("plan_id", sa.String, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("applied_payments", "plan_instalments", "plans", "outbox", "inbox"):
        op.drop_table(table)
