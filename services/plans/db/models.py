"""Plans' tables: agreements and their instalment schedules, and the read model of the accounts they are
agreed for (each account's newest overdue snapshot and every payment, from the events)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from shared.audit import AuditEntry

__all__ = ["AccountPayment", "AppliedPayment", "AuditEntry", "Plan", "PlanAccount", "PlanAccountSegment",
           "PlanInstalment"]


class Plan(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (Index("ix_plans_account", "tenant", "account_id"),
                      UniqueConstraint("tenant", "idempotency_key", name="uq_plans_idempotency"),
                      # at most one agreed plan per account, even under concurrent requests
                      Index("uq_plans_one_agreed", "tenant", "account_id", unique=True,
                            postgresql_where=text("status = 'agreed'")),
                      # a quote makes at most one plan (migration 0007)
                      Index("uq_plans_quote", "quote_id", unique=True, postgresql_where=text("quote_id IS NOT NULL")))

    plan_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    account_id: str
    customer_id: str
    currency: str
    total_minor: int = Field(sa_type=BigInteger)
    paid_minor: int = Field(default=0, sa_type=BigInteger)
    status: str  # agreed | cancelled | completed | broken | pending_approval | rejected (domain/states.py)
    reason: str = ""
    # negotiation (services/plans/negotiation.py, migration 0007): custom (POST /v1/plans) or the kind of the
    # quote's offer; what it writes off (waiver, settlement); the quote and offer it came from; who made it
    kind: str = Field(default="custom", max_length=16, sa_column_kwargs={"server_default": "custom"})
    written_off_minor: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    quote_id: str | None = Field(default=None, max_length=64)
    offer_id: str | None = Field(default=None, max_length=64)
    made_by: str | None = Field(default=None, max_length=128)
    idempotency_key: str | None = None
    # sha256 of the request that created the plan: the same Idempotency-Key with another body is refused
    request_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False))


class PlanInstalment(SQLModel, table=True):
    __tablename__ = "plan_instalments"

    plan_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    due_date: date
    amount_minor: int = Field(sa_type=BigInteger)
    paid_minor: int = Field(default=0, sa_type=BigInteger)
    # due | partly_paid | paid (domain/states.py INSTALMENT)
    status: str = Field(default="due", sa_column_kwargs={"server_default": "due"})


class AppliedPayment(SQLModel, table=True):
    __tablename__ = "applied_payments"

    tenant: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(primary_key=True, max_length=128)
    plan_id: str
    amount_minor: int = Field(sa_type=BigInteger)


class PlanAccount(SQLModel, table=True):
    """The newest overdue snapshot of an account (core.account-overdue.v1) as plans knows it: a plan is
    agreed only for an account of the tenant found here, in its currency, covering what is overdue."""

    __tablename__ = "plan_accounts"
    # a co-lender's accounts (co_lenders @> '[{"tenant": ...}]', services/plans/db/co_lending.py)
    __table_args__ = (Index("ix_plan_accounts_co_lenders", "co_lenders", postgresql_using="gin"),)

    tenant: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=128)
    currency: str = Field(max_length=3)
    overdue_minor: int = Field(sa_type=BigInteger)  # as reported at as_of (payments after it are deducted)
    outstanding_minor: int = Field(sa_type=BigInteger)
    due_date: date
    days_past_due: int
    # the event time of the snapshot: an older one never overwrites a newer one
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    product: str = Field(default="", max_length=64)
    # [{"tenant": ..., "share_bp": ...}] as the notice lists them; the servicer holds the rest (domain/lenders.py)
    co_lenders: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False,
                                                                                   server_default="[]"))
    # the notice's CustomerContact as it travelled: PII stays sealed (shared.crypto, bound to the tenant)
    contact: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False,
                                                                          server_default="{}"))
    account_ref: str | None = Field(default=None, max_length=6)
    updated_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False))


class PlanAccountSegment(SQLModel, table=True):
    """The account's newest segment and DPD bucket (segmentation.account-segmented.v1, by event time): plan
    policies offer by segment. Kept apart from the snapshot, so either may arrive first."""

    __tablename__ = "plan_account_segments"

    tenant: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=128)
    segment: str = Field(max_length=32)
    dpd_bucket: str = Field(max_length=16)
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class AccountPayment(SQLModel, table=True):
    """Every payment (core.payment-received.v1), once per payment id, kept even before its account is known:
    those booked after the account's snapshot reduce what is overdue."""

    __tablename__ = "account_payments"
    __table_args__ = (Index("ix_account_payments_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(primary_key=True, max_length=128)
    account_id: str = Field(max_length=128)
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    paid_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
