"""channels: the holds channels has heard of, and when each attempt was approved

A hold placed (compliance.hold-changed.v1) may reach channels before the approval of a contact it stops:
channels keeps the holds and checks them when an approval arrives and again before each dispatch.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contact_attempts", sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "known_holds",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("hold_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String, nullable=False),
        sa.Column("state_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_known_holds_account", "known_holds", ["tenant", "account_id"])
    op.create_index("ix_known_holds_customer", "known_holds", ["tenant", "customer_id"])


def downgrade() -> None:
    op.drop_table("known_holds")
    op.drop_column("contact_attempts", "approved_at")
