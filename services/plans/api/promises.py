"""Promises to pay over REST (docs/plans.md, "Promises to pay and monitoring"): an agent, a supervisor or a partner
system (a strategy step's caller) records a promise for an account, reads it, cancels it. Changes are audited
(``audit_log``: who, what, why) in their own transaction; reads take any role of the tenant."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, BeforeValidator, Field, field_validator

from services.plans import promises
from services.plans.api.routes import Writer
from services.plans.settings import Settings
from shared.audit import record_change
from shared.contracts.events import Currency
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep
from shared.http import ProblemError
from shared.money import from_minor, to_minor

router = APIRouter(prefix="/v1", tags=["promises to pay"])

_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
AccountId = Annotated[str, Path(min_length=1, max_length=128, pattern=_NO_CONTROL)]
PromiseId = Annotated[str, Path(min_length=1, max_length=64, pattern=_NO_CONTROL)]
# free text: tabs and line breaks allowed, no other control character (a NUL cannot be stored)
Text = Annotated[str, Field(max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
AGENT_ROLES = frozenset({Role.AGENT.value, Role.SUPERVISOR.value})
PARTNER_ROLES = frozenset({Role.PARTNER.value})


def _iso_date(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("give a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class PromiseCreate(BaseModel):
    amount: str = Field(pattern=r"^[0-9]{1,16}(\.[0-9]{1,12})?$", max_length=30, examples=["500.00"],
                        description="Major units as a decimal string, e.g. \"500.00\"; never a JSON number")
    currency: Currency = Field(description="The account's currency")
    due_on: IsoDate = Field(description="The customer's local day by the end of which the amount is promised: "
                                        "today up to PLANS_PROMISE_MAX_DAYS (30) ahead, in the account's time zone")
    reason: Text = ""
    source: Literal["agent", "strategy", "partner"] | None = Field(None, description=(
        "Who records it: `agent` (roles agent, supervisor), `strategy` or `partner` (role partner); by default "
        "`agent` for an agent's or supervisor's key, else `partner`."))

    @field_validator("amount", mode="before")
    @classmethod
    def _decimal_string_only(cls, value: Any) -> Any:
        # a JSON number may already have lost digits in the sender's float
        if not isinstance(value, str):
            raise ValueError('send the amount as a decimal string, e.g. "500.00", not a JSON number')
        return value


class PromiseCancel(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$")]


class PromisePublic(BaseModel):
    promise_id: str
    account_id: str
    customer_id: str
    status: str = Field(description="open, kept, partial, broken or cancelled")
    source: str
    currency: str
    amount: Decimal
    amount_minor: int
    paid: Decimal = Field(description="Payments counted towards it: booked since it was made, by its deadline")
    paid_minor: int
    due_on: date
    deadline: datetime = Field(description="The end of due_on plus the grace days in the account's time zone")
    made_at: datetime
    made_by: str
    reason: str
    cancelled_by: str | None
    cancel_reason: str | None
    decided_at: datetime | None


def _public(view: promises.PromiseView) -> PromisePublic:
    return PromisePublic(
        promise_id=view.promise_id, account_id=view.account_id, customer_id=view.customer_id, status=view.status,
        source=view.source, currency=view.currency, amount=from_minor(view.amount_minor, view.currency),
        amount_minor=view.amount_minor, paid=from_minor(view.paid_minor, view.currency), paid_minor=view.paid_minor,
        due_on=view.due_on, deadline=view.deadline, made_at=view.made_at, made_by=view.made_by, reason=view.reason,
        cancelled_by=view.cancelled_by, cancel_reason=view.cancel_reason, decided_at=view.decided_at)


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _source(principal: Principal, asked: str | None) -> str:
    """The promise's source: as asked when the principal's roles allow it, else by its roles."""
    if asked is None:
        return "agent" if principal.has_any(AGENT_ROLES) else "partner"
    needed = AGENT_ROLES if asked == "agent" else PARTNER_ROLES
    if not principal.has_any(needed):
        raise ProblemError(403, "Forbidden", f"A promise with source {asked!r} needs one of the roles "
                           f"{', '.join(sorted(needed))}; the principal {principal.name!r} of your API key has "
                           f"{', '.join(sorted(principal.roles)) or 'none'}.")
    return asked


@router.post("/accounts/{account_id}/promises", status_code=201, response_model=PromisePublic)
async def make_promise(uow: UowDep, principal: Writer, request: Request, account_id: AccountId,
                       body: PromiseCreate) -> PromisePublic:
    """Record a promise to pay for one of your accounts and announce it (plans.promise-event.v1 `open`).

    404 when the account's overdue notice has not reached plans (or it is not yours); 422 "Promise refused",
    with every reason, for an amount not positive or finer than the currency allows, another currency than the
    account's, or a day before today or more than PLANS_PROMISE_MAX_DAYS ahead; 409 when the account already has
    an open promise. A refused request stores nothing."""
    settings = _settings(request)
    source = _source(principal, body.source)
    amount_error = None
    try:
        amount_minor = to_minor(Decimal(body.amount), body.currency)
    except ValueError as exc:  # refused with the other reasons, once the account is found
        amount_minor, amount_error = 0, str(exc)
    view = await promises.make_promise(
        uow, tenant=principal.tenant, account_id=account_id, amount_minor=amount_minor, currency=body.currency,
        due_on=body.due_on, source=source, made_by=principal.name, now=datetime.now(UTC), reason=body.reason,
        grace_days=settings.promise_grace_days, max_days=settings.promise_max_days, amount_error=amount_error)
    await record_change(uow, principal, action="promise.make", subject=f"promise:{view.promise_id}",
                        reason=body.reason or "promise to pay recorded")
    await uow.commit()
    return _public(view)


@router.get("/accounts/{account_id}/promises", response_model=list[PromisePublic])
async def promises_of_account(session: SessionDep, tenant: TenantDep, account_id: AccountId) -> list[PromisePublic]:
    """The promises of one of your accounts, newest first (404 for an account plans does not know for you)."""
    return [_public(v) for v in await promises.promises_of_account(session, tenant=tenant, account_id=account_id)]


@router.get("/promises/{promise_id}", response_model=PromisePublic)
async def get_promise(session: SessionDep, tenant: TenantDep, promise_id: PromiseId) -> PromisePublic:
    return _public(await promises.get_promise(session, tenant=tenant, promise_id=promise_id))


@router.post("/promises/{promise_id}/cancel", response_model=PromisePublic)
async def cancel_promise(uow: UowDep, principal: Writer, promise_id: PromiseId, body: PromiseCancel) -> PromisePublic:
    """Cancel an open promise (409 once it is kept, partial, broken or cancelled) and announce it."""
    view = await promises.cancel_promise(uow, tenant=principal.tenant, promise_id=promise_id, reason=body.reason,
                                         cancelled_by=principal.name, now=datetime.now(UTC))
    await record_change(uow, principal, action="promise.cancel", subject=f"promise:{view.promise_id}",
                        reason=body.reason)
    await uow.commit()
    return _public(view)
