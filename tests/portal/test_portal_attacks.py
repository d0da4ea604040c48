"""The portal under attack, through plans' ASGI app on the real database: error pages that must still carry the
portal's headers (an unknown path, a wrong method, PostgreSQL down), the second factor guessed across several links
of one account, and hostile amounts on the budget form."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from services.plans import portal_service
from services.plans.db.models import Plan
from services.plans.db.portal import PortalLink, PortalRequest, PortalSession
from services.plans.portal import links
from services.plans.settings import Settings
from shared.contracts import topics
from tests.api.support import ServiceApi, Tenant, unique
from tests.plans.support import consume, overdue_notice
from tests.portal.conftest import OpenPlans, known_account
from tests.portal.portal_client import CSRF, Customer, mint

pytestmark = pytest.mark.integration


def assert_portal_page(response: Any, status: int) -> str:
    """An HTML page (never problem+json) with the portal's security headers; its text."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    return str(response.text)


async def test_an_unknown_portal_path_or_method_is_a_portal_page_with_its_headers(plans: ServiceApi) -> None:
    async with Customer(plans) as customer:
        for path in ("/portal/nothing", "/portal/l/", "/portal/", "/portal/static/x/y"):
            assert_portal_page(await customer.get(path), 404)
        for method, path in (("PATCH", "/portal/verify"), ("DELETE", "/portal/account"), ("PUT", "/portal/l/x"),
                             ("GET", "/portal/offers"), ("HEAD", "/portal/verify")):
            response = await customer.client.request(method, path)
            assert response.status_code == 405, (method, path, response.status_code)
            assert response.headers["cache-control"] == "no-store" and "content-security-policy" in response.headers
            assert "allow" in response.headers
        # a chunked body past HTTP_MAX_BODY_BYTES (no Content-Length to refuse it at once)

        async def endless() -> AsyncIterator[bytes]:
            yield b"csrf=x&detail="
            for _ in range(80):
                yield b"x" * 65_536

        huge = await customer.client.post("/portal/complaint", content=endless(),
                                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert huge.status_code in (401, 403, 413)
        assert_portal_page(huge, huge.status_code)


async def test_postgresql_down_is_a_503_page_with_the_portal_headers_and_no_traceback(
        plans: ServiceApi, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    link = await mint(plans, tenant_a, account)
    async with Customer(plans) as customer:
        await customer.sign_in(link)

        async def down(*_: Any, **__: Any) -> Any:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))

        monkeypatch.setattr(portal_service, "current_session", down)
        monkeypatch.setattr(portal_service, "count_opening", down)
        with caplog.at_level(logging.DEBUG):
            for response in (await customer.get("/portal/account"), await customer.get(link),
                             await customer.client.post("/portal/promise", data={"amount": "1", "csrf": "x"})):
                page = assert_portal_page(response, 503)
                assert "Traceback" not in page and "OperationalError" not in page and "SELECT" not in page
                assert response.headers["retry-after"]
        assert "Traceback" not in caplog.text


async def test_wrong_answers_on_several_links_of_one_account_lock_them_all(plans: ServiceApi,
                                                                          tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as first, Customer(plans) as second, Customer(plans) as third:
        for customer in (first, second, third):
            await customer.open(await mint(plans, tenant_a, account))
        third_csrf = await third.csrf("/portal/verify")
        for _ in range(3):
            page = assert_portal_page(await first.post("/portal/verify", {"answer": "0000"}, page="/portal/verify"),
                                      200)
            assert "Tries left" in page
        # the second link goes on from the first one's count: two more wrong answers lock the account
        assert "Tries left: 1." in assert_portal_page(
            await second.post("/portal/verify", {"answer": "0001"}, page="/portal/verify"), 200)
        assert_portal_page(await second.post("/portal/verify", {"answer": "0002"}, page="/portal/verify"), 429)
        # every link of the account is locked now, even against the right answer
        assert_portal_page(await third.get("/portal/verify"), 429)
        assert_portal_page(await third.post("/portal/verify", {"answer": "002X", "csrf": third_csrf}), 429)
        assert_portal_page(await first.get("/portal/verify"), 429)
    sessions = await plans.all(select(PortalSession).where(PortalSession.account_id == account))  # type: ignore[arg-type]
    assert len(sessions) == 3 and all(s.verified_at is None for s in sessions)


async def test_wrong_answers_given_at_once_on_six_links_lock_the_account_once(plans: ServiceApi,
                                                                             tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with contextlib.AsyncExitStack() as stack:
        customers = [await stack.enter_async_context(Customer(plans)) for _ in range(6)]
        forms = []
        for customer in customers:
            await customer.open(await mint(plans, tenant_a, account))
            forms.append({"answer": "0000", "csrf": await customer.csrf("/portal/verify")})
        answers = await asyncio.gather(*(c.client.post("/portal/verify", data=f)
                                         for c, f in zip(customers, forms, strict=True)))
        assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 429, 429]
        assert sorted(m.group(1) for a in answers if (m := re.search(r"Tries left: ([0-9])", a.text))) == [
            "1", "2", "3", "4"]


async def test_an_unexpected_error_is_a_500_page_and_its_message_is_not_logged(
        plans: ServiceApi, tenant_a: Tenant, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))

        async def broken(*_: Any, **__: Any) -> Any:
            raise RuntimeError("overdue 1,234.56 CNY of 11010519491231002X")

        monkeypatch.setattr(portal_service, "owed", broken)
        with caplog.at_level(logging.DEBUG):
            page = assert_portal_page(await customer.get("/portal/account?lang=en"), 500)
        assert "1,234.56" not in page and "RuntimeError" not in page and "Something went wrong" in page
        assert "1,234.56" not in caplog.text and "002X" not in caplog.text
        assert "portal: unhandled error" in caplog.text


async def test_a_right_answer_starts_the_accounts_count_again(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as first, Customer(plans) as second:
        await first.open(await mint(plans, tenant_a, account))
        for _ in range(4):
            await first.post("/portal/verify", {"answer": "0000"}, page="/portal/verify")
        right = await first.post("/portal/verify", {"answer": "002X"}, page="/portal/verify")
        assert right.headers["location"] == "/portal/account"
        await second.open(await mint(plans, tenant_a, account))
        assert "Tries left: 4." in assert_portal_page(
            await second.post("/portal/verify", {"answer": "0000"}, page="/portal/verify"), 200)


async def test_a_huge_form_is_refused_without_reading_it_all(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    pulled = 0

    async def big() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(60):  # 3.75 MiB: under the app's limit, far over the portal's 64 KiB
            pulled += 1
            yield b"x" * 65_536

    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        csrf = await customer.csrf("/portal/account")

        async def body() -> AsyncIterator[bytes]:
            yield f"csrf={csrf}&detail=".encode()
            async for chunk in big():
                yield chunk

        response = await customer.client.post("/portal/complaint", content=body(),
                                              headers={"content-type": "application/x-www-form-urlencoded"})
        assert_portal_page(response, 403)
    assert pulled <= 3
    assert await plans.all(select(PortalRequest).where(PortalRequest.account_id == account)) == []  # type: ignore[arg-type]


async def test_hostile_quote_and_offer_ids_are_refused_on_a_page(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        for quote_id, offer_id in (("not-a-uuid", "x"), ("' OR 1=1 --", "1"), ("q" * 128, "o" * 128),
                                   (str(uuid.uuid4()), "<script>"), ("%", "%")):
            response = await customer.post("/portal/offers", {"quote_id": quote_id, "offer_id": offer_id})
            page = assert_portal_page(response, response.status_code)
            assert response.status_code in (409, 422), (quote_id, response.status_code)
            assert "<script>" not in page
    assert await plans.all(select(Plan).where(Plan.tenant == tenant_a.id, Plan.account_id == account)) == []  # type: ignore[arg-type]


async def test_an_account_with_odd_characters_and_a_hostile_reference_is_escaped(plans: ServiceApi,
                                                                                 tenant_a: Tenant) -> None:
    account = f"ACC 中文 <b>&'\"{uuid.uuid4().hex[:6]}"
    await consume(plans.runtime.sessions, overdue_notice(
        tenant_a.id, account, overdue_minor=123_456, national_id="11010519491231002X", locale="en",
        account_ref="12AB"))
    response = await plans.client.post(f"/v1/accounts/{quote(account, safe='')}/portal-links",
                                       headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    link = response.json()["url"].removeprefix("http://testserver")
    async with Customer(plans) as customer:
        await customer.sign_in(link)
        page = assert_portal_page(await customer.get("/portal/account"), 200)
        assert "<b>" not in page and "ending 12AB" in page and "1,234.56 CNY" in page


async def test_hostile_budget_amounts_are_refused_on_the_page_never_a_500(plans: ServiceApi,
                                                                          tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        for income, expenses in (("9999999999999.99", "0"), ("0", "9999999999999"), ("0", "0"),
                                 ("1e9", "-1"), ("NaN", "0.001"), ("0.001", "Infinity")):
            response = await customer.post("/portal/account", {"income": income, "expenses": expenses})
            assert_portal_page(response, response.status_code if response.status_code < 500 else 200)


KEY = Settings(app_env="test").portal_key


async def test_two_browsers_pressing_one_links_button_at_once_get_one_session(plans: ServiceApi,
                                                                              tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    rest_link = await mint(plans, tenant_a, account)
    # a link channels minted for a message: plans has not stored its nonce
    channels_link = "/portal/l/" + links.mint(KEY, tenant=tenant_a.id, account_id=account, nonce=uuid.uuid4().bytes,
                                              expires_at=int((datetime.now(UTC) + timedelta(hours=1)).timestamp()))
    for link in (rest_link, channels_link):
        async with Customer(plans) as first, Customer(plans) as second:
            answers = await asyncio.gather(first.client.post(link, data={}), second.client.post(link, data={}))
            assert sorted(a.status_code for a in answers) == [303, 410]
    sessions = await plans.all(select(PortalSession).where(PortalSession.account_id == account))  # type: ignore[arg-type]
    assert len(sessions) == 2 and len({s.nonce for s in sessions}) == 2
    assert all(r.used_at is not None for r in await plans.all(select(PortalLink).where(
        PortalLink.account_id == account)))  # type: ignore[arg-type]


async def test_a_cookie_set_before_the_exchange_is_replaced_and_forwarded_for_does_not_reset_the_limit(
        open_plans: OpenPlans, tenant_a: Tenant) -> None:
    plans = await open_plans(portal_openings_per_address=2)
    account = await known_account(plans, tenant_a)
    link = await mint(plans, tenant_a, account)
    async with Customer(plans, "198.51.100.201") as customer:
        customer.client.cookies.set("gc_portal", "chosen-by-the-attacker", domain="testserver", path="/portal")
        opened = await customer.open(link)
        assert opened.status_code == 303
        assert "chosen-by-the-attacker" not in opened.headers["set-cookie"]
        for spoofed in ("1.2.3.4", "5.6.7.8"):
            response = await customer.client.get("/portal/l/nonsense", headers={"x-forwarded-for": spoofed,
                                                                              "forwarded": f"for={spoofed}"})
            assert response.status_code == 429
    async with Customer(plans) as attacker:
        attacker.client.cookies.set("gc_portal", "chosen-by-the-attacker", domain="testserver", path="/portal")
        assert (await attacker.get("/portal/verify")).status_code == 401


async def test_another_sessions_csrf_token_or_cookie_changes_nothing(plans: ServiceApi, tenant_a: Tenant,
                                                                   tenant_b: Tenant) -> None:
    mine = await known_account(plans, tenant_a)
    theirs = await known_account(plans, tenant_b)
    async with Customer(plans) as me, Customer(plans) as them:
        await me.sign_in(await mint(plans, tenant_a, mine))
        await them.sign_in(await mint(plans, tenant_b, theirs))
        their_csrf = await them.csrf("/portal/account")
        for path, data in (("/portal/complaint", {"detail": "x"}), ("/portal/opt-out", {"channel": "sms"}),
                           ("/portal/hardship", {"detail": ""})):
            assert_portal_page(await me.post(path, {**data, "csrf": their_csrf}), 403)
            # a repeated field: only the first value counts
            response = await me.client.post(path, content=f"csrf={their_csrf}&csrf={await me.csrf('/portal/account')}"
                                            f"&detail=x&channel=sms",
                                            headers={"content-type": "application/x-www-form-urlencoded"})
            assert_portal_page(response, 403)
    assert await plans.all(select(PortalRequest).where(PortalRequest.account_id.in_([mine, theirs]))) == []  # type: ignore[attr-defined]


async def test_a_second_promise_while_one_is_open_is_refused_and_never_a_500(plans: ServiceApi,
                                                                             tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    due = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    links_ = [await mint(plans, tenant_a, account) for _ in range(2)]
    async with Customer(plans) as first, Customer(plans) as second:
        await first.sign_in(links_[0])
        await second.sign_in(links_[1])
        csrf = [await first.csrf("/portal/account"), await second.csrf("/portal/account")]
        answers = await asyncio.gather(
            first.client.post("/portal/promise", data={"amount": "100", "due_on": due, "csrf": csrf[0]}),
            second.client.post("/portal/promise", data={"amount": "200", "due_on": due, "csrf": csrf[1]}))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.status_code for a in answers]
        assert "You promised" in "".join(a.text for a in answers)
        assert_portal_page(await first.post("/portal/promise", {"amount": "300", "due_on": due}), 409)
    made = [r.event.data for r in await plans.outbox(tenant_a) if r.topic == topics.PROMISE_EVENT.name]
    assert len(made) == 1 and made[0]["account_id"] == account, made


async def test_two_links_agreeing_offers_at_once_give_one_agreed_plan(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as first, Customer(plans) as second:
        await first.sign_in(await mint(plans, tenant_a, account))
        await second.sign_in(await mint(plans, tenant_a, account))
        chosen = []
        for customer in (first, second):
            page = (await customer.get("/portal/account")).text
            csrf = CSRF.search(page)
            assert csrf
            quote_id = page.split('name="quote_id" value="')[1].split('"')[0]
            offer_id = page.split('name="offer_id" value="')[1].split('"')[0]
            chosen.append((customer, {"csrf": csrf.group(1), "quote_id": quote_id, "offer_id": offer_id}))
        answers = await asyncio.gather(*(c.client.post("/portal/offers", data=d) for c, d in chosen))
        assert all(a.status_code < 500 for a in answers), [a.status_code for a in answers]
    plans_ = await plans.all(select(Plan).where(Plan.tenant == tenant_a.id, Plan.account_id == account))  # type: ignore[arg-type]
    assert len([p for p in plans_ if p.status in ("agreed", "pending_approval")]) == 1, [p.status for p in plans_]


async def test_a_second_offer_after_an_agreed_plan_is_refused(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        for expected in (200, 409):
            page = (await customer.get("/portal/account")).text
            if expected == 409 and 'name="quote_id"' not in page:
                break  # no offers once a plan is agreed: as good
            form = {"quote_id": page.split('name="quote_id" value="')[1].split('"')[0],
                    "offer_id": page.split('name="offer_id" value="')[1].split('"')[0]}
            assert (await customer.post("/portal/offers", form)).status_code == expected
    agreed = await plans.all(select(Plan).where(Plan.tenant == tenant_a.id, Plan.account_id == account))  # type: ignore[arg-type]
    assert len(agreed) == 1, [p.status for p in agreed]


async def test_amounts_finer_than_the_currency_or_far_dates_are_refused_on_the_page(plans: ServiceApi,
                                                                                  tenant_a: Tenant) -> None:
    account = unique("ACC")
    await consume(plans.runtime.sessions, overdue_notice(tenant_a.id, account, overdue_minor=50_000, currency="JPY",
                                                          national_id="11010519491231002X", locale="en"))
    today = datetime.now(UTC).date()
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        assert "50,000 JPY" in (await customer.get("/portal/account")).text
        for amount, day in (("0.001", today + timedelta(days=3)), ("1.5", today + timedelta(days=3)),
                            ("-1", today + timedelta(days=3)), ("100", "9999-12-31"), ("100", "0001-01-01"),
                            ("100", "+10000-01-01"), ("1e9", today + timedelta(days=3))):
            page = assert_portal_page(await customer.post("/portal/promise", {"amount": amount, "due_on": str(day)}),
                                      200)
            assert 'class="error-summary"' in page
        refused = assert_portal_page(await customer.post("/portal/account", {"income": "0.5", "expenses": "1"}), 200)
        assert 'id="income-error"' in refused
    assert [r for r in await plans.outbox(tenant_a) if r.topic == topics.PROMISE_EVENT.name
            and r.event.data.get("account_id") == account] == []
