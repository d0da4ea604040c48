"""Compliance's repository: the decision log. Adds, never commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db.models import ContactDecision
from shared.db import any_of, table_of


async def approved_contact_ids(session: AsyncSession, contact_ids: Iterable[str]) -> set[str]:
    """Which of these contacts already have an approval on record."""
    ids = list(set(contact_ids))
    if not ids:
        return set()
    return set((await session.execute(
        select(ContactDecision.contact_id).where(any_of(ContactDecision.contact_id, ids),
                                                 ContactDecision.outcome == "approved"))).scalars())  # type: ignore[arg-type]


async def add_decisions(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(table_of(ContactDecision)), list(rows))


async def list_decisions(session: AsyncSession, *, tenant: str, contact_id: str | None, account_id: str | None,
                         limit: int) -> list[ContactDecision]:
    query = select(ContactDecision).where(ContactDecision.tenant == tenant)  # type: ignore[arg-type]
    if contact_id is not None:
        query = query.where(ContactDecision.contact_id == contact_id)  # type: ignore[arg-type]
    if account_id is not None:
        query = query.where(ContactDecision.account_id == account_id)  # type: ignore[arg-type]
    return list((await session.execute(
        query.order_by(ContactDecision.decided_at.desc()).limit(limit))).scalars().all())  # type: ignore[attr-defined]
