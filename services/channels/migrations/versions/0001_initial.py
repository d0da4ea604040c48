"""channels: contact attempts, inbox, outbox

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
        "contact_attempts",
        sa.Column("contact_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("template_id", sa.String, nullable=False),
        sa.Column("locale", sa.String, nullable=False),
        sa.Column("days_past_due", sa.Integer, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("destination_sealed", sa.String, nullable=True),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("provider_ref", sa.String, nullable=True),
        sa.Column("detail", sa.String, nullable=True),
        sa.Column("next_try_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_contact_attempts_status", "contact_attempts", ["status", "next_try_at"])
    op.create_index("ix_contact_attempts_account", "contact_attempts", ["tenant", "account_id"])


def downgrade() -> None:
    for table in ("contact_attempts", "outbox", "inbox"):
        op.drop_table(table)
