"""Segmentation's tables. Contact points are stored sealed (shared.crypto), never in plaintext."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Numeric,
    String,
    func,
)
from sqlmodel import Field, SQLModel

from shared.audit import AuditEntry  # noqa: F401 - the audit log of REST changes (migration 0004), a table of ours


class Account(SQLModel, table=True):
    __tablename__ = "accounts"

    tenant: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(primary_key=True, max_length=128)
    customer_id: str = Field(max_length=128, index=True)
    product: str
    currency: str = Field(max_length=3)
    # the newest overdue snapshot's amounts as reported (at ``as_of``)
    reported_outstanding_minor: int = Field(sa_type=BigInteger)
    reported_overdue_minor: int = Field(sa_type=BigInteger)
    # derived (domain/accounts.py ``balances``): the reported amounts less the payments booked after ``as_of``
    outstanding_minor: int = Field(sa_type=BigInteger)
    overdue_minor: int = Field(sa_type=BigInteger)
    days_past_due: int
    due_date: date
    credit_rating: str | None = None
    credit_score: int | None = None
    segment: str
    dpd_bucket: str
    status: str = "overdue"  # overdue | cured, derived with the balances
    account_ref: str | None = None
    name_sealed: str
    phone_sealed: str | None = None
    email_sealed: str | None = None
    address_sealed: str | None = None
    time_zone: str
    locale: str
    co_lenders: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # time of the snapshot (the overdue event's time): an older snapshot never overwrites a newer one
    as_of: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # the earliest event time of any overdue snapshot of the account (the policies' tenure_days counts from it)
    first_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    # the repayment-propensity score of the snapshot (migration 0005; docs/scoring.md): the scorecard version,
    # its points, the probability of curing within 30 days, the reasons [{"code", "text"}]; None before 0005
    scorecard_version: str | None = Field(default=None, max_length=64)
    score_points: int | None = None
    score_probability: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 4), nullable=True))
    score_reasons: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class SegmentChange(SQLModel, table=True):
    __tablename__ = "segment_history"
    __table_args__ = (Index("ix_segment_history_account", "tenant", "account_id"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    tenant: str
    account_id: str
    segment: str
    dpd_bucket: str
    reason: str
    event_id: str
    # the segmentation policy version it was decided under (0: the built-in seg-v1)
    policy_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # the snapshot classified: its event time and reported overdue amount (None before migration 0004); what
    # the policies' previous_cures counts over
    as_of: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    overdue_minor: int | None = Field(default=None, sa_type=BigInteger)
    # the score the classification was decided with (migration 0005; None before it)
    scorecard_version: str | None = Field(default=None, max_length=64)
    score_points: int | None = None
    score_probability: Decimal | None = Field(default=None, sa_column=Column(Numeric(5, 4), nullable=True))
    score_reasons: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


class Payment(SQLModel, table=True):
    """Every payment, once per (tenant, payment_id), kept even before its account is known."""

    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)
    payment_id: str = Field(primary_key=True, max_length=128)
    account_id: str
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str
    paid_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class SegmentationPolicyRow(SQLModel, table=True):
    """One published version of a tenant's segmentation policy (services/segmentation/domain/policy.py):
    immutable; the newest applies."""

    __tablename__ = "segmentation_policies"

    tenant: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


class ScorecardRow(SQLModel, table=True):
    """One registered version of a tenant's repayment-propensity scorecard (services/segmentation/domain/
    scorecard.py): the document as trained, immutable, with its held-out metrics and who registered it why."""

    __tablename__ = "scorecards"

    tenant: str = Field(primary_key=True, max_length=64)
    version: str = Field(sa_column=Column(String(64), primary_key=True))
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    features: list[str] = Field(sa_column=Column(JSON, nullable=False))  # the features worth points
    auc: float | None = None  # the document's metrics.held_out (None when it has none)
    ks: float | None = None
    gini: float | None = None
    calibration: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    registered_by: str
    reason: str
    registered_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                     nullable=False))


class ScorecardPromotion(SQLModel, table=True):
    """Who made which registered version the tenant's live scorecard, why and when: the newest one is live."""

    __tablename__ = "scorecard_promotions"
    __table_args__ = (ForeignKeyConstraint(["tenant", "version"], ["scorecards.tenant", "scorecards.version"]),
                      Index("ix_scorecard_promotions_tenant", "tenant", "id"))

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    tenant: str = Field(max_length=64)
    version: str = Field(max_length=64)
    promoted_by: str
    reason: str
    promoted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                   nullable=False))
