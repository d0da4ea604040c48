"""Plans' repository: plans, instalments, applied payments, the accounts' read model and the payments
kept for it. Adds and flushes, never commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.plans.db.models import (
    AccountPayment,
    AppliedPayment,
    Plan,
    PlanAccount,
    PlanAccountSegment,
    PlanInstalment,
)
from shared.db import keys_table, table_of

ACCOUNTS = table_of(PlanAccount)
PAYMENTS = table_of(AccountPayment)
SEGMENTS = table_of(PlanAccountSegment)
AccountKey = tuple[str, str]


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


async def lock_accounts(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, Any]:
    """The stored snapshots of these (tenant, account_id) keys, locked for this transaction (in key order,
    so two batches never wait on each other in a cycle)."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    rows = await session.execute(
        select(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id, ACCOUNTS.c.as_of, ACCOUNTS.c.due_date,
               ACCOUNTS.c.days_past_due, ACCOUNTS.c.overdue_minor)
        .join(wanted, and_(ACCOUNTS.c.tenant == wanted.c.tenant, ACCOUNTS.c.account_id == wanted.c.account_id))
        .order_by(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id).with_for_update(of=ACCOUNTS))
    return {(r.tenant, r.account_id): r for r in rows}


def _order(columns: Any) -> Any:
    return tuple_(columns.as_of, columns.due_date, columns.days_past_due, columns.overdue_minor)


async def save_accounts(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite whole snapshots, one executemany statement."""
    if not rows:
        return
    stmt = insert(ACCOUNTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("tenant", "account_id")} | {"updated_at": func.now()},
        # the service decided with the rows locked; this guard only keeps out an older snapshot inserted by a
        # concurrent batch after the lock found no row (the same order as domain/accounts.py SnapshotTime)
        where=_order(ACCOUNTS.c) < _order(stmt.excluded),
    ), list(rows))


async def record_payments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep payments (tenant, payment_id, account_id, amount_minor, currency, paid_at), each once; one
    executemany statement."""
    if rows:
        await session.execute(insert(PAYMENTS).on_conflict_do_nothing(index_elements=["tenant", "payment_id"]),
                              list(rows))


async def account(session: AsyncSession, *, tenant: str, account_id: str) -> Any | None:
    """The tenant's stored snapshot of the account, share-locked until the transaction ends: a newer
    snapshot waits for a plan being agreed against this one."""
    return (await session.execute(select(ACCOUNTS).where(ACCOUNTS.c.tenant == tenant,
                                                         ACCOUNTS.c.account_id == account_id)
                                  .with_for_update(read=True))).first()


async def payments_of_account(session: AsyncSession, *, tenant: str, account_id: str) -> list[Any]:
    """Every payment kept for the account (amount_minor, currency, paid_at)."""
    return list((await session.execute(
        select(PAYMENTS.c.amount_minor, PAYMENTS.c.currency, PAYMENTS.c.paid_at)
        .where(PAYMENTS.c.tenant == tenant, PAYMENTS.c.account_id == account_id))).all())


async def save_segments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite segments (tenant, account_id, segment, dpd_bucket, as_of) where newer; one statement."""
    if not rows:
        return
    stmt = insert(SEGMENTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in ("segment", "dpd_bucket", "as_of")},
        where=SEGMENTS.c.as_of < stmt.excluded.as_of), list(rows))


async def segment_of(session: AsyncSession, *, tenant: str, account_id: str) -> Any | None:
    """The account's newest segment row (segment, dpd_bucket, as_of), or None before segmentation's event."""
    return (await session.execute(select(SEGMENTS.c.segment, SEGMENTS.c.dpd_bucket, SEGMENTS.c.as_of).where(
        SEGMENTS.c.tenant == tenant, SEGMENTS.c.account_id == account_id))).first()
