"""Plans' use cases on real PostgreSQL: agreeing (idempotently, one agreed plan per account), cancelling,
allocating payments; rows committed and PlanEvents in the outbox rows of the same transaction. Every plan
is agreed for an account the plans consumer already knows from its overdue notice (tests/plans/support.py);
the read model itself and the refusals are in test_plan_accounts_service.py."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from services.plans import service
from services.plans.db.models import AppliedPayment, Plan, PlanInstalment
from shared.contracts import topics
from shared.contracts.events import PaymentReceivedV1, PlanEventV1
from shared.domain import NotFound
from tests.helpers import Outboxed, committed, committed_reading_outbox
from tests.plans.support import consume, overdue_notice

pytestmark = pytest.mark.integration
TODAY = datetime.now(UTC).date()


def plan_events(outbox: list[Outboxed]) -> list[PlanEventV1]:
    assert {o.topic for o in outbox} <= {topics.PLAN_EVENT.name}
    events = [PlanEventV1.model_validate(o.event.data) for o in outbox]
    for o, e in zip(outbox, events, strict=True):
        assert (o.key, o.event.subject, o.event.type, o.event.tenant) == (
            f"{e.tenant}:{e.customer_id}".encode(), e.plan_id, topics.PLAN_EVENT.event_type, e.tenant)
    return events



@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


SCHEDULE = [(TODAY, Decimal("300.00")), (TODAY + timedelta(days=30), Decimal("700.00"))]
OVERDUE = 100_000  # what the accounts below owe: SCHEDULE covers it exactly


async def known(sessions: Any, tenant: str, *account_ids: str, currency: str = "CNY") -> None:
    """The plans consumer has received these accounts' overdue notices."""
    await consume(sessions, *(overdue_notice(tenant, a, overdue_minor=OVERDUE, currency=currency)
                              for a in account_ids))


async def agree(sessions: Any, tenant: str, *, account_id: str = "A1", key: str | None = None,
                currency: str = "CNY", today: date = TODAY,
                instalments: list[tuple[date, Decimal]] = SCHEDULE) -> tuple[service.PlanView, list[Outboxed]]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        view = await service.agree_plan(uow, tenant=tenant, account_id=account_id, customer_id="C1",
                                        currency=currency, reason="job loss", instalments=instalments,
                                        idempotency_key=key, today=today)
    return view, outbox


async def pay(sessions: Any, *payments: PaymentReceivedV1) -> list[Outboxed]:
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.apply_payments(uow, payments=list(payments))
    return outbox


def payment(tenant: str, payment_id: str, amount_minor: int, *, account_id: str = "A1",
            currency: str = "CNY") -> PaymentReceivedV1:
    return PaymentReceivedV1(tenant=tenant, account_id=account_id, customer_id="C1", payment_id=payment_id,
                             amount_minor=amount_minor, currency=currency, paid_at=datetime.now(UTC))


async def stored(sessions: Any, tenant: str, account_id: str = "A1") -> list[tuple[Plan, list[PlanInstalment]]]:
    async with sessions() as session:
        plans = (await session.execute(select(Plan).where(Plan.tenant == tenant, Plan.account_id == account_id)
                                       .order_by(Plan.created_at))).scalars().all()
        return [(p, list((await session.execute(select(PlanInstalment).where(PlanInstalment.plan_id == p.plan_id)
                                                .order_by(PlanInstalment.seq))).scalars())) for p in plans]


async def test_an_agreed_plan_is_stored_and_announced_and_a_retry_replays_it(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    key = f"idem-{uuid.uuid4()}"
    await known(sessions, tenant, "A1")
    view, outbox = await agree(sessions, tenant, key=key)

    assert not view.replayed
    [(plan, instalments)] = await stored(sessions, tenant)
    assert plan.plan_id == view.plan.plan_id
    assert (plan.status, plan.currency, plan.total_minor, plan.paid_minor, plan.reason, plan.idempotency_key) == (
        "agreed", "CNY", 100_000, 0, "job loss", key)
    assert [(i.seq, i.due_date, i.amount_minor, i.paid_minor) for i in instalments] == [
        (1, TODAY, 30_000, 0), (2, TODAY + timedelta(days=30), 70_000, 0)]
    [agreed] = plan_events(outbox)
    assert (agreed.kind, agreed.tenant, agreed.plan_id, agreed.account_id, agreed.customer_id) == (
        "agreed", tenant, plan.plan_id, "A1", "C1")
    assert (agreed.currency, agreed.total_minor) == ("CNY", 100_000)
    assert [(i.seq, i.due_date, i.amount_minor) for i in agreed.instalments] == [
        (1, TODAY, 30_000), (2, TODAY + timedelta(days=30), 70_000)]

    again, outbox = await agree(sessions, tenant, key=key)
    assert again.replayed
    assert again.plan.plan_id == plan.plan_id
    assert [(i.seq, i.amount_minor) for i in again.instalments] == [(1, 30_000), (2, 70_000)]
    assert outbox == []
    assert len(await stored(sessions, tenant)) == 1
    # the key is the tenant's own: another tenant's request with the same key is a plan of its own
    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    await known(sessions, other_tenant, "A1")  # its own account A1
    other, outbox = await agree(sessions, other_tenant, key=key)
    assert not other.replayed and other.plan.plan_id != plan.plan_id
    assert [e.kind for e in plan_events(outbox)] == ["agreed"]


async def test_a_second_plan_for_the_account_conflicts_and_stores_nothing(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await known(sessions, tenant, "A1", "A2")
    first, _ = await agree(sessions, tenant, key=f"idem-{uuid.uuid4()}")
    for key in (f"idem-{uuid.uuid4()}", None):
        written: list[Outboxed] = []
        with pytest.raises(service.PlanConflict, match=first.plan.plan_id):
            _, written = await agree(sessions, tenant, key=key,
                                     instalments=[(TODAY + timedelta(days=7), Decimal("1000.00"))])
        assert written == []
    plans = await stored(sessions, tenant)
    assert [(p.plan_id, p.status) for p, _ in plans] == [(first.plan.plan_id, "agreed")]
    assert service.PlanConflict.status == 409
    # another account of the tenant is free to agree its own
    _, outbox = await agree(sessions, tenant, account_id="A2")
    assert [(e.kind, e.account_id) for e in plan_events(outbox)] == [("agreed", "A2")]


async def test_payments_go_to_the_oldest_instalment_count_once_and_complete_the_plan(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await known(sessions, tenant, "A1")
    view, _ = await agree(sessions, tenant)
    plan_id = view.plan.plan_id

    p1 = payment(tenant, "PAY-1", 40_000)
    assert await pay(sessions, p1, p1) == []  # the same payment twice in one batch
    [(plan, instalments)] = await stored(sessions, tenant)
    assert (plan.status, plan.paid_minor) == ("agreed", 40_000)
    assert [i.paid_minor for i in instalments] == [30_000, 10_000]  # the oldest first, the rest to the next
    assert [i.status for i in instalments] == ["paid", "partly_paid"]  # stored by the instalment machine

    assert await pay(sessions, payment(tenant, "PAY-1", 40_000)) == []  # and redelivered in a later batch
    [(plan, instalments)] = await stored(sessions, tenant)
    assert (plan.paid_minor, [i.paid_minor for i in instalments]) == (40_000, [30_000, 10_000])

    outbox = await pay(sessions, payment(tenant, "PAY-2", 25_000))  # partial
    [(plan, instalments)] = await stored(sessions, tenant)
    assert (plan.status, plan.paid_minor, [i.paid_minor for i in instalments]) == ("agreed", 65_000,
                                                                                    [30_000, 35_000])
    assert outbox == []

    outbox = await pay(sessions, payment(tenant, "PAY-3", 35_000))  # the rest
    [(plan, instalments)] = await stored(sessions, tenant)
    assert (plan.status, plan.paid_minor, [i.paid_minor for i in instalments]) == ("completed", 100_000,
                                                                                    [30_000, 70_000])
    [completed] = plan_events(outbox)
    assert (completed.kind, completed.plan_id, completed.total_minor) == ("completed", plan_id, 100_000)
    assert [(i.seq, i.amount_minor) for i in completed.instalments] == [(1, 30_000), (2, 70_000)]
    async with sessions() as session:
        applied = (await session.execute(select(AppliedPayment.payment_id, AppliedPayment.amount_minor).where(
            AppliedPayment.tenant == tenant).order_by(AppliedPayment.payment_id))).all()
    assert [tuple(a) for a in applied] == [("PAY-1", 40_000), ("PAY-2", 25_000), ("PAY-3", 35_000)]

    # a payment after completion has no plan to go to
    assert await pay(sessions, payment(tenant, "PAY-4", 5_000)) == []
    async with committed(sessions) as uow:
        with pytest.raises(service.PlanNotActive):
            await service.cancel_plan(uow, tenant=tenant, plan_id=plan_id)
    [(plan, _)] = await stored(sessions, tenant)
    assert plan.status == "completed"


async def test_a_payment_in_another_currency_or_of_another_tenant_changes_nothing(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await known(sessions, tenant, "A1")
    await agree(sessions, tenant)
    other_tenant = f"t-{uuid.uuid4().hex[:8]}"
    outbox = await pay(sessions, payment(tenant, "PAY-USD", 100_000, currency="USD"),
                       payment(other_tenant, "PAY-OTHER", 100_000))
    assert outbox == []
    [(plan, instalments)] = await stored(sessions, tenant)
    assert (plan.status, plan.paid_minor, [i.paid_minor for i in instalments]) == ("agreed", 0, [0, 0])
    async with sessions() as session:
        applied = (await session.execute(select(func.count()).select_from(AppliedPayment).where(
            AppliedPayment.tenant.in_([tenant, other_tenant])))).scalar_one()  # type: ignore[attr-defined]
    assert applied == 0


async def test_cancel_announces_frees_the_account_and_only_applies_to_agreed_plans(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    await known(sessions, tenant, "A1")
    first, _ = await agree(sessions, tenant)
    async with committed(sessions) as uow:  # another tenant cannot see it, let alone cancel it
        with pytest.raises(NotFound):
            await service.cancel_plan(uow, tenant=f"t-{uuid.uuid4().hex[:8]}", plan_id=first.plan.plan_id)
    async with committed_reading_outbox(sessions) as (uow, outbox):
        cancelled = await service.cancel_plan(uow, tenant=tenant, plan_id=first.plan.plan_id)
    assert cancelled.plan.status == "cancelled"
    assert [(e.kind, e.plan_id) for e in plan_events(outbox)] == [("cancelled", first.plan.plan_id)]
    async with committed(sessions) as uow:
        with pytest.raises(service.PlanNotActive):
            await service.cancel_plan(uow, tenant=tenant, plan_id=first.plan.plan_id)

    second, outbox = await agree(sessions, tenant)
    assert [e.kind for e in plan_events(outbox)] == ["agreed"]
    assert [(p.plan_id, p.status) for p, _ in await stored(sessions, tenant)] == [
        (first.plan.plan_id, "cancelled"), (second.plan.plan_id, "agreed")]
    # a payment now goes to the agreed plan only
    await pay(sessions, payment(tenant, "PAY-1", 10_000))
    assert [(p.status, p.paid_minor) for p, _ in await stored(sessions, tenant)] == [
        ("cancelled", 0), ("agreed", 10_000)]


async def test_a_retry_with_the_same_key_replays_even_after_the_first_due_date(
        sessions, tenant) -> None:  # type: ignore[no-untyped-def]
    key = f"idem-{uuid.uuid4()}"
    await known(sessions, tenant, "A1")
    first, _ = await agree(sessions, tenant, key=key)
    again, outbox = await agree(sessions, tenant, key=key, today=TODAY + timedelta(days=1))
    assert (again.replayed, again.plan.plan_id, outbox) == (True, first.plan.plan_id, [])
