"""compliance: contact decision log, inbox, outbox

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
        "contact_decisions",
        sa.Column("decision_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("contact_id", sa.String, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        sa.Column("rule_id", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rules_evaluated", sa.JSON, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_contact_decisions_contact", "contact_decisions", ["contact_id"])
    op.create_index("ix_contact_decisions_account", "contact_decisions", ["tenant", "account_id"])


def downgrade() -> None:
    for table in ("contact_decisions", "outbox", "inbox"):
        op.drop_table(table)
