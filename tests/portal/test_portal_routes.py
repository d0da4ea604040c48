"""The portal's routes through plans' ASGI app on the real database: the link route (REST), then the pages a
customer goes through: the link, the second factor, what is owed, offers, a promise, hardship, complaint and
opt-out; and what the portal refuses (a used, tampered or expired link, a wrong answer five times, a form without
its CSRF token, a session idle for 30 minutes, too many openings from one address, another tenant's account)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from services.plans.db.models import Plan
from services.plans.db.portal import PortalAttempt, PortalLink, PortalRequest, PortalSession
from services.plans.portal import links
from services.plans.promises import PromiseView  # noqa: F401 - the module the promise page uses
from services.plans.settings import Settings
from shared.contracts import topics
from shared.contracts.events import CustomerRequestV1, PlanEventV1
from tests.api.support import CIPHER, ServiceApi, Tenant, assert_problem
from tests.api.test_api_access import bearer, issue
from tests.portal.conftest import OpenPlans, known_account
from tests.portal.portal_client import Customer, mint

pytestmark = pytest.mark.integration

KEY = Settings(app_env="test").portal_key
SECURITY_HEADERS = {"x-frame-options": "DENY", "referrer-policy": "no-referrer", "cache-control": "no-store"}


def assert_page(response: Any, status: int = 200) -> str:
    """An HTML page with the portal's security headers; its text."""
    assert response.status_code == status, (response.status_code, response.text[:800])
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    return str(response.text)


def no_debt(page: str) -> None:
    assert "1,234.56" not in page and "CNY" not in page


async def rows(api: ServiceApi, model: Any, *where: Any) -> list[Any]:
    return await api.all(select(model).where(*where))


# --- the link route ------------------------------------------------------------------------------------------------

async def test_a_link_is_minted_for_a_known_account_only_and_expires_after_72_hours(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    before = datetime.now(UTC)
    response = await plans.client.post(f"/v1/accounts/{account}/portal-links", headers=tenant_a.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    token = body["url"].removeprefix("http://testserver/portal/l/")
    claims = links.verify(token, KEY, now=before.timestamp())
    assert (claims.tenant, claims.account_id) == (tenant_a.id, account)
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=71, minutes=59) < expires - before <= timedelta(hours=72, seconds=1)
    [stored] = await rows(plans, PortalLink, PortalLink.nonce == claims.nonce)
    assert (stored.tenant, stored.account_id, stored.used_at) == (tenant_a.id, account, None)

    # another tenant's account, or one plans does not know: the same 404, nothing stored
    for tenant, account_id in ((tenant_b, account), (tenant_a, "ACC-UNKNOWN")):
        assert_problem(await plans.client.post(f"/v1/accounts/{account_id}/portal-links", headers=tenant.headers),
                       404)
    assert len(await rows(plans, PortalLink, PortalLink.account_id == account)) == 1


async def test_the_link_route_needs_a_servicer_role_and_refuses_hostile_ids(
        open_plans: OpenPlans, tenant_a: Tenant, infra: Any) -> None:
    plans = await open_plans(api_key_cache_ttl_s=0)
    account = await known_account(plans, tenant_a)
    strategist = await issue(infra, tenant_a.id, {"strategist"})
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/portal-links", headers=bearer(strategist)), 403)
    agent = await issue(infra, tenant_a.id, {"agent"})
    assert (await plans.client.post(f"/v1/accounts/{account}/portal-links", headers=bearer(agent))).status_code == 201
    assert_problem(await plans.client.post(f"/v1/accounts/{account}/portal-links"), 401)
    for hostile in ("A%00B", "A" * 129, "%0A"):
        response = await plans.client.post(f"/v1/accounts/{hostile}/portal-links", headers=tenant_a.headers)
        assert response.status_code in (404, 422), response.text
        assert response.status_code != 500


async def test_the_portal_is_not_in_the_openapi_document_but_the_link_route_is(plans: ServiceApi) -> None:
    paths = (await plans.client.get("/openapi.json")).json()["paths"]
    assert "/v1/accounts/{account_id}/portal-links" in paths
    assert paths["/v1/accounts/{account_id}/portal-links"]["post"]["x-required-roles"] == [
        "agent", "partner", "supervisor"]
    assert not [p for p in paths if p.startswith("/portal")]


# --- the happy path ------------------------------------------------------------------------------------------------

async def test_a_customer_opens_the_link_proves_who_they_are_and_sees_what_is_owed(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    link = await mint(plans, tenant_a, account)
    async with Customer(plans) as customer:
        first = assert_page(await customer.get(link))
        assert '<html lang="zh-CN">' in first and 'method="post"' in first
        no_debt(first)
        # a GET changes nothing: a link preview does not use the link
        assert (await customer.get(link)).status_code == 200

        opened = await customer.open(link)
        assert (opened.status_code, opened.headers["location"]) == (303, "/portal/verify")
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/portal" in cookie

        verify = assert_page(await customer.get("/portal/verify"))
        no_debt(verify)
        assert '<label for="answer">' in verify and 'aria-describedby="answer-hint"' in verify
        # the account page is not shown before the second factor
        early = await customer.get("/portal/account")
        assert (early.status_code, early.headers["location"]) == (303, "/portal/verify")

        wrong = assert_page(await customer.post("/portal/verify", {"answer": "1234"}, page="/portal/verify"))
        assert "剩余尝试次数：4" in wrong and 'aria-describedby="answer-hint answer-error"' in wrong
        assert 'aria-invalid="true"' in wrong
        no_debt(wrong)
        badly_formed = assert_page(await customer.post("/portal/verify", {"answer": "12"}, page="/portal/verify"))
        assert "请输入 4 位字母或数字" in badly_formed

        right = await customer.post("/portal/verify", {"answer": " 002x "}, page="/portal/verify")
        assert (right.status_code, right.headers["location"]) == (303, "/portal/account")
        page = assert_page(await customer.get("/portal/account"))
        assert "尾号1234账户" in page and "1,234.56 CNY" in page and "12 天" in page
        assert "分期还款" in page  # the default policy's offers
        english = assert_page(await customer.get("/portal/account?lang=en"))
        assert '<html lang="en">' in english and "Account ending 1234" in english and "1,234.56 CNY" in english
        # the choice sticks to the session
        assert '<html lang="en">' in assert_page(await customer.get("/portal/account"))

    [attempt_wrong, attempt_right] = sorted(
        await rows(plans, PortalAttempt, PortalAttempt.kind == "factor",
                   PortalAttempt.session_key.in_(select(PortalSession.session_key).where(  # type: ignore[union-attr]
                       PortalSession.account_id == account))), key=lambda a: a.id)
    assert (attempt_wrong.ok, attempt_right.ok) == (False, True)
    assert "203.0.113.7" not in attempt_right.client_key


async def test_a_link_opens_once(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    link = await mint(plans, tenant_a, account)
    async with Customer(plans) as first, Customer(plans) as second:
        await first.sign_in(link)
        page = assert_page(await second.get(link), 410)
        assert "This link was already used" in page and "new one" in page
        assert_page(await second.client.post(link, data={}), 410)
        # the second browser has no session
        assert_page(await second.get("/portal/account"), 401)
        # the first one still does
        assert "Account ending 1234" in assert_page(await first.get("/portal/account"))


async def test_a_tampered_expired_or_foreign_link_shows_why_and_stores_no_session(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    link = await mint(plans, tenant_a, account)
    token = link.removeprefix("/portal/l/")
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    expired = links.mint(KEY, tenant=tenant_a.id, account_id=account, nonce=uuid.uuid4().bytes,
                         expires_at=int(datetime.now(UTC).timestamp()) - 1)
    foreign = links.mint(b"another-secret-of-another-deploy!", tenant=tenant_a.id, account_id=account,
                         nonce=uuid.uuid4().bytes, expires_at=int(datetime.now(UTC).timestamp()) + 999)
    async with Customer(plans) as customer:
        for bad, status, words in ((tampered, 400, "此链接无法使用"), (expired, 410, "此链接已过期"),
                                   (foreign, 400, "此链接无法使用"), ("%00", 400, "此链接无法使用"),
                                   ("x" * 3000, 400, "此链接无法使用")):
            assert words in assert_page(await customer.get(f"/portal/l/{bad}"), status)
            assert_page(await customer.client.post(f"/portal/l/{bad}", data={}), status)
    assert await rows(plans, PortalSession, PortalSession.account_id == account) == []


async def test_five_wrong_answers_lock_the_session_for_15_minutes(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.open(await mint(plans, tenant_a, account))
        csrf = await customer.csrf("/portal/verify")
        for left in (4, 3, 2, 1):
            page = assert_page(await customer.post("/portal/verify", {"answer": "0000", "csrf": csrf}))
            assert f"Tries left: {left}." in page
        locked = assert_page(await customer.post("/portal/verify", {"answer": "0000", "csrf": csrf}), 429)
        assert "locked until" in locked and 'name="answer"' not in locked
        # even the right answer is refused while locked
        assert_page(await customer.post("/portal/verify", {"answer": "002X", "csrf": csrf}), 429)
        assert_page(await customer.get("/portal/verify"), 429)
        assert (await customer.get("/portal/account")).headers["location"] == "/portal/verify"
        [session] = await rows(plans, PortalSession, PortalSession.account_id == account)
        assert session.locked_until is not None and session.verified_at is None
        assert timedelta(minutes=14) < session.locked_until - datetime.now(UTC) <= timedelta(minutes=15)
        # the lock is in PostgreSQL: once it has passed, the right answer works
        async with plans.runtime.sessions() as s, s.begin():
            await s.execute(update(PortalSession).where(PortalSession.session_key == session.session_key)  # type: ignore[arg-type]
                            .values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
        right = await customer.post("/portal/verify", {"answer": "002X", "csrf": csrf})
        assert right.headers["location"] == "/portal/account"


async def test_an_account_without_a_national_id_offers_nothing(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, national_id=None, locale="en")
    async with Customer(plans) as customer:
        await customer.open(await mint(plans, tenant_a, account))
        page = assert_page(await customer.get("/portal/verify"))
        assert "We have no ID number on file" in page and "<form" not in page
        no_debt(page)


async def test_a_form_without_its_csrf_token_changes_nothing(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        for path, data in (("/portal/hardship", {"detail": "x"}), ("/portal/complaint", {"detail": "x"}),
                           ("/portal/opt-out", {"channel": "sms"}), ("/portal/verify", {"answer": "002X"})):
            assert_page(await customer.post(path, data, csrf=False), 403)
            assert_page(await customer.post(path, {**data, "csrf": "forged"}), 403)
        # JSON instead of a form: no CSRF token either
        response = await customer.client.post("/portal/complaint", json={"detail": "x"})
        assert_page(response, 403)
    assert await rows(plans, PortalRequest, PortalRequest.account_id == account) == []
    assert await plans.outbox(tenant_a) == []


async def test_a_session_idle_for_30_minutes_has_ended(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        async with plans.runtime.sessions() as s, s.begin():
            await s.execute(update(PortalSession).where(PortalSession.account_id == account)  # type: ignore[arg-type]
                            .values(last_seen_at=datetime.now(UTC) - timedelta(minutes=30, seconds=1)))
        page = assert_page(await customer.get("/portal/account"), 401)
        assert "您的会话已结束" in page
        no_debt(page)


async def test_too_many_openings_from_one_address_are_refused(open_plans: OpenPlans, tenant_a: Tenant) -> None:
    plans = await open_plans(portal_openings_per_address=3)
    account = await known_account(plans, tenant_a)
    link = await mint(plans, tenant_a, account)
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    async with Customer(plans, address) as customer, Customer(plans, "192.0.2.99") as elsewhere:
        for _ in range(3):
            assert_page(await customer.get("/portal/l/nonsense"), 400)
        assert "尝试次数过多" in assert_page(await customer.get(link), 429)
        assert_page(await customer.client.post(link, data={}), 429)
        # another address is not held back, and the link was not used by the refused openings
        assert (await elsewhere.open(link)).status_code == 303


# --- what the customer does ----------------------------------------------------------------------------------------

def offers_of(page: str) -> list[tuple[str, str, bool]]:
    """(quote_id, offer_id, needs approval) of each offer on the account page."""
    found = []
    for article in page.split("<article")[1:]:
        ids = re.search(r'name="quote_id" value="([^"]+)">\s*<input type="hidden" name="offer_id" value="([^"]+)"',
                        article)
        assert ids, article
        found.append((ids.group(1), ids.group(2), 'class="tag approval"' in article))
    return found


async def test_agreeing_an_offer_agrees_the_plan_and_announces_it(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, customer_id="C-9")
    other = await known_account(plans, tenant_a, customer_id="C-10")
    async with Customer(plans) as customer, Customer(plans) as neighbour:
        await customer.sign_in(await mint(plans, tenant_a, account))
        await neighbour.sign_in(await mint(plans, tenant_a, other))
        offers = offers_of((await customer.get("/portal/account")).text)
        quote_id, offer_id = next((q, o) for q, o, approval in offers if not approval)
        # another account's customer cannot use this quote
        assert_page(await neighbour.post("/portal/offers", {"quote_id": quote_id, "offer_id": offer_id}), 409)
        for hostile in ({"quote_id": "", "offer_id": offer_id}, {"quote_id": "\x00", "offer_id": "x"}):
            assert_page(await customer.post("/portal/offers", hostile), 422)
        done = assert_page(await customer.post("/portal/offers", {"quote_id": quote_id, "offer_id": offer_id}))
        assert "已达成协议" in done and "<caption>还款计划</caption>" in done
        # the quote is used: agreeing again is refused
        assert_page(await customer.post("/portal/offers", {"quote_id": quote_id, "offer_id": offer_id}), 409)
    [plan] = await rows(plans, Plan, Plan.tenant == tenant_a.id, Plan.account_id == account)
    assert (plan.status, plan.made_by) == ("agreed", "portal:customer")
    assert await rows(plans, Plan, Plan.tenant == tenant_a.id, Plan.account_id == other) == []
    [event] = [r for r in await plans.outbox(tenant_a) if r.topic == topics.PLAN_EVENT.name]
    payload = PlanEventV1.model_validate(event.event.data)
    assert (payload.kind, payload.account_id, payload.plan_id) == ("agreed", account, plan.plan_id)


async def test_an_offer_beyond_the_customers_authority_waits_for_approval(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        page = (await customer.get("/portal/account")).text
        assert "Needs your lender&#39;s approval first" in page
        waiting = [(q, o) for q, o, approval in offers_of(page) if approval]
        assert waiting, "the default policy offers a waiver, which needs a supervisor"
        done = assert_page(await customer.post("/portal/offers", {"quote_id": waiting[0][0],
                                                                  "offer_id": waiting[0][1]}))
        assert "Waiting for approval" in done
    [plan] = await rows(plans, Plan, Plan.tenant == tenant_a.id, Plan.account_id == account)
    assert plan.status == "pending_approval"
    assert [r for r in await plans.outbox(tenant_a) if r.topic == topics.PLAN_EVENT.name] == []


async def test_a_promise_to_pay_is_recorded_within_what_is_owed(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    due = (datetime.now(UTC).date() + timedelta(days=5)).isoformat()
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        for amount, day in (("0", due), ("1234.567", due), ("99999", due), ("abc", due), ("100", "2001-01-01"),
                            ("100", "not a date"), ("100", (date.today() + timedelta(days=90)).isoformat())):
            page = assert_page(await customer.post("/portal/promise", {"amount": amount, "due_on": day}))
            assert 'class="error-summary"' in page and 'aria-invalid="true"' in page
        done = assert_page(await customer.post("/portal/promise", {"amount": "500.00", "due_on": due}))
        assert "You promised 500.00 CNY" in done
    events = [r for r in await plans.outbox(tenant_a) if r.topic == topics.PROMISE_EVENT.name]
    assert len(events) == 1 and events[0].event.data["amount_minor"] == 50_000
    assert events[0].event.data["source"] == "portal"


@pytest.mark.parametrize(("path", "data", "kind", "channel"), [
    ("/portal/hardship", {"detail": "失业了，收入中断"}, "hardship", None),
    ("/portal/hardship", {"detail": ""}, "hardship", None),
    ("/portal/complaint", {"detail": "催收电话太频繁 <script>alert(1)</script>"}, "complaint", None),
    ("/portal/opt-out", {"channel": "voice"}, "opt_out", "call"),
    ("/portal/opt-out", {"channel": "email"}, "opt_out", "email"),
])
async def test_a_request_is_stored_sealed_and_announced(plans: ServiceApi, tenant_a: Tenant, path: str,
                                                        data: dict[str, str], kind: str, channel: str | None) -> None:
    account = await known_account(plans, tenant_a, customer_id="C-42")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        done = assert_page(await customer.post(path, data))
        assert "<script>" not in done
    [stored] = await rows(plans, PortalRequest, PortalRequest.account_id == account)
    [row] = [r for r in await plans.outbox(tenant_a) if r.topic == topics.CUSTOMER_REQUEST.name]
    payload = CustomerRequestV1.model_validate(row.event.data)
    assert (payload.kind, payload.account_id, payload.customer_id, payload.request_id) == (
        kind, account, "C-42", stored.request_id)
    assert (payload.channel.value if payload.channel else None) == channel == stored.channel
    text = data.get("detail") or None
    if text is None:
        assert payload.detail is None and stored.detail is None
    else:
        assert payload.detail == stored.detail and text not in str(stored.detail) and text not in row.value.decode()
        assert CIPHER.open(str(payload.detail), context=tenant_a.id) == text


async def test_refused_requests_store_nothing(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        too_long = assert_page(await customer.post("/portal/hardship", {"detail": "x" * 2001}))
        assert "Write at most 2000 characters." in too_long and 'aria-describedby="hardship-hint hardship-error"' \
            in too_long
        assert "Write what your complaint is about." in assert_page(
            await customer.post("/portal/complaint", {"detail": "  \x00 "}))
        for channel in ("", "fax", "sms\x00"):
            assert "Choose a channel." in assert_page(await customer.post("/portal/opt-out", {"channel": channel}))
    assert await rows(plans, PortalRequest, PortalRequest.account_id == account) == []
    assert [r for r in await plans.outbox(tenant_a) if r.topic == topics.CUSTOMER_REQUEST.name] == []


async def test_static_assets_are_served_by_plans_itself(plans: ServiceApi) -> None:
    css = await plans.client.get("/portal/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "http" not in css.text  # no third-party asset, no web font
    assert (await plans.client.get("/portal/static/..%2Fsettings.py")).status_code == 404
    assert (await plans.client.get("/portal/static/nothing.js")).status_code == 404


def test_the_link_key_is_its_own_secret_or_derived_from_the_identity_key() -> None:
    derived = Settings(app_env="test").portal_key
    assert len(derived) == 32 and derived != Settings(app_env="test").identity_secret
    other = Settings(app_env="test", identity_key="c2VjcmV0LXNlY3JldC1zZWNyZXQ=").portal_key
    assert other != derived  # a production IDENTITY_KEY (the development one is refused there) gives its own
    assert Settings(app_env="test", portal_secret="p" * 40).portal_key == b"p" * 40
    with pytest.raises(ValueError, match=r"(?i)portal_secret"):
        Settings(app_env="test", portal_secret="short")  # noqa: S106 - a test value
    assert "p" * 40 not in repr(Settings(app_env="test", portal_secret="p" * 40))


async def test_a_budget_quotes_offers_with_their_affordability(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        assert "Fits your budget" not in (await customer.get("/portal/account")).text
        page = assert_page(await customer.post("/portal/account", {"income": "8,000", "expenses": "7000.50"}))
        assert "Fits your budget" in page and "May not fit your budget" in page
        refused = assert_page(await customer.post("/portal/account", {"income": "-5", "expenses": "1e9"}))
        assert 'id="income-error"' in refused and 'id="expenses-error"' in refused
        assert 'aria-describedby="budget-hint income-error"' in refused


async def test_hostile_input_on_the_pages_is_never_a_500(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    async with Customer(plans) as customer:
        await customer.sign_in(await mint(plans, tenant_a, account))
        csrf = await customer.csrf("/portal/account")
        page = assert_page(await customer.get('/portal/account?lang="><script>alert(1)</script>'))
        assert "<script>alert" not in page and '<html lang="zh-CN">' in page
        many = {f"f{i}": "x" for i in range(30)} | {"csrf": csrf, "channel": "sms"}
        assert_page(await customer.client.post("/portal/opt-out", data=many), 403)
        form = {"content-type": "application/x-www-form-urlencoded"}
        huge = await customer.client.post("/portal/complaint", headers=form,
                                          content=b"csrf=" + csrf.encode() + b"&detail=" + b"x" * 70_000)
        assert_page(huge, 403)
        odd = await customer.client.post("/portal/complaint", headers=form,
                                         content=b"csrf=" + csrf.encode() + b"&detail=%FF%FE%00ok")
        assert_page(odd)
        for amount in ("1" * 40, "NaN", "Infinity", "1e3", "0x10", "１２"):
            assert_page(await customer.post("/portal/promise", {"amount": amount, "due_on": "2030-02-30",
                                                                "csrf": csrf}))
        for path in ("/portal/verify", "/portal/account", "/portal/l/x", "/portal/static/portal.css"):
            assert (await customer.client.request("PATCH", path)).status_code == 405
    [stored] = await rows(plans, PortalRequest, PortalRequest.account_id == account)
    assert CIPHER.open(str(stored.detail), context=tenant_a.id) == "\ufffd\ufffdok"
