"""Fixtures of the route tests: three fresh tenants per test and each service's app on the real database.

See tests/api/support.py for how an app is built without its lifespan.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.api.support import OpenService, ServiceApi, Tenant, open_service


@pytest.fixture
def tenant_a() -> Tenant:
    return Tenant.new()


@pytest.fixture
def tenant_b() -> Tenant:
    return Tenant.new()


@pytest.fixture
def tenant_c() -> Tenant:
    return Tenant.new()



@pytest.fixture
async def open_api(infra: Any, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant) -> AsyncIterator[OpenService]:
    """``await open_api("plans")``: the service's app, knowing the keys of tenants A, B and C."""
    async with AsyncExitStack() as stack:

        async def _open(name: str, **overrides: Any) -> ServiceApi:
            return await stack.enter_async_context(open_service(
                name, infra.database_url, infra.kafka, [tenant_a, tenant_b, tenant_c], **overrides))

        yield _open


@pytest.fixture
async def segmentation(open_api: OpenService) -> ServiceApi:
    return await open_api("segmentation")


@pytest.fixture
async def scheduler(open_api: OpenService) -> ServiceApi:
    return await open_api("scheduler")


@pytest.fixture
async def compliance(open_api: OpenService) -> ServiceApi:
    return await open_api("compliance")


@pytest.fixture
async def channels(open_api: OpenService) -> ServiceApi:
    return await open_api("channels")


@pytest.fixture
async def plans(open_api: OpenService) -> ServiceApi:
    return await open_api("plans")
