"""FastAPI dependencies: the only way a route reaches the service's runtime, so tests can override them.

``RuntimeDep`` the running service; ``SettingsDep`` its settings; ``SessionDep`` a read-only session
for the request; ``UowDep`` a unit of work for a request that changes state (the route commits it,
leaving without a commit rolls back); ``CipherDep`` the PII cipher; ``TenantDep`` the caller's tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.crypto import PiiCipher
from shared.http import ProblemError
from shared.logging import tenant_var
from shared.runtime import Runtime
from shared.settings import ServiceSettings
from shared.uow import UnitOfWork

__all__ = ["CipherDep", "RuntimeDep", "SessionDep", "SettingsDep", "TenantDep", "UowDep"]


def get_runtime(request: Request) -> Runtime[Any]:
    """The runtime the lifespan started (``app.state.runtime``)."""
    return request.app.state.runtime  # type: ignore[no-any-return]


RuntimeDep = Annotated[Runtime[Any], Depends(get_runtime)]


def get_settings(request: Request) -> ServiceSettings:
    """The settings the app was built with (available before the lifespan starts)."""
    return request.app.state.settings  # type: ignore[no-any-return]


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A session for reads; closed when the request ends."""
    async with runtime.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    """One unit of work per request: the route commits it; otherwise it rolls back."""
    async with runtime.units() as uow:
        yield uow


# scope="function": the unit of work ends before the response is sent, so a failure to commit or roll
# back is the response, never a 2xx already on its way.
UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]


def get_cipher(runtime: RuntimeDep) -> PiiCipher:
    """The PII cipher (seal and open contact data, bound to the tenant)."""
    return runtime.cipher


CipherDep = Annotated[PiiCipher, Depends(get_cipher)]


_BEARER = HTTPBearer(auto_error=False, scheme_name="apiKey", description="Your API key, as a bearer token")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="xApiKey",
                        description="Your API key (instead of the Authorization header)")


def tenant_from_api_key(settings: SettingsDep,
                        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
                        api_key: Annotated[str | None, Depends(_API_KEY)]) -> str:
    """The caller's tenant, from ``Authorization: Bearer <key>`` or ``X-API-Key``; 401 otherwise.
    Declared as security schemes, so "Authorize" in /docs works."""
    key = (bearer.credentials.strip() if bearer is not None else None) or api_key or ""
    tenant = settings.api_keys.get(key) if key else None
    if tenant is None:
        raise ProblemError(401, "Unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
    tenant_var.set(tenant)
    return str(tenant)


TenantDep = Annotated[str, Depends(tenant_from_api_key)]
