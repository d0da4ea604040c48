"""compliance: one contact-ledger row per contact attempt, updated in place by its outcomes; the policy version
of each decision in a column of its own

Before: one row per event (the approval, then each outcome). After: one row per (tenant, contact id) with
``approved_at``, the newest ``outcome`` and its ``outcome_at``; ``occurred_at`` is the attempt's first instant.
Existing rows are folded: the contact's first row is kept (the approval, which carries its contact point and
agency), the others are deleted.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contact_ledger", sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("contact_ledger", sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("""
        WITH agg AS (
            SELECT tenant, contact_id, min(id) AS keep_id, min(occurred_at) AS first_at,
                   min(occurred_at) FILTER (WHERE outcome = 'approved') AS approved_at,
                   max(borrower_key) AS borrower_key, max(destination_key) AS destination_key,
                   max(agency_id) AS agency_id, max(agent_id) AS agent_id
            FROM contact_ledger GROUP BY tenant, contact_id),
        last AS (
            SELECT DISTINCT ON (tenant, contact_id) tenant, contact_id, outcome, occurred_at
            FROM contact_ledger WHERE outcome <> 'approved'
            ORDER BY tenant, contact_id, occurred_at DESC, id DESC)
        UPDATE contact_ledger AS l
        SET approved_at = agg.approved_at, occurred_at = agg.first_at,
            outcome = coalesce(last.outcome, 'approved'), outcome_at = last.occurred_at,
            borrower_key = agg.borrower_key, destination_key = agg.destination_key,
            agency_id = agg.agency_id, agent_id = agg.agent_id
        FROM agg LEFT JOIN last ON last.tenant = agg.tenant AND last.contact_id = agg.contact_id
        WHERE l.id = agg.keep_id
    """)
    op.execute("""
        DELETE FROM contact_ledger AS l
        USING contact_ledger AS k
        WHERE k.tenant = l.tenant AND k.contact_id = l.contact_id AND k.id < l.id
    """)
    op.drop_index("uq_contact_ledger_event", table_name="contact_ledger")
    op.create_index("uq_contact_ledger_contact", "contact_ledger", ["tenant", "contact_id"], unique=True)
    op.execute("ALTER TABLE contact_ledger SET (fillfactor = 80)")
    op.add_column("contact_decisions", sa.Column("policy_version", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("contact_decisions", "policy_version")
    op.execute("ALTER TABLE contact_ledger RESET (fillfactor)")
    op.drop_index("uq_contact_ledger_contact", table_name="contact_ledger")
    # split each attempt back into its approval row and its outcome row
    op.execute("""
        INSERT INTO contact_ledger (tenant, borrower_key, customer_id, account_id, contact_id, channel,
                                    destination_key, direction, agency_id, agent_id, outcome, occurred_at)
        SELECT tenant, borrower_key, customer_id, account_id, contact_id, channel, destination_key, direction,
               agency_id, agent_id, outcome, outcome_at
        FROM contact_ledger WHERE approved_at IS NOT NULL AND outcome <> 'approved' AND outcome_at IS NOT NULL
    """)
    op.execute("""
        UPDATE contact_ledger SET outcome = 'approved', occurred_at = approved_at
        WHERE approved_at IS NOT NULL AND outcome <> 'approved' AND outcome_at IS NOT NULL
          AND id IN (SELECT min(id) FROM contact_ledger GROUP BY tenant, contact_id)
    """)
    op.create_index("uq_contact_ledger_event", "contact_ledger", ["tenant", "contact_id", "outcome", "occurred_at"],
                    unique=True)
    op.drop_column("contact_ledger", "outcome_at")
    op.drop_column("contact_ledger", "approved_at")
