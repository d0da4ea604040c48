"""Compliance's tables: the decision log (every decision with the rules evaluated and the one that decided),
the contact ledger, holds, suppressions, consents, calendars, complaints and the agency registry."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, Identity, Index, Time, func, text
from sqlmodel import Field, SQLModel

from shared.audit import AuditEntry  # noqa: F401 - the audit log of REST changes (migration 0004), a table of ours


class ContactDecision(SQLModel, table=True):
    __tablename__ = "contact_decisions"
    __table_args__ = (Index("ix_contact_decisions_contact", "contact_id"),
                      Index("ix_contact_decisions_account", "tenant", "account_id"))

    decision_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    contact_id: str
    attempt: int
    account_id: str
    customer_id: str
    channel: str
    outcome: str  # approved | deferred | blocked
    rule_id: str
    reason: str
    retry_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    rules_evaluated: list[Any] = Field(sa_column=Column(JSON, nullable=False))  # [[rule_id, verdict, reason, retry]]
    policy_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


def _at(*, nullable: bool = False, now: bool = False) -> Any:
    """An aware timestamp column (a fresh Column per field: SQLAlchemy binds a column to one table)."""
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if now else None)


class ContactLedgerEntry(SQLModel, table=True):
    """One row per contact attempt (tenant, contact id): made by compliance's approval (``approved_at``) or
    first heard of through its outcome, and updated in place by each later outcome (``outcome``, ``outcome_at``:
    the newest by its own time wins, in any arrival order). ``occurred_at`` is the attempt's first instant, the
    one the caps count. Indexed so that one query per batch finds, for every request, the attempts of its
    number, its debtor (borrower key, else tenant and customer), its debt (tenant and account) and its contact
    id. An outcome changes no indexed column, so PostgreSQL updates the row in place (a HOT update: the
    table keeps 20% of each page free for them)."""

    __tablename__ = "contact_ledger"
    __table_args__ = (
        Index("uq_contact_ledger_contact", "tenant", "contact_id", unique=True),
        Index("ix_contact_ledger_destination", "destination_key", "occurred_at",
              postgresql_where=text("destination_key IS NOT NULL")),
        Index("ix_contact_ledger_borrower", "borrower_key", "occurred_at",
              postgresql_where=text("borrower_key IS NOT NULL")),
        Index("ix_contact_ledger_customer", "tenant", "customer_id", "occurred_at"),
        Index("ix_contact_ledger_account", "tenant", "account_id", "occurred_at"),
    )  # fillfactor 80, set by migration 0003

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    tenant: str
    borrower_key: str | None = None      # bk1:… (one debtor across accounts and lenders), never plaintext
    customer_id: str
    account_id: str
    contact_id: str
    channel: str
    destination_key: str | None = None   # cp1:… keyed hash of the number or address, never plaintext
    direction: str = Field(default="outbound", sa_column_kwargs={"server_default": "outbound"})
    agency_id: str | None = None
    agent_id: str | None = None
    outcome: str                         # approved (no outcome yet), or the newest outcome
    occurred_at: datetime = Field(sa_column=_at())
    approved_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    outcome_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    recorded_at: datetime = Field(sa_column=_at(now=True))


class HoldRow(SQLModel, table=True):
    """A hold on one account (``account_id``) or on all of a customer's accounts (None). ``source`` plan,
    complaint or rest; ``source_ref`` the plan or complaint id, ``source_state``/``source_at`` the source's last
    word (a plan's kind and its time), so plan events apply in any order."""

    __tablename__ = "holds"
    __table_args__ = (
        Index("ix_holds_customer", "tenant", "customer_id"),
        Index("ix_holds_account", "tenant", "account_id"),
        Index("uq_holds_source", "tenant", "source", "source_ref", unique=True,
              postgresql_where=text("source_ref IS NOT NULL")),
    )

    id: str = Field(primary_key=True, max_length=64)
    tenant: str
    customer_id: str
    account_id: str | None = None
    kind: str
    starts_at: datetime = Field(sa_column=_at())
    ends_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    reason: str
    source: str
    source_ref: str | None = None
    source_state: str | None = None
    source_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    created_by: str
    created_at: datetime = Field(sa_column=_at(now=True))
    lifted_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    lifted_by: str | None = None
    lift_reason: str | None = None


class SuppressionRow(SQLModel, table=True):
    """A suppression of a customer (``customer_id``) and/or one of their contact points (``destination_key``),
    for one channel or all (None)."""

    __tablename__ = "suppressions"
    __table_args__ = (Index("ix_suppressions_customer", "tenant", "customer_id"),
                      Index("ix_suppressions_destination", "tenant", "destination_key"))

    id: str = Field(primary_key=True, max_length=64)
    tenant: str
    customer_id: str | None = None
    destination_key: str | None = None
    channel: str | None = None
    kind: str
    local_start: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    local_end: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    source: str
    reason: str
    created_by: str
    created_at: datetime = Field(sa_column=_at(now=True))
    removed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    removed_by: str | None = None
    remove_reason: str | None = None


class ConsentRow(SQLModel, table=True):
    """A customer's consent for a channel (and contact point), given at ``granted_at``, maybe revoked."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_customer", "tenant", "customer_id"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant: str
    customer_id: str
    destination_key: str | None = None
    channel: str
    kind: str
    local_start: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    local_end: time | None = Field(default=None, sa_column=Column(Time, nullable=True))
    granted_at: datetime = Field(sa_column=_at())
    revoked_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    source: str
    created_by: str
    created_at: datetime = Field(sa_column=_at(now=True))
    revoked_by: str | None = None
    revoke_reason: str | None = None


class TenantCalendar(SQLModel, table=True):
    """Whose public holidays a tenant observes (HOUSE-HOLIDAY)."""

    __tablename__ = "tenant_calendars"

    tenant: str = Field(primary_key=True)
    country: str = Field(default="CN", sa_column_kwargs={"server_default": "CN"})
    updated_by: str
    updated_at: datetime = Field(sa_column=_at(now=True))


class CalendarOverride(SQLModel, table=True):
    """A tenant's own day off (``day_off``) or a public holiday it works (``working_day``)."""

    __tablename__ = "calendar_overrides"

    tenant: str = Field(primary_key=True)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    kind: str
    name: str
    created_by: str
    created_at: datetime = Field(sa_column=_at(now=True))


class Complaint(SQLModel, table=True):
    """A complaint (CN-COMPLAINT): answered by ``due_at``; while open, a COMPLAINT hold on the account.
    ``summary`` is sealed with the tenant as associated data."""

    __tablename__ = "complaints"
    __table_args__ = (Index("ix_complaints_status", "tenant", "status", "due_at"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant: str
    customer_id: str
    account_id: str
    received_at: datetime = Field(sa_column=_at())
    channel: str
    summary: str
    complexity: str
    due_at: datetime = Field(sa_column=_at())
    status: str
    extension_requested_by: str | None = None
    extension_approved_by: str | None = None
    extension_reason: str | None = None
    created_by: str
    created_at: datetime = Field(sa_column=_at(now=True))
    answered_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    answered_by: str | None = None
    closed_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))


class Agency(SQLModel, table=True):
    """An external collection agency of a tenant (CN-OUTSOURCE)."""

    __tablename__ = "agencies"

    tenant: str = Field(primary_key=True)
    agency_id: str = Field(primary_key=True)
    name: str
    listed: bool
    evaluated_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    updated_by: str
    updated_at: datetime = Field(sa_column=_at(now=True))


class AgencyAssignment(SQLModel, table=True):
    """Which agency works an account, and when the debtor was told."""

    __tablename__ = "agency_assignments"

    tenant: str = Field(primary_key=True)
    account_id: str = Field(primary_key=True)
    agency_id: str
    debtor_notified_at: datetime | None = Field(default=None, sa_column=_at(nullable=True))
    assigned_by: str
    assigned_at: datetime = Field(sa_column=_at(now=True))


class TenantPolicyRow(SQLModel, table=True):
    """One published version of a tenant's policy (services/compliance/service/policies.py): immutable."""

    __tablename__ = "tenant_policies"

    tenant: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=_at(now=True))
