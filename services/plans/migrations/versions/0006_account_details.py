"""plans: what negotiation, co-lending and the portal need to know of an account: its product, co-lenders
and shares, sealed contact points (the portal's second factor) and reference, its segment (from
segmentation.account-segmented.v1, kept apart so it may arrive before or after the overdue notice); and the audit log

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.alembic_env import create_audit_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plan_accounts", sa.Column("product", sa.String(64), nullable=False, server_default=""))
    op.add_column("plan_accounts", sa.Column("co_lenders", JSONB, nullable=False, server_default="[]"))
    op.add_column("plan_accounts", sa.Column("contact", JSONB, nullable=False, server_default="{}"))
    op.add_column("plan_accounts", sa.Column("account_ref", sa.String(6), nullable=True))
    # a co-lender's accounts: co_lenders @> '[{"tenant": ...}]'
    op.create_index("ix_plan_accounts_co_lenders", "plan_accounts", ["co_lenders"], postgresql_using="gin")
    op.create_table(
        "plan_account_segments",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("dpd_bucket", sa.String(16), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    )
    create_audit_table()  # who agreed, approved, rejected, published what, and why (shared/audit.py)


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("plan_account_segments")
    op.drop_index("ix_plan_accounts_co_lenders", table_name="plan_accounts")
    for column in ("account_ref", "contact", "co_lenders", "product"):
        op.drop_column("plan_accounts", column)
