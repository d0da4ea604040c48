"""Scheduler handlers on real PostgreSQL with multi-event batches (executemany paths)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.scheduler.consumers import handlers
from services.scheduler.db.models import Treatment, TreatmentStep
from services.scheduler.settings import Settings
from shared.contracts import topics
from shared.contracts.events import (
    AccountSegmentedV1,
    ContactOutcomeV1,
    ContactRejectedV1,
    PaymentReceivedV1,
    PlanEventV1,
)
from shared.crypto import PiiCipher
from shared.db import create_engine, session_factory
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")


def delivery(topic: topics.Topic, payload, customer_id: str) -> Delivery:  # type: ignore[no-untyped-def]
    event = build_event(topic, payload, tenant=payload.tenant, customer_id=customer_id, source="urn:test")
    record = ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


@pytest.fixture
async def sessions(infra) -> AsyncIterator:  # type: ignore[no-untyped-def, type-arg]
    engine = create_engine(Settings(database_url=infra.database_url))
    yield session_factory(engine)
    await engine.dispose()


def segmented(tenant: str, n: int, dpd: int = 5) -> AccountSegmentedV1:
    return AccountSegmentedV1(
        tenant=tenant, account_id=f"A{n}", customer_id=f"C{n}", segment="standard", dpd_bucket="1-15",
        days_past_due=dpd, due_date=date.today() - timedelta(days=dpd), currency="CNY", overdue_minor=1000,
        outstanding_minor=5000, reason="test",
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
    async with sessions() as session, session.begin():
        await handlers.on_account_segmented(session, batch)
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
    async with sessions() as session, session.begin():
        await handlers.on_contact_outcome(session, outcomes)
        await handlers.on_contact_rejected(session, rejected)
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
    async with sessions() as session, session.begin():
        await handlers.on_plan_event(session, [delivery(topics.PLAN_EVENT, plan, "C2")])
        await handlers.on_payment_received(session, pays)
    async with sessions() as session:
        treatments = {t.account_id: t for t in (await session.execute(
            select(Treatment).where(Treatment.tenant == tenant))).scalars()}
    assert treatments["A2"].status == "paused"
    assert (treatments["A1"].status, treatments["A1"].overdue_minor) == ("stopped", 0)
    assert treatments["A0"].status == "active"
    assert (await steps_of(sessions, tenant))["A2"].status == "cancelled"
