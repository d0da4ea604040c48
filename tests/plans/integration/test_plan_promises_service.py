"""Promises to pay and plan monitoring on real PostgreSQL (services/plans/promises.py, monitoring.py): a promise is
stored and announced open; payments delivered through the plans consumer's handler, before or after the promise, in
any order and twice, end it kept, partial or broken as the definition says; the timer decides it at its deadline;
a payment booked after the deadline counts for nothing. A plan with an instalment unpaid past its grace breaks and
is announced; a paid-off one is not. Another tenant sees nothing. Events are read from the outbox rows of the
transaction that wrote them."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.plans import monitoring, promises, service
from services.plans.consumers import handlers
from services.plans.db.models import Plan
from services.plans.db.promises import PlanPromise
from services.plans.domain.promises import PROMISE, PromiseStatus
from shared.contracts import topics
from shared.contracts.events import PlanEventV1, PromiseEventV1
from shared.domain import NotFound
from shared.kafka.consumer import Delivery
from tests.helpers import Outboxed, committed, committed_reading_outbox
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def promise_events(outbox: list[Outboxed]) -> list[PromiseEventV1]:
    assert {o.topic for o in outbox} <= {topics.PROMISE_EVENT.name}
    events = [PromiseEventV1.model_validate(o.event.data) for o in outbox]
    for o, e in zip(outbox, events, strict=True):
        assert (o.key, o.event.subject, o.event.type, o.event.tenant) == (
            f"{e.tenant}:{e.customer_id}".encode(), e.promise_id, topics.PROMISE_EVENT.event_type, e.tenant)
    return events


def of_tenant(outbox: list[Outboxed], tenant: str) -> list[Outboxed]:
    """The timer and the monitor work for every tenant: the rows of this test's tenant."""
    return [o for o in outbox if o.event.tenant == tenant]


async def known(sessions: Any, tenant: str, *accounts: str, time_zone: str = "Asia/Shanghai",
                currency: str = "CNY") -> None:
    await consume(sessions, *(overdue_notice(tenant, a, time_zone=time_zone, currency=currency) for a in accounts))


async def make(sessions: Any, tenant: str, account: str = "A1", *, amount_minor: int = 50_000,
               due_on: date | None = None, now: datetime = NOW, currency: str = "CNY",
               grace_days: int = 2) -> tuple[promises.PromiseView, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await promises.make_promise(
            uow, tenant=tenant, account_id=account, amount_minor=amount_minor, currency=currency,
            due_on=due_on or now.date() + timedelta(days=3), source="agent", made_by="agent-li", now=now,
            grace_days=grace_days)
    return view, outbox


async def deliver(sessions: Any, *payments: Delivery) -> list[Outboxed]:
    """Payments through the plans consumer's handler (plans then promises), one committed batch."""
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await handlers.build_handlers(None)[topics.PAYMENT_RECEIVED.name](uow, list(payments))  # type: ignore[arg-type]
    return outbox


async def tick(sessions: Any, now: datetime) -> list[Outboxed]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        while await promises.decide_due_promises(uow, now=now, limit=10_000) == 10_000:
            pass
    return outbox


async def stored(sessions: Any, tenant: str, account: str = "A1") -> list[PlanPromise]:
    async with sessions() as session:
        return list((await session.execute(select(PlanPromise).where(
            PlanPromise.tenant == tenant, PlanPromise.account_id == account)  # type: ignore[arg-type]
            .order_by(PlanPromise.made_at))).scalars())  # type: ignore[arg-type]


async def test_a_promise_is_stored_and_announced_open_with_its_deadline_in_the_accounts_zone(
        sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1", time_zone="America/New_York")
    due_on = NOW.date() + timedelta(days=5)
    view, outbox = await make(sessions, tenant, due_on=due_on, grace_days=2)
    # the end of due_on + 2 days in New York
    expected_deadline = datetime.combine(due_on + timedelta(days=3), datetime.min.time(),
                                         tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    assert (view.status, view.amount_minor, view.currency, view.due_on, view.deadline, view.customer_id) == (
        "open", 50_000, "CNY", due_on, expected_deadline, "C1")
    [row] = await stored(sessions, tenant)
    assert (row.promise_id, row.status, row.time_zone, row.grace_days, row.made_by, row.source, row.paid_minor) == (
        view.promise_id, "open", "America/New_York", 2, "agent-li", "agent", 0)
    [event] = promise_events(outbox)
    assert (event.status, event.promise_id, event.account_id, event.customer_id, event.source) == (
        "open", view.promise_id, "A1", "C1", "agent")
    assert (event.amount_minor, event.paid_minor, event.due_on, event.deadline, event.made_at) == (
        50_000, 0, due_on, expected_deadline, NOW)


async def test_refused_promises_store_nothing_and_one_open_promise_per_account(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    for kwargs in ({"amount_minor": 0}, {"currency": "USD"}, {"due_on": NOW.date() - timedelta(days=2)},
                   {"due_on": NOW.date() + timedelta(days=45)}):
        with pytest.raises(promises.PromiseRefused) as refused:
            await make(sessions, tenant, **kwargs)  # type: ignore[arg-type]
        assert len(refused.value.errors) == 1
    with pytest.raises(service.AccountUnknown):  # not known to plans, or another tenant's
        await make(sessions, tenant, "A-UNKNOWN")
    with pytest.raises(service.AccountUnknown):
        await make(sessions, f"t-{uuid.uuid4().hex[:8]}", "A1")
    assert await stored(sessions, tenant) == []

    first, _ = await make(sessions, tenant)
    with pytest.raises(promises.PromiseConflict):
        await make(sessions, tenant, amount_minor=1_000)
    async with committed_reading_outbox(sessions) as (uow, outbox):
        cancelled = await promises.cancel_promise(uow, tenant=tenant, promise_id=first.promise_id,
                                                  reason="customer withdrew", cancelled_by="agent-li", now=NOW)
    assert (cancelled.status, cancelled.cancel_reason, cancelled.cancelled_by) == (
        "cancelled", "customer withdrew", "agent-li")
    assert [(e.status, e.promise_id) for e in promise_events(outbox)] == [("cancelled", first.promise_id)]
    async with committed(sessions) as uow:
        with pytest.raises(promises.PromiseNotOpen):
            await promises.cancel_promise(uow, tenant=tenant, promise_id=first.promise_id, reason="again",
                                          cancelled_by="agent-li", now=NOW)
    second, _ = await make(sessions, tenant, amount_minor=1_000, now=NOW + timedelta(milliseconds=1))  # free again
    assert [r.status for r in await stored(sessions, tenant)] == ["cancelled", "open"]
    # a cancelled promise counts nothing, whatever is paid
    await deliver(sessions, payment_received(tenant, "A1", "PAY-1", 60_000, paid_at=NOW + timedelta(seconds=1)))
    assert [(r.promise_id, r.status) for r in await stored(sessions, tenant)] == [
        (first.promise_id, "cancelled"), (second.promise_id, "kept")]


async def test_paid_before_its_deadline_a_promise_is_kept_at_once_and_the_timer_leaves_it(
        sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    view, _ = await make(sessions, tenant, amount_minor=50_000)
    outbox = await deliver(sessions, payment_received(tenant, "A1", "PAY-1", 20_000, paid_at=NOW))
    assert outbox == []  # some paid, still open: no event
    [row] = await stored(sessions, tenant)
    assert (row.status, row.paid_minor) == ("open", 20_000)
    outbox = await deliver(sessions, payment_received(tenant, "A1", "PAY-2", 30_000, paid_at=NOW))
    [kept] = promise_events(outbox)
    assert (kept.status, kept.paid_minor, kept.promise_id) == ("kept", 50_000, view.promise_id)
    assert of_tenant(await tick(sessions, view.deadline + timedelta(days=1)), tenant) == []
    [row] = await stored(sessions, tenant)
    assert (row.status, row.paid_minor) == ("kept", 50_000)


async def test_the_timer_decides_unpaid_and_partly_paid_promises_at_their_deadline_only(
        sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1", "A2", "A3")
    unpaid, _ = await make(sessions, tenant, "A1")
    partly, _ = await make(sessions, tenant, "A2")
    await make(sessions, tenant, "A3", due_on=NOW.date() + timedelta(days=10))
    await deliver(sessions, payment_received(tenant, "A2", "PAY-1", 10_000, paid_at=NOW))
    assert of_tenant(await tick(sessions, unpaid.deadline - timedelta(seconds=1)), tenant) == []
    outbox = of_tenant(await tick(sessions, unpaid.deadline), tenant)
    assert sorted((e.promise_id, e.status, e.paid_minor) for e in promise_events(outbox)) == sorted([
        (unpaid.promise_id, "broken", 0), (partly.promise_id, "partial", 10_000)])
    assert of_tenant(await tick(sessions, unpaid.deadline), tenant) == []  # decided once
    assert [r.status for r in await stored(sessions, tenant, "A3")] == ["open"]
    # a payment booked after the deadline counts for nothing: no event, still broken
    outbox = await deliver(sessions, payment_received(tenant, "A1", "PAY-LATE", 50_000,
                                                      paid_at=unpaid.deadline + timedelta(hours=1)))
    assert outbox == []
    [row] = await stored(sessions, tenant, "A1")
    assert (row.status, row.paid_minor) == ("broken", 0)
    # one booked in time but delivered after the decision still counts: broken -> kept
    outbox = await deliver(sessions, payment_received(tenant, "A1", "PAY-ON-TIME", 50_000,
                                                      paid_at=unpaid.deadline - timedelta(hours=1)))
    assert [(e.status, e.paid_minor) for e in promise_events(outbox)] == [("kept", 50_000)]


async def test_a_row_locked_elsewhere_is_skipped_by_the_timer_and_decided_on_a_later_tick(
        sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1")
    view, _ = await make(sessions, tenant)
    async with sessions() as holder, holder.begin():
        await holder.execute(select(PlanPromise).where(PlanPromise.promise_id == view.promise_id)  # type: ignore[arg-type]
                             .with_for_update())
        assert of_tenant(await tick(sessions, view.deadline), tenant) == []
    assert [e.status for e in promise_events(of_tenant(await tick(sessions, view.deadline), tenant))] == ["broken"]


# A promise made ten days ago (due the next day, 2 days' grace: decided long before now), and the facts around it.
MADE = NOW - timedelta(days=10)


def facts(tenant: str, account: str, deadline: datetime) -> dict[str, Any]:
    def pay(payment_id: str, amount: int, at: datetime, currency: str = "CNY") -> Delivery:
        return payment_received(tenant, account, payment_id, amount, paid_at=at, currency=currency)

    return {
        "before": pay("P-BEFORE", 40_000, MADE - timedelta(hours=1)),     # before the promise: not counted
        "in-time": pay("P-IN", 30_000, MADE + timedelta(hours=1)),
        "in-time-again": pay("P-IN", 30_000, MADE + timedelta(hours=1)),  # the same payment redelivered
        "last-moment": pay("P-LAST", 15_000, deadline - timedelta(seconds=1)),
        "late": pay("P-LATE", 40_000, deadline + timedelta(hours=1)),     # after the deadline: not counted
        "usd": pay("P-USD", 90_000, MADE + timedelta(hours=2), "USD"),    # another currency: not counted
    }


ORDERS = [("promise", "before", "in-time", "in-time-again", "last-moment", "late", "usd", "tick"),
          ("tick", "late", "usd", "in-time", "before", "promise", "tick", "last-moment", "in-time-again"),
          ("last-moment", "in-time-again", "in-time", "late", "before", "usd", "promise", "tick"),
          ("promise", "tick", "late", "last-moment", "tick", "usd", "in-time", "before", "in-time-again"),
          ("usd", "promise", "in-time", "tick", "in-time-again", "before", "late", "last-moment", "tick")]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("amount", "expected", "paid"), [(45_000, "kept", 45_000), (50_000, "partial", 45_000),
                                                          (30_000, "kept", 45_000)])
async def test_payments_in_any_order_twice_or_late_end_as_the_definition_says(
        sessions: Any, tenant: str, order: tuple[str, ...], amount: int, expected: str, paid: int) -> None:
    await known(sessions, tenant, "A1")
    due_on = MADE.date() + timedelta(days=1)
    deadline = datetime.combine(due_on + timedelta(days=3), datetime.min.time(), tzinfo=UTC) - timedelta(hours=8)
    by_name = facts(tenant, "A1", deadline)
    statuses: list[str] = []
    for name in order:
        if name == "promise":
            view, outbox = await make(sessions, tenant, amount_minor=amount, due_on=due_on, now=MADE)
            assert view.deadline == deadline
        elif name == "tick":
            outbox = of_tenant(await tick(sessions, NOW), tenant)
        else:
            outbox = await deliver(sessions, by_name[name])
        statuses += [e.status for e in promise_events(outbox)]
    [row] = await stored(sessions, tenant)
    assert (row.status, row.paid_minor) == (expected, paid)
    # the events walk the lifecycle, from open to the end state
    assert statuses[0] == "open" and statuses[-1] == expected
    for before, after in itertools.pairwise(statuses):
        assert any(PROMISE.transitions[PromiseStatus(before)].get(e) == PromiseStatus(after)
                   for e in PROMISE.transitions[PromiseStatus(before)])


async def test_another_tenant_sees_changes_and_pays_towards_nothing(sessions: Any, tenant: str) -> None:
    other = f"t-{uuid.uuid4().hex[:8]}"
    await known(sessions, tenant, "A1")
    await known(sessions, other, "A1")
    view, _ = await make(sessions, tenant)
    async with sessions() as session:
        with pytest.raises(NotFound):
            await promises.get_promise(session, tenant=other, promise_id=view.promise_id)
        assert await promises.promises_of_account(session, tenant=other, account_id="A1") == []
        with pytest.raises(service.AccountUnknown):
            await promises.promises_of_account(session, tenant=other, account_id="A-NONE")
        assert [v.promise_id for v in await promises.promises_of_account(session, tenant=tenant, account_id="A1")
                ] == [view.promise_id]
    async with committed(sessions) as uow:
        with pytest.raises(NotFound):
            await promises.cancel_promise(uow, tenant=other, promise_id=view.promise_id, reason="x",
                                          cancelled_by="intruder", now=NOW)
    # the same account id of another tenant paying in full changes nothing here
    assert await deliver(sessions, payment_received(other, "A1", "PAY-1", 50_000, paid_at=NOW)) == []
    [row] = await stored(sessions, tenant)
    assert (row.status, row.paid_minor) == ("open", 0)


# --- plan monitoring ---------------------------------------------------------------------------------------------


async def agree(sessions: Any, tenant: str, account: str, schedule: list[tuple[date, Decimal]]) -> Plan:
    async with committed(sessions) as uow:
        view = await service.agree_plan(uow, tenant=tenant, account_id=account, customer_id="C1", currency="CNY",
                                        reason="job loss", instalments=schedule, idempotency_key=None,
                                        today=NOW.date())
    return view.plan


async def monitor(sessions: Any, tenant: str, now: datetime, grace_days: int = 3) -> list[PlanEventV1]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await monitoring.break_missed_plans(uow, now=now, grace_days=grace_days, limit=10_000)
    return [PlanEventV1.model_validate(o.event.data) for o in of_tenant(outbox, tenant)]


async def plan_status(sessions: Any, plan_id: str) -> str:
    async with sessions() as session:
        return str((await session.execute(select(Plan.status).where(Plan.plan_id == plan_id))).scalar_one())  # type: ignore[arg-type]


async def test_a_missed_instalment_breaks_the_plan_after_its_grace_in_the_accounts_zone(
        sessions: Any, tenant: str) -> None:
    await consume(sessions, overdue_notice(tenant, "A1", overdue_minor=100_000, time_zone="Pacific/Kiritimati"))
    first_due = NOW.date() + timedelta(days=1)
    plan = await agree(sessions, tenant, "A1", [(first_due, Decimal("300.00")),
                                                (first_due + timedelta(days=30), Decimal("700.00"))])
    # the end of the due date plus 3 days, in Kiritimati (UTC+14)
    end_of_grace = datetime.combine(first_due + timedelta(days=4), datetime.min.time(), tzinfo=UTC) - timedelta(
        hours=14)
    assert await monitor(sessions, tenant, end_of_grace - timedelta(seconds=1)) == []
    assert await plan_status(sessions, plan.plan_id) == "agreed"
    [broken] = await monitor(sessions, tenant, end_of_grace)
    assert (broken.kind, broken.plan_id, broken.account_id, broken.customer_id, broken.total_minor) == (
        "broken", plan.plan_id, "A1", "C1", 100_000)
    assert [(i.seq, i.due_date, i.amount_minor) for i in broken.instalments] == [
        (1, first_due, 30_000), (2, first_due + timedelta(days=30), 70_000)]
    assert await plan_status(sessions, plan.plan_id) == "broken"
    assert await monitor(sessions, tenant, end_of_grace + timedelta(days=60)) == []  # broken once
    # the account is free for a new plan
    again = await agree(sessions, tenant, "A1", [(NOW.date() + timedelta(days=2), Decimal("1000.00"))])
    assert again.status == "agreed"


async def test_paid_instalments_and_completed_plans_are_not_broken(sessions: Any, tenant: str) -> None:
    await known(sessions, tenant, "A1", "A2")
    first_due = NOW.date() + timedelta(days=1)
    schedule = [(first_due, Decimal("300.00")), (first_due + timedelta(days=30), Decimal("700.00"))]
    on_track = await agree(sessions, tenant, "A1", schedule)
    completed = await agree(sessions, tenant, "A2", schedule)
    await deliver(sessions, payment_received(tenant, "A1", "PAY-1", 30_000, paid_at=NOW),
                  payment_received(tenant, "A2", "PAY-2", 100_000, paid_at=NOW))
    assert await plan_status(sessions, completed.plan_id) == "completed"
    # the first instalment paid: nothing missed until the second's grace ends
    assert await monitor(sessions, tenant, NOW + timedelta(days=20)) == []
    assert await plan_status(sessions, on_track.plan_id) == "agreed"
    [broken] = await monitor(sessions, tenant, NOW + timedelta(days=40))
    assert broken.plan_id == on_track.plan_id
    assert await plan_status(sessions, completed.plan_id) == "completed"
