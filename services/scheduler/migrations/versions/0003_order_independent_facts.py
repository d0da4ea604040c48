"""scheduler: facts kept whatever their order (overdue snapshot, payment times, plans, outcomes)

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # the amount stored so far is the snapshot, with the payments known then already deducted
    op.add_column("treatments", sa.Column("reported_overdue_minor", sa.BigInteger, nullable=True))
    op.add_column("treatments", _ts("as_of", nullable=True))
    op.add_column("treatments", sa.Column("segment_reason", sa.String, nullable=False, server_default=""))
    op.add_column("treatments", sa.Column("account_ref", sa.String, nullable=True))
    op.execute("UPDATE treatments SET reported_overdue_minor = overdue_minor, as_of = updated_at, "
               "segment_reason = CASE WHEN status = 'active' THEN status_reason ELSE '' END")
    op.alter_column("treatments", "reported_overdue_minor", nullable=False)
    op.alter_column("treatments", "as_of", nullable=False)
    op.add_column("treatment_steps", sa.Column("account_ref", sa.String, nullable=True))
    op.add_column("treatment_steps", sa.Column("outcome", sa.String, nullable=True))
    op.add_column("treatment_steps", _ts("outcome_at", nullable=True))
    # payments kept before now have no time or currency: they are in the stored amounts, never counted again
    op.add_column("treatment_payments", sa.Column("currency", sa.String, nullable=True))
    op.add_column("treatment_payments", _ts("paid_at", nullable=True))
    op.create_index("ix_treatment_payments_account", "treatment_payments", ["tenant", "account_id"])
    op.create_table(
        "treatment_plans",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("plan_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        _ts("occurred_at"),
    )
    op.create_index("ix_treatment_plans_account", "treatment_plans", ["tenant", "account_id"])
    op.create_table(
        "step_outcomes",
        sa.Column("contact_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("outcome", sa.String, nullable=False),
        _ts("occurred_at"),
    )


def downgrade() -> None:
    op.drop_table("step_outcomes")
    op.drop_index("ix_treatment_plans_account", "treatment_plans")
    op.drop_table("treatment_plans")
    op.drop_index("ix_treatment_payments_account", "treatment_payments")
    op.drop_column("treatment_payments", "paid_at")
    op.drop_column("treatment_payments", "currency")
    for column in ("outcome_at", "outcome", "account_ref"):
        op.drop_column("treatment_steps", column)
    for column in ("account_ref", "segment_reason", "as_of", "reported_overdue_minor"):
        op.drop_column("treatments", column)
