"""Channels' contact attempts. A row exists ('sending') before any provider is called."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, func
from sqlmodel import Field, SQLModel


class ContactAttempt(SQLModel, table=True):
    __tablename__ = "contact_attempts"
    __table_args__ = (Index("ix_contact_attempts_status", "status", "next_try_at"),
                      Index("ix_contact_attempts_account", "tenant", "account_id"),
                      Index("ix_contact_attempts_tenant_status", "tenant", "status", "created_at"),
                      Index("ix_contact_attempts_destination_key", "destination_key", "created_at"))

    contact_id: str = Field(primary_key=True, max_length=64)
    tenant: str
    account_id: str
    # the masked tail the lender shows the customer ("8842"); messages name the account only by it
    account_ref: str | None = None
    borrower_key: str | None = None
    customer_id: str
    channel: str
    template_id: str
    locale: str
    days_past_due: int
    overdue_minor: int = Field(sa_type=BigInteger)
    currency: str
    due_date: date
    destination_sealed: str | None = None
    # the destination as a keyed hash (shared/identity.py): finds whom a reply from a number concerns
    destination_key: str | None = None
    # sending -> dispatching -> sent -> delivered | failed; unknown; task_created (calls, visits)
    status: str
    tries: int = 0
    provider_ref: str | None = None
    # the SMS provider account it was sent through: only that account's receipts count for it
    provider_account: str | None = None
    detail: str | None = None
    # sending: when the dispatcher may (re)try it; sent (SMS): when the reconciler may next poll for it
    next_try_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                   nullable=False))
    dispatched_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class InboundMessage(SQLModel, table=True):
    """Replies from customers the provider delivered, once per provider message id (it may deliver one
    twice); only what we did with it is kept, never the number or the text."""

    __tablename__ = "inbound_messages"

    message_id: str = Field(primary_key=True, max_length=128)
    provider_account: str
    keyword: str | None = None  # the opt-out keyword it was, or None
    tenants: int = 0            # how many tenants it opted out from
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
