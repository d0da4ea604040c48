"""channels: destination keys on attempts (whom a reply concerns) and the replies received

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
    op.add_column("contact_attempts", sa.Column("destination_key", sa.String, nullable=True))
    op.create_index("ix_contact_attempts_destination_key", "contact_attempts", ["destination_key", "created_at"])
    op.create_table(
        "inbound_messages",
        sa.Column("message_id", sa.String(128), primary_key=True),
        sa.Column("provider_account", sa.String, nullable=False),
        sa.Column("keyword", sa.String, nullable=True),
        sa.Column("tenants", sa.Integer, nullable=False, server_default="0"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
    op.drop_index("ix_contact_attempts_destination_key", "contact_attempts")
    op.drop_column("contact_attempts", "destination_key")
