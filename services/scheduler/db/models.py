"""Scheduler's tables: per-account treatment state and its steps, which double as durable timers."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, func
from sqlmodel import Field, SQLModel


class Treatment(SQLModel, table=True):
    __tablename__ = "treatments"

    tenant: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=128)
    customer_id: str
    segment: str
    days_past_due: int
    due_date: date
    currency: str
    overdue_minor: int = Field(sa_type=BigInteger)
    status: str = "active"  # active | paused (plan agreed) | stopped (paid)
    status_reason: str = ""
    phone_sealed: str | None = None
    email_sealed: str | None = None
    address_sealed: str | None = None
    time_zone: str
    locale: str
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class TreatmentStep(SQLModel, table=True):
    __tablename__ = "treatment_steps"
    __table_args__ = (Index("ix_treatment_steps_due", "status", "due_at"),
                      Index("ix_treatment_steps_account", "tenant", "account_id"))

    contact_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    account_id: str
    customer_id: str
    step: str
    channel: str
    template_id: str
    segment: str
    days_past_due: int
    due_date: date
    currency: str
    overdue_minor: int = Field(sa_type=BigInteger)
    destination_sealed: str | None = None
    time_zone: str
    locale: str
    status: str  # pending | requested | done | failed | blocked | cancelled
    attempt: int = 1
    last_reason: str = ""
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class TreatmentPayment(SQLModel, table=True):
    """Payments already subtracted, so a payment delivered under two event ids counts once."""

    __tablename__ = "treatment_payments"

    tenant: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(primary_key=True, max_length=128)
    account_id: str
    amount_minor: int = Field(sa_type=BigInteger)
