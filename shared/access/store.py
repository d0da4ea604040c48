"""The ``access`` schema: API keys (hashed), read by every service and written by ``python -m
shared.tools.keys``. One database, one schema per owner: the keys are shared plumbing, so they live in a
schema of their own with their own migrations (``shared/access/migrations``), applied by
``python -m shared.tools.migrate`` before the services' schemas."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access.keys import NewKey, Principal, mint

SCHEMA = "access"
metadata = sa.MetaData(schema=SCHEMA)

api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("tenant", sa.String, nullable=False),
    sa.Column("principal", sa.String, nullable=False),
    sa.Column("roles", ARRAY(sa.String), nullable=False),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_by", sa.String, nullable=True),
    sa.Column("revoke_reason", sa.String, nullable=True),
    sa.Column("replaced_by", sa.String(32), nullable=True),
    sa.Index("ix_api_keys_principal", "tenant", "principal"),
)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One row of ``access.api_keys`` (no secret: only its hash)."""

    key_id: str
    tenant: str
    principal: str
    roles: frozenset[str]
    secret_sha256: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    replaced_by: str | None

    def usable_at(self, now: datetime) -> bool:
        """Not revoked and not expired at ``now`` (a rotated key expires at the end of its grace period)."""
        return (self.revoked_at is None or self.revoked_at > now) and (self.expires_at is None or self.expires_at > now)

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "rotating" if self.replaced_by is not None else "active"

    @property
    def principal_of(self) -> Principal:
        return Principal(tenant=self.tenant, name=self.principal, roles=self.roles, key_id=self.key_id)


def _stored(row: sa.Row[tuple[object, ...]]) -> StoredKey:
    values = dict(row._mapping)
    values["roles"] = frozenset(values["roles"] or ())
    return StoredKey(**values)


class UnknownKey(LookupError):
    """No key with that id (in that tenant)."""


async def get(conn: AsyncConnection, key_id: str) -> StoredKey | None:
    """The key ``key_id``, or None."""
    row = (await conn.execute(sa.select(api_keys).where(api_keys.c.key_id == key_id))).first()
    return _stored(row) if row is not None else None


async def issue(conn: AsyncConnection, *, tenant: str, principal: str, roles: frozenset[str], created_by: str,
                now: datetime, expires_at: datetime | None = None) -> tuple[NewKey, StoredKey]:
    """Store a new key (its hash only) and return it; the caller shows ``NewKey.text`` once."""
    key = mint()
    values = {"key_id": key.key_id, "tenant": tenant, "principal": principal, "roles": sorted(roles),
              "secret_sha256": key.secret_hash, "created_at": now, "created_by": created_by,
              "expires_at": expires_at, "revoked_at": None, "revoked_by": None, "revoke_reason": None,
              "replaced_by": None}
    await conn.execute(api_keys.insert().values(values))
    return key, StoredKey(**(values | {"roles": frozenset(roles)}))  # type: ignore[arg-type]


async def rotate(conn: AsyncConnection, *, key_id: str, grace: timedelta, created_by: str, now: datetime,
                 expires_at: datetime | None = None, tenant: str | None = None) -> tuple[NewKey, StoredKey]:
    """A new key for the same principal and roles; the old one stays valid for ``grace`` (then expires). The new
    key keeps the old one's expiry unless ``expires_at`` is given. A revoked or expired key cannot be rotated."""
    query = sa.select(api_keys).where(api_keys.c.key_id == key_id).with_for_update()
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    row = (await conn.execute(query)).first()
    if row is None:
        raise UnknownKey(key_id)
    old = _stored(row)
    if not old.usable_at(now):
        raise ValueError(f"key {key_id} is {old.status(now)}: issue a new one instead")
    if old.replaced_by is not None:
        raise ValueError(f"key {key_id} was already rotated (to {old.replaced_by}): rotate that one")
    new, stored = await issue(conn, tenant=old.tenant, principal=old.principal, roles=old.roles,
                              created_by=created_by, now=now, expires_at=expires_at or old.expires_at)
    ends = now + grace
    await conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(
        replaced_by=new.key_id, expires_at=min(ends, old.expires_at) if old.expires_at is not None else ends))
    return new, stored


async def revoke(conn: AsyncConnection, *, key_id: str, revoked_by: str, reason: str, now: datetime,
                 tenant: str | None = None) -> StoredKey:
    """Revoke a key now (services stop accepting it within ``API_KEY_CACHE_TTL_S``). Revoking twice keeps the
    first revocation."""
    query = (api_keys.update().where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
             .values(revoked_at=now, revoked_by=revoked_by, revoke_reason=reason))
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    await conn.execute(query)
    stored = await get(conn, key_id)
    if stored is None or (tenant is not None and stored.tenant != tenant):
        raise UnknownKey(key_id)
    return stored


async def listing(conn: AsyncConnection, *, tenant: str | None = None,
                  principal: str | None = None) -> Sequence[StoredKey]:
    """Keys, newest first, optionally of one tenant and principal."""
    query = sa.select(api_keys).order_by(api_keys.c.tenant, api_keys.c.principal, api_keys.c.created_at.desc())
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    if principal is not None:
        query = query.where(api_keys.c.principal == principal)
    return [_stored(r) for r in (await conn.execute(query)).all()]
