"""Attacks on negotiation's use cases on real PostgreSQL (services/plans/negotiation.py, service.py ``_write_off``):
races between agreements and approvals, approvers who are not who they should be, and the write-off announced when
a settlement or waiver is paid off (exact, never more than what was really left unpaid, once)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

from services.plans import negotiation, service
from services.plans.db.models import AuditEntry, Plan
from services.plans.db.negotiation import PlanApproval, PlanQuote
from services.plans.domain.approvals import MakerCannotApprove, NotAnApprover, NothingToDecide
from shared.contracts import topics
from shared.contracts.events import PaymentReceivedV1, WriteOffV1
from tests.helpers import Outboxed, committed, committed_reading_outbox
from tests.plans.support import consume, overdue_notice

pytestmark = pytest.mark.integration
AGENT = frozenset({"agent"})
SUPERVISOR = frozenset({"supervisor"})
PARTNER = frozenset({"partner"})


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tenant() -> str:
    return new_id("t")


async def known(sessions: Any, tenant: str, account_id: str = "A1", *, overdue_minor: int = 250_000,
                outstanding_minor: int = 1_000_000, co_lenders: tuple[tuple[str, int], ...] = (),
                currency: str = "CNY") -> None:
    await consume(sessions, overdue_notice(tenant, account_id, overdue_minor=overdue_minor, currency=currency,
                                           outstanding_minor=outstanding_minor, co_lenders=co_lenders))


async def quote(sessions: Any, tenant: str, account_id: str = "A1") -> negotiation.QuoteView:
    async with committed(sessions) as uow:
        return await negotiation.quote(uow, tenant=tenant, account_id=account_id, income=None, expenses=None,
                                       requested_by="agent-7", now=datetime.now(UTC))


async def accept(sessions: Any, tenant: str, quote_id: str, offer_id: str, *, maker: str = "agent-7",
                 roles: frozenset[str] = AGENT) -> tuple[service.PlanView, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await negotiation.accept(uow, tenant=tenant, quote_id=quote_id, offer_id=offer_id, maker=maker,
                                        maker_roles=roles, reason="lost her job", now=datetime.now(UTC))
    return view, outbox


async def decide(sessions: Any, servicer: str, plan_id: str, *, approver: str, tenant: str | None = None,
                 roles: frozenset[str] = SUPERVISOR, approve: bool = True) -> tuple[negotiation.ApprovalsView,
                                                                                    list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await negotiation.decide(uow, servicer=servicer, plan_id=plan_id, approver=approver,
                                        approver_tenant=tenant or servicer, approver_roles=roles, approve=approve,
                                        reason="checked the payslips", now=datetime.now(UTC))
    return view, outbox


async def pay(sessions: Any, tenant: str, payment_id: str, amount: int, *, account_id: str = "A1",
              currency: str = "CNY") -> list[Outboxed]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.apply_payments(uow, payments=[PaymentReceivedV1(
            tenant=tenant, account_id=account_id, customer_id="C1", payment_id=payment_id, amount_minor=amount,
            currency=currency, paid_at=datetime.now(UTC))])
    return outbox


async def rows(sessions: Any, statement: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(statement)).scalars().all())


def write_offs(outbox: list[Outboxed]) -> list[WriteOffV1]:
    return [WriteOffV1.model_validate(o.event.data) for o in outbox if o.topic == topics.WRITE_OFF.name]


def topics_of(outbox: list[Outboxed]) -> list[str]:
    return [o.topic for o in outbox]


async def agreed_settlement(sessions: Any, tenant: str, *, co_lenders: tuple[tuple[str, int], ...] = (),
                            currency: str = "CNY", overdue_minor: int = 250_000,
                            outstanding_minor: int = 1_000_000) -> Plan:
    """A settlement agreed at once by a supervisor maker (co-lenders, when any, approve as risk-desk)."""
    await known(sessions, tenant, co_lenders=co_lenders, currency=currency, overdue_minor=overdue_minor,
                outstanding_minor=outstanding_minor)
    q = await quote(sessions, tenant)
    view, _ = await accept(sessions, tenant, q.quote_id, "settlement", maker="lead-wang", roles=SUPERVISOR)
    for bank, _bp in co_lenders:
        await decide(sessions, tenant, view.plan.plan_id, approver="risk-desk", tenant=bank, roles=PARTNER)
    [plan] = await rows(sessions, select(Plan).where(Plan.plan_id == view.plan.plan_id))  # type: ignore[arg-type]
    assert plan.status == "agreed"
    return plan  # type: ignore[no-any-return]


# --- races ---------------------------------------------------------------------------------------------------------


async def waiting_on_a_lock(sessions: Any) -> None:
    """Until some transaction waits for a lock (the unique index of an uncommitted agreed plan)."""
    for _ in range(200):
        async with sessions() as session:
            if (await session.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))).scalar():
                return
        await asyncio.sleep(0.02)
    raise AssertionError("nothing waited for a lock")


async def test_two_offers_of_one_quote_accepted_at_once_make_one_plan(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    results = await asyncio.gather(accept(sessions, tenant, q.quote_id, "instalments-2"),
                                   accept(sessions, tenant, q.quote_id, "instalments-12"), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1 and len(refused) == 1 and isinstance(refused[0], negotiation.QuoteUsed), results
    assert len(await rows(sessions, select(Plan).where(Plan.tenant == tenant))) == 1  # type: ignore[arg-type]


async def test_two_quotes_of_one_account_accepted_at_once_agree_one_plan(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q1, q2 = await quote(sessions, tenant), await quote(sessions, tenant)
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await negotiation.accept(uow, tenant=tenant, quote_id=q1.quote_id, offer_id="instalments-2",
                                 maker="agent-7", maker_roles=AGENT, reason="r", now=datetime.now(UTC))
        racing = asyncio.create_task(accept(sessions, tenant, q2.quote_id, "instalments-3"))
        await waiting_on_a_lock(sessions)
    with pytest.raises(service.PlanConflict):
        await racing
    assert [o.topic for o in outbox] == [topics.PLAN_EVENT.name]
    plans = await rows(sessions, select(Plan).where(Plan.tenant == tenant))  # type: ignore[arg-type]
    assert [(p.quote_id, p.status) for p in plans] == [(q1.quote_id, "agreed")]
    [unused] = await rows(sessions, select(PlanQuote.plan_id).where(  # type: ignore[call-overload]
        PlanQuote.quote_id == q2.quote_id))
    assert unused is None


async def test_two_pending_plans_of_one_account_approved_at_once_agree_one(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    first, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "instalments-10")
    second, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "instalments-11")
    # the first approval is made, not committed yet, when the second reaches the database: it saw no agreed plan
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await negotiation.decide(uow, servicer=tenant, plan_id=first.plan.plan_id, approver="lead-wang",
                                 approver_tenant=tenant, approver_roles=SUPERVISOR, approve=True, reason="ok",
                                 now=datetime.now(UTC))
        racing = asyncio.create_task(decide(sessions, tenant, second.plan.plan_id, approver="lead-li"))
        await waiting_on_a_lock(sessions)
    with pytest.raises(service.PlanConflict):  # a 409, not a failed transaction (a 500)
        await racing
    assert [o.topic for o in outbox] == [topics.PLAN_EVENT.name]
    plans = {p.plan_id: p.status for p in await rows(sessions, select(Plan).where(Plan.tenant == tenant))}  # type: ignore[arg-type]
    assert plans == {first.plan.plan_id: "agreed", second.plan.plan_id: "pending_approval"}
    approvals = await rows(sessions, select(PlanApproval).where(  # type: ignore[arg-type]
        PlanApproval.plan_id == second.plan.plan_id))  # type: ignore[arg-type]
    assert [a.status for a in approvals] == ["pending"]  # the refused decision stored nothing
    audit = await rows(sessions, select(AuditEntry).where(AuditEntry.tenant == tenant,  # type: ignore[arg-type]
                                                          AuditEntry.action == "plan.approve"))
    assert [a.principal for a in audit] == ["lead-wang"]


async def test_the_supervisor_and_the_co_lender_deciding_at_once_agree_once(sessions: Any, tenant: str) -> None:
    bank = new_id("bank")
    await known(sessions, tenant, co_lenders=((bank, 3_000),))
    view, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "settlement")
    results = await asyncio.gather(
        decide(sessions, tenant, view.plan.plan_id, approver="lead-wang"),
        decide(sessions, tenant, view.plan.plan_id, approver="risk-desk", tenant=bank, roles=PARTNER))
    assert [r[0].plan.plan.status for r in results].count("agreed") == 1
    assert sum(len([o for o in outbox if o.topic == topics.PLAN_EVENT.name]) for _, outbox in results) == 1


async def test_the_same_supervisor_deciding_twice_at_once_decides_once(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    view, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "instalments-12")
    results = await asyncio.gather(decide(sessions, tenant, view.plan.plan_id, approver="lead-wang"),
                                   decide(sessions, tenant, view.plan.plan_id, approver="lead-wang"),
                                   return_exceptions=True)
    assert [type(r) for r in results if isinstance(r, BaseException)] == [negotiation.PlanNotPending], results
    audit = await rows(sessions, select(AuditEntry).where(AuditEntry.tenant == tenant,  # type: ignore[arg-type]
                                                          AuditEntry.action == "plan.approve"))
    assert len(audit) == 1


# --- approvers -----------------------------------------------------------------------------------------------------


async def test_approvers_who_are_not_the_right_ones_are_refused_and_store_nothing(sessions: Any,
                                                                                  tenant: str) -> None:
    bank, other_bank, elsewhere, stranger = new_id("bank"), new_id("bank"), new_id("bank"), new_id("t")
    await known(sessions, tenant, co_lenders=((bank, 3_000), (other_bank, 1_000)))
    await known(sessions, stranger, "B1", co_lenders=((elsewhere, 1_000),))  # co-lends another servicer's account
    view, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "settlement")
    plan_id = view.plan.plan_id
    with pytest.raises(MakerCannotApprove):  # the maker, even holding the supervisor role now
        await decide(sessions, tenant, plan_id, approver="agent-7")
    with pytest.raises(NotAnApprover):  # a servicer's agent is no approver
        await decide(sessions, tenant, plan_id, approver="agent-8", roles=AGENT)
    with pytest.raises(negotiation.CoLentPlanNotFound):  # a co-lender of another account
        await decide(sessions, tenant, plan_id, approver="x", tenant=elsewhere, roles=PARTNER)
    with pytest.raises(negotiation.CoLentPlanNotFound):  # ... naming the servicer of the account it co-lends
        await decide(sessions, stranger, plan_id, approver="x", tenant=elsewhere, roles=PARTNER)
    await decide(sessions, tenant, plan_id, approver="lead-wang", roles=SUPERVISOR | PARTNER)
    with pytest.raises(NothingToDecide):  # a servicer supervisor cannot take a co-lender's step, nor its own twice
        await decide(sessions, tenant, plan_id, approver="lead-li")
    # the bank decides its own step only: once
    await decide(sessions, tenant, plan_id, approver="risk-desk", tenant=bank, roles=PARTNER)
    with pytest.raises(NothingToDecide):
        await decide(sessions, tenant, plan_id, approver="risk-desk-2", tenant=bank, roles=PARTNER)
    steps = {a.step: (a.status, a.decided_by) for a in await rows(sessions, select(PlanApproval).where(
        PlanApproval.plan_id == plan_id))}  # type: ignore[arg-type]
    assert steps == {"supervisor": ("approved", "lead-wang"), f"co_lender:{bank}": ("approved", "risk-desk"),
                     f"co_lender:{other_bank}": ("pending", None)}
    # a rejection by the other co-lender ends it, then nothing more is decided
    rejected, outbox = await decide(sessions, tenant, plan_id, approver="desk", tenant=other_bank, roles=PARTNER,
                                    approve=False)
    assert rejected.plan.plan.status == "rejected" and outbox == []
    with pytest.raises(negotiation.PlanNotPending):
        await decide(sessions, tenant, plan_id, approver="lead-li")
    # every decision is audited with its reason, in the decider's tenant; no refused one is
    audit = await rows(sessions, select(AuditEntry).where(  # type: ignore[arg-type]
        AuditEntry.tenant.in_([tenant, bank, other_bank, elsewhere, stranger])).order_by(AuditEntry.id))  # type: ignore[attr-defined]
    assert [(a.tenant, a.principal, a.action, a.subject, a.reason) for a in audit] == [
        (tenant, "agent-7", "plan.propose", f"plan:{plan_id}", "lost her job"),
        (tenant, "lead-wang", "plan.approve", f"plan:{tenant}/{plan_id}", "checked the payslips"),
        (bank, "risk-desk", "plan.approve", f"plan:{tenant}/{plan_id}", "checked the payslips"),
        (other_bank, "desk", "plan.reject", f"plan:{tenant}/{plan_id}", "checked the payslips")]


async def test_a_cancelled_plan_is_not_approved(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    view, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "instalments-12")
    async with committed(sessions) as uow:
        await service.cancel_plan(uow, tenant=tenant, plan_id=view.plan.plan_id)
    with pytest.raises(negotiation.PlanNotPending):
        await decide(sessions, tenant, view.plan.plan_id, approver="lead-wang")
    [plan] = await rows(sessions, select(Plan).where(Plan.plan_id == view.plan.plan_id))  # type: ignore[arg-type]
    assert plan.status == "cancelled"


# --- the write-off -------------------------------------------------------------------------------------------------


async def test_a_settlement_overpaid_writes_off_only_what_was_left_unpaid(sessions: Any, tenant: str) -> None:
    bank = new_id("bank")
    plan = await agreed_settlement(sessions, tenant, co_lenders=((bank, 3_333),))
    assert (plan.total_minor, plan.written_off_minor) == (800_000, 200_000)
    assert topics_of(await pay(sessions, tenant, "P1", 700_000)) == []
    outbox = await pay(sessions, tenant, "P2", 200_001)  # 100,001 more than the settlement asked for
    [write_off] = write_offs(outbox)
    assert write_off.amount_minor == 99_999  # the balance (1,000,000) less everything paid (900,001)
    assert sum(s.amount_minor for s in write_off.shares) == 99_999
    assert sorted((s.lender, s.amount_minor) for s in write_off.shares) == sorted([
        (tenant, 66_669), (bank, 33_330)])  # 66,668.33 and 33,329.67 rounded down leave 2 units: one each
    [stored] = await rows(sessions, select(Plan).where(Plan.plan_id == plan.plan_id))  # type: ignore[arg-type]
    assert (stored.status, stored.written_off_minor) == ("completed", 99_999)


async def test_a_settlement_paid_in_full_writes_off_nothing(sessions: Any, tenant: str) -> None:
    plan = await agreed_settlement(sessions, tenant)
    outbox = await pay(sessions, tenant, "P1", 1_000_000)
    assert topics_of(outbox) == [topics.PLAN_EVENT.name]  # completed; nothing is written off
    [stored] = await rows(sessions, select(Plan).where(Plan.plan_id == plan.plan_id))  # type: ignore[arg-type]
    assert (stored.status, stored.written_off_minor) == ("completed", 0)


async def test_a_waiver_overpaid_in_one_batch_writes_off_the_rest(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    view, _ = await accept(sessions, tenant, (await quote(sessions, tenant)).quote_id, "waiver-1", maker="lead-wang",
                           roles=SUPERVISOR)
    assert (view.plan.total_minor, view.plan.written_off_minor) == (225_000, 25_000)
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.apply_payments(uow, payments=[PaymentReceivedV1(
            tenant=tenant, account_id="A1", customer_id="C1", payment_id=f"P{i}", amount_minor=amount,
            currency="CNY", paid_at=datetime.now(UTC)) for i, amount in enumerate((200_000, 30_000, 5_000))])
    [write_off] = write_offs(outbox)  # 230,000 paid against 225,000: 5,000 less to write off (P2 comes too late)
    assert write_off.amount_minor == 20_000


async def test_the_write_off_in_currencies_of_exponent_0_and_3_is_exact_and_announced_once(
        sessions: Any, tenant: str) -> None:
    bank = new_id("bank")
    for currency in ("JPY", "KWD"):
        t = f"{tenant}-{currency}"
        plan = await agreed_settlement(sessions, t, co_lenders=((bank, 5_000),), currency=currency,
                                       overdue_minor=250_001, outstanding_minor=1_000_001)
        assert (plan.total_minor, plan.written_off_minor) == (800_001, 200_000)
        outbox = await pay(sessions, t, "P1", 800_001, currency=currency)
        [write_off] = write_offs(outbox)
        assert (write_off.currency, write_off.amount_minor) == (currency, 200_000)
        assert sorted((s.lender, s.amount_minor) for s in write_off.shares) == sorted([(t, 100_000),
                                                                                       (bank, 100_000)])
        # redelivered, and a later payment: nothing is announced again
        assert topics_of(await pay(sessions, t, "P1", 800_001, currency=currency)) == []
        assert topics_of(await pay(sessions, t, "P2", 5, currency=currency)) == []


async def test_quotes_and_agreements_refuse_another_tenants_quote_and_store_nothing(sessions: Any,
                                                                                    tenant: str) -> None:
    other = new_id("t")
    await known(sessions, tenant)
    await known(sessions, other)
    theirs = await quote(sessions, other)
    with pytest.raises(negotiation.QuoteNotFound):
        await accept(sessions, tenant, theirs.quote_id, "instalments-2")
    with pytest.raises(negotiation.AmountInvalid):
        async with committed(sessions) as uow:
            await negotiation.quote(uow, tenant=tenant, account_id="A1", income=Decimal("NaN"), expenses=None,
                                    requested_by="x", now=datetime.now(UTC))
    assert await rows(sessions, select(Plan).where(Plan.tenant.in_([tenant, other]))) == []  # type: ignore[attr-defined]


async def test_a_quote_is_not_agreed_once_a_payment_changed_what_is_owed(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant)
    q = await quote(sessions, tenant)
    assert topics_of(await pay(sessions, tenant, "P0", 100_000)) == []  # no plan yet: kept for the account only
    with pytest.raises(negotiation.QuoteStale):  # its settlement would write off 100,000 already paid
        await accept(sessions, tenant, q.quote_id, "settlement", maker="lead-wang", roles=SUPERVISOR)
    fresh = await quote(sessions, tenant)
    assert (fresh.overdue_minor, fresh.outstanding_minor) == (150_000, 900_000)
    paid_up = await quote(sessions, tenant)
    assert topics_of(await pay(sessions, tenant, "P1", 150_000)) == []
    with pytest.raises(service.NothingOverdue):
        await accept(sessions, tenant, paid_up.quote_id, "instalments-2")
    assert await rows(sessions, select(Plan).where(Plan.tenant == tenant)) == []  # type: ignore[arg-type]
    [unused] = await rows(sessions, select(PlanQuote.plan_id).where(  # type: ignore[call-overload]
        PlanQuote.quote_id == q.quote_id))
    assert unused is None
