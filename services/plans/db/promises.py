"""Promises to pay (table ``plan_promises``, migration 0008) and the claims of plans' monitor: promises whose
deadline passed while open, agreed plans with an instalment unpaid since a given day. Adds and flushes, never
commits."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, func, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from services.plans.db.models import Plan, PlanAccount, PlanInstalment
from shared.db import table_of

ACCOUNTS = table_of(PlanAccount)
COUNTING = ("open", "partial", "broken", "kept")  # statuses payments booked in time still count towards


class PlanPromise(SQLModel, table=True):
    """A promise to pay: this amount, in the account's currency, by the end of ``due_on`` in the account's time
    zone plus ``grace_days`` (``deadline``, fixed when it is made). ``status`` from domain/promises.py PROMISE."""

    __tablename__ = "plan_promises"
    __table_args__ = (Index("ix_plan_promises_account", "tenant", "account_id"),
                      # at most one open promise per account, even under concurrent requests
                      Index("uq_plan_promises_one_open", "tenant", "account_id", unique=True,
                            postgresql_where=text("status = 'open'")),
                      Index("ix_plan_promises_due", "deadline", postgresql_where=text("status = 'open'")))

    promise_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    account_id: str = Field(max_length=128)
    customer_id: str = Field(max_length=128)
    currency: str = Field(max_length=3)
    amount_minor: int = Field(sa_type=BigInteger)
    paid_minor: int = Field(default=0, sa_type=BigInteger)  # counted towards it so far (in time, since made)
    due_on: date
    grace_days: int
    time_zone: str = Field(max_length=64)
    deadline: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    made_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    status: str = Field(max_length=16)  # open | kept | partial | broken | cancelled
    source: str = Field(max_length=16)  # agent | portal | strategy | partner
    made_by: str = Field(max_length=128)
    reason: str = Field(default="", max_length=500)
    cancelled_by: str | None = Field(default=None, max_length=128)
    cancel_reason: str | None = Field(default=None, max_length=500)
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    updated_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False))


PROMISES = table_of(PlanPromise)


async def add(session: AsyncSession, promise: PlanPromise) -> None:
    """Insert a promise (raises IntegrityError when the account already has an open one)."""
    session.add(promise)
    await session.flush()


async def get(session: AsyncSession, *, tenant: str, promise_id: str, lock: bool = False) -> PlanPromise | None:
    query = select(PlanPromise).where(PlanPromise.tenant == tenant,  # type: ignore[arg-type]
                                      PlanPromise.promise_id == promise_id)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def of_account(session: AsyncSession, *, tenant: str, account_id: str) -> list[PlanPromise]:
    """The account's promises, newest first."""
    return list((await session.execute(select(PlanPromise).where(
        PlanPromise.tenant == tenant, PlanPromise.account_id == account_id)  # type: ignore[arg-type]
        .order_by(PROMISES.c.made_at.desc(), PROMISES.c.promise_id))).scalars().all())


async def open_of_account(session: AsyncSession, *, tenant: str, account_id: str) -> PlanPromise | None:
    return (await session.execute(select(PlanPromise).where(
        PlanPromise.tenant == tenant, PlanPromise.account_id == account_id,  # type: ignore[arg-type]
        PlanPromise.status == "open"))).scalars().first()  # type: ignore[arg-type]


async def lock_counting(session: AsyncSession, keys: Collection[tuple[str, str]], *,
                         booked_from: datetime) -> list[PlanPromise]:
    """These accounts' promises a payment booked at or after ``booked_from`` may still count towards (any but
    cancelled, deadline after it: a decided one may move on, a kept one count more), locked in (tenant, account,
    id) order: batches never wait in a cycle."""
    if not keys:
        return []
    return list((await session.execute(
        select(PlanPromise).where(tuple_(PlanPromise.tenant, PlanPromise.account_id).in_(list(keys)),
                                  PlanPromise.status.in_(COUNTING),  # type: ignore[attr-defined]
                                  PROMISES.c.deadline > booked_from)
        .order_by(PROMISES.c.tenant, PROMISES.c.account_id, PROMISES.c.promise_id)
        .with_for_update())).scalars().all())


async def claim_due(session: AsyncSession, *, now: datetime, limit: int) -> list[PlanPromise]:
    """Open promises whose deadline passed, oldest deadline first, locked (SKIP LOCKED: replicas and a payment
    being applied never wait for each other; a skipped one is claimed on a later tick)."""
    return list((await session.execute(
        select(PlanPromise).where(PlanPromise.status == "open",  # type: ignore[arg-type]
                                  PROMISES.c.deadline <= now)
        .order_by(PROMISES.c.deadline, PROMISES.c.promise_id).limit(limit)
        .with_for_update(skip_locked=True))).scalars().all())


async def claim_missed_plans(session: AsyncSession, *, unpaid_due_by: date, limit: int,
                             skip: Collection[str] = ()) -> list[Any]:
    """Agreed plans with an instalment unpaid and due on or before ``unpaid_due_by``, but those in ``skip``: each
    row the plan (``Plan``), its earliest unpaid due date (``earliest``) and the account's time zone
    (``time_zone``, None when unknown); earliest first, locked (SKIP LOCKED: a plan a payment is being allocated
    to is claimed on a later tick)."""
    earliest = (select(func.min(PlanInstalment.due_date))
                .where(PlanInstalment.plan_id == Plan.plan_id,  # type: ignore[arg-type]
                       PlanInstalment.status != "paid")  # type: ignore[arg-type]
                .scalar_subquery())
    time_zone = (select(ACCOUNTS.c.contact["time_zone"].astext)
                 .where(ACCOUNTS.c.tenant == Plan.tenant, ACCOUNTS.c.account_id == Plan.account_id)
                 .scalar_subquery())
    return list((await session.execute(
        select(Plan, earliest.label("earliest"), time_zone.label("time_zone"))
        .where(Plan.status == "agreed", earliest <= unpaid_due_by,  # type: ignore[arg-type]
               Plan.plan_id.not_in(list(skip)))  # type: ignore[attr-defined]
        .order_by(earliest, Plan.plan_id).limit(limit)
        .with_for_update(of=Plan, skip_locked=True))).all())  # type: ignore[arg-type]
