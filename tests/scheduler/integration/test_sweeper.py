"""The sweeper (services/scheduler/service.py ``resend_stale_requests``) on the real PostgreSQL: a request
lost on the way is requested again, with the same contact id and attempt, once per timeout."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.scheduler import service
from services.scheduler.db.models import TreatmentStep
from shared import metrics
from shared.contracts import topics
from shared.contracts.events import AccountSegmentedV1, ContactRequestV1, PlanEventV1
from shared.messaging import build_event
from tests.helpers import committed, committed_reading_outbox
from tests.scheduler.integration.test_scheduler_handlers import segmented

pytestmark = pytest.mark.integration



async def resend(sessions, older_than: timedelta) -> list[ContactRequestV1]:  # type: ignore[no-untyped-def]
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.resend_stale_requests(uow, older_than=older_than, limit=10_000)
    return [ContactRequestV1.model_validate(o.event.data) for o in outbox if o.topic == topics.CONTACT_REQUESTED.name]


async def test_a_request_without_a_verdict_is_requested_again_once_per_timeout(sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    payloads = [segmented(tenant, n) for n in (1, 2)]
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.record_segmented(uow, segmented=[(p, build_event(
            topics.ACCOUNT_SEGMENTED, p, tenant=tenant, customer_id=p.customer_id, source="urn:test"))
            for p in payloads])
    first = {ContactRequestV1.model_validate(o.event.data).account_id: ContactRequestV1.model_validate(o.event.data)
             for o in outbox}
    # A2's treatment is paused by a plan: its cancelled step is not requested again
    async with committed(sessions) as uow:
        await service.apply_plan_events(uow, plan_events=[PlanEventV1(
            tenant=tenant, plan_id="P1", account_id="A2", customer_id="C2", kind="agreed", currency="CNY",
            total_minor=1000, instalments=[], occurred_at=datetime.now(UTC))])

    assert [r for r in await resend(sessions, timedelta(hours=1)) if r.tenant == tenant] == []  # not stale yet
    before = metrics.REQUESTS_RESENT._value.get()
    again = [r for r in await resend(sessions, timedelta(0)) if r.tenant == tenant]
    assert [(r.account_id, r.contact_id, r.attempt) for r in again] == [
        ("A1", first["A1"].contact_id, first["A1"].attempt)]
    assert again[0].model_dump(exclude={"requested_at"}) == first["A1"].model_dump(exclude={"requested_at"})
    assert metrics.REQUESTS_RESENT._value.get() >= before + 1
    async with sessions() as session:
        step = (await session.execute(select(TreatmentStep).where(TreatmentStep.tenant == tenant,
                                                                  TreatmentStep.account_id == "A1"))).scalars().one()
    assert (step.status, step.attempt) == ("requested", 1) and step.last_reason.startswith("requested again")
    # the timeout starts again from the new request
    assert [r for r in await resend(sessions, timedelta(minutes=5)) if r.tenant == tenant] == []


async def test_a_high_risk_account_at_dpd_0_gets_the_pre_due_reminder_with_its_masked_reference(
        sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    pre_due = AccountSegmentedV1.model_validate(
        segmented(tenant, 1, dpd=0).model_dump() | {"segment": "high_risk", "account_ref": "8842"})
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.record_segmented(uow, segmented=[(pre_due, build_event(
            topics.ACCOUNT_SEGMENTED, pre_due, tenant=tenant, customer_id="C1", source="urn:test"))])
    [request] = [ContactRequestV1.model_validate(o.event.data) for o in outbox]
    assert (request.treatment_step, request.template_id, request.account_ref) == ("pre-due", "pre_due.sms", "8842")
    overdue = pre_due.model_copy(update={"days_past_due": 1, "as_of": datetime.now(UTC) + timedelta(days=1)})
    async with committed_reading_outbox(sessions) as (uow, outbox):
        await service.record_segmented(uow, segmented=[(overdue, build_event(
            topics.ACCOUNT_SEGMENTED, overdue, tenant=tenant, customer_id="C1", source="urn:test"))])
    [reminder] = [ContactRequestV1.model_validate(o.event.data) for o in outbox]
    assert (reminder.treatment_step, reminder.template_id) == ("reminder", "reminder.sms")
    assert reminder.contact_id != request.contact_id  # a second contact, not a repeat of the first
