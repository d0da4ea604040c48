"""Channels' repository: contact attempts and the holds heard of. Adds and flushes, never commits; stores the
statuses that ``domain/states.py`` decides through ``service.py``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, and_, bindparam, case, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.channels.db.models import (
    ChannelBranding,
    ChannelTemplateVersion,
    ContactAttempt,
    InboundMessage,
    KnownHold,
)
from shared.db import any_of, keys_table, lock_key, table_of

ATTEMPTS: Any = table_of(ContactAttempt)
INBOUND: Any = table_of(InboundMessage)
HOLDS: Any = table_of(KnownHold)
BRANDINGS: Any = table_of(ChannelBranding)
TEMPLATE_VERSIONS: Any = table_of(ChannelTemplateVersion)


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


# --- holds ---------------------------------------------------------------------------------------------------

_HOLD_FIELDS = ("customer_id", "account_id", "kind", "starts_at", "ends_at", "state", "state_at")


def _merge_holds() -> Any:
    new = insert(HOLDS).excluded
    newer = or_(new.state_at > HOLDS.c.state_at, and_(new.state_at == HOLDS.c.state_at, new.state == "lifted"))
    return insert(HOLDS).on_conflict_do_update(index_elements=[HOLDS.c.tenant, HOLDS.c.hold_id], set_={
        **{c: case((newer, new[c]), else_=HOLDS.c[c]) for c in _HOLD_FIELDS},
        "reason": case((new.state == "placed", new.reason), else_=HOLDS.c.reason), "updated_at": func.now()})


_MERGE_HOLDS = _merge_holds()


async def merge_holds(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Keep each hold's newest fact (one row per (tenant, hold_id) in ``rows``): by ``state_at``, a lift winning
    a tie; the reason stays the placement's. One executemany statement."""
    if rows:
        await session.execute(_MERGE_HOLDS, [dict(r) for r in rows])


def _in_force_since(since: Any) -> Any:
    """The hold was in force at some instant from ``since`` until now: it has started, and it neither ended
    (``ends_at``) nor was lifted (a lift its newest fact) before ``since``, nor before it started."""
    end = case((HOLDS.c.state == "lifted", func.least(HOLDS.c.state_at, HOLDS.c.ends_at)), else_=HOLDS.c.ends_at)
    return and_(HOLDS.c.starts_at <= func.now(), or_(end.is_(None), and_(end > since, end > HOLDS.c.starts_at)))


def _covers(tenant: Any, account_id: Any, customer_id: Any) -> Any:
    """The hold is on this account, or on every account of this customer."""
    return and_(HOLDS.c.tenant == tenant, or_(HOLDS.c.account_id == account_id,
                                              and_(HOLDS.c.account_id.is_(None), HOLDS.c.customer_id == customer_id)))


async def holds_over(session: AsyncSession, contacts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """For each contact (contact_id, tenant, account_id, customer_id, approved_at) under a hold in force at
    some instant since its approval: that hold (hold_id, kind, reason; the earliest to start). One statement
    whatever the number of contacts."""
    if not contacts:
        return {}
    wanted = keys_table(contact_id=[c["contact_id"] for c in contacts], tenant=[c["tenant"] for c in contacts],
                        account_id=[c["account_id"] for c in contacts],
                        customer_id=[c["customer_id"] for c in contacts],
                        approved_at=[c["approved_at"].isoformat() for c in contacts])
    since = cast(wanted.c.approved_at, DateTime(timezone=True))
    rows = await session.execute(
        select(wanted.c.contact_id, HOLDS.c.hold_id, HOLDS.c.kind, HOLDS.c.reason)
        .select_from(wanted.join(HOLDS, and_(_covers(wanted.c.tenant, wanted.c.account_id, wanted.c.customer_id),
                                             _in_force_since(since))))
        .distinct(wanted.c.contact_id).order_by(wanted.c.contact_id, HOLDS.c.starts_at, HOLDS.c.hold_id))
    return {r.contact_id: r for r in rows}


async def lock_held(session: AsyncSession, *, status: str, holds: Sequence[tuple[str, str]]) -> list[Any]:
    """Attempts in ``status`` (never our own ``system.`` messages) under one of these holds (tenant, hold_id)
    in force at some instant since the attempt was approved, locked, skipping those another transaction holds
    (the dispatcher claiming them: it checks the holds itself). Each row carries its hold as ``hold_id``,
    ``hold_kind``, ``hold_reason``; an attempt under several holds comes once per hold, earliest-starting
    first. One statement."""
    if not holds:
        return []
    wanted = keys_table(tenant=[t for t, _ in holds], hold_id=[h for _, h in holds])
    since = func.coalesce(ATTEMPTS.c.approved_at, ATTEMPTS.c.created_at)
    rows = await session.execute(
        select(ATTEMPTS, HOLDS.c.hold_id, HOLDS.c.kind.label("hold_kind"), HOLDS.c.reason.label("hold_reason"))
        .select_from(HOLDS.join(wanted, and_(HOLDS.c.tenant == wanted.c.tenant, HOLDS.c.hold_id == wanted.c.hold_id))
                     .join(ATTEMPTS, and_(_covers(ATTEMPTS.c.tenant, ATTEMPTS.c.account_id, ATTEMPTS.c.customer_id),
                                          _in_force_since(since))))
        .where(ATTEMPTS.c.status == status, ~ATTEMPTS.c.template_id.startswith("system."))
        .order_by(ATTEMPTS.c.contact_id, HOLDS.c.starts_at, HOLDS.c.hold_id)
        .with_for_update(of=ATTEMPTS, skip_locked=True))
    return list(rows)


_UNCLAIM = (
    update(ATTEMPTS).where(ATTEMPTS.c.contact_id == bindparam("b_id"))
    .values(status=bindparam("b_status"), detail=bindparam("b_detail"), tries=ATTEMPTS.c.tries - 1,
            dispatched_at=None, updated_at=func.now())
)


async def unclaim(session: AsyncSession, changes: Sequence[Mapping[str, Any]]) -> None:
    """Undo this transaction's claim of these attempts (tries back, no dispatch time) and store their new
    status and detail: they were never handed to a provider. One executemany statement."""
    if changes:
        await session.execute(_UNCLAIM, [{"b_id": c["contact_id"], "b_status": c["status"], "b_detail": c["detail"]}
                                         for c in changes])


# --- tenants' branding and template versions ---------------------------------------------------------------


async def current_brandings(session: AsyncSession, tenants: Sequence[str]) -> list[Any]:
    """The newest branding of each of these tenants that has one (one statement)."""
    if not tenants:
        return []
    return list(await session.execute(
        select(BRANDINGS).distinct(BRANDINGS.c.tenant).where(any_of(BRANDINGS.c.tenant, tenants))
        .order_by(BRANDINGS.c.tenant, BRANDINGS.c.version.desc())))


async def current_template_versions(session: AsyncSession, tenants: Sequence[str]) -> list[Any]:
    """The newest version of each (tenant, template id, locale) of these tenants (one statement)."""
    if not tenants:
        return []
    t = TEMPLATE_VERSIONS
    return list(await session.execute(
        select(t).distinct(t.c.tenant, t.c.template_id, t.c.locale).where(any_of(t.c.tenant, tenants))
        .order_by(t.c.tenant, t.c.template_id, t.c.locale, t.c.version.desc())))


async def lock_tenant_content(session: AsyncSession, tenant: str, what: str) -> None:
    """Serialise publishers of this tenant's ``what`` (branding, templates) until the transaction ends (an
    advisory lock: there may be no row to lock yet), so two publishers never take the same version."""
    await lock_key(session, what, tenant)


async def latest_branding_version(session: AsyncSession, tenant: str) -> int:
    found = (await session.execute(select(func.max(BRANDINGS.c.version))
                                   .where(BRANDINGS.c.tenant == tenant))).scalar()
    return int(found or 0)


async def latest_template_version(session: AsyncSession, tenant: str, template_id: str, locale: str) -> int:
    t = TEMPLATE_VERSIONS
    found = (await session.execute(select(func.max(t.c.version)).where(
        t.c.tenant == tenant, t.c.template_id == template_id, t.c.locale == locale))).scalar()
    return int(found or 0)


async def add_branding(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return (await session.execute(insert(BRANDINGS).values(**values).returning(*BRANDINGS.c))).one()


async def add_template_version(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return (await session.execute(insert(TEMPLATE_VERSIONS).values(**values).returning(*TEMPLATE_VERSIONS.c))).one()


async def branding_versions(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    return list(await session.execute(select(BRANDINGS).where(BRANDINGS.c.tenant == tenant)
                                      .order_by(BRANDINGS.c.version.desc()).limit(limit)))


async def template_versions(session: AsyncSession, tenant: str, template_id: str, *, locale: str | None,
                            limit: int) -> list[Any]:
    t = TEMPLATE_VERSIONS
    query = select(t).where(t.c.tenant == tenant, t.c.template_id == template_id)
    if locale is not None:
        query = query.where(t.c.locale == locale)
    return list(await session.execute(query.order_by(t.c.locale, t.c.version.desc()).limit(limit)))
