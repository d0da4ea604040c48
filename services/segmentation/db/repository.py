"""Segmentation's repository: accounts, segment history, payments. Adds, never commits."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.db.models import Account, Payment, SegmentChange
from shared.db import any_of, keys_table, table_of

ACCOUNTS = table_of(Account)
AccountKey = tuple[str, str]


async def stored_as_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, datetime]:
    """When each stored account's facts were true, locked for this transaction."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    rows = await session.execute(
        select(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id, ACCOUNTS.c.as_of)
        .join(wanted, and_(ACCOUNTS.c.tenant == wanted.c.tenant, ACCOUNTS.c.account_id == wanted.c.account_id))
        .order_by(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id).with_for_update(of=ACCOUNTS))
    return {(r.tenant, r.account_id): r.as_of for r in rows}


async def save_accounts(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite whole accounts, one executemany statement."""
    if not rows:
        return
    stmt = insert(ACCOUNTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("tenant", "account_id")} | {"updated_at": func.now()},
        # the service decided with the rows locked; this guard only keeps a racing older fact out
        where=ACCOUNTS.c.as_of <= stmt.excluded.as_of,
    ), list(rows))


async def add_segment_changes(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table_of(SegmentChange)), list(rows))


async def record_payment(session: AsyncSession, *, tenant: str, payment_id: str, account_id: str, amount_minor: int,
                         currency: str, paid_at: datetime) -> bool:
    """Remember a payment; False when it was already recorded."""
    return (await session.execute(
        insert(Payment).values(tenant=tenant, payment_id=payment_id, account_id=account_id, amount_minor=amount_minor,
                               currency=currency, paid_at=paid_at)
        .on_conflict_do_nothing().returning(Payment.payment_id))).first() is not None  # type: ignore[arg-type]


async def lock_account(session: AsyncSession, *, tenant: str, account_id: str) -> Account | None:
    return (await session.execute(select(Account).where(
        Account.tenant == tenant, Account.account_id == account_id).with_for_update())).scalars().first()  # type: ignore[arg-type]


async def set_balances(session: AsyncSession, *, tenant: str, account_id: str, overdue_minor: int,
                       outstanding_minor: int, status: str) -> None:
    await session.execute(update(Account).where(Account.tenant == tenant, Account.account_id == account_id)  # type: ignore[arg-type]
                          .values(overdue_minor=overdue_minor, outstanding_minor=outstanding_minor, status=status))


async def currencies(session: AsyncSession, *, tenant: str, account_ids: Sequence[str]) -> dict[str, str]:
    rows = await session.execute(select(ACCOUNTS.c.account_id, ACCOUNTS.c.currency)
                                 .where(ACCOUNTS.c.tenant == tenant, any_of(ACCOUNTS.c.account_id, account_ids)))
    return {r.account_id: r.currency for r in rows}


async def accounts_with_id(session: AsyncSession, account_id: str) -> list[Account]:
    """Every tenant's account with this id (the caller filters by servicer or co-lender)."""
    return list((await session.execute(select(Account).where(Account.account_id == account_id))).scalars().all())  # type: ignore[arg-type]
