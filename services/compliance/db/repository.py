"""Compliance's repository: the decision log. Adds, never commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db.models import ContactDecision
from shared.db import any_of, table_of

_D = table_of(ContactDecision)


async def decisions_of(session: AsyncSession, contact_ids: Iterable[str]) -> list[Any]:
    """Every decision on record for these contacts (id, contact, attempt, outcome, rule, reason, retry),
    oldest first."""
    ids = list(set(contact_ids))
    if not ids:
        return []
    return list(await session.execute(
        select(_D.c.decision_id, _D.c.contact_id, _D.c.attempt, _D.c.outcome, _D.c.rule_id, _D.c.reason,
               _D.c.retry_at).where(any_of(_D.c.contact_id, ids)).order_by(_D.c.decided_at)))


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
