"""FastAPI dependencies: the only way a route reaches the service's runtime, so tests can override them.

``RuntimeDep`` the running service; ``SettingsDep`` its settings; ``SessionDep`` a read-only session
for the request; ``UowDep`` a unit of work for a request that changes state (the route commits it,
leaving without a commit rolls back); ``CipherDep`` the PII cipher; ``PrincipalDep`` who calls (tenant, name,
roles: docs/access.md); ``TenantDep`` the caller's tenant; ``require(role, ...)`` a principal holding one of
the roles, else a 403 problem.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.access.keys import Principal, Role
from shared.access.verifier import KeyStoreUnavailable
from shared.crypto import PiiCipher
from shared.http import RETRY_AFTER_S, ProblemError
from shared.logging import tenant_var
from shared.runtime import Runtime
from shared.settings import ServiceSettings
from shared.uow import UnitOfWork

__all__ = ["CipherDep", "Principal", "PrincipalDep", "Role", "RuntimeDep", "SessionDep", "SettingsDep", "TenantDep",
           "UowDep", "require"]


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


async def principal_from_api_key(runtime: RuntimeDep,
                                 bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
                                 api_key: Annotated[str | None, Depends(_API_KEY)]) -> Principal:
    """Who calls, from ``Authorization: Bearer <key>`` or ``X-API-Key``: a key issued with ``python -m
    shared.tools.keys`` (checked against ``access.api_keys``, cached ``API_KEY_CACHE_TTL_S``) or one of the
    ``API_KEYS`` setting (every role). 401 for no valid key; 503 when the key cannot be checked now. Declared
    as security schemes, so "Authorize" in /docs works."""
    key = (bearer.credentials.strip() if bearer is not None else None) or api_key or ""
    try:
        principal = await runtime.keys.verify(key)
    except KeyStoreUnavailable:
        raise ProblemError(503, "Service unavailable", "The API key cannot be checked now (the key store is "
                           "unreachable); retry shortly.", headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    if principal is None:
        raise ProblemError(401, "Unauthorized", "Send a valid API key as 'Authorization: Bearer <key>'.")
    tenant_var.set(principal.tenant)
    return principal


PrincipalDep = Annotated[Principal, Depends(principal_from_api_key)]


def tenant_from_api_key(principal: PrincipalDep) -> str:
    """The caller's tenant: the tenant of its principal (any role)."""
    return principal.tenant


TenantDep = Annotated[str, Depends(tenant_from_api_key)]


def require(*roles: Role | str) -> Any:
    """A dependency: the caller's principal if it holds one of ``roles``, else a 403 problem (before the route
    runs, so nothing is changed). ``shared/openapi.py`` documents the 403 and the roles (``required_roles``).

    ``officer: Annotated[Principal, require(Role.COMPLIANCE)]``"""
    wanted = frozenset(str(r) for r in roles)

    def principal_with_role(principal: PrincipalDep) -> Principal:
        if not principal.has_any(wanted):
            raise ProblemError(403, "Forbidden", f"This needs one of the roles {', '.join(sorted(wanted))}; the "
                               f"principal {principal.name!r} of your API key has "
                               f"{', '.join(sorted(principal.roles)) or 'none'}.")
        return principal

    setattr(principal_with_role, "required_roles", wanted)  # noqa: B010 - read by shared/openapi.py
    return Depends(principal_with_role)
