"""Scheduler's tables: per-account treatment state and its steps, which double as durable timers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, func, text
from sqlmodel import Field, SQLModel

from shared.audit import AuditEntry

__all__ = ["AuditEntry", "StepOutcome", "Strategy", "StrategyAssignment", "Treatment", "TreatmentComplaint",
           "TreatmentPayment", "TreatmentPlan", "TreatmentPromise", "TreatmentStep"]


class Treatment(SQLModel, table=True):
    __tablename__ = "treatments"

    tenant: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=128)
    customer_id: str
    segment: str
    days_past_due: int
    due_date: date
    currency: str
    # the amount overdue now: the snapshot's, less the payments booked after it (domain/standing.py)
    overdue_minor: int = Field(sa_type=BigInteger)
    # the newest overdue snapshot (segmentation's classification of core banking's notice) as reported
    reported_overdue_minor: int = Field(sa_type=BigInteger)
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    segment_reason: str = ""
    account_ref: str | None = None
    borrower_key: str | None = None
    status: str = "active"  # derived: active | paused (an agreed plan) | stopped (nothing overdue)
    status_reason: str = ""
    phone_sealed: str | None = None
    email_sealed: str | None = None
    address_sealed: str | None = None
    time_zone: str
    locale: str
    # the arm and strategy (name@version) of the treatment's last planned step (docs/strategies.md)
    arm: str | None = None
    strategy: str | None = None
    experiment: str | None = None
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class TreatmentStep(SQLModel, table=True):
    __tablename__ = "treatment_steps"
    __table_args__ = (Index("ix_treatment_steps_due", "status", "due_at"),
                      Index("ix_treatment_steps_account", "tenant", "account_id"),
                      Index("ix_treatment_steps_experiment", "tenant", "experiment",
                            postgresql_where=text("experiment IS NOT NULL")))

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
    account_ref: str | None = None
    borrower_key: str | None = None
    # which strategy (name@version), arm and experiment asked for this step (None: before strategies)
    strategy: str | None = None
    arm: str | None = None
    experiment: str | None = None
    # the newest outcome of the contact and when it happened (an older one arriving late changes nothing)
    outcome: str | None = None
    outcome_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # pending: when it falls due; requested: when it was (last) requested, so the sweeper can find a
    # request that got no verdict
    due_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class TreatmentPayment(SQLModel, table=True):
    """Every payment, once per payment id, kept even before its account has a treatment."""

    __tablename__ = "treatment_payments"
    __table_args__ = (Index("ix_treatment_payments_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(primary_key=True, max_length=128)
    account_id: str
    amount_minor: int = Field(sa_type=BigInteger)
    # None on payments kept before migration 0003: already deducted then, never counted again
    currency: str | None = None
    paid_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class TreatmentPlan(SQLModel, table=True):
    """The last word of every plan (agreed, or how it ended), kept even before the treatment exists."""

    __tablename__ = "treatment_plans"
    __table_args__ = (Index("ix_treatment_plans_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)
    plan_id: str = Field(primary_key=True, max_length=128)
    account_id: str
    kind: str  # agreed | completed | cancelled | broken
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class StepOutcome(SQLModel, table=True):
    """The newest outcome of a contact whose step does not exist here (yet): applied when it appears."""

    __tablename__ = "step_outcomes"

    contact_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    outcome: str
    occurred_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class Strategy(SQLModel, table=True):
    """A published strategy version: immutable (docs/strategies.md)."""

    __tablename__ = "strategies"

    tenant: str = Field(primary_key=True, max_length=64)
    name: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


class StrategyAssignment(SQLModel, table=True):
    """Which strategy a tenant's treatments follow, and the experiment's challengers: versioned, the newest
    applies (docs/strategies.md, "Experiments")."""

    __tablename__ = "strategy_assignments"

    tenant: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


class TreatmentComplaint(SQLModel, table=True):
    """A complaint hold compliance placed (compliance.hold-changed.v1, kind ``complaint``), once per hold: the
    experiment report's complaint rate. ``account_id`` None: every account of the customer."""

    __tablename__ = "treatment_complaints"
    __table_args__ = (Index("ix_treatment_complaints_customer", "tenant", "customer_id"),)

    tenant: str = Field(primary_key=True, max_length=64)
    hold_id: str = Field(primary_key=True, max_length=128)
    customer_id: str
    account_id: str | None = None
    placed_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class TreatmentPromise(SQLModel, table=True):
    """A promise to pay made on a call (channels.contact-outcome.v1 ``promise``), kept even before the treatment
    exists; one per contact (a later report of the same call replaces it). Whether it is open, kept or broken is
    derived (``domain/promises.py``); ``check_at`` is its durable timer: when it ends unless paid."""

    __tablename__ = "treatment_promises"
    __table_args__ = (Index("ix_treatment_promises_account", "tenant", "account_id"),
                      Index("ix_treatment_promises_check", "check_at", postgresql_where=text("checked_at IS NULL")))

    tenant: str = Field(primary_key=True, max_length=64)
    promise_id: str = Field(primary_key=True, max_length=128)
    account_id: str
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str
    due_on: date
    made_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    grace_days: int = 1
    # the delinquency cycle (due date) of the call it was made on, when its step was known
    cycle_due_date: date | None = None
    check_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    checked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    # a promise recorded in plans (plans.promise-event.v1, migration 0006): its own deadline, and plans' last word
    deadline: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    verdict: str | None = None
    verdict_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
