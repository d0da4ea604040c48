"""The portal in a real browser: Playwright driving Debian's chromium (``make chromium``; Playwright's own browser
download is never used) against plans' app served by uvicorn on a free port, on the session's PostgreSQL.

From the link in a message to an agreed plan (in plans' database, and ``plans.plan-event.v1`` ``agreed`` in its
outbox: the event the scheduler pauses the treatment on), a promise to pay, hardship and a complaint (their events
in the outbox), a link opened twice, the English switch, a 375x740 screen and an agreement made with the keyboard
only. Screenshots go to ``test-output/portal/``. Any console error or page error fails a test (the one expected
error, the 410 of a used link, is asserted instead). Without chromium these tests skip, except under ``make test``
(REQUIRE_CHROMIUM=1) or on CI, where they fail.

The app runs in-process without its lifespan (no consumer, no relay: the outbox keeps what the use cases wrote);
the treatment the scheduler pauses on that event is shown with the five services running
(tests/portal/test_portal_e2e.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from devstack.embedded import free_port
from services.plans.db.models import Plan
from shared.contracts import topics
from shared.contracts.events import CustomerRequestV1, PlanEventV1
from tests.api.support import ServiceApi, Tenant
from tests.portal.browser_support import USED_LINK_ERROR, sign_in
from tests.portal.conftest import OpenPlans, known_account

pytestmark = pytest.mark.integration

@dataclass
class Portal:
    """Plans served on ``base``; ``api`` for the link route, the database and the outbox."""

    api: ServiceApi
    base: str
    tenant: Tenant

    async def link(self, account_id: str) -> str:
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as client:
            response = await client.post(f"/v1/accounts/{account_id}/portal-links", headers=self.tenant.headers)
        assert response.status_code == 201, response.text
        url: str = response.json()["url"]
        assert url.startswith(f"{self.base}/portal/l/"), url
        return url


@pytest.fixture
async def portal(open_plans: OpenPlans, tenant_a: Tenant) -> AsyncIterator[Portal]:
    api = await open_plans(portal_openings_per_address=100_000)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                                           access_log=False))
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Portal(api, f"http://127.0.0.1:{port}", tenant_a)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)


async def outbox_of(portal: Portal, topic: str) -> list[Any]:
    return [r for r in await portal.api.outbox(portal.tenant) if r.topic == topic]


async def test_from_the_link_in_a_message_to_an_agreed_plan_and_a_promise(portal: Portal, tabs: Any) -> None:
    account = await known_account(portal.api, portal.tenant, customer_id="C-BROWSER")
    link = await portal.link(account)
    tab = await tabs("zh")
    page = tab.page
    await sign_in(tab, link, wrong_first=True)
    assert await page.locator("html").get_attribute("lang") == "zh-CN"
    assert await page.locator("#overdue-amount").inner_text() == "1,234.56 CNY"
    assert "尾号1234账户" in await page.content()
    await tab.accessible()
    await tab.shot("4-account")

    # the first offer that needs nobody's approval
    offer = page.locator("article.offer").filter(has_not=page.locator(".approval")).first
    await offer.get_by_role("button").click()
    await page.wait_for_url("**/portal/offers")
    assert "已达成协议" in await page.locator("h1").inner_text()
    await tab.shot("5-agreed")
    [plan] = await portal.api.all(select(Plan).where(Plan.tenant == portal.tenant.id, Plan.account_id == account))
    assert (plan.status, plan.made_by) == ("agreed", "portal:customer")
    [event] = await outbox_of(portal, topics.PLAN_EVENT.name)
    assert PlanEventV1.model_validate(event.event.data).kind == "agreed"  # the scheduler pauses on this

    await page.get_by_role("link", name="返回我的账户").click()
    await page.get_by_label(re.compile("^金额")).fill("300")
    await page.get_by_label("还款日期").fill((datetime.now(UTC).date() + timedelta(days=3)).isoformat())
    await page.get_by_role("button", name="承诺此笔还款").click()
    await page.wait_for_url("**/portal/promise")
    assert "300.00 CNY" in await page.locator("main").inner_text()
    await tab.shot("6-promise")
    [promise] = await outbox_of(portal, topics.PROMISE_EVENT.name)
    assert (promise.event.data["amount_minor"], promise.event.data["source"]) == (30_000, "portal")

    # the link opened again, in another browser: refused, the page says how to get a new one
    again = await tabs("again", expect=(USED_LINK_ERROR,))
    response = await again.page.goto(link)
    assert response is not None and response.status == 410
    assert "此链接已被使用" in await again.page.locator("h1").inner_text()
    await again.shot("used")


async def test_hardship_and_a_complaint(portal: Portal, tabs: Any) -> None:
    account = await known_account(portal.api, portal.tenant, locale="en")
    tab = await tabs("en")
    page = tab.page
    await sign_in(tab, await portal.link(account))
    assert await page.locator("html").get_attribute("lang") == "en"

    await page.get_by_label("What happened (optional)").fill("I lost my job in October.")
    await page.get_by_role("button", name="Ask for help").click()
    await page.wait_for_url("**/portal/hardship")
    assert "We will contact you" in await page.locator("h1").inner_text()
    await tab.shot("hardship")

    await page.get_by_role("link", name="Back to your account").click()
    await page.get_by_role("button", name="Send complaint").click()  # empty: refused, the error tied to the field
    assert "Write what your complaint is about." in await page.locator("#complaint-error").inner_text()
    assert "complaint-error" in (await page.locator("#complaint").get_attribute("aria-describedby") or "")
    await tab.accessible()
    await tab.shot("complaint-error")
    await page.get_by_label("Your complaint").fill("Too many calls at dinner time.")
    await page.get_by_role("button", name="Send complaint").click()
    await page.wait_for_url("**/portal/complaint")
    assert "Complaint received" in await page.locator("h1").inner_text()
    await tab.shot("complaint")

    kinds = [CustomerRequestV1.model_validate(r.event.data).kind
             for r in await outbox_of(portal, topics.CUSTOMER_REQUEST.name)]
    assert kinds == ["hardship", "complaint"]


async def test_english_on_a_phone_with_the_keyboard_only(portal: Portal, tabs: Any) -> None:
    account = await known_account(portal.api, portal.tenant, locale="zh-CN")
    link = await portal.link(account)
    tab = await tabs("phone", viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page, keyboard = tab.page, tab.page.keyboard

    await page.goto(link)
    await page.get_by_role("link", name="English").click()  # the switch, before anything else
    assert await page.locator("html").get_attribute("lang") == "en"
    await tab.accessible()
    await tab.shot("1-link-en")

    async def tab_to(selector_js: str, limit: int = 80) -> None:
        for _ in range(limit):
            await keyboard.press("Tab")
            script = f"(() => {{ const el = document.activeElement; return !!el && ({selector_js}); }})()"
            if await page.evaluate(script):
                outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", "focus must be visible"
                return
        raise AssertionError(f"never reached {selector_js}")

    await tab_to("el.tagName === 'BUTTON'")
    await keyboard.press("Enter")
    await page.wait_for_url("**/portal/verify")
    assert await page.locator("html").get_attribute("lang") == "en"  # the choice travelled with the link
    await tab_to("el.id === 'answer'")
    await keyboard.type("002x")
    await keyboard.press("Enter")
    await page.wait_for_url("**/portal/account")
    assert await page.locator("#overdue-amount").inner_text() == "1,234.56 CNY"
    await tab.accessible()
    await tab.shot("2-account")

    await tab_to("el.tagName === 'BUTTON' && el.closest('form').getAttribute('action') === '/portal/offers' "
                 "&& !el.closest('article').querySelector('.approval')")
    await tab.shot("3-focused-offer")
    await keyboard.press("Enter")
    await page.wait_for_url("**/portal/offers")
    assert await page.locator("h1").inner_text() == "Agreed"
    await tab.accessible()
    await tab.shot("4-agreed")
    [plan] = await portal.api.all(select(Plan).where(Plan.tenant == portal.tenant.id, Plan.account_id == account))
    assert plan.status == "agreed"
