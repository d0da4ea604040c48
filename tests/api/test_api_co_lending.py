"""Co-lending and webhook routes of plans through the ASGI app on the real database.

Tenant A services an account that tenant B co-lends (30 %); tenant C has nothing to do with it. B reads the
account (masked), its plans and the split of its payments; C gets the same 404 as for an account that does not
exist; B cannot act on A's account (its own tenant has no such account: 404). Webhooks: the secret is shown once
and kept sealed, roles, reasons and the audit log, hostile URLs refused (422), another tenant's ids 404."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from shared.audit import AuditEntry
from shared.contracts import topics
from shared.contracts.events import PlanEventV1
from shared.kafka.consumer import Delivery
from tests.api.support import OpenService, ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_access import bearer, issue
from tests.plans.support import consume, overdue_notice, payment_received

pytestmark = pytest.mark.integration
HOOK = {"url": "https://partner.example/hooks", "topics": ["plans.plan-event.v1"], "reason": "go live"}


async def co_lent(plans: ServiceApi, a: Tenant, b: Tenant, account_id: str) -> None:
    """A's account, B co-lending 30 %, and two payments."""
    await consume(plans.runtime.sessions,
                  overdue_notice(a.id, account_id, overdue_minor=100_000, customer_id="C-1", co_lenders=[(b.id, 3000)],
                                 at=datetime.now(UTC) - timedelta(hours=1)),
                  payment_received(a.id, account_id, "P1", 10_001, customer_id="C-1"),
                  payment_received(a.id, account_id, "P2", 5, customer_id="C-1"))


async def test_a_co_lender_reads_the_account_masked_with_plans_and_its_share(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> None:
    account = unique("A")
    await co_lent(plans, tenant_a, tenant_b, account)
    plan = await plans.client.post("/v1/plans", headers=tenant_a.headers, json={
        "account_id": account, "customer_id": "C-1", "currency": "CNY", "reason": "job loss", "instalments": [
            {"due_date": (datetime.now(UTC).date() + timedelta(days=10)).isoformat(), "amount": "899.94"}]})
    assert plan.status_code == 201, plan.text

    listed = await plans.client.get("/v1/co-lending/accounts", headers=tenant_b.headers)
    assert listed.status_code == 200
    [mine] = [a for a in listed.json()["accounts"] if a["account_id"] == account]
    assert (mine["servicer"], mine["share_bp"], mine["overdue_minor"], mine["overdue"]) == (
        tenant_a.id, 3000, 100_000, "1000.00")
    assert listed.json()["next_cursor"] is None
    others = await plans.client.get("/v1/co-lending/accounts", headers=tenant_c.headers)
    assert others.status_code == 200 and others.json()["accounts"] == []

    response = await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}", headers=tenant_b.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["contact"]["name"] == "测*" and body["contact"]["phone"] == "+86 139****0001"
    assert "13900000001" not in response.text and "测试客户" not in response.text and "pii:v1" not in response.text
    assert body["lenders"] == {tenant_a.id: 7000, tenant_b.id: 3000} and body["your_share_bp"] == 3000
    assert body["overdue_now_minor"] == 100_000 - 10_006
    assert [p["plan_id"] for p in body["plans"]] == [plan.json()["plan_id"]]
    assert body["plans"][0]["instalments"][0]["amount"] == "899.94"
    # 10,001 -> 7,000.7 / 3,000.3: the servicer's larger remainder gets the unit; 5 -> 3.5 / 1.5: tie -> first name
    first = min(tenant_a.id, tenant_b.id)
    parts = {p["payment_id"]: {x["lender"]: x["amount_minor"] for x in p["parts"]}
             for p in body["recoveries"]["payments"]}
    assert parts["P1"] == {tenant_a.id: 7001, tenant_b.id: 3000}
    assert parts["P2"][first] == (4 if first == tenant_a.id else 2) and sum(parts["P2"].values()) == 5
    assert [t["lender"] for t in body["your_recoveries"]] == [tenant_b.id]
    assert body["your_recoveries"][0]["amount_minor"] == parts["P1"][tenant_b.id] + parts["P2"][tenant_b.id]

    servicer_view = await plans.client.get(f"/v1/accounts/{account}/recoveries", headers=tenant_a.headers)
    assert servicer_view.status_code == 200
    totals = {t["lender"]: t["amount_minor"] for t in servicer_view.json()["totals"]}
    assert totals[tenant_a.id] + totals[tenant_b.id] == 10_006


async def test_a_tenant_that_is_not_a_co_lender_gets_the_same_404_as_for_an_unknown_account(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> None:
    account = unique("A")
    await co_lent(plans, tenant_a, tenant_b, account)
    not_mine = await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}", headers=tenant_c.headers)
    unknown = await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/nope", headers=tenant_b.headers)
    own = await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}", headers=tenant_a.headers)
    assert assert_problem(not_mine, 404)["title"] == assert_problem(unknown, 404)["title"] == assert_problem(
        own, 404)["title"]
    # the co-lender has no such account in its own tenant: it cannot read the servicer's routes nor act
    assert_problem(await plans.client.get(f"/v1/accounts/{account}/recoveries", headers=tenant_b.headers), 404)
    posted = await plans.client.post("/v1/plans", headers=tenant_b.headers, json={
        "account_id": account, "customer_id": "C-1", "currency": "CNY", "reason": "x", "instalments": [
            {"due_date": (datetime.now(UTC).date() + timedelta(days=10)).isoformat(), "amount": "1000.00"}]})
    assert_problem(posted, 404)
    assert (await plans.client.get("/v1/plans", params={"account_id": account},
                                   headers=tenant_b.headers)).json() == []


@pytest.mark.parametrize("path", ["/v1/co-lending/bad%20servicer/accounts/A1", "/v1/co-lending/x/accounts/%00",
                                  "/v1/co-lending/accounts?cursor=nocolon", "/v1/co-lending/accounts?cursor=t:%00",
                                  "/v1/co-lending/accounts?limit=0",
                                  "/v1/co-lending/accounts?limit=100000", "/v1/accounts/%01/recoveries"])
async def test_hostile_co_lending_paths_are_422_never_500(plans: ServiceApi, tenant_b: Tenant, path: str) -> None:
    assert_problem(await plans.client.get(path, headers=tenant_b.headers), 422)


async def test_subscribe_once_with_the_secret_shown_once_and_kept_sealed(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    created = await plans.client.put("/v1/webhooks/main", json=HOOK, headers=tenant_a.headers)
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    changed = await plans.client.put("/v1/webhooks/main", headers=tenant_a.headers,
                                     json=HOOK | {"topics": ["plans.write-off.v1", "plans.plan-event.v1"]})
    assert changed.status_code == 200 and changed.json()["secret"] is None
    assert changed.json()["topics"] == ["plans.plan-event.v1", "plans.write-off.v1"]
    listed = await plans.client.get("/v1/webhooks", headers=tenant_a.headers)
    assert [w["webhook_id"] for w in listed.json()] == ["main"] and secret not in listed.text
    assert (await plans.client.get("/v1/webhooks", headers=tenant_b.headers)).json() == []
    [stored] = await plans.all(select(WebhookSubscription).where(WebhookSubscription.tenant == tenant_a.id))
    assert stored.secret_sealed.startswith("pii:v1:") and secret not in stored.secret_sealed
    assert plans.runtime.cipher.open(stored.secret_sealed, context=tenant_a.id) == secret

    # another tenant's webhook is 404 everywhere
    assert_problem(await plans.client.get("/v1/webhooks/main/deliveries", headers=tenant_b.headers), 404)
    assert_problem(await plans.client.delete("/v1/webhooks/main", params={"reason": "x"},
                                             headers=tenant_b.headers), 404)
    assert_problem(await plans.client.delete("/v1/webhooks/main", headers=tenant_a.headers), 422)  # no reason
    deleted = await plans.client.delete("/v1/webhooks/main", params={"reason": "endpoint retired"},
                                        headers=tenant_a.headers)
    assert deleted.status_code == 204
    assert_problem(await plans.client.delete("/v1/webhooks/main", params={"reason": "again"},
                                             headers=tenant_a.headers), 404)
    assert (await plans.client.get("/v1/webhooks", headers=tenant_a.headers)).json() == []
    again = await plans.client.put("/v1/webhooks/main", json=HOOK, headers=tenant_a.headers)
    assert again.status_code == 201 and again.json()["secret"] not in (None, secret)  # a new secret
    audit = await plans.all(select(AuditEntry).where(AuditEntry.tenant == tenant_a.id))
    assert [(e.action, e.subject, e.reason) for e in sorted(audit, key=lambda e: e.id or 0)] == [
        ("webhook.create", "main", "go live"), ("webhook.update", "main", "go live"),
        ("webhook.delete", "main", "endpoint retired"), ("webhook.create", "main", "go live")]


async def test_the_delivery_log_and_replay(plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    assert (await plans.client.put("/v1/webhooks/main", json=HOOK, headers=tenant_a.headers)).status_code == 201
    account = unique("A")
    await co_lent(plans, tenant_a, tenant_b, account)
    plan = await plans.client.post("/v1/plans", headers=tenant_a.headers, json={
        "account_id": account, "customer_id": "C-1", "currency": "CNY", "reason": "job loss", "instalments": [
            {"due_date": (datetime.now(UTC).date() + timedelta(days=10)).isoformat(), "amount": "899.94"}]})
    assert plan.status_code == 201
    [agreed] = [o for o in await plans.outbox(tenant_a) if o.topic == topics.PLAN_EVENT.name
                and o.event.data["plan_id"] == plan.json()["plan_id"]]
    # the plans consumer receives its own plan event (as from the broker) and enqueues the webhook delivery
    record = ConsumerRecord(topics.PLAN_EVENT.name, 0, 0, 0, 0, b"", agreed.value, None, 0, 0, [])
    await consume(plans.runtime.sessions, Delivery(agreed.event, PlanEventV1.model_validate(agreed.event.data),
                                                   record))
    log = await plans.client.get("/v1/webhooks/main/deliveries", headers=tenant_a.headers)
    assert log.status_code == 200
    [entry] = log.json()
    assert (entry["event_id"], entry["topic"], entry["status"], entry["attempts"]) == (
        agreed.event.id, "plans.plan-event.v1", "pending", 0)
    assert entry["next_attempt_at"] is not None and entry["last_status_code"] is None
    # another tenant cannot replay it; the owner can
    assert_problem(await plans.client.post(f"/v1/webhook-deliveries/{entry['delivery_id']}/replay",
                                           params={"reason": "mine?"}, headers=tenant_b.headers), 404)
    assert_problem(await plans.client.post(f"/v1/webhook-deliveries/{entry['delivery_id']}/replay",
                                           headers=tenant_a.headers), 422)  # no reason
    replayed = await plans.client.post(f"/v1/webhook-deliveries/{entry['delivery_id']}/replay",
                                       params={"reason": "partner asked"}, headers=tenant_a.headers)
    assert replayed.status_code == 200 and replayed.json()["status"] == "pending"
    [row] = await plans.all(select(WebhookDelivery).where(WebhookDelivery.tenant == tenant_a.id))
    assert row.body.encode() == agreed.event.to_bytes()


async def test_webhook_changes_need_the_partner_or_admin_role(plans: ServiceApi, infra: Any,
                                                              tenant_a: Tenant) -> None:
    agent = await issue(infra, tenant_a.id, {"agent"})
    partner = await issue(infra, tenant_a.id, {"partner"}, principal="partner-core")
    refused = await plans.client.put("/v1/webhooks/w1", json=HOOK, headers=bearer(agent))
    assert_problem(refused, 403)
    assert await plans.all(select(WebhookSubscription).where(WebhookSubscription.tenant == tenant_a.id)) == []
    assert (await plans.client.get("/v1/webhooks", headers=bearer(agent))).status_code == 200  # reads: any role
    created = await plans.client.put("/v1/webhooks/w1", json=HOOK, headers=bearer(partner))
    assert created.status_code == 201 and created.json()["created_by"] == "partner-core"
    assert_problem(await plans.client.delete("/v1/webhooks/w1", params={"reason": "x"}, headers=bearer(agent)), 403)


@pytest.mark.parametrize("change", [
    {"url": "ftp://partner.example/x"},
    {"url": "https://user:secret@partner.example/x"},
    {"url": "https://partner.example/" + "a" * 2001},
    {"url": "https://partner.example/\u0000"},
    {"url": "not a url"},
    {"url": "https://partner.example:70000/"},
    {"url": 42},
    {"topics": []},
    {"topics": ["plans.customer-request.v1"]},
    {"topics": ["core.payment-received.v1", "plans.plan-event.v1"]},
    {"topics": "plans.plan-event.v1"},
    {"reason": ""},
    {"secret": "whsec_mine"},
])
async def test_hostile_webhook_bodies_are_422_and_store_nothing(plans: ServiceApi, tenant_a: Tenant,
                                                                 change: dict[str, Any]) -> None:
    response = await plans.client.put("/v1/webhooks/main", json=HOOK | change, headers=tenant_a.headers)
    assert_problem(response, 422)
    assert await plans.all(select(WebhookSubscription).where(WebhookSubscription.tenant == tenant_a.id)) == []


@pytest.mark.parametrize("webhook_id", ["a%20b", "x" * 65, "%00"])
async def test_hostile_webhook_ids_are_422(plans: ServiceApi, tenant_a: Tenant, webhook_id: str) -> None:
    assert_problem(await plans.client.put(f"/v1/webhooks/{webhook_id}", json=HOOK, headers=tenant_a.headers), 422)


async def test_private_addresses_are_refused_when_the_setting_says_so(open_api: OpenService,
                                                                      tenant_a: Tenant) -> None:
    strict = await open_api("plans", webhook_allow_private=False)
    for url in ("http://127.0.0.1:8080/x", "http://localhost/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "http://10.0.0.7/x"):
        response = await strict.client.put("/v1/webhooks/main", json=HOOK | {"url": url}, headers=tenant_a.headers)
        assert "private or loopback" in assert_problem(response, 422)["detail"], url
    assert (await strict.client.put("/v1/webhooks/main", json=HOOK, headers=tenant_a.headers)).status_code == 201


async def test_two_concurrent_puts_of_a_new_webhook_create_it_once(plans: ServiceApi, tenant_a: Tenant) -> None:
    first, second = await asyncio.gather(
        plans.client.put("/v1/webhooks/race", json=HOOK, headers=tenant_a.headers),
        plans.client.put("/v1/webhooks/race", json=HOOK, headers=tenant_a.headers))
    assert sorted([first.status_code, second.status_code]) == [200, 201], (first.text, second.text)
    assert [r.json()["secret"] is None for r in (first, second)].count(True) == 1


async def test_co_lent_accounts_page_by_cursor(plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    accounts = sorted([unique("A"), unique("A"), unique("A")])
    for account in accounts:
        await co_lent(plans, tenant_a, tenant_b, account)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        page = await plans.client.get("/v1/co-lending/accounts", headers=tenant_b.headers,
                                      params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        seen += [a["account_id"] for a in page.json()["accounts"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == accounts
