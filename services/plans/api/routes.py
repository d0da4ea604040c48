"""Repayment plans for partners and agents: agree, read, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.plans.consumers.handlers import plan_event
from services.plans.db.models import Plan, PlanInstalment
from services.plans.domain.schedule import PlanError, build_schedule
from shared.contracts.events import Currency, Ident
from shared.http import ProblemError, TenantDep
from shared.messaging import add_to_outbox
from shared.money import from_minor
from shared.service import runtime_of

router = APIRouter(prefix="/v1/plans", tags=["plans"])


class InstalmentIn(BaseModel):
    due_date: date
    amount: Decimal = Field(max_digits=16, description="Major units as a decimal string, e.g. \"500.00\"")


class PlanCreate(BaseModel):
    account_id: Ident
    customer_id: Ident
    currency: Currency
    reason: str = Field(default="", max_length=500)
    instalments: list[InstalmentIn] = Field(min_length=1)


class InstalmentPublic(BaseModel):
    seq: int
    due_date: date
    amount: Decimal
    amount_minor: int
    paid_minor: int


class PlanPublic(BaseModel):
    plan_id: str
    account_id: str
    customer_id: str
    currency: str
    status: str
    reason: str
    total: Decimal
    total_minor: int
    paid_minor: int
    created_at: datetime
    instalments: list[InstalmentPublic]


def _public(plan: Plan, instalments: list[PlanInstalment]) -> PlanPublic:
    return PlanPublic(
        plan_id=plan.plan_id, account_id=plan.account_id, customer_id=plan.customer_id, currency=plan.currency,
        status=plan.status, reason=plan.reason, total=from_minor(plan.total_minor, plan.currency),
        total_minor=plan.total_minor, paid_minor=plan.paid_minor, created_at=plan.created_at,
        instalments=[InstalmentPublic(seq=i.seq, due_date=i.due_date, amount=from_minor(i.amount_minor, plan.currency),
                                      amount_minor=i.amount_minor, paid_minor=i.paid_minor) for i in instalments])


async def _load(session, tenant: str, plan_id: str, *, lock: bool = False) -> tuple[Plan, list[PlanInstalment]]:  # type: ignore[no-untyped-def]
    query = select(Plan).where(Plan.plan_id == plan_id, Plan.tenant == tenant)  # type: ignore[arg-type]
    plan = (await session.execute(query.with_for_update() if lock else query)).scalars().first()
    if plan is None:
        raise ProblemError(404, "Not found", f"No plan {plan_id!r} in your tenant.")
    instalments = (await session.execute(select(PlanInstalment).where(PlanInstalment.plan_id == plan_id)  # type: ignore[arg-type]
                                         .order_by(PlanInstalment.seq))).scalars().all()  # type: ignore[arg-type]
    return plan, list(instalments)


@router.post("", status_code=201, response_model=PlanPublic)
async def agree_plan(request: Request, response: Response, tenant: TenantDep, body: PlanCreate,
                     idempotency_key: str | None = Header(default=None, max_length=200)) -> PlanPublic:
    """Record an agreed plan and announce it; the scheduler pauses the account's treatment.

    Send an ``Idempotency-Key`` header to make retries safe: the same key returns the same plan.
    """
    runtime = runtime_of(request.app)
    try:
        return await _agree(runtime, response, tenant, body, idempotency_key)
    except IntegrityError as exc:
        # A concurrent request won the race: the same Idempotency-Key, or another plan for the account.
        async with runtime.sessions() as session:
            if (replayed := await _replayed(session, response, tenant, idempotency_key)) is not None:
                return replayed
        raise ProblemError(409, "Plan already agreed",
                           f"Account {body.account_id!r} already has an agreed plan; cancel it first.") from exc


async def _replayed(session, response: Response, tenant: str,  # type: ignore[no-untyped-def]
                    idempotency_key: str | None) -> PlanPublic | None:
    """The plan an earlier request with this Idempotency-Key created (answered with 200), if any."""
    if not idempotency_key:
        return None
    existing = (await session.execute(select(Plan.plan_id).where(
        Plan.tenant == tenant, Plan.idempotency_key == idempotency_key))).scalars().first()  # type: ignore[arg-type]
    if existing is None:
        return None
    response.status_code = 200
    return _public(*await _load(session, tenant, existing))


async def _agree(runtime, response: Response, tenant: str, body: PlanCreate,  # type: ignore[no-untyped-def]
                 idempotency_key: str | None) -> PlanPublic:
    try:
        schedule = build_schedule([(i.due_date, i.amount) for i in body.instalments], currency=body.currency,
                                  today=datetime.now(UTC).date())
    except PlanError as exc:
        raise ProblemError(422, "Plan not acceptable", str(exc)) from exc
    async with runtime.sessions() as session, session.begin():
        if (replayed := await _replayed(session, response, tenant, idempotency_key)) is not None:
            return replayed
        active = (await session.execute(select(Plan.plan_id).where(
            Plan.tenant == tenant, Plan.account_id == body.account_id, Plan.status == "agreed"))).scalars().first()  # type: ignore[arg-type]
        if active is not None:
            raise ProblemError(409, "Plan already agreed",
                               f"Account {body.account_id!r} already has plan {active}; cancel it first.")
        plan = Plan(plan_id=str(uuid.uuid4()), tenant=tenant, account_id=body.account_id,
                    customer_id=body.customer_id, currency=body.currency,
                    total_minor=sum(s.amount_minor for s in schedule),
                    status="agreed", reason=body.reason, idempotency_key=idempotency_key)
        instalments = [PlanInstalment(plan_id=plan.plan_id, seq=s.seq, due_date=s.due_date,
                                      amount_minor=s.amount_minor) for s in schedule]
        session.add(plan)
        await session.flush()
        session.add_all(instalments)
        await add_to_outbox(session, [plan_event(plan, instalments, "agreed")])  # type: ignore[list-item]
        await session.flush()
        await session.refresh(plan)
    runtime.relay.wake()
    return _public(plan, instalments)


@router.get("", response_model=list[PlanPublic])
async def list_plans(request: Request, tenant: TenantDep, account_id: str) -> list[PlanPublic]:
    """Plans of one of your accounts."""
    async with runtime_of(request.app).sessions() as session:
        ids = (await session.execute(select(Plan.plan_id).where(
            Plan.tenant == tenant, Plan.account_id == account_id)  # type: ignore[arg-type]
            .order_by(Plan.created_at))).scalars().all()  # type: ignore[arg-type]
        return [_public(*await _load(session, tenant, pid)) for pid in ids]


@router.get("/{plan_id}", response_model=PlanPublic)
async def get_plan(request: Request, tenant: TenantDep, plan_id: str) -> PlanPublic:
    async with runtime_of(request.app).sessions() as session:
        return _public(*await _load(session, tenant, plan_id))


@router.post("/{plan_id}/cancel", response_model=PlanPublic)
async def cancel_plan(request: Request, tenant: TenantDep, plan_id: str) -> PlanPublic:
    """Cancel an agreed plan; the scheduler resumes the account's treatment."""
    runtime = runtime_of(request.app)
    async with runtime.sessions() as session, session.begin():
        plan, instalments = await _load(session, tenant, plan_id, lock=True)
        if plan.status != "agreed":
            raise ProblemError(409, "Plan not active", f"Plan {plan_id} is {plan.status}; only agreed plans cancel.")
        plan.status = "cancelled"
        await add_to_outbox(session, [plan_event(plan, instalments, "cancelled")])  # type: ignore[list-item]
    runtime.relay.wake()
    return _public(plan, instalments)
