"""Repayment plans for partners and agents: agree, read, cancel."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.plans import service
from shared.audit import record_change
from shared.contracts.events import Currency, Ident
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require
from shared.money import from_minor

router = APIRouter(prefix="/v1/plans", tags=["plans"])
# who agrees and cancels plans: a partner's or core banking's integration, an agent, a supervisor
Writer = Annotated[Principal, require(Role.PARTNER, Role.AGENT, Role.SUPERVISOR)]


class PlanCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500, pattern=r"^[^\x00]*$",
                        description="Why the plan is cancelled (kept in the audit log)")


class InstalmentIn(BaseModel):
    due_date: date
    amount: str = Field(pattern=r"^-?[0-9]{1,16}(\.[0-9]{1,12})?$", max_length=30, examples=["500.00"],
                        description="Major units as a decimal string, e.g. \"500.00\"; never a JSON number")

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string_only(cls, value: Any) -> Any:
        # a JSON number may already have lost digits (0.1 + 0.2) in the sender's float
        if not isinstance(value, str):
            raise ValueError('send the amount as a decimal string, e.g. "500.00", not a JSON number')
        return value


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
    status: str = Field(description="due, partly_paid or paid")


class PlanPublic(BaseModel):
    plan_id: str
    account_id: str
    customer_id: str
    currency: str
    status: str = Field(description="agreed, pending_approval, rejected, cancelled, completed or broken")
    kind: str = Field(description="custom (POST /v1/plans) or the quote's offer: instalments, deferral, waiver or "
                                  "settlement")
    reason: str
    total: Decimal
    total_minor: int
    paid_minor: int
    written_off: Decimal = Field(description="What a waiver or settlement forgives once the plan is paid off")
    written_off_minor: int
    quote_id: str | None = Field(description="The quote the plan was agreed from (none for POST /v1/plans)")
    made_by: str | None = Field(description="The principal who agreed it from a quote (none for POST /v1/plans)")
    created_at: datetime
    instalments: list[InstalmentPublic]


def _public(view: service.PlanView) -> PlanPublic:
    plan = view.plan
    return PlanPublic(
        plan_id=plan.plan_id, account_id=plan.account_id, customer_id=plan.customer_id, currency=plan.currency,
        status=plan.status, kind=plan.kind, reason=plan.reason, total=from_minor(plan.total_minor, plan.currency),
        total_minor=plan.total_minor, paid_minor=plan.paid_minor,
        written_off=from_minor(plan.written_off_minor, plan.currency), written_off_minor=plan.written_off_minor,
        quote_id=plan.quote_id, made_by=plan.made_by, created_at=plan.created_at,  # type: ignore[arg-type]
        instalments=[InstalmentPublic(
            seq=i.seq, due_date=i.due_date, amount=from_minor(i.amount_minor, plan.currency),
            amount_minor=i.amount_minor, paid_minor=i.paid_minor,
            status=i.status)
            for i in view.instalments])


@router.post("", status_code=201, response_model=PlanPublic)
async def agree_plan(uow: UowDep, response: Response, principal: Writer, body: PlanCreate,
                     idempotency_key: str | None = Header(default=None, max_length=200)) -> PlanPublic:
    """Record an agreed plan and announce it; the scheduler pauses the account's treatment.

    Send an ``Idempotency-Key`` header to make retries safe: the same key returns the same plan (200); the
    same key with a different body is refused (422).

    The account must be one of yours whose overdue notice (``core.account-overdue.v1``) has reached plans,
    else 404 "Account not known to plans" (retry once the notice has arrived); the plan must be in the
    account's currency, else 422 "Currency mismatch"; and its total must cover what the account owes now
    (the notice's overdue amount less the payments booked after it), else 422 "Plan does not cover the
    overdue amount": a smaller plan would be a waiver, which is agreed from a quote's offer instead
    (``POST /v1/accounts/{account_id}/quotes``, then ``POST /v1/quotes/{quote_id}/agreements``).
    A refused request stores nothing.
    """
    view = await service.agree_plan(
        uow, tenant=principal.tenant, account_id=body.account_id, customer_id=body.customer_id,
        currency=body.currency, reason=body.reason,
        instalments=[(i.due_date, Decimal(i.amount)) for i in body.instalments],
        idempotency_key=idempotency_key, today=datetime.now(UTC).date(),
        request_hash=hashlib.sha256(body.model_dump_json().encode()).hexdigest())
    if not view.replayed:
        await record_change(uow, principal, action="plan.agree", subject=f"plan:{view.plan.plan_id}",
                            reason=body.reason or "plan agreed")
    await uow.commit()
    if view.replayed:
        response.status_code = 200
    return _public(view)


@router.get("", response_model=list[PlanPublic])
async def list_plans(session: SessionDep, tenant: TenantDep, account_id: str) -> list[PlanPublic]:
    """Plans of one of your accounts."""
    return [_public(v) for v in await service.plans_of_account(session, tenant=tenant, account_id=account_id)]


@router.get("/{plan_id}", response_model=PlanPublic)
async def get_plan(session: SessionDep, tenant: TenantDep, plan_id: str) -> PlanPublic:
    return _public(await service.get_plan(session, tenant=tenant, plan_id=plan_id))


@router.post("/{plan_id}/cancel", response_model=PlanPublic)
async def cancel_plan(uow: UowDep, principal: Writer, plan_id: str,
                      body: Annotated[PlanCancel | None, Body()] = None) -> PlanPublic:
    """Cancel an agreed plan (the scheduler resumes the account's treatment) or withdraw one pending approval.
    The body ``{"reason": "..."}`` is optional; the cancellation is audited with it."""
    view = await service.cancel_plan(uow, tenant=principal.tenant, plan_id=plan_id)
    await record_change(uow, principal, action="plan.cancel", subject=f"plan:{plan_id}",
                        reason=(body.reason if body else "") or "plan cancelled")
    await uow.commit()
    return _public(view)
