"""Async database plumbing: one engine per service, pointed at the service's own schema."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ARRAY, Table, Text, any_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel

from shared.settings import ServiceSettings


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// URLs."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def create_engine(settings: ServiceSettings) -> AsyncEngine:
    """An engine whose connections use the service's schema as search_path."""
    return create_async_engine(
        asyncpg_url(settings.database_url),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # No pre-ping: it costs a round trip per transaction; a dead connection surfaces as a transient
        # error that the consumer runner retries.
        pool_recycle=1800,
        connect_args={"server_settings": {"search_path": settings.schema_name, "application_name":
                                          settings.service_name}},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions never expire on commit: handlers read what they wrote after the transaction."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a SQLModel table model, for executemany statements without ORM overhead."""
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def any_of(column: Any, values: Iterable[str]) -> Any:
    """``column = ANY(:array)``: one cached statement whatever the number of values (an expanding
    ``IN (...)`` is a new statement, planned again, for every batch size)."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(Text)))


def keys_table(**columns: Sequence[str]) -> Any:
    """A derived table of key tuples from parallel arrays (``unnest(:a), unnest(:b)``), to join on:
    PostgreSQL plans a row-value ``IN`` over many tuples as a long ``OR``, planned again per batch size."""
    return select(*(func.unnest(bindparam(None, list(values), type_=ARRAY(Text))).label(name)
                    for name, values in columns.items())).subquery()


async def lock_account_keys(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> None:
    """Serialise this transaction with any other of this schema touching these (tenant, account_id), stored
    or not: transaction-level advisory locks, taken in one fixed order (no deadlock between batches). A
    payment and the account's first overdue notice handled at the same time by two replicas must each see
    the other; a row lock cannot do that for a row that does not exist yet."""
    keys = list(keys)
    if not keys:
        return
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    ordered = (select(func.hashtext(func.concat(wanted.c.tenant, ":", wanted.c.account_id)).label("k"))
               .distinct().order_by("k").subquery())
    space = func.hashtext(func.concat(func.current_schema(), ":accounts"))
    await session.execute(select(func.pg_advisory_xact_lock(space, ordered.c.k)))


async def lock_key(session: AsyncSession, *parts: str) -> None:
    """Serialise this transaction with any other taking the same key in this schema until it ends (a transaction
    advisory lock: for what has no row to lock yet, such as the next version of a tenant's document)."""
    await session.execute(select(func.pg_advisory_xact_lock(
        func.hashtext(func.concat(func.current_schema(), *(f":{p}" for p in parts))))))


class Versions:
    """A table of documents a tenant publishes, versioned and immutable (policies, strategies, assignments):
    ``version`` numbered per tenant and per the ``keys`` columns after it (a strategy's ``name``)."""

    def __init__(self, table: Table, what: str, *keys: str) -> None:
        self.table, self.what, self.keys = table, what, keys

    def _where(self, tenant: str, key: Sequence[str]) -> list[Any]:
        return [self.table.c.tenant == tenant, *(self.table.c[k] == v for k, v in zip(self.keys, key, strict=True))]

    async def latest(self, session: AsyncSession, tenant: str, *key: str, lock: bool = False) -> int:
        """The newest version (0: none); ``lock`` serialises its publishers until the transaction ends."""
        if lock:
            await lock_key(session, self.what, tenant, *key)
        found = await session.execute(select(func.max(self.table.c.version)).where(*self._where(tenant, key)))
        return int(found.scalar() or 0)

    async def add(self, session: AsyncSession, values: dict[str, Any]) -> Any:
        return (await session.execute(self.table.insert().values(**values).returning(*self.table.c))).one()

    async def newest(self, session: AsyncSession, tenants: Iterable[str]) -> list[Any]:
        """The newest version of each of these tenants that has one (for a table with no other key)."""
        tenants = sorted(set(tenants))
        if not tenants:
            return []
        t = self.table
        return list(await session.execute(select(t).distinct(t.c.tenant).where(any_of(t.c.tenant, tenants))
                                          .order_by(t.c.tenant, t.c.version.desc())))

    async def history(self, session: AsyncSession, tenant: str, *key: str, limit: int) -> list[Any]:
        """The versions, newest first."""
        return list(await session.execute(select(self.table).where(*self._where(tenant, key))
                                          .order_by(self.table.c.version.desc()).limit(limit)))
