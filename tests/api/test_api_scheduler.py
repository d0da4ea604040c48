"""Scheduler route through the ASGI app on the real database: GET /v1/treatments/{account_id}, with the
treatment put in place by the scheduler's own use cases (services/scheduler/service.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from services.scheduler import service
from services.scheduler.db.models import TreatmentStep
from shared.contracts import CloudEvent, topics
from shared.contracts.events import AccountSegmentedV1, PlanEventV1
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration


def segmented(tenant: Tenant, account_id: str, *, dpd: int = 5) -> tuple[AccountSegmentedV1, CloudEvent]:
    payload = AccountSegmentedV1(
        tenant=tenant.id, account_id=account_id, customer_id=f"C-{account_id}", segment="standard",
        dpd_bucket="1-15", days_past_due=dpd, due_date=date.today() - timedelta(days=dpd), currency="CNY",
        overdue_minor=12_300, outstanding_minor=50_000, reason="rating C, dpd 1-15",
        contact={"name": CIPHER.seal("王五", context=tenant.id),
                 "phone": CIPHER.seal("+8613900000001", context=tenant.id), "time_zone": "Asia/Shanghai"})
    return payload, build_event(topics.ACCOUNT_SEGMENTED, payload, tenant=tenant.id,
                                customer_id=payload.customer_id, source="urn:test")


async def seed_treatment(api: ServiceApi, tenant: Tenant, account_id: str) -> AccountSegmentedV1:
    payload, event = segmented(tenant, account_id)
    async with api.runtime.units() as uow:
        await service.record_segmented(uow, segmented=[(payload, event)])
        await uow.commit()
    return payload


async def test_a_treatment_is_shown_with_its_steps_to_its_tenant_only(
        scheduler: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = unique("ACC")
    seeded = await seed_treatment(scheduler, tenant_a, account)
    [step] = await scheduler.all(select(TreatmentStep).where(TreatmentStep.tenant == tenant_a.id,
                                                             TreatmentStep.account_id == account))
    [requested] = await scheduler.outbox(tenant_a)  # the use case asked for the contact in its transaction
    assert (requested.topic, requested.event.subject) == (topics.CONTACT_REQUESTED.name, step.contact_id)

    response = await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: v for k, v in body.items() if k != "steps"} == {
        "account_id": account, "customer_id": seeded.customer_id, "segment": "standard", "days_past_due": 5,
        "overdue_minor": 12_300, "currency": "CNY", "status": "active", "status_reason": "rating C, dpd 1-15",
        "strategy": "builtin@1", "arm": "champion", "experiment": None}
    [shown] = body["steps"]
    assert {k: v for k, v in shown.items() if k != "due_at"} == {
        "contact_id": step.contact_id, "step": "reminder", "channel": "sms", "status": "requested", "attempt": 1,
        "last_reason": "builtin@1 standard x 1-15: step 'reminder' (DPD 1)", "strategy": "builtin@1",
        "arm": "champion", "experiment": None}
    assert datetime.fromisoformat(shown["due_at"]) == step.due_at
    assert "destination" not in str(body) and "+8613900000001" not in response.text

    problem = assert_problem(await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_b.headers), 404)
    assert problem["title"] == "Not found" and account in problem["detail"]
    assert await scheduler.outbox(tenant_a) == [requested]  # reading announces nothing
    assert await scheduler.outbox(tenant_b) == []


async def test_a_paused_treatment_shows_the_plan_and_the_cancelled_step(
        scheduler: ServiceApi, tenant_a: Tenant) -> None:
    account = unique("ACC")
    seeded = await seed_treatment(scheduler, tenant_a, account)
    plan = PlanEventV1(tenant=tenant_a.id, plan_id="p-1", account_id=account, customer_id=seeded.customer_id,
                       kind="agreed", currency="CNY", total_minor=12_300, instalments=[],
                       occurred_at=datetime.now(UTC))
    async with scheduler.runtime.units() as uow:
        await service.apply_plan_events(uow, plan_events=[plan])
        await uow.commit()
    response = await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["status_reason"]) == ("paused", "plan p-1 agreed")
    assert [(s["status"], s["last_reason"]) for s in body["steps"]] == [("cancelled", "plan p-1 agreed")]


async def test_an_unknown_treatment_is_a_404_problem(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    for account in (unique("ACC"), "x" * 300, "ACC%20with%20spaces"):
        assert_problem(await scheduler.client.get(f"/v1/treatments/{account}", headers=tenant_a.headers), 404)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer nope"}, id="unknown-key"),
    pytest.param({"X-API-Key": ""}, id="empty-x-api-key"),
])
async def test_treatments_need_a_valid_api_key(scheduler: ServiceApi, tenant_a: Tenant,
                                               headers: dict[str, str]) -> None:
    account = unique("ACC")
    await seed_treatment(scheduler, tenant_a, account)
    problem = assert_problem(await scheduler.client.get(f"/v1/treatments/{account}", headers=headers), 401)
    assert problem["title"] == "Unauthorized"
    ok = await scheduler.client.get(f"/v1/treatments/{account}", headers={"X-API-Key": tenant_a.key})
    assert ok.status_code == 200 and ok.json()["account_id"] == account


async def test_a_nul_character_in_the_path_is_a_422_not_a_500(scheduler: ServiceApi, tenant_a: Tenant) -> None:
    response = await scheduler.client.get("/v1/treatments/ACC%00-1", headers=tenant_a.headers)
    problem = assert_problem(response, 422)
    assert "NUL" in problem["detail"]
