"""Negotiation's use cases on real PostgreSQL (services/plans/negotiation.py): quotes from the tenant's plan policy
(or the default), agreements from a quote's offer with maker-checker, supervisor and co-lender approvals, the
one-agreed-plan rule with pending plans, audit rows, PlanEvents only once agreed, and the write-off announced when a
settlement or waiver is paid off."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from services.plans import negotiation, service
from services.plans.db.models import AuditEntry, Plan
from services.plans.db.negotiation import PlanApproval, PlanPolicyRow, PlanQuote
from services.plans.domain.approvals import MakerCannotApprove, NotAnApprover, NothingToDecide
from services.plans.domain.policy import PolicyRefused
from shared.contracts import topics
from shared.contracts.events import PaymentReceivedV1, PlanEventV1, WriteOffV1
from shared.domain import NotFound
from tests.helpers import Outboxed, committed, committed_reading_outbox
from tests.plans.support import account_segmented, consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
AGENT = frozenset({"agent"})
SUPERVISOR = frozenset({"supervisor"})


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tenant() -> str:
    return new_id("t")


async def known(sessions: Any, tenant: str, account_id: str = "A1", *, overdue_minor: int = 250_000,
                outstanding_minor: int = 1_000_000, co_lenders: tuple[tuple[str, int], ...] = ()) -> None:
    await consume(sessions, overdue_notice(tenant, account_id, overdue_minor=overdue_minor,
                                           outstanding_minor=outstanding_minor, co_lenders=co_lenders))


async def quote(sessions: Any, tenant: str, account_id: str = "A1", *, income: str | None = None,
                expenses: str | None = None, ttl_minutes: int = 60) -> negotiation.QuoteView:
    async with committed(sessions) as uow:
        return await negotiation.quote(
            uow, tenant=tenant, account_id=account_id, income=None if income is None else Decimal(income),
            expenses=None if expenses is None else Decimal(expenses), requested_by="agent-7",
            now=datetime.now(UTC), ttl_minutes=ttl_minutes)


async def accept(sessions: Any, tenant: str, q: negotiation.QuoteView, offer_id: str, *, maker: str = "agent-7",
                 roles: frozenset[str] = AGENT, now: datetime | None = None) -> tuple[service.PlanView, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await negotiation.accept(uow, tenant=tenant, quote_id=q.quote_id, offer_id=offer_id, maker=maker,
                                        maker_roles=roles, reason="lost her job", now=now or datetime.now(UTC))
    return view, outbox


async def decide(sessions: Any, servicer: str, plan_id: str, *, approver: str, tenant: str | None = None,
                 roles: frozenset[str] = SUPERVISOR, approve: bool = True) -> tuple[negotiation.ApprovalsView,
                                                                                    list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await negotiation.decide(uow, servicer=servicer, plan_id=plan_id, approver=approver,
                                        approver_tenant=tenant or servicer, approver_roles=roles, approve=approve,
                                        reason="checked the payslips", now=datetime.now(UTC))
    return view, outbox


async def rows(sessions: Any, statement: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(statement)).scalars().all())


def plan_events(outbox: list[Outboxed]) -> list[PlanEventV1]:
    return [PlanEventV1.model_validate(o.event.data) for o in outbox if o.topic == topics.PLAN_EVENT.name]


async def test_a_quote_offers_what_the_default_policy_allows_and_is_kept(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant, income="8123.45", expenses="5123.45")
    ids = [o.offer_id for o in q.offers]
    assert ids == [f"instalments-{n}" for n in range(2, 13)] + ["deferral-30", "waiver-1", "waiver-3", "settlement"]
    by_id = {o.offer_id: o for o in q.offers}
    assert (q.currency, q.overdue_minor, q.outstanding_minor, q.policy_version, q.rule) == (
        "CNY", 250_000, 1_000_000, 0, "default")
    assert q.expires_at - q.created_at == timedelta(minutes=60)  # type: ignore[operator]
    assert [a for _, _, a in by_id["instalments-2"].schedule] == [125_000, 125_000]
    # 1,500.00 of disposable income at 50%: 1,250.00 is affordable, 2,500.00 in one is not
    assert (by_id["instalments-2"].affordable, by_id["deferral-30"].affordable) == (True, False)
    assert by_id["settlement"].approvals_required == ["supervisor"]  # no co-lenders
    [stored] = await rows(sessions, select(PlanQuote).where(PlanQuote.tenant == tenant))  # type: ignore[arg-type]
    assert (stored.quote_id, stored.plan_id, len(stored.offers)) == (q.quote_id, None, len(ids))
    assert "812345" not in str(stored.offers) and "512345" not in str(stored.offers)  # income and expenses are not kept
    async with sessions() as session:
        assert await negotiation.get_quote(session, tenant=tenant, quote_id=q.quote_id) == q


async def test_quotes_are_refused_for_unknown_or_other_tenants_accounts_and_bad_amounts(sessions: Any,
                                                                                        tenant: str) -> None:
    other = new_id("t")
    await known(sessions, other)
    with pytest.raises(service.AccountUnknown):
        await quote(sessions, tenant, "A1")
    with pytest.raises(negotiation.AmountInvalid, match="income"):
        await quote(sessions, other, income="10.001", expenses="1")
    await consume(sessions, overdue_notice(tenant, "PAID", overdue_minor=5_000))
    await consume(sessions, payment_received(tenant, "PAID", "P1", 5_000))
    with pytest.raises(service.NothingOverdue):
        await quote(sessions, tenant, "PAID")
    with pytest.raises(negotiation.QuoteNotFound):
        async with sessions() as session:
            await negotiation.get_quote(session, tenant=tenant, quote_id=(await quote(sessions, other)).quote_id)
    assert await rows(sessions, select(PlanQuote).where(PlanQuote.tenant == tenant)) == []  # type: ignore[arg-type]


async def test_an_offer_within_the_agents_authority_is_agreed_at_once_and_the_quote_is_used(sessions: Any,
                                                                                          tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    view, outbox = await accept(sessions, tenant, q, "instalments-3")
    assert (view.plan.status, view.plan.kind, view.plan.total_minor, view.plan.written_off_minor) == (
        "agreed", "instalments", 250_000, 0)
    assert (view.plan.quote_id, view.plan.offer_id, view.plan.made_by) == (q.quote_id, "instalments-3", "agent-7")
    [event] = plan_events(outbox)
    assert (event.kind, event.plan_id, [i.amount_minor for i in event.instalments]) == (
        "agreed", view.plan.plan_id, [83_334, 83_333, 83_333])
    audit = await rows(sessions, select(AuditEntry).where(AuditEntry.tenant == tenant))  # type: ignore[arg-type]
    assert [(a.principal, a.action, a.subject, a.reason) for a in audit] == [
        ("agent-7", "plan.agree", f"plan:{view.plan.plan_id}", "lost her job")]
    with pytest.raises(negotiation.QuoteUsed):
        await accept(sessions, tenant, q, "instalments-2")
    q2 = await quote(sessions, tenant)
    with pytest.raises(service.PlanConflict):  # one agreed plan per account
        await accept(sessions, tenant, q2, "instalments-2")
    with pytest.raises(negotiation.OfferUnknown, match="no offer 'instalments-99'"):
        await accept(sessions, tenant, q2, "instalments-99")


async def test_an_expired_quote_is_refused_and_stores_nothing(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant, ttl_minutes=1)
    with pytest.raises(negotiation.QuoteExpired):
        await accept(sessions, tenant, q, "instalments-2", now=q.expires_at)
    with pytest.raises(negotiation.QuoteNotFound):  # another tenant's quote
        await accept(sessions, new_id("t"), q, "instalments-2")
    assert await rows(sessions, select(Plan).where(Plan.tenant == tenant)) == []  # type: ignore[arg-type]
    view, _ = await accept(sessions, tenant, q, "instalments-2", now=q.expires_at - timedelta(seconds=1))
    assert view.plan.status == "agreed"


async def test_beyond_the_agent_a_supervisor_who_is_not_the_maker_approves(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    view, outbox = await accept(sessions, tenant, q, "instalments-12")
    plan_id = view.plan.plan_id
    assert view.plan.status == "pending_approval" and plan_events(outbox) == []  # the scheduler is not paused
    with pytest.raises(MakerCannotApprove):
        await decide(sessions, tenant, plan_id, approver="agent-7")
    with pytest.raises(NotAnApprover):
        await decide(sessions, tenant, plan_id, approver="agent-8", roles=AGENT)
    with pytest.raises(NotFound):
        await decide(sessions, new_id("t"), plan_id, approver="lead-x")
    decided, outbox = await decide(sessions, tenant, plan_id, approver="lead-wang")
    assert decided.plan.plan.status == "agreed"
    assert [(a.step, a.status, a.decided_by) for a in decided.approvals] == [("supervisor", "approved", "lead-wang")]
    [event] = plan_events(outbox)
    assert (event.kind, event.plan_id, len(event.instalments)) == ("agreed", plan_id, 12)
    with pytest.raises(negotiation.PlanNotPending):
        await decide(sessions, tenant, plan_id, approver="lead-li")
    audit = await rows(sessions, select(AuditEntry).where(AuditEntry.tenant == tenant).order_by(AuditEntry.id))  # type: ignore[arg-type]
    assert [(a.principal, a.action) for a in audit] == [("agent-7", "plan.propose"), ("lead-wang", "plan.approve")]


async def test_a_supervisor_maker_agrees_a_supervisor_level_offer_at_once(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    view, outbox = await accept(sessions, tenant, q, "deferral-30", maker="lead-wang", roles=SUPERVISOR)
    assert view.plan.status == "agreed" and [e.kind for e in plan_events(outbox)] == ["agreed"]


async def test_a_co_lender_must_approve_a_large_write_off_and_the_write_off_is_announced_when_paid(
        sessions: Any, tenant: str) -> None:
    bank, stranger = new_id("bank"), new_id("t")
    await known(sessions, tenant, co_lenders=((bank, 3_000),))
    q = await quote(sessions, tenant)
    settlement = next(o for o in q.offers if o.offer_id == "settlement")
    assert (settlement.total_minor, settlement.written_off_minor, settlement.approvals_required) == (
        800_000, 200_000, ["supervisor", f"co_lender:{bank}"])
    view, _ = await accept(sessions, tenant, q, "settlement", maker="lead-wang", roles=SUPERVISOR)
    plan_id = view.plan.plan_id
    assert view.plan.status == "pending_approval"  # the supervisor maker covers only its own step
    async with sessions() as session:
        pending = await negotiation.approvals_of(session, servicer=tenant, plan_id=plan_id)
        assert [(a.step, a.status) for a in pending.approvals] == [(f"co_lender:{bank}", "pending")]
        with pytest.raises(negotiation.CoLentPlanNotFound):
            await negotiation.approvals_of(session, servicer=tenant, plan_id=plan_id, caller_tenant=stranger)
    with pytest.raises(negotiation.CoLentPlanNotFound):  # not a co-lender of the account: 404
        await decide(sessions, tenant, plan_id, approver="x", tenant=stranger, roles=frozenset({"partner"}))
    with pytest.raises(NothingToDecide):  # a supervisor of the servicer cannot take the co-lender's step
        await decide(sessions, tenant, plan_id, approver="lead-li")
    decided, outbox = await decide(sessions, tenant, plan_id, approver="risk-desk", tenant=bank,
                                   roles=frozenset({"partner"}))
    assert decided.plan.plan.status == "agreed" and [e.kind for e in plan_events(outbox)] == ["agreed"]
    bank_audit = await rows(sessions, select(AuditEntry).where(AuditEntry.tenant == bank))  # type: ignore[arg-type]
    assert [(a.principal, a.action, a.subject) for a in bank_audit] == [
        ("risk-desk", "plan.approve", f"plan:{tenant}/{plan_id}")]

    async def pay(payment_id: str, amount: int) -> list[Outboxed]:
        async with committed_reading_outbox(sessions) as (uow, outbox):
            await service.apply_payments(uow, payments=[PaymentReceivedV1(
                tenant=tenant, account_id="A1", customer_id="C1", payment_id=payment_id, amount_minor=amount,
                currency="CNY", paid_at=datetime.now(UTC))])
        return outbox

    assert [o.topic for o in await pay("P1", 799_999)] == []
    outbox = await pay("P2", 1)
    assert [o.topic for o in outbox] == [topics.PLAN_EVENT.name, topics.WRITE_OFF.name]
    write_off = WriteOffV1.model_validate(outbox[1].event.data)
    assert (write_off.kind, write_off.amount_minor, write_off.plan_id, write_off.currency) == (
        "settlement", 200_000, plan_id, "CNY")
    assert sorted((s.lender, s.share_bp, s.amount_minor) for s in write_off.shares) == sorted([
        (tenant, 7_000, 140_000), (bank, 3_000, 60_000)])
    assert write_off.approved_by == [f"{bank}/risk-desk"]
    assert outbox[1].event.id == write_off.write_off_id and outbox[1].event.subject == plan_id
    assert [o.topic for o in await pay("P2", 1)] == []  # a redelivered payment announces nothing again


async def test_a_rejection_ends_the_agreement(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    view, _ = await accept(sessions, tenant, q, "waiver-1")
    decided, outbox = await decide(sessions, tenant, view.plan.plan_id, approver="lead-wang", approve=False)
    assert decided.plan.plan.status == "rejected" and outbox == []
    assert [(a.status, a.reason) for a in decided.approvals] == [("rejected", "checked the payslips")]
    with pytest.raises(negotiation.PlanNotPending):
        await decide(sessions, tenant, view.plan.plan_id, approver="lead-li")


async def test_two_pending_plans_of_one_account_only_one_becomes_agreed(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    first, _ = await accept(sessions, tenant, await quote(sessions, tenant), "instalments-10")
    second, _ = await accept(sessions, tenant, await quote(sessions, tenant), "instalments-11")  # pending blocks none
    await decide(sessions, tenant, second.plan.plan_id, approver="lead-wang")
    with pytest.raises(service.PlanConflict, match="already has agreed plan"):
        await decide(sessions, tenant, first.plan.plan_id, approver="lead-wang")
    [still] = await rows(sessions, select(PlanApproval).where(PlanApproval.plan_id == first.plan.plan_id))  # type: ignore[arg-type]
    assert still.status == "pending"  # the refused decision stored nothing
    async with committed(sessions) as uow:  # the maker withdraws it: nothing was announced, nothing is
        cancelled = await service.cancel_plan(uow, tenant=tenant, plan_id=first.plan.plan_id)
    assert cancelled.plan.status == "cancelled"


async def test_the_portal_customer_makes_without_roles(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    pending, _ = await accept(sessions, tenant, q, "deferral-30", maker="portal:customer", roles=frozenset())
    assert pending.plan.status == "pending_approval"
    agreed, outbox = await accept(sessions, tenant, await quote(sessions, tenant), "instalments-6",
                                  maker="portal:customer", roles=frozenset())
    assert agreed.plan.status == "agreed" and [e.kind for e in plan_events(outbox)] == ["agreed"]


async def test_a_published_policy_decides_the_next_quotes_by_segment(sessions: Any, tenant: str) -> None:
    document = {"rules": [
        {"name": "prime", "when": {"segment_in": ["prime"]}, "offers": {"deferral": {"max_days": 10}},
         "authority": {"agent": {"max_deferral_days": 10}}},
        {"name": "cards", "when": {"product_in": ["card"]}, "offers": {"instalments": {"max_months": 3}}}]}
    async with committed(sessions) as uow:
        with pytest.raises(PolicyRefused):
            await negotiation.publish_policy(uow.session, tenant=tenant, document={"rules": []}, created_by="s",
                                             reason="r")
    assert await rows(sessions, select(PlanPolicyRow).where(PlanPolicyRow.tenant == tenant)) == []  # type: ignore[arg-type]
    async with committed(sessions) as uow:
        published = await negotiation.publish_policy(uow.session, tenant=tenant, document=document,
                                                     created_by="strategist-li", reason="board 7")
    assert published.version == 1
    await known(sessions, tenant, "A1")
    await consume(sessions, account_segmented(tenant, "A1", "prime"))
    q = await quote(sessions, tenant, "A1")
    assert (q.policy_version, q.rule, [o.offer_id for o in q.offers]) == (1, "prime", ["deferral-10"])
    assert q.offers[0].approvals_required == []
    await known(sessions, tenant, "A2")  # consumer-loan, not segmented: no rule
    with pytest.raises(negotiation.NoPolicyRule):
        await quote(sessions, tenant, "A2")
    async with sessions() as session:
        assert [v.version for v in await negotiation.policy_history(session, tenant, limit=10)] == [1]
        assert (await negotiation.current_policy(session, new_id("t")))[1].version == 0
