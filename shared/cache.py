"""A per-tenant read-through cache for what a batch needs about its tenants (a policy, branding and templates):
one load for all the tenants of a batch that are due, each value held ``ttl`` seconds. A change made through
this process applies at once (``forget``), one made through another replica within ``ttl`` seconds."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")
Loader = Callable[[AsyncSession, list[str]], Awaitable[dict[str, T]]]


class TenantCache(Generic[T]):
    """``load(session, tenants)`` returns a value for every tenant it is given (the default where none is
    stored)."""

    def __init__(self, load: Loader[T], ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._load = load
        self._held: dict[str, tuple[float, T]] = {}

    async def current(self, session: AsyncSession, tenants: Collection[str]) -> dict[str, T]:
        now = time.monotonic()
        due = sorted(t for t in set(tenants) if t not in self._held or now - self._held[t][0] >= self.ttl)
        if due:
            loaded = await self._load(session, due)
            for t in due:
                self._held[t] = (now, loaded[t])
        return {t: self._held[t][1] for t in tenants}

    def forget(self, tenant: str) -> None:
        self._held.pop(tenant, None)
