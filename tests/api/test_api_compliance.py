"""Compliance routes through the ASGI app on the real database: GET /v1/decisions (decisions put in place
by the compliance use case) and POST /v1/checks (the same rule engine and records, every rule's verdict,
nothing stored)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.compliance import service
from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import cn, decide, house
from services.compliance.domain.rules.base import ContactContext, HoldKind
from services.compliance.service import records
from shared.contracts import topics
from shared.contracts.events import Channel, ContactRequestV1
from shared.messaging import build_event
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem, unique
from tests.helpers import zone_where_local_hour_is_in

pytestmark = pytest.mark.integration



def request(tenant: Tenant, account_id: str, contact_id: str, *, attempt: int = 1,
            channel: Channel = Channel.EMAIL) -> ContactRequestV1:
    return ContactRequestV1(
        tenant=tenant.id, contact_id=contact_id, attempt=attempt, account_id=account_id,
        customer_id=f"C-{account_id}", channel=channel, treatment_step="reminder", segment="prime",
        days_past_due=5, destination=CIPHER.seal("kunde@example.com", context=tenant.id), time_zone="Asia/Shanghai",
        locale="zh-CN", template_id="reminder.email", currency="CNY", overdue_minor=1_000,
        due_date=date.today() - timedelta(days=5), requested_at=datetime.now(UTC))


async def decide_now(api: ServiceApi, *requests: ContactRequestV1) -> None:
    """One unit of work, as the consumer runner opens per batch."""
    async with api.runtime.units() as uow:
        await service.decide_requests(uow, requests=[(r, build_event(
            topics.CONTACT_REQUESTED, r, tenant=r.tenant, customer_id=r.customer_id, source="urn:test"))
            for r in requests])
        await uow.commit()


async def decisions_of(api: ServiceApi, tenant: Tenant) -> list[ContactDecision]:
    return await api.all(select(ContactDecision).where(ContactDecision.tenant == tenant.id)
                         .order_by(ContactDecision.decided_at))


async def test_the_decision_log_is_filtered_newest_first_and_per_tenant(
        compliance: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account, other_account = unique("ACC"), unique("ACC")
    contact, other_contact = unique("c"), unique("c")
    # e-mail is not bound by contact hours, so the outcomes do not depend on the time of day;
    # separate transactions give separate decided_at (now() is the transaction's start)
    await decide_now(compliance, request(tenant_a, account, contact))
    await decide_now(compliance, request(tenant_a, account, contact, attempt=2))    # HOUSE-DUP blocks it
    await decide_now(compliance, request(tenant_a, other_account, other_contact))
    stored = {(d.contact_id, d.attempt): d for d in await decisions_of(compliance, tenant_a)}
    assert {k: v.outcome for k, v in stored.items()} == {
        (contact, 1): "approved", (contact, 2): "blocked", (other_contact, 1): "approved"}
    outbox_before = await compliance.outbox(tenant_a)
    assert [r.topic for r in outbox_before] == [topics.CONTACT_APPROVED.name, topics.CONTACT_REJECTED.name,
                                                topics.CONTACT_APPROVED.name]

    response = await compliance.client.get("/v1/decisions", params={"account_id": account}, headers=tenant_a.headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [(d["contact_id"], d["attempt"], d["outcome"], d["rule_id"]) for d in listed] == [
        (contact, 2, "blocked", "HOUSE-DUP"), (contact, 1, "approved", "-")]
    blocked = stored[(contact, 2)]
    assert listed[0] == {
        "decision_id": blocked.decision_id, "contact_id": contact, "attempt": 2, "account_id": account,
        "channel": "email", "outcome": "blocked", "rule_id": "HOUSE-DUP", "reason": blocked.reason, "retry_at": None,
        "policy_version": 0, "rules_evaluated": service.expand_verdicts(blocked.rules_evaluated),
        "decided_at": listed[0]["decided_at"]}
    assert datetime.fromisoformat(listed[0]["decided_at"]) == blocked.decided_at
    assert [r["rule_id"] for r in listed[0]["rules_evaluated"]] == [r.id for r in (*cn.RULES, *house.RULES)]

    by_contact = await compliance.client.get("/v1/decisions", params={"contact_id": other_contact},
                                             headers=tenant_a.headers)
    assert [d["decision_id"] for d in by_contact.json()] == [stored[(other_contact, 1)].decision_id]
    both = await compliance.client.get("/v1/decisions", params={"contact_id": contact, "account_id": other_account},
                                       headers=tenant_a.headers)
    assert both.json() == []
    limited = await compliance.client.get("/v1/decisions", params={"account_id": account, "limit": 1},
                                          headers=tenant_a.headers)
    assert [d["attempt"] for d in limited.json()] == [2]

    for params in ({"account_id": account}, {"contact_id": contact}, {"contact_id": other_contact}):
        other = await compliance.client.get("/v1/decisions", params=params, headers=tenant_b.headers)
        assert (other.status_code, other.json()) == (200, [])
    assert await compliance.outbox(tenant_a) == outbox_before  # reading announces nothing


@pytest.mark.parametrize(("params", "status"), [
    pytest.param({}, 400, id="no-filter"),
    pytest.param({"limit": 5}, 400, id="only-a-limit"),
    pytest.param({"account_id": "A", "limit": 0}, 422, id="limit-0"),
    pytest.param({"account_id": "A", "limit": 1001}, 422, id="limit-1001"),
    pytest.param({"account_id": "A", "limit": "many"}, 422, id="limit-not-a-number"),
])
async def test_a_bad_decision_query_is_a_problem(compliance: ServiceApi, tenant_a: Tenant, params: dict[str, Any],
                                                 status: int) -> None:
    problem = assert_problem(await compliance.client.get("/v1/decisions", params=params, headers=tenant_a.headers),
                             status)
    if status == 400:
        assert problem["title"] == "Filter required"


def check_body(channel: str, zone: str, **extra: Any) -> dict[str, Any]:
    return {"account_id": "ACC-1", "customer_id": "C-1", "channel": channel, "time_zone": zone, **extra}


async def test_a_check_applies_the_contact_rules_now_and_stores_nothing(
        compliance: ServiceApi, tenant_a: Tenant) -> None:
    day_zone, _ = zone_where_local_hour_is_in(10, 19)
    night_zone, night_local = zone_where_local_hour_is_in(1, 5)

    async def check(channel: str, zone: str, **extra: Any) -> dict[str, Any]:
        response = await compliance.client.post("/v1/checks", json=check_body(channel, zone, **extra),
                                                 headers=tenant_a.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    approved = await check("sms", day_zone)
    assert {k: approved[k] for k in ("outcome", "rule_id", "reason", "retry_at", "policy_version")} == {
        "outcome": "approved", "rule_id": "-", "reason": "all rules allow", "retry_at": None, "policy_version": 0}
    assert [(r["rule_id"], r["pack"], r["verdict"]) for r in approved["rules_evaluated"]] == [
        (r.id, r.pack, "allow") for r in (*cn.RULES, *house.RULES)]
    assert all(r["reason"] for r in approved["rules_evaluated"])
    assert (await check("email", night_zone))["outcome"] == "approved"  # e-mail is not bound by CN-HOURS
    eight_local = datetime.combine(night_local.date(), time(8, 0), tzinfo=ZoneInfo(night_zone))
    for channel in ("sms", "call", "field"):
        deferred = await check(channel, night_zone, days_past_due=45, collectors=2)
        assert (deferred["outcome"], deferred["rule_id"]) == ("deferred", "CN-HOURS")
        assert datetime.fromisoformat(deferred["retry_at"]) == eight_local
        assert night_zone in deferred["reason"] and "outside the contact window 08:00-22:00" in deferred["reason"]
        hours = next(r for r in deferred["rules_evaluated"] if r["rule_id"] == "CN-HOURS")
        assert (hours["verdict"], datetime.fromisoformat(hours["retry_at"])) == ("defer", eight_local)
        # the same verdict the consumer's use case would reach (services/compliance/domain/rules/engine.py)
        expected = decide(ContactContext(tenant=tenant_a.id, customer_id="C-1", account_id="ACC-1",
                                         channel=Channel(channel), time_zone=night_zone, automated=False,
                                         days_past_due=45, collectors=2), datetime.now(UTC))
        assert (expected.outcome, expected.retry_at) == ("deferred", eight_local)
    assert await decisions_of(compliance, tenant_a) == []
    assert await compliance.outbox(tenant_a) == []


async def test_a_check_explains_every_rule_it_breaks(compliance: ServiceApi, tenant_a: Tenant) -> None:
    day_zone, _ = zone_where_local_hour_is_in(10, 19)
    customer = unique("C")

    async def check(**body: Any) -> dict[str, Any]:
        response = await compliance.client.post("/v1/checks", json={
            "account_id": "ACC-1", "customer_id": customer, "time_zone": day_zone, "channel": "call", **body},
            headers=tenant_a.headers)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    field = await check(channel="field", days_past_due=10, collectors=1)
    assert (field["outcome"], field["rule_id"]) == ("blocked", "CN-FIELD")
    assert {r["rule_id"] for r in field["rules_evaluated"] if r["verdict"] == "block"} == {"CN-FIELD", "HOUSE-FIELD"}
    third = await check(party="contact_person")
    assert (third["outcome"], third["rule_id"]) == ("blocked", "CN-3P")
    unreachable = await check(party="contact_person", debtor_reachable=False, destination="+8613900000009")
    assert unreachable["outcome"] == "approved"
    assert "never with debt details" in next(r["reason"] for r in unreachable["rules_evaluated"]
                                             if r["rule_id"] == "CN-3P")
    async with compliance.runtime.units() as uow:
        await records.place_hold(uow, tenant=tenant_a.id, actor="test", kind=HoldKind.COMPLAINT, customer_id=customer,
                                 account_id=None, ends_at=None, reason="complaint", now=datetime.now(UTC))
        await uow.commit()
    held = await check()
    assert (held["outcome"], held["rule_id"]) == ("blocked", "HOUSE-HOLDS")
    verdicts = {r["rule_id"]: r["verdict"] for r in held["rules_evaluated"]}
    assert verdicts["CN-COMPLAINT"] == "allow"  # an agent's contact under human review; the house rule holds it
    assert (await check(automated=True))["rule_id"] == "CN-COMPLAINT"
    assert await decisions_of(compliance, tenant_a) == []


@pytest.mark.parametrize("body", [
    pytest.param({"channel": "pigeon", "time_zone": "Asia/Shanghai"}, id="unknown-channel"),
    pytest.param({"channel": "sms", "time_zone": "Mars/Olympus"}, id="unknown-zone"),
    pytest.param({"channel": "sms", "time_zone": "../etc/passwd"}, id="path-as-zone"),
    pytest.param({"channel": "sms"}, id="no-zone"),
    pytest.param({"time_zone": "Asia/Shanghai"}, id="no-channel"),
    pytest.param({"channel": "sms", "time_zone": "Asia/Shanghai", "party": "neighbour"}, id="unknown-party"),
    pytest.param({"channel": "sms", "time_zone": "Asia/Shanghai", "days_past_due": -1}, id="negative-dpd"),
    pytest.param({"channel": "sms", "time_zone": "Asia/Shanghai", "account_id": ""}, id="empty-account"),
    pytest.param([], id="not-an-object"),
])
async def test_a_bad_check_is_a_422_problem(compliance: ServiceApi, tenant_a: Tenant, body: Any) -> None:
    if isinstance(body, dict):
        body = {"account_id": "ACC-1", "customer_id": "C-1", **body}
    problem = assert_problem(await compliance.client.post("/v1/checks", json=body, headers=tenant_a.headers), 422)
    assert problem["title"] == "Invalid request" and problem["errors"]
    assert await decisions_of(compliance, tenant_a) == []
    assert await compliance.outbox(tenant_a) == []


async def test_a_check_needs_the_account_and_customer(compliance: ServiceApi, tenant_a: Tenant) -> None:
    for missing in ("account_id", "customer_id"):
        body = check_body("sms", "Asia/Shanghai")
        del body[missing]
        assert_problem(await compliance.client.post("/v1/checks", json=body, headers=tenant_a.headers), 422)


@pytest.mark.parametrize("zone", ["Asia", "Etc", "a" * 300])
async def test_a_zone_that_is_a_directory_or_too_long_is_a_422_problem(
        compliance: ServiceApi, tenant_a: Tenant, zone: str) -> None:
    response = await compliance.client.post("/v1/checks", json=check_body("sms", zone), headers=tenant_a.headers)
    assert_problem(response, 422)


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no-key"),
    pytest.param({"Authorization": "Bearer nope"}, id="unknown-key"),
])
async def test_compliance_routes_need_a_valid_api_key(compliance: ServiceApi, tenant_a: Tenant,
                                                      headers: dict[str, str]) -> None:
    account = unique("ACC")
    await decide_now(compliance, request(tenant_a, account, unique("c")))
    problem = assert_problem(await compliance.client.get("/v1/decisions", params={"account_id": account},
                                                         headers=headers), 401)
    assert problem["title"] == "Unauthorized"
    assert_problem(await compliance.client.post("/v1/checks", json=check_body("sms", "Asia/Shanghai"),
                                                headers=headers), 401)
    assert len(await decisions_of(compliance, tenant_a)) == 1
