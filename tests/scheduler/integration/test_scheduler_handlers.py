"""Scheduler handlers on real PostgreSQL with multi-event batches (executemany paths)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.scheduler.consumers import handlers
from services.scheduler.db.models import Treatment, TreatmentStep
from shared.contracts import topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    ContactRejectedV1,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")


def delivery(topic: topics.Topic, payload, customer_id: str) -> Delivery:  # type: ignore[no-untyped-def]
    event = build_event(topic, payload, tenant=payload.tenant, customer_id=customer_id, source="urn:test")
    record = ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)



def segmented(tenant: str, n: int, dpd: int = 5, as_of: datetime | None = None) -> AccountSegmentedV1:
    return AccountSegmentedV1(
        tenant=tenant, account_id=f"A{n}", customer_id=f"C{n}", segment="standard", dpd_bucket="1-15",
        days_past_due=dpd, due_date=date.today() - timedelta(days=dpd), currency="CNY", overdue_minor=1000,
        outstanding_minor=5000, reason="test", as_of=as_of,
        contact={"name": CIPHER.seal("n", context=tenant), "phone": CIPHER.seal("+8613900000001", context=tenant),
                 "time_zone": "Asia/Shanghai"})


async def steps_of(sessions, tenant: str) -> dict[str, TreatmentStep]:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        rows = (await session.execute(select(TreatmentStep).where(TreatmentStep.tenant == tenant))).scalars().all()
    return {s.account_id: s for s in rows}


async def test_a_batch_flows_through_every_handler(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    batch = [delivery(topics.ACCOUNT_SEGMENTED, segmented(tenant, n), f"C{n}") for n in range(4)]
    batch.append(delivery(topics.ACCOUNT_SEGMENTED, segmented(tenant, 0, dpd=6), "C0"))  # same account twice
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, batch)
    steps = await steps_of(sessions, tenant)
    assert sorted(steps) == ["A0", "A1", "A2", "A3"]
    assert {s.status for s in steps.values()} == {"requested"}
    assert {s.channel for s in steps.values()} == {"sms"}

    now = datetime.now(UTC)
    outcomes = [delivery(topics.CONTACT_OUTCOME, ContactOutcomeV1(
        tenant=tenant, contact_id=steps[a].contact_id, account_id=a, customer_id=steps[a].customer_id,
        channel="sms", outcome=outcome, occurred_at=now), steps[a].customer_id)
        for a, outcome in (("A0", "sent"), ("A1", "failed"))]
    rejected = [delivery(topics.CONTACT_REJECTED, ContactRejectedV1(
        tenant=tenant, decision_id="d", contact_id=steps[a].contact_id, attempt=1, account_id=a,
        customer_id=steps[a].customer_id, channel="sms", rule_id="CN-HOURS", reason="night",
        retry_at=retry), steps[a].customer_id)
        for a, retry in (("A2", now + timedelta(hours=3)), ("A3", None))]
    async with committed(sessions) as uow:
        await handlers.on_contact_outcome(uow, outcomes)
        await handlers.on_contact_rejected(uow, rejected)
    steps = await steps_of(sessions, tenant)
    assert (steps["A0"].status, steps["A1"].status) == ("done", "failed")
    assert (steps["A2"].status, steps["A2"].attempt) == ("pending", 2)
    assert steps["A2"].due_at > now + timedelta(hours=2)
    assert (steps["A3"].status, steps["A3"].attempt) == ("blocked", 1)

    plan = PlanEventV1(tenant=tenant, plan_id="p1", account_id="A2", customer_id="C2", kind="agreed",
                       currency="CNY", total_minor=1000, instalments=[], occurred_at=now)
    pays = [delivery(topics.PAYMENT_RECEIVED, PaymentReceivedV1(
        tenant=tenant, account_id="A1", customer_id="C1", payment_id=f"P{i}", amount_minor=500, currency="CNY",
        paid_at=now), "C1") for i in range(2)]
    async with committed(sessions) as uow:
        await handlers.on_plan_event(uow, [delivery(topics.PLAN_EVENT, plan, "C2")])
        await handlers.on_payment_received(uow, pays)
    async with sessions() as session:
        treatments = {t.account_id: t for t in (await session.execute(
            select(Treatment).where(Treatment.tenant == tenant))).scalars()}
    assert treatments["A2"].status == "paused"
    assert (treatments["A1"].status, treatments["A1"].overdue_minor) == ("stopped", 0)
    assert treatments["A0"].status == "active"
    assert (await steps_of(sessions, tenant))["A2"].status == "cancelled"


async def test_stale_data_never_revives_a_paid_treatment_and_payments_count_once(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    as_of = datetime.now(UTC) - timedelta(hours=2)
    now = as_of + timedelta(minutes=1)  # payments booked after the snapshot
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, [delivery(topics.ACCOUNT_SEGMENTED, segmented(tenant, 1, as_of=as_of),
                                                           "C1")])

    def pay(event_suffix: int) -> Delivery:  # the same payment, published twice under different event ids
        return delivery(topics.PAYMENT_RECEIVED, PaymentReceivedV1(
            tenant=tenant, account_id="A1", customer_id="C1", payment_id="PAY-1", amount_minor=600,
            currency="CNY", paid_at=now), f"C1-{event_suffix}")

    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [pay(1)])
        await handlers.on_payment_received(uow, [pay(2)])

    async def treatment() -> Treatment:
        async with sessions() as session:
            return (await session.execute(select(Treatment).where(Treatment.tenant == tenant))).scalars().one()

    assert ((await treatment()).status, (await treatment()).overdue_minor) == ("active", 400)  # 1000 - 600 once
    async with committed(sessions) as uow:
        await handlers.on_payment_received(uow, [delivery(topics.PAYMENT_RECEIVED, PaymentReceivedV1(
            tenant=tenant, account_id="A1", customer_id="C1", payment_id="PAY-2", amount_minor=400,
            currency="CNY", paid_at=now), "C1")])
    assert (await treatment()).status == "stopped"
    # an older segmentation event (same cycle, a snapshot from before the payment) arrives late
    older = segmented(tenant, 1, dpd=20, as_of=as_of - timedelta(hours=1))
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, [delivery(topics.ACCOUNT_SEGMENTED, older, "C1")])
    stopped = await treatment()
    assert (stopped.status, stopped.overdue_minor) == ("stopped", 0)
    assert set(await steps_of(sessions, tenant)) == {"A1"}  # no new call step was opened
    # a new delinquency cycle (later due date) does revive it
    newer = segmented(tenant, 1, dpd=2, as_of=now + timedelta(minutes=5)).model_copy(
        update={"due_date": date.today() + timedelta(days=30)})
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, [delivery(topics.ACCOUNT_SEGMENTED, newer, "C1")])
    assert (await treatment()).status == "active"


async def test_a_pause_cancels_requested_steps_and_a_resume_reopens_them(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    seg = delivery(topics.ACCOUNT_SEGMENTED, segmented(tenant, 1), "C1")
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, [seg])
    step = (await steps_of(sessions, tenant))["A1"]
    assert step.status == "requested"

    def plan(kind: str) -> Delivery:
        return delivery(topics.PLAN_EVENT, PlanEventV1(tenant=tenant, plan_id="p1", account_id="A1", customer_id="C1",
                                                       kind=kind, currency="CNY", total_minor=1000, instalments=[],
                                                       occurred_at=now), "C1")

    async with committed(sessions) as uow:
        await handlers.on_plan_event(uow, [plan("agreed")])
    assert (await steps_of(sessions, tenant))["A1"].status == "cancelled"
    # compliance's deferral of the old request arrives after the pause: it must not revive the step
    async with committed(sessions) as uow:
        await handlers.on_contact_rejected(uow, [delivery(topics.CONTACT_REJECTED, ContactRejectedV1(
            tenant=tenant, decision_id="d", contact_id=step.contact_id, attempt=1, account_id="A1",
            customer_id="C1", channel="sms", rule_id="CN-HOURS", reason="night", retry_at=now), "C1")])
    assert (await steps_of(sessions, tenant))["A1"].status == "cancelled"
    async with committed(sessions) as uow:
        await handlers.on_plan_event(uow, [plan("broken")])
        later = segmented(tenant, 1, dpd=7).model_copy(update={"due_date": step.due_date})  # same cycle, 2 days on
        await handlers.on_account_segmented(uow, [delivery(topics.ACCOUNT_SEGMENTED, later, "C1")])
    reopened = (await steps_of(sessions, tenant))["A1"]
    assert (reopened.contact_id, reopened.status, reopened.attempt) == (step.contact_id, "requested", 2)
