"""Plans' use cases: agree, read and cancel plans; allocate payments to the agreed plan.

Statuses come from ``domain/states.py``; the schedule's checks and the allocation from
``domain/schedule.py``. Every change announces a PlanEvent (the scheduler pauses, resumes or stops).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from services.plans.db import repository as repo
from services.plans.db.models import Plan, PlanInstalment
from services.plans.domain.schedule import allocate, build_schedule
from services.plans.domain.states import (
    INSTALMENT,
    PLAN,
    InstalmentStatus,
    PlanEvent,
    PlanStatus,
    payment_event,
)
from shared.contracts import topics
from shared.contracts.events import Instalment, PaymentReceivedV1, PlanEventV1
from shared.domain import DomainError, NotFound
from shared.uow import UnitOfWork


class PlanConflict(DomainError):
    status = 409
    title = "Plan already agreed"


class IdempotencyKeyReused(DomainError):
    status = 422
    title = "Idempotency-Key reused"


class PlanNotActive(DomainError):
    status = 409
    title = "Plan not active"


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan with its schedule; ``replayed`` when an earlier request with the same Idempotency-Key made it."""

    plan: Plan
    instalments: list[PlanInstalment]
    replayed: bool = False


def _announce(uow: UnitOfWork, plan: Plan, instalments: list[PlanInstalment], kind: str) -> None:
    payload = PlanEventV1(
        tenant=plan.tenant, plan_id=plan.plan_id, account_id=plan.account_id, customer_id=plan.customer_id,
        kind=kind, currency=plan.currency, total_minor=plan.total_minor,  # type: ignore[arg-type]
        instalments=[Instalment(seq=i.seq, due_date=i.due_date, amount_minor=i.amount_minor) for i in instalments],
        occurred_at=datetime.now(UTC))
    uow.emit(topics.PLAN_EVENT, payload, subject=plan.plan_id)


async def _view(session: object, tenant: str, plan_id: str, *, lock: bool = False,
                replayed: bool = False) -> PlanView:
    plan = await repo.get(session, tenant=tenant, plan_id=plan_id, lock=lock)  # type: ignore[arg-type]
    if plan is None:
        raise NotFound(f"No plan {plan_id!r} in your tenant.")
    return PlanView(plan, await repo.instalments(session, plan_id), replayed)  # type: ignore[arg-type]


async def _replayed(uow: UnitOfWork, tenant: str, idempotency_key: str | None,
                    request_hash: str | None) -> PlanView | None:
    if not idempotency_key:
        return None
    existing = await repo.by_idempotency_key(uow.session, tenant=tenant, key=idempotency_key)
    if existing is None:
        return None
    view = await _view(uow.session, tenant, existing, replayed=True)
    if request_hash is not None and view.plan.request_hash not in (None, request_hash):
        raise IdempotencyKeyReused(f"Idempotency-Key {idempotency_key!r} was used for plan {existing} with another "
                                   "request; use a new key for a new request.")
    return view


async def agree_plan(uow: UnitOfWork, *, tenant: str, account_id: str, customer_id: str, currency: str,
                     reason: str, instalments: Sequence[tuple[date, Decimal]], idempotency_key: str | None,
                     today: date, request_hash: str | None = None) -> PlanView:
    """Record an agreed plan and announce it. The same Idempotency-Key returns the same plan, even after
    its first due date has passed (the key is looked up before the schedule is checked against today).
    An empty key is no key."""
    idempotency_key = idempotency_key or None
    if (replayed := await _replayed(uow, tenant, idempotency_key, request_hash)) is not None:
        return replayed
    schedule = build_schedule(list(instalments), currency=currency, today=today)
    active = await repo.agreed_plan(uow.session, tenant=tenant, account_id=account_id)
    if active is not None:
        raise PlanConflict(f"Account {account_id!r} already has plan {active.plan_id}; cancel it first.")
    plan = Plan(plan_id=str(uuid.uuid4()), tenant=tenant, account_id=account_id, customer_id=customer_id,
                currency=currency, total_minor=sum(s.amount_minor for s in schedule), status=PlanStatus.AGREED.value,
                reason=reason, idempotency_key=idempotency_key, request_hash=request_hash)
    rows = [PlanInstalment(plan_id=plan.plan_id, seq=s.seq, due_date=s.due_date, amount_minor=s.amount_minor)
            for s in schedule]
    try:
        async with uow.session.begin_nested():
            await repo.add_plan(uow.session, plan, rows)
    except IntegrityError as exc:
        # A concurrent request won the race: the same Idempotency-Key, or another plan for the account.
        if (replayed := await _replayed(uow, tenant, idempotency_key, request_hash)) is not None:
            return replayed
        raise PlanConflict(f"Account {account_id!r} already has an agreed plan; cancel it first.") from exc
    _announce(uow, plan, rows, "agreed")
    return PlanView(plan, rows)


async def cancel_plan(uow: UnitOfWork, *, tenant: str, plan_id: str) -> PlanView:
    """Cancel an agreed plan and announce it (the scheduler resumes the treatment)."""
    view = await _view(uow.session, tenant, plan_id, lock=True)
    status = PlanStatus(view.plan.status)
    if not PLAN.allows(status, PlanEvent.CANCEL):
        raise PlanNotActive(f"Plan {plan_id} is {status.value}; only agreed plans cancel.")
    view.plan.status = PLAN.apply(status, PlanEvent.CANCEL).value
    _announce(uow, view.plan, view.instalments, "cancelled")
    return view


async def get_plan(session: object, *, tenant: str, plan_id: str) -> PlanView:
    return await _view(session, tenant, plan_id)


async def plans_of_account(session: object, *, tenant: str, account_id: str) -> list[PlanView]:
    ids = await repo.plan_ids_of_account(session, tenant=tenant, account_id=account_id)  # type: ignore[arg-type]
    return [await _view(session, tenant, pid) for pid in ids]


async def apply_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Allocate each payment (once) to the account's agreed plan, oldest instalment first; paid off
    means completed."""
    # by account, keeping each account's own order: row locks are always taken in the same order
    for p in sorted(payments, key=lambda p: (p.tenant, p.account_id)):
        plan = await repo.agreed_plan(uow.session, tenant=p.tenant, account_id=p.account_id, currency=p.currency,
                                      lock=True)
        if plan is None:
            continue
        if not await repo.record_payment(uow.session, tenant=p.tenant, payment_id=p.payment_id,
                                         plan_id=plan.plan_id, amount_minor=p.amount_minor):
            continue
        schedule = await repo.instalments(uow.session, plan.plan_id)
        by_seq = {i.seq: i for i in schedule}
        for seq, applied in allocate(p.amount_minor, [(i.seq, i.amount_minor - i.paid_minor) for i in schedule]):
            instalment = by_seq[seq]
            event = payment_event(owed_minor=instalment.amount_minor - instalment.paid_minor, applied_minor=applied)
            instalment.status = INSTALMENT.apply(InstalmentStatus(instalment.status), event).value
            instalment.paid_minor += applied
        plan.paid_minor = min(plan.paid_minor + p.amount_minor, plan.total_minor)
        plan.updated_at = datetime.now(UTC)
        if plan.paid_minor >= plan.total_minor:
            plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.PAID_OFF).value
            _announce(uow, plan, schedule, "completed")
        await uow.session.flush()
