"""plans: co-lenders of accounts, payment splits, signed webhooks and their deliveries

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False, default: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if default else None)


def upgrade() -> None:
    op.create_table(
        "payment_splits",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        _at("paid_at", default=False),
        _at("split_at"),
    )
    op.create_index("ix_payment_splits_account", "payment_splits", ["tenant", "account_id"])
    op.create_table(
        "payment_split_parts",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("payment_id", sa.String(128), primary_key=True),
        sa.Column("lender", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("share_bp", sa.Integer, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_payment_split_parts_account", "payment_split_parts", ["tenant", "account_id"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("webhook_id", sa.String(64), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("topics", JSONB, nullable=False),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        _at("deleted_at", nullable=True, default=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _at("next_attempt_at", default=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _at("delivered_at", nullable=True, default=False),
        _at("created_at"),
    )
    op.create_index("uq_webhook_deliveries_event", "webhook_deliveries", ["tenant", "webhook_id", "event_id"],
                    unique=True)
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_webhook_deliveries_log", "webhook_deliveries", ["tenant", "webhook_id", "created_at"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_subscriptions")
    op.drop_table("payment_split_parts")
    op.drop_table("payment_splits")
