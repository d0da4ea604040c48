"""A dialer's or agent's call result (channels.contact-outcome.v1 ``no_answer``, ``busy``, ``voicemail``,
``connected``, ``right_party_contact``) closes the call step on real PostgreSQL: a call that did not reach the
customer like ``failed``, one that did like ``delivered``; the newest by its own time wins in any arrival order,
and a result heard of before its step is kept and applied when the step appears."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.scheduler.consumers import handlers
from services.scheduler.db.models import TreatmentStep
from services.scheduler.domain.timeline import contact_id_for
from shared.contracts import topics
from shared.contracts.events import AccountSegmentedV1, ContactOutcomeV1
from shared.crypto import PiiCipher
from shared.kafka.consumer import Delivery
from shared.messaging import build_event
from shared.settings import DEV_PII_KEYS
from tests.helpers import committed

pytestmark = pytest.mark.integration
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
DPD = 20  # over 15 days past due with a phone: the treatment's step is a call
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def delivery(topic: topics.Topic, payload, customer_id: str) -> Delivery:  # type: ignore[no-untyped-def]
    event = build_event(topic, payload, tenant=payload.tenant, customer_id=customer_id, source="urn:test")
    record = ConsumerRecord(topic.name, 0, 0, 0, 0, b"", event.to_bytes(), None, 0, 0, [])
    return Delivery(event, payload, record)


def segmented(tenant: str) -> AccountSegmentedV1:
    return AccountSegmentedV1(
        tenant=tenant, account_id="A1", customer_id="C1", segment="standard", dpd_bucket="16-30",
        days_past_due=DPD, due_date=date.today() - timedelta(days=DPD), currency="CNY", overdue_minor=1000,
        outstanding_minor=5000, reason="test",
        contact={"name": CIPHER.seal("n", context=tenant), "phone": CIPHER.seal("+8613900000001", context=tenant),
                 "time_zone": "Asia/Shanghai"})


def call_id(tenant: str) -> str:
    return contact_id_for(tenant=tenant, account_id="A1", step="call", due_date=date.today() - timedelta(days=DPD))


def outcome(tenant: str, kind: str, minutes: int) -> Delivery:
    return delivery(topics.CONTACT_OUTCOME, ContactOutcomeV1(
        tenant=tenant, contact_id=call_id(tenant), account_id="A1", customer_id="C1", channel="call",
        outcome=kind, occurred_at=T0 + timedelta(minutes=minutes)), "C1")


async def segment(sessions, tenant: str) -> None:  # type: ignore[no-untyped-def]
    async with committed(sessions) as uow:
        await handlers.on_account_segmented(uow, [delivery(topics.ACCOUNT_SEGMENTED, segmented(tenant), "C1")])


async def report(sessions, *outcomes: Delivery) -> None:  # type: ignore[no-untyped-def]
    async with committed(sessions) as uow:
        await handlers.on_contact_outcome(uow, list(outcomes))


async def call_step(sessions, tenant: str) -> TreatmentStep:  # type: ignore[no-untyped-def]
    async with sessions() as session:
        [step] = (await session.execute(select(TreatmentStep).where(TreatmentStep.tenant == tenant))).scalars().all()
    assert (step.channel, step.contact_id) == ("call", call_id(tenant))
    return step  # type: ignore[no-any-return]


def tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(("kind", "status"), [
    ("no_answer", "failed"), ("busy", "failed"), ("voicemail", "failed"),
    ("connected", "done"), ("right_party_contact", "done"),
])
async def test_a_call_result_closes_the_call_step(sessions, kind: str, status: str) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_id()
    await segment(sessions, tenant)
    assert (await call_step(sessions, tenant)).status == "requested"
    await report(sessions, outcome(tenant, kind, 1))
    step = await call_step(sessions, tenant)
    assert (step.status, step.outcome, step.last_reason) == (status, kind, f"outcome: {kind}")


async def test_the_newest_call_result_wins_whatever_the_arrival_order(sessions) -> None:  # type: ignore[no-untyped-def]
    # the agent's task (channels), then two unanswered dials, then the debtor on the line
    history = [("task_created", 0), ("no_answer", 5), ("voicemail", 10), ("right_party_contact", 15)]
    for order in itertools.islice(itertools.permutations(history), 0, None, 5):  # 5 of the 24 orders
        tenant = tenant_id()
        await segment(sessions, tenant)
        for kind, minutes in order:
            await report(sessions, outcome(tenant, kind, minutes))
        step = await call_step(sessions, tenant)
        assert (step.status, step.outcome) == ("done", "right_party_contact"), order
        assert step.outcome_at == T0 + timedelta(minutes=15)
    # the last word a missed call: failed, however the earlier conversation arrives
    tenant = tenant_id()
    await segment(sessions, tenant)
    await report(sessions, outcome(tenant, "busy", 20), outcome(tenant, "connected", 3))
    await report(sessions, outcome(tenant, "connected", 3))  # redelivered: nothing changes
    step = await call_step(sessions, tenant)
    assert (step.status, step.outcome) == ("failed", "busy")


async def test_a_call_result_before_its_step_is_applied_when_the_step_appears(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_id()
    await report(sessions, outcome(tenant, "connected", 1), outcome(tenant, "no_answer", 0))
    await segment(sessions, tenant)
    step = await call_step(sessions, tenant)
    assert (step.status, step.outcome) == ("done", "connected")
