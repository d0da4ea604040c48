"""channels: the account's masked tail (account_ref) for messages, the SMS provider account an attempt
was sent through (signed receipts and the reconciler), an index for listing a tenant's attempts by status

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
    op.add_column("contact_attempts", sa.Column("account_ref", sa.String(), nullable=True))
    # NULL on SMS sent before this column: those are matched against CHANNELS_SMS_ACCOUNT
    op.add_column("contact_attempts", sa.Column("provider_account", sa.String(), nullable=True))
    op.create_index("ix_contact_attempts_tenant_status", "contact_attempts", ["tenant", "status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_contact_attempts_tenant_status", table_name="contact_attempts")
    op.drop_column("contact_attempts", "provider_account")
    op.drop_column("contact_attempts", "account_ref")
