"""Scheduler's repository: reads and writes of treatments and steps. Adds and flushes, never commits,
and decides nothing: the statuses it stores come from ``domain/states.py`` through ``service.py``."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ARRAY, Text, and_, any_, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db.models import (
    StepOutcome,
    Strategy,
    StrategyAssignment,
    Treatment,
    TreatmentComplaint,
    TreatmentPayment,
    TreatmentPlan,
    TreatmentPromise,
    TreatmentStep,
)
from shared.db import Versions, any_of, keys_table, table_of

TREATMENTS = table_of(Treatment)
STEPS = table_of(TreatmentStep)
PAYMENTS = table_of(TreatmentPayment)
PLANS = table_of(TreatmentPlan)
OUTCOMES = table_of(StepOutcome)
STRATEGIES = table_of(Strategy)
ASSIGNMENTS = table_of(StrategyAssignment)
COMPLAINTS = table_of(TreatmentComplaint)
PROMISES = table_of(TreatmentPromise)
AccountKey = tuple[str, str]


def _of_accounts(table: Any, keys: Collection[AccountKey]) -> Any:
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    return table.join(wanted, and_(table.c.tenant == wanted.c.tenant, table.c.account_id == wanted.c.account_id))


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


async def treatments_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, dict[str, Any]]:
    """The stored treatments of these keys, not locked (a reaction to an outcome reads them; the steps it makes
    are inserted once whatever runs beside it)."""
    if not keys:
        return {}
    rows = await session.execute(select(TREATMENTS).select_from(_of_accounts(TREATMENTS, keys)))
    return {(r.tenant, r.account_id): dict(r._mapping) for r in rows}


async def save_treatments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite whole treatments (one executemany statement for the batch)."""
    if not rows:
        return
    stmt = insert(TREATMENTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("tenant", "account_id")} | {"updated_at": func.now()},
    ), list(rows))


_SET_STANDING = (
    update(TREATMENTS).where(TREATMENTS.c.tenant == bindparam("b_tenant"),
                             TREATMENTS.c.account_id == bindparam("b_account_id"))
    .values(status=bindparam("b_status"), status_reason=bindparam("b_reason"),
            overdue_minor=bindparam("b_overdue_minor"), updated_at=func.now())
)


async def set_standings(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store the derived status, reason and amount overdue of whole treatments, one statement."""
    if rows:
        await session.execute(_SET_STANDING, [
            {"b_tenant": r["tenant"], "b_account_id": r["account_id"], "b_status": r["status"],
             "b_reason": r["status_reason"], "b_overdue_minor": r["overdue_minor"]} for r in rows])


async def payments_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, list[Any]]:
    """Every payment kept for these accounts (amount, currency, paid_at), by account."""
    found: dict[AccountKey, list[Any]] = {}
    if keys:
        rows = await session.execute(select(PAYMENTS.c.tenant, PAYMENTS.c.account_id, PAYMENTS.c.amount_minor,
                                            PAYMENTS.c.currency, PAYMENTS.c.paid_at)
                                     .select_from(_of_accounts(PAYMENTS, keys)))
        for r in rows:
            found.setdefault((r.tenant, r.account_id), []).append(r)
    return found


async def plans_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, list[Any]]:
    """The last word of every plan kept for these accounts (plan_id, kind), by account."""
    found: dict[AccountKey, list[Any]] = {}
    if keys:
        rows = await session.execute(select(PLANS.c.tenant, PLANS.c.account_id, PLANS.c.plan_id, PLANS.c.kind,
                                        PLANS.c.occurred_at)
                                     .select_from(_of_accounts(PLANS, keys)))
        for r in rows:
            found.setdefault((r.tenant, r.account_id), []).append(r)
    return found


async def lock_plans(session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The stored last word of these (tenant, plan_id), locked."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], plan_id=[p for _, p in keys])
    rows = await session.execute(
        select(PLANS).join(wanted, and_(PLANS.c.tenant == wanted.c.tenant, PLANS.c.plan_id == wanted.c.plan_id))
        .order_by(PLANS.c.tenant, PLANS.c.plan_id).with_for_update(of=PLANS))
    return {(r.tenant, r.plan_id): r for r in rows}


async def save_plans(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite plans' last words (the caller decided that each one supersedes)."""
    if rows:
        stmt = insert(PLANS)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant", "plan_id"],
            set_={"kind": stmt.excluded.kind, "occurred_at": stmt.excluded.occurred_at}), list(rows))


async def lock_outcomes(session: AsyncSession, contact_ids: Iterable[str]) -> dict[str, Any]:
    """The newest outcome kept for these contacts, locked."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await session.execute(select(OUTCOMES).where(any_of(OUTCOMES.c.contact_id, ids))
                                 .order_by(OUTCOMES.c.contact_id).with_for_update())
    return {r.contact_id: r for r in rows}


async def save_outcomes(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite contacts' newest outcomes (the caller decided that each one supersedes)."""
    if rows:
        stmt = insert(OUTCOMES)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["contact_id"],
            set_={"outcome": stmt.excluded.outcome, "occurred_at": stmt.excluded.occurred_at}), list(rows))


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
            last_reason=bindparam("b_last_reason"), outcome=bindparam("b_outcome"),
            outcome_at=bindparam("b_outcome_at"), updated_at=func.now())
)


async def update_steps(session: AsyncSession, steps: Sequence[Mapping[str, Any]]) -> None:
    """Store the new status (and attempt, due time, amounts, reason, outcome) of whole steps, one statement."""
    if steps:
        await session.execute(_UPDATE_STEP, [
            {"b_contact_id": s["contact_id"], "b_status": s["status"], "b_attempt": s["attempt"],
             "b_due_at": s["due_at"], "b_overdue_minor": s["overdue_minor"], "b_days_past_due": s["days_past_due"],
             "b_last_reason": s["last_reason"], "b_outcome": s["outcome"], "b_outcome_at": s["outcome_at"]}
            for s in steps])


_CANCEL_STEPS = (
    update(STEPS).where(STEPS.c.tenant == bindparam("b_tenant"), STEPS.c.account_id == bindparam("b_account_id"),
                        STEPS.c.status == any_(bindparam("b_statuses", type_=ARRAY(Text))))
    .values(status=bindparam("b_status"), last_reason=bindparam("b_reason"), updated_at=func.now())
)
_CANCEL_LISTED = (
    update(STEPS).where(STEPS.c.contact_id == bindparam("b_contact_id"),
                        STEPS.c.status == any_(bindparam("b_statuses", type_=ARRAY(Text))))
    .values(status=bindparam("b_status"), last_reason=bindparam("b_reason"), updated_at=func.now())
)


async def cancel_listed_steps(session: AsyncSession, steps: Sequence[tuple[str, str]], *,
                              statuses: Collection[str], status: str) -> None:
    """Move each of these steps (contact id, reason) that is in one of ``statuses`` to ``status``; one
    statement."""
    if steps:
        await session.execute(_CANCEL_LISTED, [
            {"b_contact_id": c, "b_statuses": list(statuses), "b_status": status, "b_reason": reason}
            for c, reason in steps])


async def cancel_steps(session: AsyncSession, accounts: Sequence[tuple[AccountKey, str]], *,
                       statuses: Collection[str], status: str) -> None:
    """Move each account's steps in one of ``statuses`` (those the step machine lets cancel) to ``status``,
    with that account's reason; one statement."""
    if accounts:
        await session.execute(_CANCEL_STEPS, [
            {"b_tenant": t, "b_account_id": a, "b_statuses": list(statuses), "b_status": status, "b_reason": reason}
            for (t, a), reason in accounts])


async def record_payments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """Keep payments once per (tenant, payment_id); returns those new here (a payment delivered under
    two event ids counts once)."""
    if not rows:
        return set()
    inserted = await session.execute(
        insert(PAYMENTS).on_conflict_do_nothing().returning(PAYMENTS.c.tenant, PAYMENTS.c.payment_id), list(rows))
    return {(r.tenant, r.payment_id) for r in inserted}


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


async def claim_stale_requests(session: AsyncSession, *, requested_before: Any, limit: int) -> list[Any]:
    """Steps requested before ``requested_before`` with no verdict since, of active treatments, locked
    (SKIP LOCKED: replicas never share one)."""
    rows = await session.execute(
        select(TreatmentStep)
        .join(Treatment, and_(Treatment.tenant == TreatmentStep.tenant,  # type: ignore[arg-type]
                              Treatment.account_id == TreatmentStep.account_id))  # type: ignore[arg-type]
        .where(TreatmentStep.status == "requested", TreatmentStep.due_at < requested_before,  # type: ignore[arg-type]
               Treatment.status == "active")  # type: ignore[arg-type]
        .order_by(TreatmentStep.due_at)  # type: ignore[arg-type]
        .limit(limit)
        .with_for_update(of=TreatmentStep, skip_locked=True))  # type: ignore[arg-type]
    return list(rows.scalars().all())


async def get_treatment(session: AsyncSession, *, tenant: str, account_id: str) -> Treatment | None:
    return await session.get(Treatment, (tenant, account_id))


async def list_steps(session: AsyncSession, *, tenant: str, account_id: str) -> list[TreatmentStep]:
    return list((await session.execute(
        select(TreatmentStep).where(TreatmentStep.tenant == tenant,  # type: ignore[arg-type]
                                    TreatmentStep.account_id == account_id)  # type: ignore[arg-type]
        .order_by(TreatmentStep.created_at))).scalars().all())  # type: ignore[arg-type]


STRATEGY_VERSIONS = Versions(STRATEGIES, "strategy", "name")
ASSIGNMENT_VERSIONS = Versions(ASSIGNMENTS, "assignment")


async def latest_strategy_version(session: AsyncSession, tenant: str, name: str, *, lock: bool = False) -> int:
    """The newest version of the tenant's strategy of this name (0: none); ``lock`` serialises its publishers."""
    return await STRATEGY_VERSIONS.latest(session, tenant, name, lock=lock)


async def add_strategy(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return await STRATEGY_VERSIONS.add(session, dict(values))


async def strategy_versions(session: AsyncSession, tenant: str, name: str | None, *, limit: int) -> list[Any]:
    """The tenant's published strategy versions (of one name, or all), newest first."""
    query = select(STRATEGIES).where(STRATEGIES.c.tenant == tenant)
    if name is not None:
        query = query.where(STRATEGIES.c.name == name)
    rows = await session.execute(query.order_by(STRATEGIES.c.created_at.desc(), STRATEGIES.c.name,
                                                STRATEGIES.c.version.desc()).limit(limit))
    return list(rows)


async def strategies_by_ref(session: AsyncSession, refs: Collection[tuple[str, str, int]]) -> list[Any]:
    """The published strategies of these (tenant, name, version)."""
    if not refs:
        return []
    wanted = keys_table(tenant=[t for t, _, _ in refs], name=[n for _, n, _ in refs],
                        version=[str(v) for _, _, v in refs])
    rows = await session.execute(select(STRATEGIES).join(wanted, and_(
        STRATEGIES.c.tenant == wanted.c.tenant, STRATEGIES.c.name == wanted.c.name,
        func.cast(STRATEGIES.c.version, Text) == wanted.c.version)))
    return list(rows)


async def latest_assignment_version(session: AsyncSession, tenant: str, *, lock: bool = False) -> int:
    return await ASSIGNMENT_VERSIONS.latest(session, tenant, lock=lock)


async def add_assignment(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return await ASSIGNMENT_VERSIONS.add(session, dict(values))


async def current_assignments(session: AsyncSession, tenants: Collection[str]) -> list[Any]:
    """The newest assignment of each of these tenants that has one."""
    return await ASSIGNMENT_VERSIONS.newest(session, tenants)


async def assignment_versions(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    return await ASSIGNMENT_VERSIONS.history(session, tenant, limit=limit)


async def add_complaints(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep complaint holds once per (tenant, hold_id)."""
    if rows:
        await session.execute(insert(COMPLAINTS).on_conflict_do_nothing(), list(rows))


async def experiment_steps(session: AsyncSession, tenant: str, experiment: str) -> list[Any]:
    """Every step planned in this experiment (account, arm, channel, status, outcome, when, overdue then)."""
    rows = await session.execute(
        select(STEPS.c.account_id, STEPS.c.customer_id, STEPS.c.arm, STEPS.c.channel, STEPS.c.status,
               STEPS.c.outcome, STEPS.c.created_at, STEPS.c.overdue_minor)
        .where(STEPS.c.tenant == tenant, STEPS.c.experiment == experiment)
        .order_by(STEPS.c.account_id, STEPS.c.created_at, STEPS.c.contact_id))
    return list(rows)


async def customer_complaints(session: AsyncSession, tenant: str, customer_ids: Sequence[str]) -> list[Any]:
    if not customer_ids:
        return []
    rows = await session.execute(select(COMPLAINTS.c.customer_id, COMPLAINTS.c.account_id, COMPLAINTS.c.placed_at)
                                 .where(COMPLAINTS.c.tenant == tenant, any_of(COMPLAINTS.c.customer_id, customer_ids)))
    return list(rows)


async def save_promises(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep promises once per (tenant, promise_id); a later report of the same promise replaces it (later, else
    larger, else due later: never the arrival order)."""
    if rows:
        stmt = insert(PROMISES)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant", "promise_id"],
            set_={c: stmt.excluded[c] for c in ("amount_minor", "currency", "due_on", "made_at", "grace_days",
                                                "cycle_due_date", "check_at")} | {"checked_at": None},
            where=tuple_(stmt.excluded.made_at, stmt.excluded.amount_minor, stmt.excluded.due_on)
            > tuple_(PROMISES.c.made_at, PROMISES.c.amount_minor, PROMISES.c.due_on)), list(rows))


async def save_plans_promises(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep promises recorded in plans as the caller decided (each row supersedes what is stored), one
    statement."""
    if rows:
        stmt = insert(PROMISES)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=["tenant", "promise_id"],
            set_={c: stmt.excluded[c] for c in ("amount_minor", "due_on", "made_at", "grace_days", "cycle_due_date",
                                                "check_at", "checked_at", "deadline", "verdict", "verdict_at")},
            # never moves a promise to another account or currency
            where=tuple_(PROMISES.c.account_id, PROMISES.c.currency)
            == tuple_(stmt.excluded.account_id, stmt.excluded.currency)), list(rows))


async def promises_by_id(session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The promises kept under these (tenant, promise_id), one statement."""
    if not keys:
        return {}
    rows = await session.execute(select(PROMISES).where(tuple_(PROMISES.c.tenant, PROMISES.c.promise_id)
                                                        .in_(sorted(keys))))
    return {(r.tenant, r.promise_id): r for r in rows}


async def promises_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, list[Any]]:
    """Every promise kept for these accounts, by account."""
    found: dict[AccountKey, list[Any]] = {}
    if keys:
        rows = await session.execute(select(PROMISES).select_from(_of_accounts(PROMISES, keys)))
        for r in rows:
            found.setdefault((r.tenant, r.account_id), []).append(r)
    return found


async def set_promise_checks(session: AsyncSession, rows: Sequence[tuple[str, str, Any]]) -> None:
    """Move these promises' timers (tenant, promise id, when), one statement."""
    if rows:
        await session.execute(update(PROMISES).where(
            PROMISES.c.tenant == bindparam("b_tenant"), PROMISES.c.promise_id == bindparam("b_promise_id"))
            .values(check_at=bindparam("b_check_at")),
            [{"b_tenant": t, "b_promise_id": p, "b_check_at": at} for t, p, at in rows])


async def accounts_with_due_promises(session: AsyncSession, *, limit: int) -> set[AccountKey]:
    """The accounts of promises whose deadline passed and that were not checked yet (not locked)."""
    rows = await session.execute(
        select(PROMISES.c.tenant, PROMISES.c.account_id).where(PROMISES.c.checked_at.is_(None),
                                                               PROMISES.c.check_at <= func.now())
        .order_by(PROMISES.c.check_at).limit(limit))
    return {(r.tenant, r.account_id) for r in rows}


async def claim_promise_checks(session: AsyncSession, keys: Collection[AccountKey], *, limit: int) -> list[Any]:
    """Those accounts' promises whose deadline passed and that were not checked yet, locked (SKIP LOCKED:
    replicas never share one)."""
    rows = await session.execute(
        select(PROMISES).select_from(_of_accounts(PROMISES, keys))
        .where(PROMISES.c.checked_at.is_(None), PROMISES.c.check_at <= func.now())
        .order_by(PROMISES.c.check_at).limit(limit).with_for_update(of=PROMISES, skip_locked=True))
    return list(rows)


async def mark_promises_checked(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> None:
    if keys:
        await session.execute(update(PROMISES).where(
            PROMISES.c.tenant == bindparam("b_tenant"), PROMISES.c.promise_id == bindparam("b_promise_id"))
            .values(checked_at=func.now()), [{"b_tenant": t, "b_promise_id": p} for t, p in keys])
