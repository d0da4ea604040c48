"""Scheduler's repository: reads and writes of treatments and steps. Adds and flushes, never commits,
and decides nothing: the statuses it stores come from ``domain/states.py`` through ``service.py``."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db.models import Treatment, TreatmentPayment, TreatmentStep
from shared.db import any_of, keys_table, table_of

TREATMENTS = table_of(Treatment)
STEPS = table_of(TreatmentStep)
PAYMENTS = table_of(TreatmentPayment)
AccountKey = tuple[str, str]


async def lock_treatments(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, Any]:
    """The stored treatments of these (tenant, account_id) keys, locked for this transaction."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    rows = await session.execute(
        select(TREATMENTS).join(wanted, and_(TREATMENTS.c.tenant == wanted.c.tenant,
                                             TREATMENTS.c.account_id == wanted.c.account_id))
        .order_by(TREATMENTS.c.tenant, TREATMENTS.c.account_id).with_for_update(of=TREATMENTS))
    return {(r.tenant, r.account_id): r for r in rows}


async def save_treatments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite whole treatments (one executemany statement for the batch)."""
    if not rows:
        return
    stmt = insert(TREATMENTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("tenant", "account_id")} | {"updated_at": func.now()},
    ), list(rows))


async def set_treatment_status(session: AsyncSession, *, tenant: str, account_id: str, status: str,
                               reason: str) -> None:
    await session.execute(update(TREATMENTS).where(TREATMENTS.c.tenant == tenant, TREATMENTS.c.account_id == account_id)
                          .values(status=status, status_reason=reason, updated_at=func.now()))


async def set_overdue(session: AsyncSession, *, tenant: str, account_id: str, overdue_minor: int) -> None:
    await session.execute(update(TREATMENTS).where(TREATMENTS.c.tenant == tenant, TREATMENTS.c.account_id == account_id)
                          .values(overdue_minor=overdue_minor, updated_at=func.now()))


async def lock_steps(session: AsyncSession, contact_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Stored steps by contact id, locked, as mutable dicts (a batch may touch a step twice)."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await session.execute(select(STEPS).where(any_of(STEPS.c.contact_id, ids))
                                 .order_by(STEPS.c.contact_id).with_for_update())
    return {r.contact_id: dict(r._mapping) for r in rows}


async def insert_steps(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert new steps; one another transaction inserted meanwhile is kept (a replay never doubles a step)."""
    if rows:
        await session.execute(insert(STEPS).on_conflict_do_nothing(index_elements=["contact_id"]), list(rows))


_UPDATE_STEP = (
    update(STEPS).where(STEPS.c.contact_id == bindparam("b_contact_id"))
    .values(status=bindparam("b_status"), attempt=bindparam("b_attempt"), due_at=bindparam("b_due_at"),
            overdue_minor=bindparam("b_overdue_minor"), days_past_due=bindparam("b_days_past_due"),
            last_reason=bindparam("b_last_reason"), updated_at=func.now())
)


async def update_steps(session: AsyncSession, steps: Sequence[Mapping[str, Any]]) -> None:
    """Store the new status (and attempt, due time, amounts, reason) of whole steps, one statement."""
    if steps:
        await session.execute(_UPDATE_STEP, [
            {"b_contact_id": s["contact_id"], "b_status": s["status"], "b_attempt": s["attempt"],
             "b_due_at": s["due_at"], "b_overdue_minor": s["overdue_minor"], "b_days_past_due": s["days_past_due"],
             "b_last_reason": s["last_reason"]} for s in steps])


async def cancel_steps(session: AsyncSession, *, tenant: str, account_id: str, statuses: Collection[str],
                       status: str, reason: str) -> None:
    """Move the account's steps in one of ``statuses`` (those the step machine lets cancel) to ``status``."""
    await session.execute(
        update(STEPS).where(STEPS.c.tenant == tenant, STEPS.c.account_id == account_id,
                            or_(*(STEPS.c.status == s for s in statuses)))
        .values(status=status, last_reason=reason, updated_at=func.now()))


async def record_payment(session: AsyncSession, *, tenant: str, payment_id: str, account_id: str,
                         amount_minor: int) -> bool:
    """Remember a payment; False when it was already counted (the same payment under another event id)."""
    inserted = (await session.execute(
        insert(PAYMENTS).on_conflict_do_nothing()
        .values(tenant=tenant, payment_id=payment_id, account_id=account_id, amount_minor=amount_minor)
        .returning(PAYMENTS.c.payment_id))).first()
    return inserted is not None


async def claim_due_steps(session: AsyncSession, *, limit: int) -> list[Any]:
    """Pending steps due now whose treatment is active, locked (SKIP LOCKED: replicas never share one),
    with the treatment's current overdue amount and DPD."""
    rows = await session.execute(
        select(TreatmentStep, Treatment.overdue_minor.label("current_overdue"),  # type: ignore[attr-defined]
               Treatment.days_past_due.label("current_dpd"))  # type: ignore[attr-defined]
        .join(Treatment, and_(Treatment.tenant == TreatmentStep.tenant,  # type: ignore[arg-type]
                              Treatment.account_id == TreatmentStep.account_id))  # type: ignore[arg-type]
        .where(TreatmentStep.status == "pending", TreatmentStep.due_at <= func.now(),  # type: ignore[arg-type]
               Treatment.status == "active")  # type: ignore[arg-type]
        .order_by(TreatmentStep.due_at)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(of=TreatmentStep, skip_locked=True))  # type: ignore[arg-type]
    return list(rows.all())


async def get_treatment(session: AsyncSession, *, tenant: str, account_id: str) -> Treatment | None:
    return await session.get(Treatment, (tenant, account_id))


async def list_steps(session: AsyncSession, *, tenant: str, account_id: str) -> list[TreatmentStep]:
    return list((await session.execute(
        select(TreatmentStep).where(TreatmentStep.tenant == tenant,  # type: ignore[arg-type]
                                    TreatmentStep.account_id == account_id)  # type: ignore[arg-type]
        .order_by(TreatmentStep.created_at))).scalars().all())  # type: ignore[arg-type]
