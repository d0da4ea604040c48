"""Promises to pay on the real database (services/scheduler/domain/promises.py and the use cases): a promise made
on a call pauses the treatment until its deadline; paid, it is kept; unpaid, the timer finds it broken, the
treatment resumes and the strategy's escalation for a broken promise applies, whatever order the facts arrive in."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from services.scheduler import service
from services.scheduler.db.models import Treatment, TreatmentPromise, TreatmentStep
from shared.contracts.events import ContactOutcomeV1, PaymentReceivedV1
from tests.api.support import ServiceApi, Tenant, unique
from tests.api.test_api_scheduler_strategies import assign, escalating, publish, seed, segmented, steps_of

pytestmark = pytest.mark.integration


def promised(tenant: Tenant, step: TreatmentStep, *, amount: int, due_on: date, at: datetime) -> ContactOutcomeV1:
    return ContactOutcomeV1(
        tenant=tenant.id, contact_id=step.contact_id, account_id=step.account_id, customer_id=step.customer_id,
        channel="call", outcome="right_party_contact", occurred_at=at,  # type: ignore[arg-type]
        promise={"amount_minor": amount, "currency": "CNY", "due_on": due_on})  # type: ignore[arg-type]


async def apply(api: ServiceApi, fact: Any) -> None:
    async with api.runtime.units() as uow:
        if isinstance(fact, ContactOutcomeV1):
            await service.record_outcomes(uow, outcomes=[fact], promise_grace_days=0)
        elif isinstance(fact, PaymentReceivedV1):
            await service.apply_payments(uow, payments=[fact])
        else:
            await service.check_promises(uow)
        await uow.commit()


async def treatment(api: ServiceApi, tenant: Tenant, account: str) -> Treatment:
    [row] = await api.all(select(Treatment).where(Treatment.tenant == tenant.id,  # type: ignore[arg-type]
                                                  Treatment.account_id == account))  # type: ignore[arg-type]
    return row  # type: ignore[no-any-return]


async def account_with_a_call(scheduler: ServiceApi, tenant: Tenant) -> tuple[str, TreatmentStep]:
    await publish(scheduler, tenant, "escalate", escalating())
    await assign(scheduler, tenant, {"champion": {"strategy": "escalate", "version": 1}})
    account = unique("ACC")
    await seed(scheduler, [segmented(tenant, account, dpd=35)])
    [call] = await steps_of(scheduler, tenant, account)
    assert (call.step, call.channel) == ("call-31", "call")
    return account, call


async def test_a_promise_pauses_the_treatment_until_its_deadline(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    account, call = await account_with_a_call(scheduler, tenant_a)
    now = datetime.now(UTC)
    await apply(scheduler, promised(tenant_a, call, amount=5_000, due_on=date.today() + timedelta(days=3), at=now))
    t = await treatment(scheduler, tenant_a, account)
    assert t.status == "paused" and "promise to pay 5000 CNY" in t.status_reason
    [kept] = await scheduler.all(select(TreatmentPromise).where(TreatmentPromise.tenant == tenant_a.id))  # type: ignore[arg-type]
    # the deadline: the end of the promised day in Shanghai (grace 0 here)
    assert kept.check_at == datetime.combine(date.today() + timedelta(days=4), datetime.min.time(),
                                             tzinfo=UTC) - timedelta(hours=8)
    # the checker leaves it alone until then
    await apply(scheduler, "check")
    assert (await treatment(scheduler, tenant_a, account)).status == "paused"


def payment(tenant: Tenant, account: str, amount: int, at: datetime) -> PaymentReceivedV1:
    return PaymentReceivedV1(tenant=tenant.id, account_id=account, customer_id=f"C-{account}",
                             payment_id=unique("PAY"), amount_minor=amount, currency="CNY", paid_at=at)


async def expire(api: ServiceApi, tenant: Tenant) -> None:
    """Time passes: every promise of the tenant reaches its deadline."""
    async with api.runtime.units() as uow:
        await uow.session.execute(update(TreatmentPromise).where(TreatmentPromise.tenant == tenant.id)  # type: ignore[arg-type]
                                  .values(check_at=datetime.now(UTC) - timedelta(seconds=1)))
        await uow.commit()


ORDERS = list(itertools.permutations(["promise", "payment", "repeat"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
async def test_a_kept_promise_resumes_without_escalating_whatever_the_order(
        scheduler: ServiceApi, tenant_a: Tenant, order: tuple[str, ...]) -> None:
    account, call = await account_with_a_call(scheduler, tenant_a)
    made = datetime.now(UTC)  # after the overdue notice: a payment after it reduces what is overdue
    promise = promised(tenant_a, call, amount=5_000, due_on=date.today() + timedelta(days=2), at=made)
    facts = {"promise": promise, "repeat": promise,
             "payment": payment(tenant_a, account, 5_000, made + timedelta(seconds=1))}
    for name in order:
        await apply(scheduler, facts[name])
    await expire(scheduler, tenant_a)
    await apply(scheduler, "check")
    t = await treatment(scheduler, tenant_a, account)
    assert (t.status, t.overdue_minor) == ("active", 12_300 - 5_000)
    assert [s.step for s in await steps_of(scheduler, tenant_a, account)] == ["call-31"]  # no escalation


@pytest.mark.parametrize("order", [("promise", "check"), ("check", "promise"), ("promise", "promise")])
async def test_a_broken_promise_resumes_the_treatment_and_escalates(
        scheduler: ServiceApi, tenant_a: Tenant, order: tuple[str, ...]) -> None:
    account, call = await account_with_a_call(scheduler, tenant_a)
    made = datetime.now(UTC) - timedelta(days=3)
    promise = promised(tenant_a, call, amount=5_000, due_on=date.today() - timedelta(days=2), at=made)
    # a payment made before the promise does not keep it
    await apply(scheduler, payment(tenant_a, account, 5_000, made - timedelta(hours=1)))
    for name in order:
        await apply(scheduler, promise if name == "promise" else "check")
    await apply(scheduler, "check")  # the timer: the deadline (two days ago) has passed
    t = await treatment(scheduler, tenant_a, account)
    assert t.status == "active", t.status_reason
    steps = await steps_of(scheduler, tenant_a, account)
    assert [(s.step, s.channel) for s in steps] == [("call-31", "call"), ("after-broken-plan", "field")]
    assert steps[1].status == "requested"
