"""Channels' repository: contact attempts. Adds and flushes, never commits; stores the statuses that
``domain/states.py`` decides through ``service.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.channels.db.models import ContactAttempt, InboundMessage
from shared.db import any_of, keys_table, table_of

ATTEMPTS: Any = table_of(ContactAttempt)
INBOUND: Any = table_of(InboundMessage)


async def insert_new(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Insert attempts not seen before; returns the inserted rows (a redelivered approval inserts none)."""
    if not rows:
        return []
    return list((await session.execute(insert(ATTEMPTS).on_conflict_do_nothing().returning(*ATTEMPTS.c),
                                       list(rows))).all())


async def claim(session: AsyncSession, *, status: str, claimed_status: str, limit: int) -> list[Any]:
    """Move up to ``limit`` attempts in ``status`` whose time has come to ``claimed_status`` (tries + 1)
    and return them as the provider will see them. SKIP LOCKED: replicas never claim the same row."""
    claimable = (select(ATTEMPTS.c.contact_id)
                 .where(ATTEMPTS.c.status == status, ATTEMPTS.c.next_try_at <= func.now())
                 .order_by(ATTEMPTS.c.created_at).limit(limit).with_for_update(skip_locked=True)
                 .scalar_subquery())
    return list((await session.execute(
        update(ATTEMPTS).where(ATTEMPTS.c.contact_id.in_(claimable))
        .values(status=claimed_status, dispatched_at=func.now(), tries=ATTEMPTS.c.tries + 1, updated_at=func.now())
        .returning(*ATTEMPTS.c))).all())


async def lock(session: AsyncSession, contact_ids: Iterable[str]) -> dict[str, Any]:
    """Current attempts by contact id, locked for this transaction."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    rows = await session.execute(select(ATTEMPTS).where(any_of(ATTEMPTS.c.contact_id, ids))
                                 .order_by(ATTEMPTS.c.contact_id).with_for_update())
    return {r.contact_id: r for r in rows}


async def lock_interrupted(session: AsyncSession, *, status: str, dispatched_before: datetime) -> list[Any]:
    """Attempts left in ``status`` since before the lease began (SKIP LOCKED)."""
    return list((await session.execute(
        select(ATTEMPTS).where(ATTEMPTS.c.status == status, ATTEMPTS.c.dispatched_at < dispatched_before)
        .with_for_update(skip_locked=True))).all())


async def claim_unsettled(session: AsyncSession, *, status: str, channel: str, sent_before: datetime,
                          recheck_in: timedelta, limit: int) -> list[Any]:
    """Up to ``limit`` attempts in ``status`` on ``channel`` sent before ``sent_before`` whose next check
    is due, oldest check first; their next check moves ``recheck_in`` ahead (the lease: committed before
    the provider is asked, so no other replica polls them meanwhile). SKIP LOCKED: replicas never share."""
    claimable = (select(ATTEMPTS.c.contact_id)
                 .where(ATTEMPTS.c.status == status, ATTEMPTS.c.channel == channel,
                        ATTEMPTS.c.dispatched_at < sent_before, ATTEMPTS.c.next_try_at <= func.now())
                 .order_by(ATTEMPTS.c.next_try_at).limit(limit).with_for_update(skip_locked=True)
                 .scalar_subquery())
    return list((await session.execute(
        update(ATTEMPTS).where(ATTEMPTS.c.contact_id.in_(claimable))
        .values(next_try_at=func.now() + recheck_in)
        .returning(*ATTEMPTS.c))).all())


_STORE = (
    update(ATTEMPTS).where(ATTEMPTS.c.contact_id == bindparam("b_id"))
    .values(status=bindparam("b_status"), provider_ref=bindparam("b_ref"), detail=bindparam("b_detail"),
            next_try_at=bindparam("b_next"), provider_account=bindparam("b_account"), updated_at=func.now())
)


async def lock_waiting(session: AsyncSession, *, status: str, accounts: Sequence[tuple[str, str]],
                       customers: Sequence[tuple[str, str]]) -> list[Any]:
    """Attempts in ``status`` of these (tenant, account_id) or (tenant, customer_id), locked, skipping those
    the dispatcher holds (it is sending them)."""
    found: list[Any] = []
    for column, keys in (("account_id", accounts), ("customer_id", customers)):
        if not keys:
            continue
        wanted = keys_table(tenant=[t for t, _ in keys], key=[k for _, k in keys])
        rows = await session.execute(
            select(ATTEMPTS)
            .join(wanted, and_(ATTEMPTS.c.tenant == wanted.c.tenant, ATTEMPTS.c[column] == wanted.c.key))
            .where(ATTEMPTS.c.status == status).order_by(ATTEMPTS.c.contact_id)
            .with_for_update(of=ATTEMPTS, skip_locked=True))
        found.extend(rows)
    return list({a.contact_id: a for a in found}.values())


async def add_inbound(session: AsyncSession, *, message_id: str, provider_account: str, keyword: str | None,
                      received_at: datetime) -> bool:
    """Remember a reply; False when the provider delivered this message id before."""
    inserted = (await session.execute(
        insert(INBOUND).on_conflict_do_nothing()
        .values(message_id=message_id, provider_account=provider_account, keyword=keyword, received_at=received_at)
        .returning(INBOUND.c.message_id))).first()
    return inserted is not None


async def set_inbound_tenants(session: AsyncSession, *, message_id: str, tenants: int) -> None:
    await session.execute(update(INBOUND).where(INBOUND.c.message_id == message_id).values(tenants=tenants))


async def recent_recipients(session: AsyncSession, *, destination_key: str, channel: str, since: datetime) -> list[Any]:
    """Per tenant, the newest attempt on ``channel`` to this contact point since ``since`` (whom a reply from
    it concerns): tenant, customer, account, locale, currency, due date."""
    rows = await session.execute(
        select(ATTEMPTS.c.tenant, ATTEMPTS.c.customer_id, ATTEMPTS.c.account_id, ATTEMPTS.c.locale,
               ATTEMPTS.c.currency, ATTEMPTS.c.due_date, ATTEMPTS.c.account_ref)
        .where(ATTEMPTS.c.destination_key == destination_key, ATTEMPTS.c.channel == channel,
               ATTEMPTS.c.created_at >= since, ~ATTEMPTS.c.template_id.startswith("system."))
        .distinct(ATTEMPTS.c.tenant).order_by(ATTEMPTS.c.tenant, ATTEMPTS.c.created_at.desc()))
    return list(rows)


async def store(session: AsyncSession, changes: Sequence[Mapping[str, Any]]) -> None:
    """Store new statuses (with provider reference and account, detail, next try), one executemany statement."""
    if changes:
        await session.execute(_STORE, [{"b_id": c["contact_id"], "b_status": c["status"], "b_ref": c["provider_ref"],
                                        "b_detail": c["detail"], "b_next": c["next_try_at"],
                                        "b_account": c.get("provider_account")} for c in changes])


async def history(session: AsyncSession, *, tenant: str, account_id: str | None, status: str | None,
                  limit: int) -> list[ContactAttempt]:
    """The tenant's attempts, newest first, of one account and/or in one status."""
    query = select(ContactAttempt).where(ContactAttempt.tenant == tenant)  # type: ignore[arg-type]
    if account_id is not None:
        query = query.where(ContactAttempt.account_id == account_id)  # type: ignore[arg-type]
    if status is not None:
        query = query.where(ContactAttempt.status == status)  # type: ignore[arg-type]
    return list((await session.execute(
        query.order_by(ContactAttempt.created_at.desc()).limit(limit))).scalars().all())  # type: ignore[attr-defined]
