"""plans: plan policies, quotes, agreements from quotes and their approvals

``plan_policies`` keeps every published version of a tenant's plan policy, immutable (the newest applies);
``plan_quotes`` the offers made to an account, used at most once, until they expire; ``plan_approvals`` the
approvals an agreement waits for or got (services/plans/db/negotiation.py). ``plans`` gains the plan's kind (custom
for POST /v1/plans), what it writes off, the quote and offer it came from and who made it; a quote makes one plan.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("kind", sa.String(16), nullable=False, server_default="custom"))
    op.add_column("plans", sa.Column("written_off_minor", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("plans", sa.Column("quote_id", sa.String(64), nullable=True))
    op.add_column("plans", sa.Column("offer_id", sa.String(64), nullable=True))
    op.add_column("plans", sa.Column("made_by", sa.String(128), nullable=True))
    op.create_index("uq_plans_quote", "plans", ["quote_id"], unique=True,
                    postgresql_where=sa.text("quote_id IS NOT NULL"))
    op.create_table(
        "plan_policies",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "plan_quotes",
        sa.Column("quote_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("overdue_minor", sa.BigInteger, nullable=False),
        sa.Column("outstanding_minor", sa.BigInteger, nullable=False),
        sa.Column("offers", JSONB, nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_plan_quotes_account", "plan_quotes", ["tenant", "account_id"])
    op.create_table(
        "plan_approvals",
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(80), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("decided_tenant", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("plan_approvals")
    op.drop_index("ix_plan_quotes_account", table_name="plan_quotes")
    op.drop_table("plan_quotes")
    op.drop_table("plan_policies")
    op.drop_index("uq_plans_quote", table_name="plans")
    for column in ("made_by", "offer_id", "quote_id", "written_off_minor", "kind"):
        op.drop_column("plans", column)
