"""scheduler: promises to pay recorded in plans (plans.promise-event.v1)

A promise plans keeps travels with its own deadline (``deadline``: the scheduler does not derive it) and plans'
last word on it (``verdict``, ``verdict_at``: open, kept, partial, broken or cancelled; an end beats ``open`` in
any order). Promises made on calls have neither.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("treatment_promises", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column("treatment_promises", sa.Column("verdict", sa.String, nullable=True))
    op.add_column("treatment_promises", sa.Column("verdict_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("verdict_at", "verdict", "deadline"):
        op.drop_column("treatment_promises", column)
