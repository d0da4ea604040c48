"""Co-lending's and webhooks' tables (migration 0009): each payment's split between the account's lenders, the
partners' webhook subscriptions and their deliveries. Repositories add and flush, never commit."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, and_, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from services.plans.db.repository import ACCOUNTS, PAYMENTS
from shared.db import keys_table, table_of


class PaymentSplit(SQLModel, table=True):
    """A payment that has been split (once): its account, amount and when it was booked."""

    __tablename__ = "payment_splits"
    __table_args__ = (Index("ix_payment_splits_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)  # the servicer
    payment_id: str = Field(primary_key=True, max_length=128)
    account_id: str = Field(max_length=128)
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=BigInteger)
    paid_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    split_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))


class PaymentSplitPart(SQLModel, table=True):
    """One lender's part of a split payment, with the share it was split by."""

    __tablename__ = "payment_split_parts"
    __table_args__ = (Index("ix_payment_split_parts_account", "tenant", "account_id"),)

    tenant: str = Field(primary_key=True, max_length=64)  # the servicer
    payment_id: str = Field(primary_key=True, max_length=128)
    lender: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(max_length=128)
    share_bp: int
    amount_minor: int = Field(sa_type=BigInteger)


class WebhookSubscription(SQLModel, table=True):
    """A partner's endpoint for plans' events: its URL, the topics it wants and its secret (sealed with the
    tenant as context); deleted ones are kept (``deleted_at``) so their delivery log stays explainable."""

    __tablename__ = "webhook_subscriptions"

    tenant: str = Field(primary_key=True, max_length=64)
    webhook_id: str = Field(primary_key=True, max_length=64)
    url: str = Field(sa_column=Column(Text, nullable=False))
    topics: list[str] = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))
    secret_sealed: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=128)
    created_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))
    updated_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))
    deleted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription, once (unique by subscription and event id), with its delivery log."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("uq_webhook_deliveries_event", "tenant", "webhook_id", "event_id", unique=True),
                      Index("ix_webhook_deliveries_due", "next_attempt_at",
                            postgresql_where=text("status = 'pending'")),
                      Index("ix_webhook_deliveries_log", "tenant", "webhook_id", "created_at"))

    delivery_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)  # the subscriber's
    webhook_id: str = Field(max_length=64)
    event_id: str = Field(max_length=200)
    topic: str = Field(max_length=128)
    body: str = Field(sa_column=Column(Text, nullable=False))  # the CloudEvent's JSON, exactly as sent
    status: str = Field(max_length=16)  # pending | delivered | failed | cancelled
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))


SPLITS = table_of(PaymentSplit)
PARTS = table_of(PaymentSplitPart)
SUBSCRIPTIONS = table_of(WebhookSubscription)
DELIVERIES = table_of(WebhookDelivery)


# ---- splits ----

async def claim_splits(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """Insert the heads of these splits (tenant, payment_id, account_id, currency, amount_minor, paid_at); the
    (tenant, payment_id) of those inserted now: a payment already split (or being split by a concurrent
    transaction, which this waits for) is not returned, so its parts are written once."""
    if not rows:
        return set()
    result = await session.execute(insert(SPLITS).values(list(rows)).on_conflict_do_nothing(
        index_elements=["tenant", "payment_id"]).returning(SPLITS.c.tenant, SPLITS.c.payment_id))
    return {(r.tenant, r.payment_id) for r in result}


async def add_parts(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(PARTS), list(rows))


async def unsplit_payments(session: AsyncSession, keys: Collection[tuple[str, str]]) -> list[Any]:
    """The kept payments (plans' ``account_payments``) of these (tenant, account_id) not split yet, in key order."""
    if not keys:
        return []
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    split_already = select(SPLITS.c.payment_id).where(SPLITS.c.tenant == PAYMENTS.c.tenant,
                                                      SPLITS.c.payment_id == PAYMENTS.c.payment_id).exists()
    return list((await session.execute(
        select(PAYMENTS.c.tenant, PAYMENTS.c.payment_id, PAYMENTS.c.account_id, PAYMENTS.c.amount_minor,
               PAYMENTS.c.currency, PAYMENTS.c.paid_at)
        .join(wanted, and_(PAYMENTS.c.tenant == wanted.c.tenant, PAYMENTS.c.account_id == wanted.c.account_id))
        .where(~split_already).order_by(PAYMENTS.c.tenant, PAYMENTS.c.payment_id))).all())


async def accounts_lenders(session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """(currency, co_lenders) of these known accounts, by (tenant, account_id)."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    rows = await session.execute(
        select(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id, ACCOUNTS.c.currency, ACCOUNTS.c.co_lenders)
        .join(wanted, and_(ACCOUNTS.c.tenant == wanted.c.tenant, ACCOUNTS.c.account_id == wanted.c.account_id)))
    return {(r.tenant, r.account_id): r for r in rows}


async def parts_of_account(session: AsyncSession, *, tenant: str, account_id: str) -> list[Any]:
    """Every lender's part of every split payment of the account, oldest payment first."""
    return list((await session.execute(
        select(SPLITS.c.payment_id, SPLITS.c.currency, SPLITS.c.amount_minor.label("payment_minor"),
               SPLITS.c.paid_at, PARTS.c.lender, PARTS.c.share_bp, PARTS.c.amount_minor)
        .join(PARTS, and_(PARTS.c.tenant == SPLITS.c.tenant, PARTS.c.payment_id == SPLITS.c.payment_id))
        .where(SPLITS.c.tenant == tenant, SPLITS.c.account_id == account_id)
        .order_by(SPLITS.c.paid_at, SPLITS.c.payment_id, PARTS.c.lender))).all())


async def co_lent_accounts(session: AsyncSession, *, lender: str, limit: int, after: tuple[str, str] | None
                           ) -> list[Any]:
    """Accounts whose co-lenders include ``lender``, by servicer and account id (keyset paging after ``after``)."""
    query = ("SELECT tenant, account_id, currency, overdue_minor, outstanding_minor, days_past_due, due_date, as_of, "
             "product, co_lenders FROM plan_accounts WHERE co_lenders @> CAST(:member AS jsonb) ")
    params: dict[str, Any] = {"member": json.dumps([{"tenant": lender}]), "limit": limit}
    if after is not None:
        query += "AND (tenant, account_id) > (:after_tenant, :after_account) "
        params |= {"after_tenant": after[0], "after_account": after[1]}
    return list((await session.execute(text(query + "ORDER BY tenant, account_id LIMIT :limit"), params)).all())


# ---- webhooks ----

async def subscription(session: AsyncSession, *, tenant: str, webhook_id: str, lock: bool = False) -> Any | None:
    query = select(WebhookSubscription).where(WebhookSubscription.tenant == tenant,  # type: ignore[arg-type]
                                              WebhookSubscription.webhook_id == webhook_id)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def subscriptions(session: AsyncSession, *, tenant: str) -> list[WebhookSubscription]:
    return list((await session.execute(select(WebhookSubscription).where(
        WebhookSubscription.tenant == tenant, WebhookSubscription.deleted_at.is_(None))  # type: ignore[arg-type,union-attr]
        .order_by(WebhookSubscription.webhook_id))).scalars().all())  # type: ignore[arg-type]


async def subscribers(session: AsyncSession, *, tenants: Collection[str], topic: str) -> list[Any]:
    """The live subscriptions of these tenants that want ``topic``."""
    if not tenants:
        return []
    return list((await session.execute(
        select(SUBSCRIPTIONS.c.tenant, SUBSCRIPTIONS.c.webhook_id).where(
            SUBSCRIPTIONS.c.tenant.in_(sorted(tenants)), SUBSCRIPTIONS.c.deleted_at.is_(None),
            SUBSCRIPTIONS.c.topics.contains([topic])))).all())


async def add_deliveries(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert deliveries; one per (subscription, event id): a repeated one is ignored."""
    if rows:
        await session.execute(insert(DELIVERIES).on_conflict_do_nothing(
            index_elements=["tenant", "webhook_id", "event_id"]), list(rows))


async def cancel_pending(session: AsyncSession, *, tenant: str, webhook_id: str) -> None:
    await session.execute(update(DELIVERIES).where(
        DELIVERIES.c.tenant == tenant, DELIVERIES.c.webhook_id == webhook_id, DELIVERIES.c.status == "pending")
        .values(status="cancelled", last_error="the subscription was deleted"))


async def deliveries_of(session: AsyncSession, *, tenant: str, webhook_id: str, limit: int) -> list[WebhookDelivery]:
    return list((await session.execute(select(WebhookDelivery).where(
        WebhookDelivery.tenant == tenant, WebhookDelivery.webhook_id == webhook_id)  # type: ignore[arg-type]
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.delivery_id)  # type: ignore[union-attr]
        .limit(limit))).scalars().all())


async def delivery(session: AsyncSession, *, tenant: str, delivery_id: str, lock: bool = False
                   ) -> WebhookDelivery | None:
    query = select(WebhookDelivery).where(WebhookDelivery.tenant == tenant,  # type: ignore[arg-type]
                                          WebhookDelivery.delivery_id == delivery_id)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def claim_due(session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int) -> list[Any]:
    """Claim pending deliveries due by ``now`` (``FOR UPDATE SKIP LOCKED``: replicas never claim the same one):
    count the attempt and push the next attempt to ``lease_until``, so a crash mid-attempt retries after the
    lease. Returns them with their subscription's url and sealed secret."""
    due = (select(DELIVERIES.c.delivery_id).where(DELIVERIES.c.status == "pending",
                                                  DELIVERIES.c.next_attempt_at <= now)
           .order_by(DELIVERIES.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True).cte("due"))
    claimed = (update(DELIVERIES).where(DELIVERIES.c.delivery_id.in_(select(due.c.delivery_id)))
               .values(attempts=DELIVERIES.c.attempts + 1, next_attempt_at=lease_until)
               .returning(DELIVERIES.c.delivery_id, DELIVERIES.c.tenant, DELIVERIES.c.webhook_id,
                          DELIVERIES.c.event_id, DELIVERIES.c.body, DELIVERIES.c.attempts).cte("claimed"))
    return list((await session.execute(
        select(claimed, SUBSCRIPTIONS.c.url, SUBSCRIPTIONS.c.secret_sealed)
        .join(SUBSCRIPTIONS, and_(SUBSCRIPTIONS.c.tenant == claimed.c.tenant,
                                  SUBSCRIPTIONS.c.webhook_id == claimed.c.webhook_id)))).all())


async def record_attempt(session: AsyncSession, *, delivery_id: str, attempts: int, values: Mapping[str, Any]
                         ) -> None:
    """Record an attempt's result, unless the delivery changed since it was claimed (a replay, a deletion)."""
    await session.execute(update(DELIVERIES).where(
        DELIVERIES.c.delivery_id == delivery_id, DELIVERIES.c.attempts == attempts,
        DELIVERIES.c.status == "pending").values(**values))
