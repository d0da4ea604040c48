"""The e-mail unsubscribe link through the channels app on the real database (tests/api/support.py builds the
app with its real dependencies): GET /v1/unsubscribe/{token} shows a page and changes nothing; POST (the page's
button, or a mail client's RFC 8058 one-click POST) announces one opt-out for the token's tenant, customer and
address (channels.opt-out.v1, channel email, source email-link) however often it is used; a malformed,
tampered or expired token gets a 400 / 410 page and nothing is emitted."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from services.channels.db.models import InboundMessage
from services.channels.domain.unsubscribe import Unsubscribe, issue
from shared.contracts import topics
from shared.contracts.events import Channel, ContactOptOutV1
from tests.api.support import ServiceApi, Tenant, open_service

pytestmark = pytest.mark.integration
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def tenants() -> tuple[Tenant, Tenant]:
    return Tenant.new(), Tenant.new()


@pytest.fixture
async def channels(infra: Any, tenants: tuple[Tenant, Tenant]) -> AsyncIterator[ServiceApi]:
    async with open_service("channels", infra.database_url, infra.kafka, list(tenants)) as api:
        yield api


def link(api: ServiceApi, tenant: Tenant, address: str, *, customer_id: str = "C-7", locale: str = "zh-CN",
         expires_in_s: float = 86_400, contact_id: str | None = None) -> tuple[str, Unsubscribe]:
    """The path of an unsubscribe link as the dispatcher makes it (the app's active key), and its claims."""
    s = api.runtime.settings
    claims = Unsubscribe(tenant=tenant.id, customer_id=customer_id, contact_id=contact_id or str(uuid.uuid4()),
                         destination_key=api.runtime.identity.contact_point_key(channel="email", destination=address),
                         locale=locale, expires_at=int(time.time() + expires_in_s))
    key_id = s.unsubscribe_active_key
    return f"/v1/unsubscribe/{issue(claims, key_id=key_id, key=s.unsubscribe_signing_keys[key_id])}", claims


async def opt_outs(api: ServiceApi, tenant: Tenant) -> list[ContactOptOutV1]:
    return [ContactOptOutV1.model_validate(o.event.data) for o in await api.outbox(tenant)
            if o.topic == topics.OPT_OUT.name]


def is_page(response: Any, status: int, *, lang: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    assert f'<html lang="{lang}">' in response.text
    assert response.headers["cache-control"] == "no-store"
    return str(response.text)


async def test_get_shows_a_confirmation_page_and_changes_nothing(channels: ServiceApi,
                                                                  tenants: tuple[Tenant, Tenant]) -> None:
    tenant, _ = tenants
    path, claims = link(channels, tenant, "kunde@example.com")
    for _ in range(3):  # a mail scanner, a link preview, the customer
        body = is_page(await channels.client.get(path), 200, lang="zh-CN")
        assert '<form method="post"><button type="submit">确认退订</button></form>' in body
    en_path, _ = link(channels, tenant, "kunde@example.com", locale="en")
    assert "<button type=\"submit\">Unsubscribe</button>" in is_page(await channels.client.get(en_path), 200, lang="en")
    assert await opt_outs(channels, tenant) == []
    assert await channels.all(select(InboundMessage).where(InboundMessage.message_id == claims.message_id)) == []


async def test_the_form_post_opts_out_once_for_the_tokens_tenant_customer_and_address(
        channels: ServiceApi, tenants: tuple[Tenant, Tenant]) -> None:
    tenant, _ = tenants
    address = f"kunde-{uuid.uuid4().hex[:6]}@example.com"
    path, claims = link(channels, tenant, address, customer_id="C-100042")
    body = is_page(await channels.client.post(path, headers=FORM, content=b""), 200, lang="zh-CN")
    assert "您已成功退订" in body and "<form" not in body

    [opt_out] = await opt_outs(channels, tenant)
    assert (opt_out.tenant, opt_out.customer_id, opt_out.channel) == (tenant.id, "C-100042", Channel.EMAIL)
    assert (opt_out.source, opt_out.keyword, opt_out.message_id) == ("email-link", "UNSUBSCRIBE", claims.message_id)
    assert opt_out.destination_key == channels.runtime.identity.contact_point_key(channel="email",
                                                                                  destination=address.upper())
    [row] = await channels.outbox(tenant)
    assert row.key == f"{tenant.id}:C-100042".encode() and row.event.subject == claims.message_id
    assert address.encode() not in row.value and address.encode() not in path.encode()
    [stored] = await channels.all(select(InboundMessage).where(InboundMessage.message_id == claims.message_id))
    assert (stored.provider_account, stored.keyword, stored.tenants) == ("email-link", "UNSUBSCRIBE", 1)

    # used again (a double click, the one-click POST after the page's): the same page, nothing new
    is_page(await channels.client.post(path, headers=FORM, content=b""), 200, lang="zh-CN")
    is_page(await channels.client.post(path, headers=FORM, content=b"List-Unsubscribe=One-Click"), 200, lang="zh-CN")
    assert len(await opt_outs(channels, tenant)) == 1


async def test_a_one_click_post_from_a_mail_client_opts_out(channels: ServiceApi,
                                                             tenants: tuple[Tenant, Tenant]) -> None:
    tenant, _ = tenants
    path, claims = link(channels, tenant, "one-click@example.com", locale="en")
    response = await channels.client.post(path, content=b"List-Unsubscribe=One-Click", headers=FORM)
    assert "You are unsubscribed" in is_page(response, 200, lang="en")
    [opt_out] = await opt_outs(channels, tenant)
    assert (opt_out.channel, opt_out.message_id, opt_out.source) == (Channel.EMAIL, claims.message_id, "email-link")
    multipart = await channels.client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert multipart.status_code == 200 and len(await opt_outs(channels, tenant)) == 1


def _tampered(path: str, old: bytes, new: bytes) -> str:
    token = path.rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).replace(old, new)
    return "/v1/unsubscribe/" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_bad_or_expired_links_get_a_page_and_emit_nothing(channels: ServiceApi,
                                                                tenants: tuple[Tenant, Tenant]) -> None:
    tenant, _ = tenants
    good, _ = link(channels, tenant, "kunde@example.com")
    middle = len(good) - 40  # a character of the token (the last may hold only padding bits)
    flipped = good[:middle] + ("A" if good[middle] != "A" else "B") + good[middle + 1:]
    bad = [good[:-4], good + "AAAA", flipped, "/v1/unsubscribe/x",
           "/v1/unsubscribe/" + "A" * 3000, "/v1/unsubscribe/%E4%BD%A0%E5%A5%BD", "/v1/unsubscribe/a.b"]
    for path in bad:
        for method in ("GET", "POST"):
            response = await channels.client.request(method, path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
            assert "链接无效" in is_page(response, 400, lang="zh-CN"), path
    en = await channels.client.post(bad[0], headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "This link does not work" in is_page(en, 400, lang="en")

    expired, _ = link(channels, tenant, "kunde@example.com", expires_in_s=-1, locale="en")
    for method in ("GET", "POST"):
        body = is_page(await channels.client.request(method, expired), 410, lang="en")
        assert "expired" in body and "60 days" in body
    assert await opt_outs(channels, tenant) == []


async def test_a_token_opts_out_for_its_own_tenant_only(channels: ServiceApi,
                                                        tenants: tuple[Tenant, Tenant]) -> None:
    """Both tenants mailed the same address; A's link stops A's e-mails only. A's token edited to name B (same
    length, so only the signature gives it away) is refused: no tenant can be named but the one that signed."""
    tenant_a, tenant_b = tenants
    address = f"shared-{uuid.uuid4().hex[:6]}@example.com"
    path_a, _ = link(channels, tenant_a, address, customer_id="C-1")
    forged = _tampered(path_a, tenant_a.id.encode(), tenant_b.id.encode())
    assert forged != path_a
    for method in ("GET", "POST"):
        is_page(await channels.client.request(method, forged), 400, lang="en")
    assert await opt_outs(channels, tenant_b) == [] and await opt_outs(channels, tenant_a) == []

    is_page(await channels.client.post(path_a), 200, lang="zh-CN")
    [opt_out] = await opt_outs(channels, tenant_a)
    assert opt_out.tenant == tenant_a.id
    assert await opt_outs(channels, tenant_b) == []  # B still mails that address until B's own link is used

    path_b, _ = link(channels, tenant_b, address, customer_id="C-1")
    is_page(await channels.client.post(path_b), 200, lang="zh-CN")
    assert len(await opt_outs(channels, tenant_b)) == 1 and len(await opt_outs(channels, tenant_a)) == 1


async def test_a_link_signed_with_another_key_is_refused_and_a_retired_key_still_works(infra: Any) -> None:
    tenant = Tenant.new()
    old_key = base64.b64encode(b"o" * 32).decode()
    new_key = base64.b64encode(b"n" * 32).decode()
    async with open_service("channels", infra.database_url, infra.kafka, [tenant],
                            unsubscribe_keys={"old": old_key}) as before:
        old_path, _ = link(before, tenant, "rotate@example.com")
    async with open_service("channels", infra.database_url, infra.kafka, [tenant],
                            unsubscribe_keys={"new": new_key}) as elsewhere:
        is_page(await elsewhere.client.post(old_path), 400, lang="en")  # the old key is not configured here
        assert await opt_outs(elsewhere, tenant) == []
    async with open_service("channels", infra.database_url, infra.kafka, [tenant],
                            unsubscribe_keys={"old": old_key, "new": new_key},
                            unsubscribe_active_key="new") as rotated:
        is_page(await rotated.client.post(old_path), 200, lang="zh-CN")
        assert len(await opt_outs(rotated, tenant)) == 1
