"""Plans' repository: plans, instalments, applied payments. Adds and flushes, never commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.plans.db.models import AppliedPayment, Plan, PlanInstalment


async def get(session: AsyncSession, *, tenant: str, plan_id: str, lock: bool = False) -> Plan | None:
    query = select(Plan).where(Plan.plan_id == plan_id, Plan.tenant == tenant)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def instalments(session: AsyncSession, plan_id: str) -> list[PlanInstalment]:
    return list((await session.execute(select(PlanInstalment).where(PlanInstalment.plan_id == plan_id)  # type: ignore[arg-type]
                                       .order_by(PlanInstalment.seq))).scalars().all())  # type: ignore[arg-type]


async def by_idempotency_key(session: AsyncSession, *, tenant: str, key: str) -> str | None:
    return (await session.execute(select(Plan.plan_id).where(
        Plan.tenant == tenant, Plan.idempotency_key == key))).scalars().first()  # type: ignore[arg-type]


async def agreed_plan(session: AsyncSession, *, tenant: str, account_id: str, currency: str | None = None,
                      lock: bool = False) -> Plan | None:
    """The account's agreed plan (at most one: a partial unique index holds it)."""
    query = select(Plan).where(Plan.tenant == tenant, Plan.account_id == account_id,  # type: ignore[arg-type]
                               Plan.status == "agreed")  # type: ignore[arg-type]
    if currency is not None:
        query = query.where(Plan.currency == currency)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def plan_ids_of_account(session: AsyncSession, *, tenant: str, account_id: str) -> list[str]:
    return list((await session.execute(select(Plan.plan_id).where(
        Plan.tenant == tenant, Plan.account_id == account_id)  # type: ignore[arg-type]
        .order_by(Plan.created_at))).scalars().all())  # type: ignore[arg-type]


async def add_plan(session: AsyncSession, plan: Plan, schedule: list[PlanInstalment]) -> None:
    """Insert a plan and its instalments (raises IntegrityError on a duplicate key or a second agreed plan)."""
    session.add(plan)
    await session.flush()
    session.add_all(schedule)
    await session.flush()
    await session.refresh(plan)


async def record_payment(session: AsyncSession, *, tenant: str, payment_id: str, plan_id: str,
                         amount_minor: int) -> bool:
    """Remember a payment applied to a plan; False when it was already applied."""
    return (await session.execute(
        insert(AppliedPayment).values(tenant=tenant, payment_id=payment_id, plan_id=plan_id, amount_minor=amount_minor)
        .on_conflict_do_nothing().returning(AppliedPayment.payment_id))).first() is not None  # type: ignore[arg-type]
