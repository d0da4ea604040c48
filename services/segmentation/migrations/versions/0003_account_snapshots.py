"""segmentation: an account keeps its newest overdue snapshot as reported, and account_ref; payments by account

Revision ID: 0003
Revises: 0002

``overdue_minor``, ``outstanding_minor`` and ``status`` become derived: the snapshot's reported amounts
less the payments booked after its time ``as_of`` (services/segmentation/domain/accounts.py). The
reported amounts are backfilled so that this derivation gives exactly what is stored now: the stored
amounts plus the payments (same currency) booked after ``as_of``, which were already deducted from them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payments_account", "payments", ["tenant", "account_id"])
    op.add_column("accounts", sa.Column("reported_overdue_minor", sa.BigInteger, nullable=True))
    op.add_column("accounts", sa.Column("reported_outstanding_minor", sa.BigInteger, nullable=True))
    op.add_column("accounts", sa.Column("account_ref", sa.String, nullable=True))
    op.execute("UPDATE accounts SET reported_overdue_minor = overdue_minor, "
               "reported_outstanding_minor = outstanding_minor")
    op.execute("""
        UPDATE accounts AS a
        SET reported_overdue_minor = a.overdue_minor + paid.minor,
            reported_outstanding_minor = a.outstanding_minor + paid.minor
        FROM (SELECT acc.tenant, acc.account_id, sum(p.amount_minor) AS minor
              FROM accounts AS acc
              JOIN payments AS p ON p.tenant = acc.tenant AND p.account_id = acc.account_id
                                AND p.currency = acc.currency AND p.paid_at > acc.as_of
              GROUP BY acc.tenant, acc.account_id) AS paid
        WHERE a.tenant = paid.tenant AND a.account_id = paid.account_id
    """)
    op.alter_column("accounts", "reported_overdue_minor", nullable=False)
    op.alter_column("accounts", "reported_outstanding_minor", nullable=False)


def downgrade() -> None:
    for column in ("account_ref", "reported_outstanding_minor", "reported_overdue_minor"):
        op.drop_column("accounts", column)
    op.drop_index("ix_payments_account", "payments")
