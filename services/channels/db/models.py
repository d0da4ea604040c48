"""Channels' contact attempts (a row exists, 'sending', before any provider is called), the holds channels
has heard of, and what tenants publish for their messages: their branding and their template versions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, func
from sqlmodel import Field, SQLModel

from shared.audit import AuditEntry  # noqa: F401 - the audit log of REST changes (migration 0006), a table of ours


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
    # when compliance approved it (the approval's envelope time); a hold in force at any instant since then
    # revokes it before it is sent. None for rows recorded before it was kept: created_at stands in
    approved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
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


class KnownHold(SQLModel, table=True):
    """A hold on automated contact compliance announced (``compliance.hold-changed.v1``), as channels last
    heard of it: its newest fact by ``occurred_at`` wins (``state``, ``state_at``; at the same instant a lift
    wins), whatever the order the facts arrive in. It is in force from ``starts_at`` until ``ends_at`` or its
    lift, whichever comes first; an attempt approved before or during that span and not yet sent is revoked
    (``service.py``)."""

    __tablename__ = "known_holds"
    __table_args__ = (Index("ix_known_holds_account", "tenant", "account_id"),
                      Index("ix_known_holds_customer", "tenant", "customer_id"))

    tenant: str = Field(primary_key=True)
    hold_id: str = Field(primary_key=True, max_length=128)
    customer_id: str
    account_id: str | None = None  # None: every account of the customer
    kind: str
    reason: str  # the reason it was placed (the lift's only while the placement is not known)
    starts_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    ends_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    state: str  # placed | lifted: the newest fact's action
    state_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))  # its occurred_at
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  onupdate=func.now(), nullable=False))


class ChannelBranding(SQLModel, table=True):
    """One version of a tenant's branding (``PUT /v1/branding``): immutable, the newest applies."""

    __tablename__ = "channel_brandings"

    tenant: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    lender_zh: str   # the lender's name for zh-CN customers (and the 【...】 signature of their SMS)
    lender_en: str   # for en customers
    help_line: str   # E.164, or a service short number's digits
    complaint_line: str | None = None
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


class ChannelTemplateVersion(SQLModel, table=True):
    """One version of a tenant's own wording of a template in a locale (``POST /v1/templates/{id}/versions``),
    linted when published: immutable, the newest applies to that tenant's messages of that template and locale."""

    __tablename__ = "channel_template_versions"

    tenant: str = Field(primary_key=True)
    template_id: str = Field(primary_key=True, max_length=64)
    locale: str = Field(primary_key=True, max_length=16)
    version: int = Field(primary_key=True)
    channel: str
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str
    reason: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))
