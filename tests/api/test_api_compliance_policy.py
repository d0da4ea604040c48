"""The tenant policy over REST on the real database: published versions, refusals that store nothing, tenancy,
and decisions made under the policy with its version logged."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.compliance import service
from services.compliance.db.models import ContactDecision, TenantPolicyRow
from services.compliance.service import context, records
from shared.contracts import topics
from shared.contracts.events import Channel, ContactRequestV1
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration

TIGHTER = {"params": {"CN-HOURS": {"start": "09:00", "end": "21:00"}, "HOUSE-DUP": {"interval_days": {"sms": 2}}}}


async def put(api: ServiceApi, tenant: Tenant, body: dict[str, Any]) -> Any:
    return await api.client.put("/v1/policy", json=body, headers=tenant.headers)


async def stored(api: ServiceApi, tenant: Tenant) -> list[Any]:
    return await api.all(select(TenantPolicyRow).where(TenantPolicyRow.tenant == tenant.id))


async def test_a_tenant_publishes_versions_reads_the_current_one_and_its_history(
        compliance: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    before = (await compliance.client.get("/v1/policy", headers=tenant_a.headers)).json()
    assert (before["version"], before["jurisdiction"], before["params"]) == (0, "CN", {})
    assert before["effective"]["CN-HOURS"] == {"start": "08:00", "end": "22:00"}

    first = await put(compliance, tenant_a, {**TIGHTER, "reason": "board decision 12"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["version"], body["reason"], body["created_by"]) == (1, "board decision 12", "static:" + tenant_a.id)
    assert body["effective"]["CN-HOURS"] == {"start": "09:00", "end": "21:00"}
    assert body["effective"]["HOUSE-DUP"] == {"interval_days": {"sms": 2}}
    second = await put(compliance, tenant_a, {"jurisdiction": "US", "reason": "US portfolio"})
    assert second.json()["version"] == 2

    current = (await compliance.client.get("/v1/policy", headers=tenant_a.headers)).json()
    assert (current["version"], current["jurisdiction"]) == (2, "US")
    history = (await compliance.client.get("/v1/policy/versions", headers=tenant_a.headers)).json()
    assert [(v["version"], v["reason"]) for v in history] == [(2, "US portfolio"), (1, "board decision 12")]
    # another tenant sees none of it
    other = (await compliance.client.get("/v1/policy", headers=tenant_b.headers)).json()
    assert other["version"] == 0
    assert (await compliance.client.get("/v1/policy/versions", headers=tenant_b.headers)).json() == []


@pytest.mark.parametrize(("document", "says"), [
    ({"params": {"CN-HOURS": {"start": "07:00", "end": "22:00"}}}, "CN-HOURS"),            # wider than the law
    ({"params": {"CN-HOURS": {"start": "21:00", "end": "09:00"}}}, "CN-HOURS"),            # wraps midnight
    ({"params": {"CN-ATTEMPTS": {"max_unanswered": 9}}}, "CN-ATTEMPTS"),                  # a higher cap
    ({"params": {"CN-ATTEMPTS": {"max_unanswered": "3"}}}, "whole number"),
    ({"params": {"CN-ATTEMPTS": {"max_unanswerd": 3}}}, "unknown parameter"),
    ({"params": {"NO-SUCH": {}}}, "unknown rule"),
    ({"params": {"HOUSE-DUP": {"interval_days": {"pigeon": 1}}}}, "unknown channel"),
    ({"packs": {"CN": ["CN", "XX"]}}, "unknown pack"),
    ({"packs": {"CN": ["US"]}}, "must include the CN pack"),                             # dropping the law
    ({"packs": {"CN": []}}, "must include the CN pack"),
    ({"jurisdiction": "FR"}, "jurisdiction"),
    ({"params": {"CN-HOURS": {"start": "9am"}}}, "HH:MM"),
])
async def test_a_policy_that_would_loosen_a_limit_or_is_malformed_is_refused_and_nothing_is_stored(
        compliance: ServiceApi, tenant_a: Tenant, document: dict[str, Any], says: str) -> None:
    response = await put(compliance, tenant_a, {**document, "reason": "try"})
    problem = assert_problem(response, 422)
    assert says in problem["detail"], problem
    assert await stored(compliance, tenant_a) == []
    assert (await compliance.client.get("/v1/policy", headers=tenant_a.headers)).json()["version"] == 0


async def test_publishing_needs_a_reason_and_a_key(compliance: ServiceApi, tenant_a: Tenant) -> None:
    assert_problem(await put(compliance, tenant_a, TIGHTER), 422)
    assert_problem(await compliance.client.put("/v1/policy", json={**TIGHTER, "reason": "x"}), 401)
    assert await stored(compliance, tenant_a) == []


def sms_request(tenant: Tenant, zone: str) -> ContactRequestV1:
    account = unique("A")
    return ContactRequestV1(
        tenant=tenant.id, contact_id=unique("c"), attempt=1, account_id=account, customer_id=f"C-{account}",
        channel=Channel.SMS, treatment_step="reminder", segment="prime", days_past_due=5,
        destination=CIPHER.seal("+8613900000001", context=tenant.id), time_zone=zone, locale="zh-CN",
        template_id="reminder.sms", currency="CNY", overdue_minor=1_000, due_date=date.today() - timedelta(days=5),
        requested_at=datetime.now(UTC))


def zone_at_local_hour(hour: int) -> str | None:
    """A whole-hour zone where the local hour is ``hour`` now, if one is."""
    now = datetime.now(UTC)
    for offset in range(-12, 15):
        name = f"Etc/GMT{'+' if offset < 0 else '-'}{abs(offset)}" if offset else "Etc/UTC"
        if now.astimezone(ZoneInfo(name)).hour == hour:
            return name
    return None


async def test_decisions_follow_the_published_policy_and_log_its_version(compliance: ServiceApi,
                                                                         tenant_a: Tenant) -> None:
    zone = zone_at_local_hour(8) or zone_at_local_hour(21)
    if zone is None:
        pytest.skip("no whole-hour zone is at 08:xx or 21:xx now")
    request = sms_request(tenant_a, zone)
    assert (await put(compliance, tenant_a, {**TIGHTER, "reason": "narrower hours"})).status_code == 201
    await decide(compliance, request)
    [decision] = await compliance.all(select(ContactDecision).where(ContactDecision.contact_id == request.contact_id))
    # 08:xx and 21:xx are inside the legal 08:00-22:00 and outside the tenant's 09:00-21:00
    assert (decision.outcome, decision.rule_id, decision.policy_version) == ("deferred", "CN-HOURS", 1)
    assert "09:00-21:00" in decision.reason
    logged = (await compliance.client.get("/v1/decisions", params={"contact_id": request.contact_id},
                                          headers=tenant_a.headers)).json()
    assert logged[0]["policy_version"] == 1


async def test_a_check_uses_the_tenants_jurisdiction(compliance: ServiceApi, tenant_b: Tenant) -> None:
    assert (await put(compliance, tenant_b, {"jurisdiction": "US", "reason": "US lender"})).status_code == 201
    response = await compliance.client.post("/v1/checks", json={
        "account_id": "A-1", "customer_id": "C-1", "channel": "email", "time_zone": "America/New_York"},
        headers=tenant_b.headers)
    assert response.status_code == 200, response.text
    packs = {r["pack"] for r in response.json()["rules_evaluated"]}
    assert packs == {"US", "HOUSE"}
    assert response.json()["policy_version"] >= 1


async def test_a_policy_counting_over_more_than_a_week_reads_the_ledger_that_far_back(compliance: ServiceApi,
                                                                                      tenant_a: Tenant) -> None:
    """One SMS per customer every ten days: an SMS nine days ago defers today's (the ledger is read as far back
    as the tenant's policy counts, not only the default week)."""
    body = {"params": {"HOUSE-DUP": {"interval_days": {"sms": 10}}}, "reason": "gentler"}
    assert (await put(compliance, tenant_a, body)).status_code == 201
    earlier, today = sms_request(tenant_a, "Asia/Shanghai"), sms_request(tenant_a, "Asia/Shanghai")
    today = today.model_copy(update={"customer_id": earlier.customer_id})
    [ctx] = await build_contexts_of(compliance, earlier)
    async with compliance.runtime.units() as uow:
        await records.record_approvals(uow, approved=[ctx], at=datetime.now(UTC) - timedelta(days=9))
        await uow.commit()
    await decide(compliance, today)
    [decision] = await compliance.all(select(ContactDecision).where(ContactDecision.contact_id == today.contact_id))
    # HOUSE-DUP defers it whatever the hour (at night the contact window may be the rule the decision names)
    verdicts = {rule_id: (verdict, retry) for rule_id, verdict, _reason, retry in decision.rules_evaluated}
    assert decision.outcome == "deferred" and verdicts["HOUSE-DUP"][0] == "defer", decision.rules_evaluated
    # not before the local day ten days after the earlier SMS: tomorrow in Shanghai, whatever the hour now
    shanghai = ZoneInfo("Asia/Shanghai")
    tomorrow = (datetime.now(UTC).astimezone(shanghai) + timedelta(days=1)).date()
    assert decision.retry_at is not None and decision.retry_at.astimezone(shanghai).date() >= tomorrow
    assert datetime.fromisoformat(verdicts["HOUSE-DUP"][1]).astimezone(shanghai).date() >= tomorrow


async def decide(api: ServiceApi, request: ContactRequestV1) -> None:
    """Decide one request in a unit of work of its own, as the consumer does per batch."""
    async with api.runtime.units() as uow:
        await service.decide_requests(uow, requests=[(request, build_event(
            topics.CONTACT_REQUESTED, request, tenant=request.tenant, customer_id=request.customer_id,
            source="urn:test"))])
        await uow.commit()


async def build_contexts_of(api: ServiceApi, request: ContactRequestV1) -> list[Any]:
    async with api.runtime.units() as uow:
        return await context.build_contexts(uow.session, [request])


@pytest.mark.parametrize("params", [{"HOUSE-DUP": {"interval_days": {"sms": 91}}},
                                    {"US-7IN7": {"quiet_days": 120}}])
async def test_a_period_longer_than_ninety_days_is_refused(compliance: ServiceApi, tenant_a: Tenant,
                                                           params: dict[str, Any]) -> None:
    problem = assert_problem(await put(compliance, tenant_a, {"params": params, "reason": "x"}), 422)
    assert "over 90 days" in problem["detail"]
    assert await stored(compliance, tenant_a) == []


async def test_the_contact_budget_counts_against_the_published_policy(compliance: ServiceApi,
                                                                      tenant_a: Tenant) -> None:
    customer = unique("C")
    path = f"/v1/customers/{customer}/contact-budget"
    before = (await compliance.client.get(path, headers=tenant_a.headers)).json()
    assert {c["channel"]: c["left"] for c in before["channels"]} == {"sms": 1, "email": None, "call": 3,
                                                                     "field": None}
    body = {"params": {"HOUSE-DUP": {"interval_days": {"sms": 3, "email": 1}}, "CN-CONNECTS": {"max_connects": 2}},
            "reason": "gentler"}
    assert (await put(compliance, tenant_a, body)).status_code == 201
    after = (await compliance.client.get(path, headers=tenant_a.headers)).json()
    assert after["caps_source"] == "policy v1"
    assert {c["channel"]: c["left"] for c in after["channels"]} == {"sms": 1, "email": 1, "call": 2, "field": None}
    sms = next(c for c in after["channels"] if c["channel"] == "sms")
    assert "per 3 local days" in sms["caps"][0]["what"]


async def test_a_deferral_past_a_long_hold_skips_the_tenants_day_off_after_it(compliance: ServiceApi,
                                                                              tenant_a: Tenant) -> None:
    """A dispute hold ending in 90 days, and the tenant's day off on the day it ends: the SMS is deferred past
    both (the calendar is read far enough ahead, not only the next 60 days)."""
    request = sms_request(tenant_a, "Asia/Shanghai")
    ends = (datetime.now(UTC) + timedelta(days=90)).astimezone(ZoneInfo("Asia/Shanghai")).replace(
        hour=10, minute=0, second=0, microsecond=0)
    held = await compliance.client.post("/v1/holds", headers=tenant_a.headers, json={
        "kind": "dispute", "customer_id": request.customer_id, "ends_at": ends.isoformat(), "reason": "disputed"})
    assert held.status_code == 201, held.text
    day_off = await compliance.client.post("/v1/calendar/overrides", headers=tenant_a.headers, json={
        "day": ends.date().isoformat(), "kind": "day_off", "name": "company day", "reason": "board"})
    assert day_off.status_code == 201, day_off.text
    await decide(compliance, request)
    [decision] = await compliance.all(select(ContactDecision).where(ContactDecision.contact_id == request.contact_id))
    assert decision.outcome == "deferred", decision.reason
    assert decision.retry_at is not None
    assert decision.retry_at.astimezone(ZoneInfo("Asia/Shanghai")).date() > ends.date(), decision.reason
