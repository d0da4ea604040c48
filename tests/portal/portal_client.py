"""A customer's browser on the portal, over httpx against the ASGI app (cookies kept, redirects not followed)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.api.support import ServiceApi, Tenant

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def mint(api: ServiceApi, tenant: Tenant, account_id: str) -> str:
    """A link's path (``/portal/l/<token>``), minted through the REST route."""
    response = await api.client.post(f"/v1/accounts/{account_id}/portal-links", headers=tenant.headers)
    assert response.status_code == 201, response.text
    url: str = response.json()["url"]
    assert url.startswith("http://testserver/portal/l/"), url
    return url.removeprefix("http://testserver")


class Customer:
    """One browser: its own cookie jar."""

    def __init__(self, api: ServiceApi, address: str = "203.0.113.7") -> None:
        transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False, client=(address, 50000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    async def __aenter__(self) -> Customer:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.aclose()

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True,
                   page: str | None = None) -> httpx.Response:
        form = dict(data or {})
        if csrf and "csrf" not in form:
            form["csrf"] = await self.csrf(page or "/portal/account")
        return await self.client.post(path, data=form)

    async def csrf(self, page: str) -> str:
        response = await self.client.get(page)
        found = CSRF.search(response.text)
        assert found, (response.status_code, response.text[:500])
        return found.group(1)

    async def open(self, link: str) -> httpx.Response:
        """Open the link and press its button; the answer is a redirect to the second factor."""
        assert (await self.client.get(link)).status_code == 200
        return await self.client.post(link, data={})

    async def sign_in(self, link: str, answer: str = "002X") -> None:
        """Open the link and give the right four characters."""
        opened = await self.open(link)
        assert (opened.status_code, opened.headers["location"]) == (303, "/portal/verify"), opened.text
        checked = await self.post("/portal/verify", {"answer": answer}, page="/portal/verify")
        assert (checked.status_code, checked.headers.get("location")) == (303, "/portal/account"), checked.text
