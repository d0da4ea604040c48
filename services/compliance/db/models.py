"""Compliance's decision log: every decision with the rules evaluated and the one that decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, func
from sqlmodel import Field, SQLModel


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
    rules_evaluated: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    decided_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
