"""Fixtures of the portal's tests: fresh tenants and plans' app on the real database (tests/api/support.py), and a
portal account known to plans with a sealed national ID (tests/plans/support.py)."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.api.support import ServiceApi, Tenant, open_service, unique
from tests.plans.support import consume, overdue_notice
from tests.portal.browser_support import CHROMIUM, LAUNCH_ARGS, Tab

NATIONAL_ID = "11010519491231002X"
OVERDUE_MINOR = 123_456  # 1,234.56 CNY

OpenPlans = Callable[..., Awaitable[ServiceApi]]


@pytest.fixture
def tenant_a() -> Tenant:
    return Tenant.new()


@pytest.fixture
def tenant_b() -> Tenant:
    return Tenant.new()


@pytest.fixture
async def open_plans(infra: Any, tenant_a: Tenant, tenant_b: Tenant) -> AsyncIterator[OpenPlans]:
    """``await open_plans(**settings_overrides)``: plans' app knowing the keys of tenants A and B."""
    async with AsyncExitStack() as stack:

        async def _open(**overrides: Any) -> ServiceApi:
            return await stack.enter_async_context(open_service(
                "plans", infra.database_url, infra.kafka, [tenant_a, tenant_b], **overrides))

        yield _open


@pytest.fixture
async def plans(open_plans: OpenPlans) -> ServiceApi:
    return await open_plans(portal_openings_per_address=100_000)


async def known_account(api: ServiceApi, tenant: Tenant | str, *, national_id: str | None = NATIONAL_ID,
                        locale: str = "zh-CN", overdue_minor: int = OVERDUE_MINOR, customer_id: str = "C-1",
                        account_ref: str | None = "1234") -> str:
    """An account whose overdue notice reached plans (with a sealed national ID unless None); its id."""
    account_id = unique("ACC")
    tenant_id = tenant.id if isinstance(tenant, Tenant) else tenant
    await consume(api.runtime.sessions, overdue_notice(
        tenant_id, account_id, overdue_minor=overdue_minor, customer_id=customer_id, national_id=national_id,
        locale=locale, account_ref=account_ref, days_past_due=12))
    return account_id


# --- the browser (tests/portal/browser_support.py) ---

@pytest.fixture(scope="module")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        if os.environ.get("REQUIRE_CHROMIUM") or os.environ.get("CI"):
            pytest.fail("chromium is missing: `make chromium` installs Debian's package")
        pytest.skip("chromium is not installed (`make chromium`); `make test` requires it")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


@pytest.fixture
async def tabs(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """``await tabs(name, **context_options)``: a new tab in its own browser context (its own cookies); each one's
    errors are checked when the test ends."""
    opened: list[tuple[Any, Tab]] = []
    expectations: dict[str, tuple[re.Pattern[str], ...]] = {}

    async def _open(name: str, *, expect: tuple[re.Pattern[str], ...] = (), **options: Any) -> Tab:
        context = await browser.new_context(**options)
        page = await context.new_page()
        tab = Tab(page, f"{request.node.name}-{name}")
        page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
        opened.append((context, tab))
        expectations[tab.name] = expect
        return tab

    yield _open
    for context, _ in opened:
        await context.close()
    for _, tab in opened:
        tab.assert_clean(*expectations[tab.name])


