"""Review attacks on co-lending and webhook routes through the ASGI app on the real database: a co-lender dropped
by a later notice, cursors pointing elsewhere, odd servicer ids, webhook URLs naming a private address in another
spelling or that the dispatcher could not send to, odd JSON in a webhook body."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from tests.api.support import OpenService, ServiceApi, Tenant, assert_problem, unique
from tests.api.test_api_co_lending import HOOK, co_lent
from tests.plans.integration.test_webhooks import plan_event
from tests.plans.support import consume, overdue_notice

pytestmark = pytest.mark.integration


async def test_a_co_lender_dropped_by_a_later_notice_reads_nothing_more(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> None:
    account = unique("A")
    await co_lent(plans, tenant_a, tenant_b, account)
    assert (await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}",
                                   headers=tenant_b.headers)).status_code == 200
    await consume(plans.runtime.sessions, overdue_notice(tenant_a.id, account, customer_id="C-1",
                                                         co_lenders=[(tenant_c.id, 2500)], at=datetime.now(UTC)))
    assert_problem(await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}",
                                          headers=tenant_b.headers), 404)
    listed = await plans.client.get("/v1/co-lending/accounts", headers=tenant_b.headers, params={"limit": 500})
    assert account not in listed.text
    now_c = await plans.client.get(f"/v1/co-lending/{tenant_a.id}/accounts/{account}", headers=tenant_c.headers)
    assert now_c.status_code == 200
    body = now_c.json()
    assert body["lenders"] == {tenant_a.id: 7500, tenant_c.id: 2500} and body["your_share_bp"] == 2500
    # the splits made while B co-lent stay facts; C's own recoveries are what C got, nothing of B's
    assert body["your_recoveries"] == []


@pytest.mark.parametrize("cursor", ["zzzz:zzzz", "0:0", "..:..", "a" * 64 + ":" + "b" * 128])
async def test_a_cursor_anywhere_pages_only_the_callers_accounts(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant, cursor: str) -> None:
    await co_lent(plans, tenant_a, tenant_b, unique("A"))
    response = await plans.client.get("/v1/co-lending/accounts", headers=tenant_c.headers,
                                      params={"cursor": cursor})
    assert response.status_code == 200 and response.json()["accounts"] == []


@pytest.mark.parametrize("servicer", ["..", ".", "-", "a" * 64])
async def test_odd_but_valid_servicer_ids_are_a_plain_404(plans: ServiceApi, tenant_b: Tenant,
                                                         servicer: str) -> None:
    assert_problem(await plans.client.get(f"/v1/co-lending/{servicer}/accounts/A1", headers=tenant_b.headers), 404)


@pytest.mark.parametrize("url", ["http://2130706433/x", "http://0x7f.1/x", "http://0177.0.0.1/x", "http://127.1/x",
                                 "http://2852039166/latest", "http://localhost./x", "http://[::127.0.0.1]/x"])
async def test_private_addresses_in_other_spellings_are_refused(open_api: OpenService, tenant_a: Tenant,
                                                                url: str) -> None:
    strict = await open_api("plans", webhook_allow_private=False)
    response = await strict.client.put("/v1/webhooks/main", json=HOOK | {"url": url}, headers=tenant_a.headers)
    assert "private or loopback" in assert_problem(response, 422)["detail"], url
    assert await strict.all(select(WebhookSubscription).where(WebhookSubscription.tenant == tenant_a.id)) == []


@pytest.mark.parametrize("body", [
    '{"url": "http://\\u2603.example/hooks", "topics": ["plans.plan-event.v1"], "reason": "x"}',
    '{"url": "https://partner.example/\\udcff", "topics": ["plans.plan-event.v1"], "reason": "x"}',
    '{"url": "https://partner.example/", "topics": ["plans.plan-event.v1"], "reason": "\\ud800"}',
    '{"url": "https://partner.example/", "topics": ["plans.plan-event.v1", "plans.plan-event.v1"], "reason": "x"}',
])
async def test_webhook_bodies_the_dispatcher_could_not_use_are_422_never_500(
        plans: ServiceApi, tenant_a: Tenant, body: str) -> None:
    response = await plans.client.put("/v1/webhooks/main", content=body.encode(),
                                      headers=tenant_a.headers | {"content-type": "application/json"})
    if "plans.plan-event.v1\", \"plans.plan-event.v1" in body:  # a duplicated topic is kept once
        assert response.status_code == 201, response.text
        assert response.json()["topics"] == ["plans.plan-event.v1"]
        return
    assert_problem(response, 422)
    assert await plans.all(select(WebhookSubscription).where(WebhookSubscription.tenant == tenant_a.id)) == []


async def test_another_tenants_delivery_cannot_be_replayed_or_read(plans: ServiceApi, tenant_a: Tenant,
                                                                   tenant_b: Tenant) -> None:
    assert (await plans.client.put("/v1/webhooks/main", json=HOOK, headers=tenant_a.headers)).status_code == 201
    account = unique("A")
    await co_lent(plans, tenant_a, tenant_b, account)
    await consume(plans.runtime.sessions, plan_event(tenant_a.id, account))
    [delivery] = await plans.all(select(WebhookDelivery).where(WebhookDelivery.tenant == tenant_a.id))
    replay: Any = await plans.client.post(f"/v1/webhook-deliveries/{delivery.delivery_id}/replay",
                                          params={"reason": "mine now"}, headers=tenant_b.headers)
    assert_problem(replay, 404)
    assert_problem(await plans.client.get("/v1/webhooks/main/deliveries", headers=tenant_b.headers), 404)
