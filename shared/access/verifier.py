"""Checks a presented API key, with a short in-process cache so the hot path does not query per request.

A key row read from ``access.api_keys`` (or its absence) is kept ``API_KEY_CACHE_TTL_S`` seconds (default 5):
a revocation takes effect within that time in every replica, and an outage of the database does not fail
keys checked less than that long ago. Expiry (a rotated key's grace period included) is checked against the
clock on every request, cached or not. When a key must be read and the database cannot answer, the request is
a 503 problem with ``Retry-After``, never a 500 and never a 401: the key may well be valid.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.access import store
from shared.access.keys import Principal, parse, secret_matches, static_principal

log = logging.getLogger(__name__)


class KeyStoreUnavailable(Exception):
    """The key had to be read from the database, and the database did not answer."""


class KeyVerifier:
    """``await verify(presented)``: the caller's principal, or None for a key that is not valid."""

    def __init__(self, engine: AsyncEngine, *, static_keys: Mapping[str, str], ttl_s: float,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._static = dict(static_keys)
        self.ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._cache: dict[str, tuple[float, store.StoredKey | None]] = {}

    async def verify(self, presented: str) -> Principal | None:
        """The principal a key names; None for a malformed, unknown, wrong, revoked or expired key.
        Raises ``KeyStoreUnavailable`` when the key must be read and cannot be."""
        if not presented:
            return None
        parsed = parse(presented)
        if parsed is None:
            return self._static_principal(presented)
        key_id, secret = parsed
        stored = await self._lookup(key_id)
        if stored is None or not secret_matches(secret, stored.secret_sha256) or not stored.usable_at(self._now()):
            return None
        return stored.principal_of

    def _static_principal(self, presented: str) -> Principal | None:
        found = None
        for key, tenant in self._static.items():  # every key compared, in constant time
            if hmac.compare_digest(key.encode(), presented.encode()):
                found = tenant
        return static_principal(found) if found is not None else None

    async def _lookup(self, key_id: str) -> store.StoredKey | None:
        at = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and at - cached[0] < self.ttl_s:
            return cached[1]
        try:
            async with self._engine.connect() as conn:
                stored = await store.get(conn, key_id)
        except Exception as exc:
            log.warning("API key store unavailable", extra={"key_id": key_id, "error": type(exc).__name__})
            raise KeyStoreUnavailable(str(exc)) from exc
        if self.ttl_s > 0:
            if len(self._cache) >= self._max_entries:
                self._evict(at)
            self._cache[key_id] = (at, stored)
        return stored

    def _evict(self, at: float) -> None:
        self._cache = {k: v for k, v in self._cache.items() if at - v[0] < self.ttl_s}
        if len(self._cache) >= self._max_entries:  # a flood of distinct keys: start over
            self._cache.clear()

    def forget(self) -> None:
        """Drop the cache (tests; an operator's revocation is picked up after the TTL anyway)."""
        self._cache.clear()
