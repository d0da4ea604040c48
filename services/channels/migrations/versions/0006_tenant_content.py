"""channels: tenants' branding and template versions, and the audit log of REST changes

A tenant sets the lender name, help line and complaint line its messages carry (``channel_brandings``) and
publishes its own wording of a template per locale (``channel_template_versions``); both are versioned,
immutable, the newest applies. Each change is audited with who and why (``audit_log``, shared/audit.py).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from shared.alembic_env import create_audit_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_brandings",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("lender_zh", sa.String, nullable=False),
        sa.Column("lender_en", sa.String, nullable=False),
        sa.Column("help_line", sa.String, nullable=False),
        sa.Column("complaint_line", sa.String, nullable=True),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "channel_template_versions",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("template_id", sa.String(64), primary_key=True),
        sa.Column("locale", sa.String(16), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    create_audit_table()


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("channel_template_versions")
    op.drop_table("channel_brandings")
