"""scheduler: treatments, treatment steps (durable timers), inbox, outbox

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


def _ts(name: str, default: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now() if default else None,
                     nullable=False)


def upgrade() -> None:
    create_messaging_tables()
    op.create_table(
        "treatments",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("segment", sa.String, nullable=False),
        sa.Column("days_past_due", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("status_reason", sa.String, nullable=False),
        sa.Column("phone_sealed", sa.String, nullable=True),
        sa.Column("email_sealed", sa.String, nullable=True),
        sa.Column("address_sealed", sa.String, nullable=True),
        sa.Column("time_zone", sa.String, nullable=False),
        sa.Column("locale", sa.String, nullable=False),
        _ts("updated_at"),
    )
    op.create_table(
        "treatment_steps",
        sa.Column("contact_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("step", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("template_id", sa.String, nullable=False),
        sa.Column("segment", sa.String, nullable=False),
        sa.Column("days_past_due", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("destination_sealed", sa.String, nullable=True),
        sa.Column("time_zone", sa.String, nullable=False),
        sa.Column("locale", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("last_reason", sa.String, nullable=False),
        _ts("due_at", default=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_treatment_steps_due", "treatment_steps", ["status", "due_at"])
    op.create_index("ix_treatment_steps_account", "treatment_steps", ["tenant", "account_id"])


def downgrade() -> None:
    for table in ("treatment_steps", "treatments", "outbox", "inbox"):
        op.drop_table(table)
