"""Promises to pay recorded in plans (plans.promise-event.v1) on the real PostgreSQL: an open one pauses the treatment
until its deadline, where the timer checks it; cancelled, it pauses nothing; plans' verdict (kept, partial, broken)
is trusted, and a broken or partial one counts for the strategy's ``broken_promises`` escalation. Any order of the
promise's events, a payment and the overdue snapshot ends in the same state."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select, update

from services.scheduler import service
from services.scheduler.consumers import handlers
from services.scheduler.db.models import Treatment, TreatmentPromise, TreatmentStep
from services.scheduler.domain.strategies.builtin import DOCUMENT as BUILTIN
from services.scheduler.service import strategies
from shared.contracts import topics
from shared.contracts.events import AccountSegmentedV1, PaymentReceivedV1, PromiseEventV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
NOW = datetime.now(UTC).replace(microsecond=0)
AS_OF = NOW - timedelta(hours=2)     # the overdue snapshot
DPD = 35                             # the escalating strategy's 31-60 bucket: a call, or a field visit once broken
OVERDUE = 12_300


def escalating() -> dict[str, Any]:
    doc = copy.deepcopy(BUILTIN)
    doc["segments"]["standard"]["31-60"] = [
        {"id": "call-31", "day": 31, "channel": "call", "template": "call.script"},
        {"id": "after-broken-promise", "day": 31, "channel": "field", "template": "field.visit",
         "when": {"broken_promises_min": 1}}]
    return doc


@pytest.fixture
async def tenant(sessions: Any) -> AsyncIterator[str]:
    """A tenant following the escalating strategy."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    async with committed(sessions) as uow:
        await strategies.publish_strategy(uow.session, tenant=name, name="escalate", document=escalating(),
                                          created_by="test", reason="test")
        await strategies.publish_assignment(uow.session, tenant=name, created_by="test", reason="test",
                                            document={"champion": {"strategy": "escalate", "version": 1}})
    yield name


def segmented(tenant: str, account: str) -> AccountSegmentedV1:
    return AccountSegmentedV1(
        tenant=tenant, account_id=account, customer_id=f"C-{account}", segment="standard", dpd_bucket="31-60",
        days_past_due=DPD, due_date=NOW.date() - timedelta(days=DPD), currency="CNY", overdue_minor=OVERDUE,
        outstanding_minor=50_000, reason="test", as_of=AS_OF,
        contact={"name": CIPHER.seal("王五", context=tenant), "phone": CIPHER.seal("+8613900000001", context=tenant),
                 "address": CIPHER.seal("上海市浦东新区1号", context=tenant), "time_zone": "Asia/Shanghai"})


def promise(tenant: str, account: str, status: str, *, made_at: datetime, deadline: datetime,
            at: datetime | None = None, amount: int = 5_000) -> PromiseEventV1:
    return PromiseEventV1(
        tenant=tenant, promise_id=f"PRM-{account}", account_id=account, customer_id=f"C-{account}", status=status,  # type: ignore[arg-type]
        source="portal", currency="CNY", amount_minor=amount, paid_minor=0,
        due_on=(deadline - timedelta(days=2)).date(), deadline=deadline, made_at=made_at,
        occurred_at=at or (made_at if status == "open" else deadline))


def payment(tenant: str, account: str, amount: int, at: datetime) -> PaymentReceivedV1:
    return PaymentReceivedV1(tenant=tenant, account_id=account, customer_id=f"C-{account}",
                             payment_id=f"PAY-{uuid.uuid4().hex[:8]}", amount_minor=amount, currency="CNY", paid_at=at)


def delivery(topic: topics.Topic, payload: Any) -> Delivery:
    event = build_event(topic, payload, tenant=payload.tenant, customer_id=payload.customer_id, source="urn:test")
    return Delivery(event, payload, ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, []))


async def apply(sessions: Any, *facts: Any) -> None:
    """Each fact through the scheduler's handler for its topic, one batch per kind, committed."""
    async with committed(sessions) as uow:
        for kind, handler, topic in ((PromiseEventV1, handlers.on_promise_event, topics.PROMISE_EVENT),
                                     (PaymentReceivedV1, handlers.on_payment_received, topics.PAYMENT_RECEIVED),
                                     (AccountSegmentedV1, handlers.on_account_segmented, topics.ACCOUNT_SEGMENTED)):
            batch = [delivery(topic, f) for f in facts if isinstance(f, kind)]
            if batch:
                await handler(uow, batch)


async def check(sessions: Any) -> None:
    """The timer loop: promises whose deadline passed are checked."""
    async with committed(sessions) as uow:
        await service.check_promises(uow)


CALL, ESCALATED = "call", "escalated"


async def state(sessions: Any, tenant: str, account: str) -> tuple[str, int, str | None]:
    """The treatment's status and amount overdue, and what its open steps (requested or pending) come to: the
    escalation for a broken promise, the call, or nothing (a call requested before the promise broke stays
    requested: a contact requested cannot be unrequested)."""
    async with sessions() as session:
        [t] = (await session.execute(select(Treatment).where(Treatment.tenant == tenant,  # type: ignore[arg-type]
                                                             Treatment.account_id == account))).scalars().all()  # type: ignore[arg-type]
        steps = (await session.execute(select(TreatmentStep).where(
            TreatmentStep.tenant == tenant, TreatmentStep.account_id == account))).scalars().all()  # type: ignore[arg-type]
    open_steps = {s.step for s in steps if s.status in ("requested", "pending")}
    return t.status, t.overdue_minor, (ESCALATED if "after-broken-promise" in open_steps else
                                       CALL if open_steps == {"call-31"} else None if not open_steps else
                                       str(sorted(open_steps)))


async def promises_of(sessions: Any, tenant: str) -> list[TreatmentPromise]:
    async with sessions() as session:
        query = select(TreatmentPromise).where(TreatmentPromise.tenant == tenant)  # type: ignore[arg-type]
        return list((await session.execute(query)).scalars().all())


def account() -> str:
    return f"ACC-{uuid.uuid4().hex[:8]}"


async def test_an_open_promise_pauses_the_treatment_until_its_deadline(sessions: Any, tenant: str) -> None:
    acc = account()
    await apply(sessions, segmented(tenant, acc))
    assert await state(sessions, tenant, acc) == ("active", OVERDUE, CALL)
    deadline = NOW + timedelta(days=3)
    await apply(sessions, promise(tenant, acc, "open", made_at=NOW - timedelta(minutes=30), deadline=deadline))
    status, _, open_steps = await state(sessions, tenant, acc)
    assert (status, open_steps) == ("paused", None)
    [kept] = await promises_of(sessions, tenant)
    assert (kept.promise_id, kept.check_at, kept.deadline, kept.verdict) == (
        f"plans:PRM-{acc}", deadline, deadline, "open")
    await check(sessions)  # the timer leaves it alone until its deadline
    assert (await state(sessions, tenant, acc))[0] == "paused"

    # the deadline passes unpaid, plans has not said yet: the timer finds it broken and the strategy escalates
    async with committed(sessions) as uow:
        await uow.session.execute(update(TreatmentPromise).where(TreatmentPromise.tenant == tenant)  # type: ignore[arg-type]
                                  .values(check_at=NOW - timedelta(seconds=1), deadline=NOW - timedelta(seconds=1)))
    await check(sessions)
    assert await state(sessions, tenant, acc) == ("active", OVERDUE, ESCALATED)


async def test_a_repeated_open_is_one_promise_and_a_cancelled_one_pauses_nothing(sessions: Any, tenant: str) -> None:
    acc = account()
    made, deadline = NOW - timedelta(minutes=30), NOW + timedelta(days=3)
    opened = promise(tenant, acc, "open", made_at=made, deadline=deadline)
    await apply(sessions, segmented(tenant, acc), opened, opened)
    await apply(sessions, opened)
    assert len(await promises_of(sessions, tenant)) == 1
    assert (await state(sessions, tenant, acc))[0] == "paused"
    await apply(sessions, promise(tenant, acc, "cancelled", made_at=made, deadline=deadline, at=NOW))
    assert await state(sessions, tenant, acc) == ("active", OVERDUE, CALL)
    await apply(sessions, opened)  # replayed after its end: changes nothing
    assert await state(sessions, tenant, acc) == ("active", OVERDUE, CALL)


SCENARIOS = {
    # open, paid in full after it was made: kept by the payments, no escalation; the treatment runs on
    "kept-by-payment": ("open", 5_000, 0, ("active", OVERDUE - 5_000, CALL)),
    # open, nothing paid since: paused until the deadline
    "open": ("open", 4_000, -3, ("paused", OVERDUE, None)),
    # plans says partial (paid too late for it), although the money covers the promise: plans is trusted
    "partial-by-plans": ("partial", 5_000, 0, ("active", OVERDUE - 5_000, ESCALATED)),
    # plans says broken, heard of before its open
    "broken-by-plans": ("broken", 1_000, 0, ("active", OVERDUE - 1_000, ESCALATED)),
    # plans says kept though the payment has not reached the scheduler: trusted, no escalation
    "kept-by-plans": ("kept", 2_000, -3, ("active", OVERDUE, CALL)),
    "cancelled": ("cancelled", 1_000, 0, ("active", OVERDUE - 1_000, CALL)),
}
ORDERS = list(itertools.permutations(["promise", "payment", "segmented"]))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_any_order_of_promise_payment_and_snapshot_ends_the_same(sessions: Any, tenant: str,
                                                                      scenario: str) -> None:
    status, paid, paid_days, expected = SCENARIOS[scenario]
    ended = status != "open"
    # an ended promise was made days ago and its deadline has passed; an open one runs three more days
    made = NOW - timedelta(days=4) if ended else NOW - timedelta(minutes=30)
    deadline = NOW - timedelta(days=1) if ended else NOW + timedelta(days=3)
    ends = {}
    for order in ORDERS:
        for one_batch in (False, True):
            acc = account()
            # paid_days < 0: paid before the snapshot and the promise, so neither counts it
            paid_at = NOW - timedelta(minutes=10) if paid_days == 0 else AS_OF + timedelta(days=paid_days)
            facts = {"promise": promise(tenant, acc, status, made_at=made, deadline=deadline),
                     "payment": payment(tenant, acc, paid, paid_at), "segmented": segmented(tenant, acc)}
            if one_batch:
                await apply(sessions, *(facts[name] for name in order))
            else:
                for name in order:
                    await apply(sessions, facts[name])
            await check(sessions)  # the timer, whenever it runs
            ends[(order, one_batch)] = await state(sessions, tenant, acc)
    assert set(ends.values()) == {expected}, ends


@pytest.mark.parametrize("end", ["broken", "partial"])
async def test_an_end_and_its_open_in_either_order_escalate_once(sessions: Any, tenant: str, end: str) -> None:
    made, deadline = NOW - timedelta(days=4), NOW - timedelta(days=1)
    ends = set()
    for order in (("open", end), (end, "open"), ("open", end, "open")):
        acc = account()
        await apply(sessions, segmented(tenant, acc))
        for status in order:
            await apply(sessions, promise(tenant, acc, status, made_at=made, deadline=deadline))
        await check(sessions)
        ends.add(await state(sessions, tenant, acc))
        async with sessions() as session:
            [row] = (await session.execute(select(TreatmentPromise).where(
                TreatmentPromise.tenant == tenant, TreatmentPromise.account_id == acc))).scalars().all()  # type: ignore[arg-type]
        assert row.verdict == end
    assert ends == {("active", OVERDUE, ESCALATED)}


async def test_another_tenants_promise_touches_nothing_here(sessions: Any, tenant: str) -> None:
    acc = account()
    await apply(sessions, segmented(tenant, acc))
    other = f"t-{uuid.uuid4().hex[:10]}"
    await apply(sessions, promise(other, acc, "open", made_at=NOW - timedelta(minutes=5),
                                  deadline=NOW + timedelta(days=3)))
    assert await state(sessions, tenant, acc) == ("active", OVERDUE, CALL)


async def test_a_promise_id_reused_for_another_account_changes_neither(sessions: Any, tenant: str) -> None:
    first, second = account(), account()
    await apply(sessions, segmented(tenant, first), segmented(tenant, second))
    made, deadline = NOW - timedelta(minutes=5), NOW + timedelta(days=3)
    await apply(sessions, promise(tenant, first, "open", made_at=made, deadline=deadline))
    hostile = promise(tenant, second, "broken", made_at=made, deadline=deadline, at=NOW).model_copy(
        update={"promise_id": f"PRM-{first}"})
    await apply(sessions, hostile)
    await apply(sessions, hostile.model_copy(update={"status": "open"}))
    [kept] = await promises_of(sessions, tenant)
    assert (kept.account_id, kept.verdict, kept.made_at) == (first, "open", made)
    await apply(sessions, payment(tenant, first, 1, NOW))  # the first account's treatment derived again
    assert (await state(sessions, tenant, first))[0] == "paused"     # not broken by the other account's event
    assert await state(sessions, tenant, second) == ("active", OVERDUE, CALL)
