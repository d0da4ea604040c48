"""Negotiation over REST (docs/plans.md, "Negotiation"): the tenant's plan policy (strategist or compliance
publishes, versioned and audited), quotes of the offers it allows an account, agreements from a quote's offer, and
the approvals an agreement beyond its maker's authority waits for: a supervisor of the servicer, or a co-lender of
the account (``/v1/co-lending/{servicer}/plans/{plan_id}/approvals``, another tenant's principal). Thin: parse,
call ``services/plans/negotiation.py``, commit."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field, field_validator

from services.plans import negotiation, service
from services.plans.api.routes import InstalmentPublic, Writer
from shared.audit import record_change
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require
from shared.money import from_minor

router = APIRouter(prefix="/v1", tags=["negotiation"])

PolicyWriter = Annotated[Principal, require(Role.STRATEGIST, Role.COMPLIANCE)]
Maker = Writer  # who agrees plans with customers (api/routes.py)
Supervisor = Annotated[Principal, require(Role.SUPERVISOR)]
CoLender = Annotated[Principal, require(Role.SUPERVISOR, Role.PARTNER)]
_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
AccountId = Annotated[str, Path(min_length=1, max_length=128, pattern=_NO_CONTROL)]
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=_NO_CONTROL)]
TenantId = Annotated[str, Path(min_length=1, max_length=64, pattern=_NO_CONTROL)]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")]
REFUSED: dict[int | str, dict[str, Any]] = {422: {
    "description": "Invalid request, or the policy document refused: `detail` and `errors` give every reason; "
                   "nothing was stored"}}
DOCUMENT = ("A plan policy document: {\"rules\": [{\"name\", \"when\": {\"segment_in\", \"product_in\"}, \"offers\": "
            "{\"instalments\", \"deferral\", \"waiver\", \"settlement\"}, \"authority\": {\"agent\", "
            "\"co_lender_above_percent\"}, \"first_due_days\", \"affordability_percent\"}]} (docs/plans.md)")


def _money(value: Any) -> Any:
    # a JSON number may already have lost digits in the sender's float
    if value is not None and not isinstance(value, str):
        raise ValueError('send the amount as a decimal string, e.g. "8000.00", not a JSON number')
    return value


class PolicyIn(BaseModel):
    document: dict[str, Any] = Field(description=DOCUMENT)
    reason: Reason


class PolicyOut(BaseModel):
    version: int = Field(description="0: the built-in default (nothing published)")
    document: dict[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None


class QuoteIn(BaseModel):
    income: str | None = Field(None, pattern=r"^[0-9]{1,16}(\.[0-9]{1,12})?$", max_length=30, examples=["8000.00"],
                               description="The customer's monthly income in the account's currency, a decimal "
                                           "string; null: not known (affordability unknown)")
    expenses: str | None = Field(None, pattern=r"^[0-9]{1,16}(\.[0-9]{1,12})?$", max_length=30,
                                 examples=["5000.00"], description="The customer's monthly expenses, likewise")

    _strings = field_validator("income", "expenses", mode="before")(_money)


class ScheduledPublic(BaseModel):
    seq: int
    due_date: date
    amount: Decimal
    amount_minor: int


class OfferPublic(BaseModel):
    offer_id: str
    kind: Literal["instalments", "deferral", "waiver", "settlement"]
    schedule: list[ScheduledPublic]
    total: Decimal
    total_minor: int
    written_off: Decimal
    written_off_minor: int
    affordable: bool | None = Field(description="The largest instalment within the policy's share of the monthly "
                                                "disposable income; null without income and expenses")
    approvals_required: list[str] = Field(description="supervisor, co_lender:<tenant>; empty: an agent may agree it")


class QuotePublic(BaseModel):
    quote_id: str
    account_id: str
    currency: str
    policy_version: int
    rule: str
    overdue: Decimal
    outstanding: Decimal
    created_at: datetime | None
    expires_at: datetime
    plan_id: str | None = Field(description="The plan agreed from it (a quote is used once)")
    offers: list[OfferPublic]


class AgreementIn(BaseModel):
    offer_id: str = Field(min_length=1, max_length=64, pattern=_NO_CONTROL)
    reason: Reason


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: Reason


class ApprovalPublic(BaseModel):
    step: str = Field(description="supervisor or co_lender:<tenant>")
    status: str = Field(description="pending, approved or rejected")
    decided_by: str | None
    decided_tenant: str | None
    reason: str | None
    decided_at: datetime | None


class AgreementPublic(BaseModel):
    plan_id: str
    account_id: str
    customer_id: str
    currency: str
    status: str = Field(description="agreed, pending_approval, rejected, cancelled, completed, broken")
    kind: str
    quote_id: str | None
    offer_id: str | None
    made_by: str | None
    reason: str
    total: Decimal
    total_minor: int
    written_off: Decimal
    written_off_minor: int
    paid_minor: int
    instalments: list[InstalmentPublic]
    approvals: list[ApprovalPublic]


def _policy(view: negotiation.PolicyView) -> PolicyOut:
    return PolicyOut(version=view.version, document=dict(view.document), created_by=view.created_by,
                     reason=view.reason, created_at=view.created_at)


def _quote(q: negotiation.QuoteView) -> QuotePublic:
    c = q.currency
    return QuotePublic(
        quote_id=q.quote_id, account_id=q.account_id, currency=c, policy_version=q.policy_version, rule=q.rule,
        overdue=from_minor(q.overdue_minor, c), outstanding=from_minor(q.outstanding_minor, c),
        created_at=q.created_at, expires_at=q.expires_at, plan_id=q.plan_id,
        offers=[OfferPublic(
            offer_id=o.offer_id, kind=o.kind,  # type: ignore[arg-type]
            schedule=[ScheduledPublic(seq=s, due_date=d, amount=from_minor(a, c), amount_minor=a)
                      for s, d, a in o.schedule],
            total=from_minor(o.total_minor, c), total_minor=o.total_minor,
            written_off=from_minor(o.written_off_minor, c), written_off_minor=o.written_off_minor,
            affordable=o.affordable, approvals_required=o.approvals_required) for o in q.offers])


def _agreement(view: service.PlanView, approvals: list[negotiation.ApprovalView]) -> AgreementPublic:
    p, c = view.plan, view.plan.currency
    return AgreementPublic(
        plan_id=p.plan_id, account_id=p.account_id, customer_id=p.customer_id, currency=c, status=p.status,
        kind=p.kind, quote_id=p.quote_id, offer_id=p.offer_id, made_by=p.made_by, reason=p.reason,
        total=from_minor(p.total_minor, c), total_minor=p.total_minor,
        written_off=from_minor(p.written_off_minor, c), written_off_minor=p.written_off_minor,
        paid_minor=p.paid_minor,
        instalments=[InstalmentPublic(seq=i.seq, due_date=i.due_date, amount=from_minor(i.amount_minor, c),
                                      amount_minor=i.amount_minor, paid_minor=i.paid_minor, status=i.status)
                     for i in view.instalments],
        approvals=[ApprovalPublic(step=a.step, status=a.status, decided_by=a.decided_by,
                                  decided_tenant=a.decided_tenant, reason=a.reason, decided_at=a.decided_at)
                   for a in approvals])


@router.get("/plan-policy", response_model=PolicyOut)
async def current_policy(session: SessionDep, tenant: TenantDep) -> PolicyOut:
    """Your current plan policy (version 0, the built-in default, when you have published none)."""
    return _policy((await negotiation.current_policy(session, tenant))[1])


@router.get("/plan-policy/versions", response_model=list[PolicyOut])
async def policy_versions(session: SessionDep, tenant: TenantDep,
                          limit: int = Query(50, ge=1, le=500)) -> list[PolicyOut]:
    """Every version you published, newest first, with who published it and why."""
    return [_policy(v) for v in await negotiation.policy_history(session, tenant, limit=limit)]


@router.put("/plan-policy", response_model=PolicyOut, status_code=201, responses=REFUSED)
async def publish_policy(uow: UowDep, principal: PolicyWriter, body: PolicyIn) -> PolicyOut:
    """Publish a new version of your plan policy; applies to the next quotes. A document that cannot be used is
    refused with every reason (422) and nothing is stored."""
    published = await negotiation.publish_policy(uow.session, tenant=principal.tenant, document=body.document,
                                                 created_by=principal.name, reason=body.reason)
    await record_change(uow, principal, action="plan_policy.publish", subject=f"plan-policy:v{published.version}",
                        reason=body.reason)
    await uow.commit()
    return _policy(published)


@router.post("/accounts/{account_id}/quotes", response_model=QuotePublic, status_code=201)
async def quote(uow: UowDep, request: Request, principal: Maker, account_id: AccountId,
                body: QuoteIn) -> QuotePublic:
    """The offers your plan policy allows the account now, each with its schedule, total, what it writes off,
    the approvals it needs and whether it is affordable (with the customer's monthly income and expenses). The
    quote expires after PLANS_QUOTE_TTL_MINUTES. 404: an account not known to plans for your tenant; 409: nothing
    overdue, or no rule of your policy for the account."""
    view = await negotiation.quote(
        uow, tenant=principal.tenant, account_id=account_id,
        income=None if body.income is None else Decimal(body.income),
        expenses=None if body.expenses is None else Decimal(body.expenses), requested_by=principal.name,
        now=datetime.now(UTC), ttl_minutes=request.app.state.settings.quote_ttl_minutes)
    await uow.commit()
    return _quote(view)


@router.get("/quotes/{quote_id}", response_model=QuotePublic)
async def get_quote(session: SessionDep, tenant: TenantDep, quote_id: Id) -> QuotePublic:
    return _quote(await negotiation.get_quote(session, tenant=tenant, quote_id=quote_id))


@router.post("/quotes/{quote_id}/agreements", response_model=AgreementPublic, status_code=201)
async def agree(uow: UowDep, principal: Maker, quote_id: Id, body: AgreementIn) -> AgreementPublic:
    """Agree a plan from one of the quote's offers; you are its maker. Within your authority it is agreed and
    announced at once; beyond it, the plan is pending_approval until a supervisor (not you) and, when the policy
    says so, each co-lender approve. 409: the quote expired or was used, or the account has an agreed plan."""
    view = await negotiation.accept(uow, tenant=principal.tenant, quote_id=quote_id, offer_id=body.offer_id,
                                    maker=principal.name, maker_roles=principal.roles, reason=body.reason,
                                    now=datetime.now(UTC), maker_key_id=principal.key_id)
    approvals = (await negotiation.approvals_of(uow.session, servicer=principal.tenant,
                                                plan_id=view.plan.plan_id)).approvals
    await uow.commit()
    return _agreement(view, approvals)


@router.get("/plans/{plan_id}/approvals", response_model=AgreementPublic)
async def approvals_of(session: SessionDep, tenant: TenantDep, plan_id: Id) -> AgreementPublic:
    """The plan with the approvals it waits for or got."""
    view = await negotiation.approvals_of(session, servicer=tenant, plan_id=plan_id)
    return _agreement(view.plan, view.approvals)


@router.post("/plans/{plan_id}/approvals", response_model=AgreementPublic)
async def decide(uow: UowDep, principal: Supervisor, plan_id: Id, body: DecisionIn) -> AgreementPublic:
    """A supervisor approves or rejects a plan pending approval (never the plan's maker: 403). When every approval
    is in, the plan is agreed and announced; a rejection ends it."""
    view = await negotiation.decide(
        uow, servicer=principal.tenant, plan_id=plan_id, approver=principal.name, approver_tenant=principal.tenant,
        approver_roles=principal.roles, approve=body.decision == "approve", reason=body.reason,
        now=datetime.now(UTC), approver_key_id=principal.key_id)
    await uow.commit()
    return _agreement(view.plan, view.approvals)


@router.get("/co-lending/{servicer}/plans/{plan_id}/approvals", response_model=AgreementPublic)
async def co_lender_approvals_of(session: SessionDep, tenant: TenantDep, servicer: TenantId,
                                 plan_id: Id) -> AgreementPublic:
    """A plan of an account you co-lend, with its approvals (404 unless the servicer lists you)."""
    view = await negotiation.approvals_of(session, servicer=servicer, plan_id=plan_id, caller_tenant=tenant)
    return _agreement(view.plan, view.approvals)


@router.post("/co-lending/{servicer}/plans/{plan_id}/approvals", response_model=AgreementPublic)
async def co_lender_decide(uow: UowDep, principal: CoLender, servicer: TenantId, plan_id: Id,
                           body: DecisionIn) -> AgreementPublic:
    """A co-lender approves or rejects its step of a plan of an account it co-lends, serviced by ``servicer``
    (404 unless the servicer lists your tenant as a co-lender of the account)."""
    view = await negotiation.decide(
        uow, servicer=servicer, plan_id=plan_id, approver=principal.name, approver_tenant=principal.tenant,
        approver_roles=principal.roles, approve=body.decision == "approve", reason=body.reason,
        now=datetime.now(UTC), approver_key_id=principal.key_id)
    await uow.commit()
    return _agreement(view.plan, view.approvals)
