"""segmentation: accounts.as_of, the time of the fact last applied

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
    op.add_column("accounts", sa.Column("as_of", sa.DateTime(timezone=True), server_default=sa.func.now(),
                                        nullable=False))
    op.alter_column("accounts", "as_of", server_default=None)


def downgrade() -> None:
    op.drop_column("accounts", "as_of")
