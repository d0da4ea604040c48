"""scheduler: strategies and experiments (issue 8)

Published strategy versions (``strategies``, immutable), the tenant's assignment of them to treatments
(``strategy_assignments``: the champion and an experiment's challengers, versioned), the strategy, arm and
experiment that asked for each step and treatment (indexed for the experiment report), the complaints heard of
(``treatment_complaints``, from compliance's holds: the report's complaint rate), promises to pay made on calls
(``treatment_promises``, with their check as a durable timer), and the audit log of REST changes.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from shared.alembic_env import create_audit_table

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "strategies",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "strategy_assignments",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    for table in ("treatments", "treatment_steps"):
        for column in ("strategy", "arm", "experiment"):
            op.add_column(table, sa.Column(column, sa.String, nullable=True))
    op.create_index("ix_treatment_steps_experiment", "treatment_steps", ["tenant", "experiment"],
                    postgresql_where=sa.text("experiment IS NOT NULL"))
    op.create_table(
        "treatment_complaints",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("hold_id", sa.String, primary_key=True),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=True),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_treatment_complaints_customer", "treatment_complaints", ["tenant", "customer_id"])
    op.create_table(
        "treatment_promises",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("promise_id", sa.String, primary_key=True),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String, nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grace_days", sa.Integer, nullable=False),
        sa.Column("cycle_due_date", sa.Date, nullable=True),
        sa.Column("check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_treatment_promises_account", "treatment_promises", ["tenant", "account_id"])
    op.create_index("ix_treatment_promises_check", "treatment_promises", ["check_at"],
                    postgresql_where=sa.text("checked_at IS NULL"))
    create_audit_table()


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("treatment_promises")
    op.drop_table("treatment_complaints")
    op.drop_index("ix_treatment_steps_experiment", "treatment_steps")
    for table in ("treatments", "treatment_steps"):
        for column in ("strategy", "arm", "experiment"):
            op.drop_column(table, column)
    op.drop_table("strategy_assignments")
    op.drop_table("strategies")
