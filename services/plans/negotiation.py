"""Negotiation's use cases (docs/plans.md, "Negotiation"): publish and read a tenant's plan policy, quote the
offers it allows an account, agree a plan from a quote's offer (maker-checker), and decide the approvals an
agreement waits for (a supervisor of the servicer, a co-lender of the account).

A quote is used at most once and only until it expires. An offer within the maker's authority is agreed at once
and announced (plans.plan-event.v1 ``agreed``); otherwise the plan is ``pending_approval`` (nothing announced:
the scheduler keeps treating the account) until every approval is in, then agreed and announced; one rejection
ends it. The maker never decides its own agreement. Every agreement and decision is an ``audit_log`` row with its
reason. At most one agreed plan per account still holds: a pending plan blocks nothing, and the second of two
pending plans approved for one account is refused when it would become agreed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.plans import service
from services.plans.db import negotiation as neg
from services.plans.db import repository as repo
from services.plans.db.models import AuditEntry, Plan, PlanInstalment
from services.plans.domain import approvals
from services.plans.domain.accounts import PaymentFact, overdue_now
from services.plans.domain.offers import Offer, offers_for
from services.plans.domain.policy import DEFAULT, DEFAULT_DOCUMENT, PlanPolicy, require_policy
from services.plans.domain.states import PLAN, PlanEvent, PlanStatus
from shared.db import table_of
from shared.domain import DomainError, NotFound
from shared.logging import request_id_var
from shared.money import to_minor
from shared.uow import UnitOfWork

DEFAULT_QUOTE_TTL_MINUTES = 60  # PLANS_QUOTE_TTL_MINUTES


class QuoteNotFound(NotFound):
    title = "Quote not found"


class QuoteExpired(DomainError):
    status = 409
    title = "Quote expired"


class QuoteUsed(DomainError):
    status = 409
    title = "Quote already used"


class QuoteStale(DomainError):
    status = 409
    title = "Quote out of date"


class OfferUnknown(DomainError):
    status = 422
    title = "No such offer"


class NoPolicyRule(DomainError):
    status = 409
    title = "No plan policy rule for this account"


class AmountInvalid(DomainError):
    status = 422
    title = "Invalid amount"


class PlanNotPending(DomainError):
    status = 409
    title = "Plan not waiting for approval"


class CoLentPlanNotFound(NotFound):
    """Not a plan of an account the caller co-lends (unknown, or the servicer does not list the caller): the same
    answer in both cases, so nothing leaks across tenants."""

    title = "Plan not found"


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A plan policy version (0: the built-in default, nothing published) with who published it and why."""

    version: int
    document: Mapping[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class OfferView:
    offer_id: str
    kind: str  # instalments | deferral | waiver | settlement
    schedule: list[tuple[int, date, int]]  # (seq, due date, amount_minor)
    total_minor: int
    written_off_minor: int
    affordable: bool | None
    approvals_required: list[str]


@dataclass(frozen=True, slots=True)
class QuoteView:
    quote_id: str
    currency: str
    expires_at: datetime
    offers: list[OfferView]
    account_id: str = ""
    customer_id: str = ""
    policy_version: int = 0
    rule: str = ""
    overdue_minor: int = 0
    outstanding_minor: int = 0
    created_at: datetime | None = None
    plan_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalView:
    step: str
    status: str
    decided_by: str | None
    decided_tenant: str | None
    reason: str | None
    decided_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApprovalsView:
    plan: service.PlanView
    approvals: list[ApprovalView]


# --- policies ------------------------------------------------------------------------------------------------------

_PARSED: dict[tuple[str, int], PlanPolicy] = {}  # published versions are immutable: parsed once per process
BUILTIN = PolicyView(0, DEFAULT_DOCUMENT, None, "built in", None)


def _policy_view(row: Any) -> PolicyView:
    return PolicyView(row.version, row.document, row.created_by, row.reason, row.created_at)


async def current_policy(session: AsyncSession, tenant: str) -> tuple[PlanPolicy, PolicyView]:
    """The tenant's newest published policy, or the built-in default."""
    row = await neg.current_policy(session, tenant)
    if row is None:
        return DEFAULT, BUILTIN
    key = (tenant, row.version)
    if key not in _PARSED:
        _PARSED[key] = require_policy(row.document, version=row.version)
    return _PARSED[key], _policy_view(row)


async def publish_policy(session: AsyncSession, *, tenant: str, document: Mapping[str, Any], created_by: str,
                         reason: str) -> PolicyView:
    """Publish the tenant's next policy version; refused (``PolicyRefused``, every reason, nothing stored) when
    it cannot be used."""
    require_policy(document, version=1)
    version = await neg.latest_policy_version(session, tenant, lock=True) + 1
    row = await neg.add_policy(session, {"tenant": tenant, "version": version, "document": dict(document),
                                         "created_by": created_by, "reason": reason})
    return _policy_view(row)


async def policy_history(session: AsyncSession, tenant: str, *, limit: int) -> list[PolicyView]:
    return [_policy_view(r) for r in await neg.policy_versions(session, tenant, limit=limit)]


# --- quotes --------------------------------------------------------------------------------------------------------


def _offer_json(o: Offer) -> dict[str, Any]:
    return {"offer_id": o.offer_id, "kind": o.kind, "total_minor": o.total_minor,
            "written_off_minor": o.written_off_minor, "affordable": o.affordable,
            "approvals_required": list(o.approvals_required),
            "schedule": [[i.seq, i.due_date.isoformat(), i.amount_minor] for i in o.schedule]}


def _offer_view(raw: Mapping[str, Any]) -> OfferView:
    return OfferView(offer_id=raw["offer_id"], kind=raw["kind"],
                     schedule=[(int(s), date.fromisoformat(d), int(a)) for s, d, a in raw["schedule"]],
                     total_minor=raw["total_minor"], written_off_minor=raw["written_off_minor"],
                     affordable=raw["affordable"], approvals_required=list(raw["approvals_required"]))


def _quote_view(q: neg.PlanQuote) -> QuoteView:
    return QuoteView(quote_id=q.quote_id, currency=q.currency, expires_at=q.expires_at,
                     offers=[_offer_view(o) for o in q.offers], account_id=q.account_id, customer_id=q.customer_id,
                     policy_version=q.policy_version, rule=q.rule, overdue_minor=q.overdue_minor,
                     outstanding_minor=q.outstanding_minor, created_at=q.created_at, plan_id=q.plan_id)


def _monthly_minor(amount: Decimal | None, currency: str, what: str) -> int | None:
    if amount is None:
        return None
    if not amount.is_finite() or amount < 0:
        raise AmountInvalid(f"{what} must be a non-negative amount, not {amount}")
    try:
        return to_minor(amount, currency)
    except ValueError as exc:
        raise AmountInvalid(f"{what}: {exc}") from exc


async def _owed_now(session: AsyncSession, *, tenant: str, account: Any) -> tuple[int, int]:
    """What the account owes now: its overdue amount and its balance, less the payments booked since its snapshot
    (the balance never below what is overdue)."""
    payments = await repo.payments_of_account(session, tenant=tenant, account_id=account.account_id)
    owed = overdue_now(reported_minor=account.overdue_minor, currency=account.currency, as_of=account.as_of,
                       payments=[PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments])
    return owed, max(owed, account.outstanding_minor - (account.overdue_minor - owed))


async def quote(uow: UnitOfWork, *, tenant: str, account_id: str, income: Decimal | None,
                expenses: Decimal | None, requested_by: str, now: datetime,
                ttl_minutes: int = DEFAULT_QUOTE_TTL_MINUTES) -> QuoteView:
    """The offers the tenant's policy allows the account now, stored as a quote that expires after
    ``ttl_minutes``. ``income`` and ``expenses`` (monthly, in the account's currency; either may be None) give
    each offer an affordability verdict; they are not kept. Refused: an account unknown to plans for the tenant
    (404), nothing overdue (409), no policy rule for the account (409), an amount finer than its currency (422)."""
    account = await repo.account(uow.session, tenant=tenant, account_id=account_id)
    if account is None:
        raise service.AccountUnknown(
            f"Account {account_id!r} is not known to plans for your tenant: offers are quoted once the account's "
            "overdue notice (core.account-overdue.v1) has reached plans.")
    income_minor = _monthly_minor(income, account.currency, "income")
    expenses_minor = _monthly_minor(expenses, account.currency, "expenses")
    owed, outstanding = await _owed_now(uow.session, tenant=tenant, account=account)
    if owed == 0:
        raise service.NothingOverdue(f"Account {account_id!r} has nothing overdue now: there is nothing to offer.")
    policy, _ = await current_policy(uow.session, tenant)
    segment = await repo.segment_of(uow.session, tenant=tenant, account_id=account_id)
    rule = policy.rule_for(segment=segment.segment if segment is not None else None, product=account.product or None)
    if rule is None:
        raise NoPolicyRule(f"No rule of your plan policy (version {policy.version}) matches account {account_id!r} "
                           f"(segment {segment.segment if segment is not None else 'not known yet'}, product "
                           f"{account.product or 'none'}): add a rule for it, or one without conditions last.")
    offers = offers_for(rule, overdue_minor=owed, outstanding_minor=outstanding, today=now.date(),
                        co_lenders=[str(c["tenant"]) for c in account.co_lenders],
                        income_minor=income_minor, expenses_minor=expenses_minor)
    row = neg.PlanQuote(quote_id=str(uuid.uuid4()), tenant=tenant, account_id=account_id,
                        customer_id=account.customer_id, currency=account.currency, policy_version=policy.version,
                        rule=rule.name, overdue_minor=owed, outstanding_minor=outstanding,
                        offers=[_offer_json(o) for o in offers], requested_by=requested_by, created_at=now,
                        expires_at=now + timedelta(minutes=ttl_minutes))
    await neg.add_quote(uow.session, row)
    return _quote_view(row)


async def get_quote(session: AsyncSession, *, tenant: str, quote_id: str) -> QuoteView:
    row = await neg.quote(session, tenant=tenant, quote_id=quote_id)
    if row is None:
        raise QuoteNotFound(f"No quote {quote_id!r} in your tenant.")
    return _quote_view(row)


# --- agreements and approvals --------------------------------------------------------------------------------------


async def _audit(uow: UnitOfWork, *, tenant: str, principal: str, key_id: str | None, action: str, subject: str,
                 reason: str) -> None:
    """The audit row of one change (shared/audit.py's table; the maker may be the portal's customer, who has no
    API key, so the principal is given by name)."""
    await uow.session.execute(sa.insert(table_of(AuditEntry)).values(
        tenant=tenant, principal=principal, key_id=key_id, action=action, subject=subject, reason=reason,
        request_id=request_id_var.get()))


async def accept(uow: UnitOfWork, *, tenant: str, quote_id: str, offer_id: str, maker: str,
                 maker_roles: frozenset[str], reason: str, now: datetime,
                 maker_key_id: str | None = None) -> service.PlanView:
    """Agree a plan from one of a quote's offers, made by ``maker``: agreed and announced at once when the maker's
    authority covers it (no approval needed, or a supervisor maker for a supervisor-level offer), else
    ``pending_approval`` with the approvals it waits for. Refused: an unknown quote (404), an expired or used
    one (409), an offer not in it (422), an account with an agreed plan already (409), nothing overdue any more
    or a quote out of date: a payment or a newer overdue notice since it was made (409)."""
    row = await neg.quote(uow.session, tenant=tenant, quote_id=quote_id, lock=True)
    if row is None:
        raise QuoteNotFound(f"No quote {quote_id!r} in your tenant.")
    if row.plan_id is not None:
        raise QuoteUsed(f"Quote {quote_id} was already used for plan {row.plan_id}; ask for a new quote.")
    if now >= row.expires_at:
        raise QuoteExpired(f"Quote {quote_id} expired at {row.expires_at.isoformat()}; ask for a new quote.")
    offer = next((_offer_view(o) for o in row.offers if o["offer_id"] == offer_id), None)
    if offer is None:
        known = ", ".join(o["offer_id"] for o in row.offers) or "none"
        raise OfferUnknown(f"Quote {quote_id} has no offer {offer_id!r} (its offers: {known}).")
    active = await repo.agreed_plan(uow.session, tenant=tenant, account_id=row.account_id)
    if active is not None:
        raise service.PlanConflict(f"Account {row.account_id!r} already has plan {active.plan_id}; cancel it first.")
    account = await repo.account(uow.session, tenant=tenant, account_id=row.account_id)
    owed, outstanding = (0, 0) if account is None else await _owed_now(uow.session, tenant=tenant, account=account)
    if owed == 0:
        raise service.NothingOverdue(f"Account {row.account_id!r} has nothing overdue now: no plan is needed.")
    if (owed, outstanding) != (row.overdue_minor, row.outstanding_minor):
        # a payment (or a newer overdue notice) since the quote: its totals and write-offs are no longer right
        raise QuoteStale(f"Account {row.account_id!r} owes {owed} minor units now, not the {row.overdue_minor} of "
                         f"quote {quote_id}; ask for a new quote.")
    waiting = approvals.waiting_after_maker(offer.approvals_required, maker_roles)
    status = PlanStatus.PENDING_APPROVAL if waiting else PlanStatus.AGREED
    plan = Plan(plan_id=str(uuid.uuid4()), tenant=tenant, account_id=row.account_id, customer_id=row.customer_id,
                currency=row.currency, total_minor=offer.total_minor, status=status.value, reason=reason,
                kind=offer.kind, written_off_minor=offer.written_off_minor, quote_id=quote_id, offer_id=offer_id,
                made_by=maker)
    rows = [PlanInstalment(plan_id=plan.plan_id, seq=seq, due_date=due, amount_minor=amount)
            for seq, due, amount in offer.schedule]
    try:
        async with uow.session.begin_nested():
            await repo.add_plan(uow.session, plan, rows)
    except IntegrityError as exc:  # a concurrent agreement for the account won the race
        raise service.PlanConflict(f"Account {row.account_id!r} already has an agreed plan; cancel it first.") from exc
    await neg.add_approvals(uow.session, tenant=tenant, plan_id=plan.plan_id, steps=waiting)
    row.plan_id = plan.plan_id
    await uow.session.flush()
    await _audit(uow, tenant=tenant, principal=maker, key_id=maker_key_id,
                 action="plan.agree" if not waiting else "plan.propose", subject=f"plan:{plan.plan_id}",
                 reason=reason)
    if status is PlanStatus.AGREED:
        service._announce(uow, plan, rows, "agreed")
    return service.PlanView(plan, rows)


def _approval_views(rows: list[neg.PlanApproval]) -> list[ApprovalView]:
    return [ApprovalView(r.step, r.status, r.decided_by, r.decided_tenant, r.reason, r.decided_at) for r in rows]


async def _plan_for(session: AsyncSession, *, servicer: str, plan_id: str, caller_tenant: str,
                    lock: bool = False) -> Plan:
    """The servicer's plan, for the servicer itself or for a co-lender of its account (else 404)."""
    plan = await repo.get(session, tenant=servicer, plan_id=plan_id, lock=lock)
    if caller_tenant != servicer:
        account = None if plan is None else await repo.account(session, tenant=servicer,
                                                                account_id=plan.account_id)
        if account is None or not any(str(c.get("tenant")) == caller_tenant for c in account.co_lenders):
            raise CoLentPlanNotFound(f"No plan {plan_id!r} of {servicer!r} of an account you co-lend.")
    if plan is None:
        raise NotFound(f"No plan {plan_id!r} in your tenant.")
    return plan


async def approvals_of(session: AsyncSession, *, servicer: str, plan_id: str,
                       caller_tenant: str | None = None) -> ApprovalsView:
    """A plan with the approvals it waits for or got, for its servicer or a co-lender of its account."""
    plan = await _plan_for(session, servicer=servicer, plan_id=plan_id, caller_tenant=caller_tenant or servicer)
    return ApprovalsView(service.PlanView(plan, await repo.instalments(session, plan_id)),
                         _approval_views(await neg.approvals(session, plan_id)))


async def decide(uow: UnitOfWork, *, servicer: str, plan_id: str, approver: str, approver_tenant: str,
                 approver_roles: frozenset[str], approve: bool, reason: str, now: datetime,
                 approver_key_id: str | None = None) -> ApprovalsView:
    """An approver's decision on a pending agreement: a supervisor of the servicer decides the ``supervisor``
    step, a principal of a co-lender its own step. When every step is approved the plan is agreed and
    announced; one rejection rejects it. Refused: a plan not the caller's to see (404), not pending (409), the
    maker deciding (403), a step the plan does not wait for (409), a second agreed plan for the account (409).
    Audited in the approver's tenant."""
    plan = await _plan_for(uow.session, servicer=servicer, plan_id=plan_id, caller_tenant=approver_tenant, lock=True)
    if plan.status != PlanStatus.PENDING_APPROVAL.value:
        raise PlanNotPending(f"Plan {plan_id} is {plan.status}; only a plan pending approval is decided.")
    step = approvals.step_of(approver_tenant=approver_tenant, approver_roles=approver_roles, servicer=servicer)
    rows = await neg.approvals(uow.session, plan_id)
    steps: dict[str, approvals.StepStatus] = {r.step: r.status for r in rows}  # type: ignore[misc]
    decided = approvals.decide(steps, step=step, approve=approve, approver=approver, approver_tenant=approver_tenant,
                               maker=plan.made_by, servicer=servicer)
    await neg.decide(uow.session, plan_id=plan_id, step=step, status=decided[step], decided_by=approver,
                     decided_tenant=approver_tenant, reason=reason, at=now)
    await _audit(uow, tenant=approver_tenant, principal=approver, key_id=approver_key_id,
                 action="plan.approve" if approve else "plan.reject", subject=f"plan:{servicer}/{plan_id}",
                 reason=reason)
    instalments = await repo.instalments(uow.session, plan_id)
    outcome = approvals.outcome(decided)
    if outcome == "rejected":
        plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.REJECT).value
        plan.updated_at = now
        await uow.session.flush()
    elif outcome == "agreed":
        active = await repo.agreed_plan(uow.session, tenant=servicer, account_id=plan.account_id)
        if active is not None:
            raise service.PlanConflict(f"Account {plan.account_id!r} already has agreed plan {active.plan_id}: this "
                                       "one cannot be agreed as well; reject it, or cancel the other first.")
        account_id = plan.account_id
        try:
            # the change is made inside the savepoint: beginning one flushes what is pending, outside it, where a
            # unique violation would leave the whole transaction failed (and the caller a 500, not a 409)
            async with uow.session.begin_nested():
                plan.status = PLAN.apply(PlanStatus(plan.status), PlanEvent.APPROVE).value
                plan.updated_at = now
                await uow.session.flush()
        except IntegrityError as exc:  # another plan of the account was agreed concurrently
            raise service.PlanConflict(f"Account {account_id!r} already has an agreed plan; cancel it "
                                       "first.") from exc
        service._announce(uow, plan, instalments, "agreed")
    return ApprovalsView(service.PlanView(plan, instalments),
                         _approval_views(await neg.approvals(uow.session, plan_id)))
