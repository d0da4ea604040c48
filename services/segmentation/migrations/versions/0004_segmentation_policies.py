"""segmentation: tenants' segmentation policies (versioned), what the policies' features read, the audit log

``segmentation_policies`` keeps every published version of a tenant's policy, immutable; the newest applies
(services/segmentation/domain/policy.py). Each change made over REST is audited with who and why
(``audit_log``, shared/audit.py).

``accounts.first_seen_at`` is the earliest event time of the account's overdue snapshots (``tenure_days``
counts from it): backfilled with the earlier of the stored snapshot's ``as_of`` and the account's first
classification (``segment_history.created_at``), the best this history knows.

``segment_history`` gains the policy version a classification was decided under (0, the built-in seg-v1, for
every earlier row) and the snapshot it classified (``as_of``, the reported ``overdue_minor``: what
``previous_cures`` counts over). Rows from before this migration do not have them, except the account's newest
one (its snapshot is the stored account's), which is backfilled.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from shared.alembic_env import create_audit_table

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segmentation_policies",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    create_audit_table()

    op.add_column("accounts", sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("""
        UPDATE accounts AS a
        SET first_seen_at = LEAST(a.as_of, (SELECT min(h.created_at) FROM segment_history AS h
                                            WHERE h.tenant = a.tenant AND h.account_id = a.account_id))
    """)
    op.alter_column("accounts", "first_seen_at", nullable=False)

    op.add_column("segment_history", sa.Column("policy_version", sa.Integer, server_default="0", nullable=False))
    op.add_column("segment_history", sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))
    op.add_column("segment_history", sa.Column("overdue_minor", sa.BigInteger, nullable=True))
    op.execute("""
        UPDATE segment_history AS h
        SET as_of = a.as_of, overdue_minor = a.reported_overdue_minor
        FROM accounts AS a,
             (SELECT tenant, account_id, max(id) AS id FROM segment_history GROUP BY tenant, account_id) AS newest
        WHERE h.id = newest.id AND a.tenant = newest.tenant AND a.account_id = newest.account_id
    """)


def downgrade() -> None:
    for column in ("overdue_minor", "as_of", "policy_version"):
        op.drop_column("segment_history", column)
    op.drop_column("accounts", "first_seen_at")
    op.drop_table("audit_log")
    op.drop_table("segmentation_policies")
