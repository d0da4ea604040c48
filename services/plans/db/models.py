"""Plans' tables: agreements and their instalment schedules."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, UniqueConstraint, func, text
from sqlmodel import Field, SQLModel


class Plan(SQLModel, table=True):
    __tablename__ = "plans"
    __table_args__ = (Index("ix_plans_account", "tenant", "account_id"),
                      UniqueConstraint("tenant", "idempotency_key", name="uq_plans_idempotency"),
                      # at most one agreed plan per account, even under concurrent requests
                      Index("uq_plans_one_agreed", "tenant", "account_id", unique=True,
                            postgresql_where=text("status = 'agreed'")))

    plan_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    account_id: str
    customer_id: str
    currency: str
    total_minor: int = Field(sa_type=BigInteger)
    paid_minor: int = Field(default=0, sa_type=BigInteger)
    status: str  # agreed | cancelled | completed
    reason: str = ""
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
