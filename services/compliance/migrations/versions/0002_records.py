"""compliance: what it holds (issue 7): contact ledger, holds, suppressions, consents, calendars, complaints,
agency registry

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _at(name: str, *, nullable: bool = False, now: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable,
                     server_default=sa.func.now() if now else None)


def upgrade() -> None:
    op.create_table(
        "contact_ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("borrower_key", sa.String, nullable=True),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        sa.Column("contact_id", sa.String, nullable=False),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("destination_key", sa.String, nullable=True),
        sa.Column("direction", sa.String, nullable=False, server_default="outbound"),
        sa.Column("agency_id", sa.String, nullable=True),
        sa.Column("agent_id", sa.String, nullable=True),
        sa.Column("outcome", sa.String, nullable=False),
        _at("occurred_at"),
        _at("recorded_at", now=True),
    )
    op.create_index("uq_contact_ledger_event", "contact_ledger", ["tenant", "contact_id", "outcome", "occurred_at"],
                    unique=True)
    op.create_index("ix_contact_ledger_destination", "contact_ledger", ["destination_key", "occurred_at"],
                    postgresql_where=sa.text("destination_key IS NOT NULL"))
    op.create_index("ix_contact_ledger_borrower", "contact_ledger", ["borrower_key", "occurred_at"],
                    postgresql_where=sa.text("borrower_key IS NOT NULL"))
    op.create_index("ix_contact_ledger_customer", "contact_ledger", ["tenant", "customer_id", "occurred_at"])
    op.create_index("ix_contact_ledger_account", "contact_ledger", ["tenant", "account_id", "occurred_at"])

    op.create_table(
        "holds",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=True),
        sa.Column("kind", sa.String, nullable=False),
        _at("starts_at"),
        _at("ends_at", nullable=True),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("source_ref", sa.String, nullable=True),
        sa.Column("source_state", sa.String, nullable=True),
        _at("source_at", nullable=True),
        sa.Column("created_by", sa.String, nullable=False),
        _at("created_at", now=True),
        _at("lifted_at", nullable=True),
        sa.Column("lifted_by", sa.String, nullable=True),
        sa.Column("lift_reason", sa.String, nullable=True),
    )
    op.create_index("ix_holds_customer", "holds", ["tenant", "customer_id"])
    op.create_index("ix_holds_account", "holds", ["tenant", "account_id"])
    op.create_index("uq_holds_source", "holds", ["tenant", "source", "source_ref"], unique=True,
                    postgresql_where=sa.text("source_ref IS NOT NULL"))

    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=True),
        sa.Column("destination_key", sa.String, nullable=True),
        sa.Column("channel", sa.String, nullable=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("local_start", sa.Time, nullable=True),
        sa.Column("local_end", sa.Time, nullable=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        _at("created_at", now=True),
        _at("removed_at", nullable=True),
        sa.Column("removed_by", sa.String, nullable=True),
        sa.Column("remove_reason", sa.String, nullable=True),
    )
    op.create_index("ix_suppressions_customer", "suppressions", ["tenant", "customer_id"])
    op.create_index("ix_suppressions_destination", "suppressions", ["tenant", "destination_key"])

    op.create_table(
        "consents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("destination_key", sa.String, nullable=True),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("local_start", sa.Time, nullable=True),
        sa.Column("local_end", sa.Time, nullable=True),
        _at("granted_at"),
        _at("revoked_at", nullable=True),
        sa.Column("source", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        _at("created_at", now=True),
        sa.Column("revoked_by", sa.String, nullable=True),
        sa.Column("revoke_reason", sa.String, nullable=True),
    )
    op.create_index("ix_consents_customer", "consents", ["tenant", "customer_id"])

    op.create_table(
        "tenant_calendars",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("country", sa.String, nullable=False, server_default="CN"),
        sa.Column("updated_by", sa.String, nullable=False),
        _at("updated_at", now=True),
    )
    op.create_table(
        "calendar_overrides",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("created_by", sa.String, nullable=False),
        _at("created_at", now=True),
    )

    op.create_table(
        "complaints",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String, nullable=False),
        sa.Column("customer_id", sa.String, nullable=False),
        sa.Column("account_id", sa.String, nullable=False),
        _at("received_at"),
        sa.Column("channel", sa.String, nullable=False),
        sa.Column("summary", sa.String, nullable=False),
        sa.Column("complexity", sa.String, nullable=False),
        _at("due_at"),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("extension_requested_by", sa.String, nullable=True),
        sa.Column("extension_approved_by", sa.String, nullable=True),
        sa.Column("extension_reason", sa.String, nullable=True),
        sa.Column("created_by", sa.String, nullable=False),
        _at("created_at", now=True),
        _at("answered_at", nullable=True),
        sa.Column("answered_by", sa.String, nullable=True),
        _at("closed_at", nullable=True),
    )
    op.create_index("ix_complaints_status", "complaints", ["tenant", "status", "due_at"])

    op.create_table(
        "agencies",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("agency_id", sa.String, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("listed", sa.Boolean, nullable=False),
        sa.Column("evaluated_on", sa.Date, nullable=True),
        sa.Column("updated_by", sa.String, nullable=False),
        _at("updated_at", now=True),
    )
    op.create_table(
        "agency_assignments",
        sa.Column("tenant", sa.String, primary_key=True),
        sa.Column("account_id", sa.String, primary_key=True),
        sa.Column("agency_id", sa.String, nullable=False),
        _at("debtor_notified_at", nullable=True),
        sa.Column("assigned_by", sa.String, nullable=False),
        _at("assigned_at", now=True),
    )


def downgrade() -> None:
    for table in ("agency_assignments", "agencies", "complaints", "calendar_overrides", "tenant_calendars",
                  "consents", "suppressions", "holds", "contact_ledger"):
        op.drop_table(table)
