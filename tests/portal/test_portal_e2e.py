"""End to end with the five services as processes (tests/conftest.py ``stack``): core banking's overdue notice
starts a treatment; the customer opens the portal link in Debian's chromium, proves who they are and agrees an
offer; the scheduler pauses the treatment on plans.plan-event.v1 ``agreed``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.stack import LocalStack
from shared.contracts import message_key, topics
from shared.contracts.events import AccountOverdueV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.settings import DEV_API_KEYS, DEV_PII_KEYS
from tests.portal.browser_support import sign_in

pytestmark = pytest.mark.e2e
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
KEY_A = next(k for k, t in DEV_API_KEYS.items() if t == "tenant-a")


async def eventually(probe: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if result := await probe():
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.25)


async def test_an_offer_agreed_on_the_portal_pauses_the_treatment(stack: LocalStack, tabs: Any) -> None:
    account_id = f"ACC-{uuid.uuid4().hex[:8].upper()}"
    tenant = "tenant-a"
    notice = AccountOverdueV1(
        tenant=tenant, account_id=account_id, customer_id=f"CUS-{account_id}", product="credit-card",
        currency="CNY", outstanding_minor=1_000_000, overdue_minor=250_000, days_past_due=5,
        due_date=date.today() - timedelta(days=5), credit_rating="C", account_ref="1234",
        contact={"name": CIPHER.seal("测试客户", context=tenant), "national_id": CIPHER.seal("11010519491231002X",
                                                                                        context=tenant),
                 "time_zone": "Asia/Shanghai", "locale": "zh-CN"})
    event = build_event(topics.ACCOUNT_OVERDUE, notice, tenant=tenant, customer_id=notice.customer_id,
                        source="urn:test:core-banking", subject=account_id)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topics.ACCOUNT_OVERDUE.name, event.to_bytes(),
                                     key=message_key(tenant, notice.customer_id))
    finally:
        await producer.stop()
    headers = {"Authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(timeout=10) as http:

        async def treatment(status: str) -> dict[str, Any] | None:
            r = await http.get(f"{stack.url('scheduler')}/v1/treatments/{account_id}", headers=headers)
            return r.json() if r.status_code == 200 and r.json()["status"] == status else None  # type: ignore[no-any-return]

        await eventually(lambda: treatment("active"))

        async def link() -> str | None:  # 404 until the plans consumer has the notice
            r = await http.post(f"{stack.url('plans')}/v1/accounts/{account_id}/portal-links", headers=headers)
            return str(r.json()["url"]) if r.status_code == 201 else None

        url = await eventually(link)
        tab = await tabs("stack")
        await sign_in(tab, url)
        page = tab.page
        assert await page.locator("#overdue-amount").inner_text() == "2,500.00 CNY"
        await page.locator("article.offer").filter(has_not=page.locator(".approval")).first.get_by_role(
            "button").click()
        await page.wait_for_url("**/portal/offers")
        assert "已达成协议" in await page.locator("h1").inner_text()
        await tab.shot("agreed")

        [plan] = (await http.get(f"{stack.url('plans')}/v1/plans", params={"account_id": account_id},
                                 headers=headers)).json()
        assert plan["status"] == "agreed"
        paused = await eventually(lambda: treatment("paused"))
        assert plan["plan_id"] in paused["status_reason"]
