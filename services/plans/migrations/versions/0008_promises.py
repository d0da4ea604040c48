"""plans: promises to pay and plan monitoring

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # services/plans/db/promises.py PlanPromise
    op.create_table(
        "plan_promises",
        sa.Column("promise_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("paid_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("grace_days", sa.Integer, nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("made_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("cancelled_by", sa.String(128), nullable=True),
        sa.Column("cancel_reason", sa.String(500), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_plan_promises_account", "plan_promises", ["tenant", "account_id"])
    # at most one open promise per account, even under concurrent requests
    op.create_index("uq_plan_promises_one_open", "plan_promises", ["tenant", "account_id"], unique=True,
                    postgresql_where=sa.text("status = 'open'"))
    # the monitor's claim: open promises by deadline
    op.create_index("ix_plan_promises_due", "plan_promises", ["deadline"],
                    postgresql_where=sa.text("status = 'open'"))


def downgrade() -> None:
    op.drop_table("plan_promises")
