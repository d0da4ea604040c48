"""Links plans never stored: channels mints the customer's portal link at dispatch (``portal_url`` in its SMS and
e-mails) with the shared key; plans opens such a link once, storing its nonce as used when it is first used, in
one statement two concurrent openings cannot both win; a link for an account plans does not know is invalid."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from services.channels import service as channels
from services.channels.settings import Settings as ChannelsSettings
from services.channels.workers.dispatcher import portal_links
from services.plans.db import portal as repo
from services.plans.db.portal import PortalLink, PortalSession
from shared import portal_links as links
from tests.api.support import CIPHER, ServiceApi, Tenant
from tests.portal.conftest import known_account
from tests.portal.portal_client import Customer, mint

pytestmark = pytest.mark.integration
LINK = re.compile(r"http://testserver(/portal/l/[A-Za-z0-9_-]+)")


def channels_link(tenant: str, account_id: str) -> str:
    """The path of the portal link in the SMS channels renders for this account (its settings, its key)."""
    portal = portal_links(ChannelsSettings(app_env="test", portal_base_url="http://testserver"))
    claimed = SimpleNamespace(
        contact_id=str(uuid.uuid4()), tenant=tenant, customer_id="C-1", account_id=account_id, account_ref="1234",
        channel="sms", template_id="reminder.sms", locale="zh-CN", days_past_due=12, overdue_minor=123_456,
        currency="CNY", due_date=date(2026, 3, 1), destination_sealed=CIPHER.seal("+8613812345678", context=tenant))
    [sms], unusable = channels.prepare_messages([claimed], CIPHER, portal=portal)
    assert unusable == []
    [path] = LINK.findall(sms.body)
    return str(path)


def direct_link(plans: ServiceApi, tenant: str, account_id: str, *, nonce: bytes | None = None) -> str:
    token = links.mint(plans.runtime.settings.portal_key, tenant=tenant, account_id=account_id,
                       nonce=nonce or uuid.uuid4().bytes, expires_at=int(time.time()) + 3600)
    return f"/portal/l/{token}"


def _claims(path: str) -> links.PortalLink:
    raw = path.removeprefix("/portal/l/")
    return links.verify(raw, ChannelsSettings(app_env="test").portal_key, now=time.time())


async def stored(plans: ServiceApi, nonce: str) -> list[PortalLink]:
    return await plans.all(select(PortalLink).where(PortalLink.nonce == nonce))  # type: ignore[arg-type]


async def test_a_link_from_a_channels_message_opens_the_portal_once(plans: ServiceApi, tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    path = channels_link(tenant_a.id, account)
    nonce = _claims(path).nonce
    assert await stored(plans, nonce) == []  # plans never saw it minted
    async with Customer(plans) as customer, Customer(plans, address="203.0.113.8") as other:
        assert (await customer.get(path)).status_code == 200  # a GET (a link preview) does not use it
        assert await stored(plans, nonce) == []
        await customer.sign_in(path)
        assert "Account ending 1234" in (await customer.get("/portal/account")).text
        [row] = await stored(plans, nonce)
        assert (row.tenant, row.account_id, row.created_by) == (tenant_a.id, account, repo.MINTED_ELSEWHERE)
        assert row.used_at is not None
        assert row.expires_at == datetime.fromtimestamp(_claims(path).expires_at, UTC)
        # a second opening, in another browser: refused, no session
        assert "This link was already used" in (await other.get(path)).text
        refused = await other.client.post(path, data={})
        assert refused.status_code == 410
        assert (await other.get("/portal/account")).status_code == 401
    assert len(await plans.all(select(PortalSession).where(PortalSession.nonce == nonce))) == 1  # type: ignore[arg-type]


async def test_a_genuine_link_for_an_account_plans_does_not_know_is_invalid_and_stores_nothing(
        plans: ServiceApi, tenant_a: Tenant, tenant_b: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    for tenant, account_id in ((tenant_a.id, "ACC-NEVER-HEARD-OF"), (tenant_b.id, account)):
        path = channels_link(tenant, account_id)
        async with Customer(plans) as customer:
            assert "此链接无法使用" in (await customer.get(path)).text
            assert (await customer.client.post(path, data={})).status_code == 400
        assert await stored(plans, _claims(path).nonce) == []


async def test_use_link_stores_an_unknown_nonce_used_and_link_used_follows(plans: ServiceApi,
                                                                           tenant_a: Tenant) -> None:
    nonce, now = uuid.uuid4().hex, datetime.now(UTC)
    expires = now + timedelta(hours=1)
    async with plans.runtime.sessions() as session:
        assert not await repo.link_used(session, nonce=nonce)
        assert await repo.use_link(session, nonce=nonce, tenant=tenant_a.id, account_id="ACC-1", expires_at=expires,
                                   now=now)
        assert await repo.link_used(session, nonce=nonce)
        assert not await repo.use_link(session, nonce=nonce, tenant=tenant_a.id, account_id="ACC-1",
                                       expires_at=expires, now=now)
        # a nonce stored for another account is not this link's (never: the nonce is signed with its account)
        other = uuid.uuid4().hex
        await repo.add_link(session, PortalLink(nonce=other, tenant=tenant_a.id, account_id="ACC-2",
                                                created_by="test", expires_at=expires))
        assert not await repo.use_link(session, nonce=other, tenant=tenant_a.id, account_id="ACC-1",
                                       expires_at=expires, now=now)
        assert not await repo.link_used(session, nonce=other)
        assert await repo.use_link(session, nonce=other, tenant=tenant_a.id, account_id="ACC-2", expires_at=expires,
                                   now=now)
        await session.rollback()


@pytest.mark.parametrize("minted_by", ["channels", "plans"])
async def test_two_concurrent_uses_of_one_link_cannot_both_win(plans: ServiceApi, tenant_a: Tenant,
                                                               minted_by: str) -> None:
    """Each in its own transaction, racing on the nonce: the unique index serialises them; exactly one wins,
    whether the link's row is inserted by the race (channels' link) or exists (plans' link)."""
    expires = datetime.now(UTC) + timedelta(hours=1)
    for _ in range(10):
        nonce = uuid.uuid4().hex
        if minted_by == "plans":
            async with plans.runtime.sessions() as session:
                await repo.add_link(session, PortalLink(nonce=nonce, tenant=tenant_a.id, account_id="ACC-1",
                                                        created_by="test", expires_at=expires))
                await session.commit()

        async def use(nonce: str = nonce) -> bool:
            async with plans.runtime.sessions() as session:
                won = await repo.use_link(session, nonce=nonce, tenant=tenant_a.id, account_id="ACC-1",
                                          expires_at=expires, now=datetime.now(UTC))
                await asyncio.sleep(0.01)  # hold the row while the other waits on it
                await session.commit()
                return won

        assert sorted(await asyncio.gather(use(), use(), use())) == [False, False, True]
        [row] = await stored(plans, nonce)
        assert row.used_at is not None


async def test_two_browsers_opening_one_channels_link_at_once_get_one_session(plans: ServiceApi,
                                                                              tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a, locale="en")
    path = channels_link(tenant_a.id, account)

    async def press(address: str) -> int:
        async with Customer(plans, address=address) as customer:
            return int((await customer.client.post(path, data={})).status_code)

    assert sorted(await asyncio.gather(press("203.0.113.20"), press("203.0.113.21"))) == [303, 410]
    nonce = _claims(path).nonce
    assert len(await plans.all(select(PortalSession).where(PortalSession.nonce == nonce))) == 1  # type: ignore[arg-type]


async def test_plans_and_channels_links_are_the_same_links(plans: ServiceApi, tenant_a: Tenant) -> None:
    """A link minted over REST verifies with channels' key; one minted with plans' key and no stored nonce opens."""
    account = await known_account(plans, tenant_a)
    rest = await mint(plans, tenant_a, account)
    assert (_claims(rest).tenant, _claims(rest).account_id) == (tenant_a.id, account)
    direct = direct_link(plans, tenant_a.id, account)
    async with Customer(plans) as customer:
        opened = await customer.open(direct)
        assert (opened.status_code, opened.headers["location"]) == (303, "/portal/verify")


async def test_a_genuine_link_signed_to_outlive_the_calendar_opens_without_a_500(plans: ServiceApi,
                                                                                tenant_a: Tenant) -> None:
    account = await known_account(plans, tenant_a)
    token = links.mint(plans.runtime.settings.portal_key, tenant=tenant_a.id, account_id=account,
                       nonce=uuid.uuid4().bytes, expires_at=2**64 - 1)
    async with Customer(plans) as customer:
        opened = await customer.open(f"/portal/l/{token}")
        assert (opened.status_code, opened.headers["location"]) == (303, "/portal/verify")
