"""The second factor's daily cap and a session's longest life, through plans' ASGI app on the real database (the
clock moved by moving the stored instants back)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.api.support import ServiceApi, Tenant
from tests.portal.conftest import known_account
from tests.portal.portal_client import Customer, mint
from tests.portal.test_portal_attacks import assert_portal_page

pytestmark = pytest.mark.integration


async def _shift(plans: ServiceApi, statement: str, **params: object) -> None:
    async with plans.runtime.sessions() as session:
        await session.execute(text(statement), params)
        await session.commit()


async def test_ten_wrong_answers_in_a_day_lock_the_account_until_a_day_after_the_first(
        plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    unlock = "UPDATE portal_sessions SET locked_until = now() - interval '1 second' WHERE account_id = :a"
    async with Customer(plans) as customer:
        await customer.open(await mint(plans, tenant_a, account))
        token = await customer.csrf("/portal/verify")  # the session's: the lock pages carry no form
        for _ in range(2):  # two rounds of five: each ends in the 15-minute lock, which we let pass
            for _ in range(4):
                assert_portal_page(await customer.post("/portal/verify", {"answer": "0000", "csrf": token}),
                                   200)
            assert_portal_page(await customer.post("/portal/verify", {"answer": "0000", "csrf": token}), 429)
            await _shift(plans, unlock, a=account)
        # the 15-minute lock is over, but ten wrong answers within a day keep every link shut, the right answer too
        assert_portal_page(await customer.get("/portal/verify"), 429)
        assert_portal_page(await customer.post("/portal/verify", {"answer": "002X", "csrf": token}), 429)
        # a day after the first of them, the account may answer again
        await _shift(plans, "UPDATE portal_attempts SET at = at - interval '25 hours' WHERE session_key IN "
                            "(SELECT session_key FROM portal_sessions WHERE account_id = :a)", a=account)
        right = await customer.post("/portal/verify", {"answer": "002X", "csrf": token})
        assert right.headers["location"] == "/portal/account"


async def test_a_session_ends_two_hours_after_it_began_however_active(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    async with Customer(plans) as customer:
        await customer.open(await mint(plans, tenant_a, account))
        right = await customer.post("/portal/verify", {"answer": "002X"}, page="/portal/verify")
        assert right.headers["location"] == "/portal/account"
        assert (await customer.get("/portal/account")).status_code == 200
        await _shift(plans, "UPDATE portal_sessions SET created_at = created_at - interval '2 hours', "
                            "last_seen_at = now() WHERE account_id = :a", a=account)
        ended = await customer.get("/portal/account")
        assert ended.status_code != 200 and "1,234" not in ended.text
