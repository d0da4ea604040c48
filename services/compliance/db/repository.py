"""Compliance's repository: the decision log and the records compliance keeps (contact ledger, holds,
suppressions, consents, calendars, complaints, agencies). Adds and flushes, never commits; decides nothing.
Every read for a batch is one statement whatever the batch size (``= ANY(:array)`` or a join on ``unnest``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import DateTime, String, and_, case, cast, delete, func, literal, or_, select, union_all, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from services.compliance.db.models import (
    Agency,
    AgencyAssignment,
    CalendarOverride,
    Complaint,
    ConsentRow,
    ContactDecision,
    ContactLedgerEntry,
    HoldRow,
    SuppressionRow,
    TenantCalendar,
    TenantPolicyRow,
)
from shared.db import Versions, any_of, keys_table, lock_key, table_of

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


# --- contact ledger ------------------------------------------------------------------------------------

LEDGER = table_of(ContactLedgerEntry)


async def record_attempts(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record contact attempts, one row per (tenant, contact id), whatever order their events arrive in: an
    approval (``approved_at`` set, ``outcome`` ``approved``, ``outcome_at`` None) or an outcome (``outcome`` and
    ``outcome_at`` set). On a known attempt: the earliest approval and first instant are kept, the newest
    outcome wins (ties broken by name, so the end state does not depend on arrival order), keys already known
    stay. Every row carries every column of :data:`ATTEMPT_COLUMNS`."""
    if not rows:
        return
    statement = insert(LEDGER)
    new, old = statement.excluded, LEDGER.c
    newer = and_(new.outcome_at.is_not(None), or_(old.outcome_at.is_(None), new.outcome_at > old.outcome_at,
                                                  and_(new.outcome_at == old.outcome_at, new.outcome > old.outcome)))
    await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant", "contact_id"],
        set_={"approved_at": func.least(old.approved_at, new.approved_at),
              "occurred_at": func.least(old.occurred_at, new.occurred_at),
              "outcome": case((newer, new.outcome), else_=old.outcome),
              "outcome_at": func.greatest(old.outcome_at, new.outcome_at),
              **{c: func.coalesce(old[c], new[c]) for c in ("borrower_key", "destination_key", "agency_id",
                                                             "agent_id")}}), list(rows))


ATTEMPT_COLUMNS = ("tenant", "borrower_key", "customer_id", "account_id", "contact_id", "channel", "destination_key",
                   "direction", "agency_id", "agent_id", "outcome", "occurred_at", "approved_at", "outcome_at")


async def ledger_for(session: AsyncSession, *, keys: Sequence[Mapping[str, str | None]], since: datetime) -> list[Any]:
    """Ledger rows (attempts) that matter to each request of a batch, in ONE statement: a ``UNION ALL`` of index scans,
    each a join of the batch's keys (``unnest``) on one index of ``contact_ledger``:

    - ``number``: rows of the request's contact point (``destination_key``, every tenant: one number is one
      number), since ``since``;
    - ``borrower``: rows of the request's borrower key (every tenant and agency), since ``since``;
    - ``customer``: rows of the tenant's customer (rows without a borrower key, and older ones), since ``since``;
    - ``debt``: rows of the tenant's account, since ``since``;
    - ``contact``: the request's contact id when compliance approved it, at any age.

    ``keys``: one mapping per request (``idx``, ``tenant``, ``customer_id``, ``account_id``, ``contact_id``,
    ``borrower_key``, ``destination_key``). Returns (idx, branch, id, contact_id, channel, outcome, direction,
    destination_key, occurred_at, approved_at) rows, ``occurred_at`` the attempt's first instant."""
    if not keys:
        return []
    names = ("idx", "tenant", "customer_id", "account_id", "contact_id", "borrower_key", "destination_key")
    k = keys_table(**{n: [key.get(n) for key in keys] for n in names})  # type: ignore[arg-type]  # NULLs allowed
    since_p = cast(literal(since), DateTime(timezone=True))
    columns = (LEDGER.c.id, LEDGER.c.contact_id, LEDGER.c.channel, LEDGER.c.outcome, LEDGER.c.direction,
               LEDGER.c.destination_key, LEDGER.c.occurred_at, LEDGER.c.approved_at)

    def branch(name: str, on: Any, *where: Any) -> Any:
        return select(k.c.idx, literal(name, String).label("branch"), *columns).select_from(
            k.join(LEDGER, on)).where(*where)

    return list(await session.execute(union_all(
        branch("number", LEDGER.c.destination_key == k.c.destination_key, LEDGER.c.destination_key.is_not(None),
               LEDGER.c.occurred_at >= since_p),
        branch("borrower", LEDGER.c.borrower_key == k.c.borrower_key, LEDGER.c.borrower_key.is_not(None),
               LEDGER.c.occurred_at >= since_p),
        branch("customer", and_(LEDGER.c.tenant == k.c.tenant, LEDGER.c.customer_id == k.c.customer_id),
               LEDGER.c.occurred_at >= since_p),
        branch("debt", and_(LEDGER.c.tenant == k.c.tenant, LEDGER.c.account_id == k.c.account_id),
               LEDGER.c.occurred_at >= since_p),
        branch("contact", and_(LEDGER.c.tenant == k.c.tenant, LEDGER.c.contact_id == k.c.contact_id),
               LEDGER.c.approved_at.is_not(None)),
    )))


async def borrower_keys_of(session: AsyncSession, *, tenant: str, customer_id: str) -> list[str]:
    """The borrower keys the ledger knows for a customer of a tenant."""
    rows = await session.execute(
        select(LEDGER.c.borrower_key).distinct().where(
            LEDGER.c.tenant == tenant, LEDGER.c.customer_id == customer_id, LEDGER.c.borrower_key.is_not(None)))
    return [r.borrower_key for r in rows]


# --- rows with an id: holds, suppressions, consents, complaints ----------------------------------------


async def add_row(session: AsyncSession, model: type[SQLModel], values: Mapping[str, Any]) -> Any:
    """Insert one row and return it as stored (server defaults included)."""
    table = table_of(model)
    return (await session.execute(insert(table).values(**values).returning(*table.c))).one()


async def add_new_rows(session: AsyncSession, model: type[SQLModel], rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert rows whose ids are derived from what they record, skipping any already stored (its id or another
    unique key): one statement. Returns the ids inserted now."""
    if not rows:
        return set()
    table = table_of(model)
    inserted = await session.execute(insert(table).on_conflict_do_nothing().returning(table.c.id), list(rows))
    return {r.id for r in inserted}


async def get_row(session: AsyncSession, model: type[SQLModel], *, tenant: str, id: str,
                  lock: bool = False) -> Any | None:
    """One row of the tenant by id (locked for update when ``lock``), None when absent or another tenant's."""
    table = table_of(model)
    query = select(table).where(table.c.id == id, table.c.tenant == tenant)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).one_or_none()


async def update_row(session: AsyncSession, model: type[SQLModel], *, id: str, values: Mapping[str, Any]) -> Any:
    """Change one row by id and return it as stored."""
    table = table_of(model)
    return (await session.execute(update(table).where(table.c.id == id).values(**values).returning(*table.c))).one()


async def list_rows(session: AsyncSession, model: type[SQLModel], *, tenant: str, filters: Mapping[str, Any],
                    where: Sequence[Any] = (), order: str = "created_at", limit: int = 500) -> list[Any]:
    """The tenant's rows with these column values (None: any), newest first."""
    table = table_of(model)
    query = select(table).where(table.c.tenant == tenant, *where)
    for name, value in filters.items():
        if value is not None:
            query = query.where(table.c[name] == value)
    return list(await session.execute(query.order_by(table.c[order].desc(), table.c.id).limit(limit)))


HOLDS = table_of(HoldRow)
SUPPRESSIONS = table_of(SuppressionRow)
CONSENTS = table_of(ConsentRow)
COMPLAINTS = table_of(Complaint)


def active_hold_clause(at: datetime) -> Any:
    """Holds in force at ``at``: started, not ended, not lifted."""
    return and_(HOLDS.c.starts_at <= at, or_(HOLDS.c.ends_at.is_(None), HOLDS.c.ends_at > at),
                or_(HOLDS.c.lifted_at.is_(None), HOLDS.c.lifted_at > at))


async def lock_source_holds(session: AsyncSession, *, source: str,
                            keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The holds placed by these (tenant, plan or complaint id) of ``source``, locked, in a fixed order."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], ref=[r for _, r in keys])
    rows = await session.execute(
        select(HOLDS).join(wanted, and_(HOLDS.c.tenant == wanted.c.tenant, HOLDS.c.source_ref == wanted.c.ref))
        .where(HOLDS.c.source == source).order_by(HOLDS.c.tenant, HOLDS.c.source_ref).with_for_update(of=HOLDS))
    return {(r.tenant, r.source_ref): r for r in rows}


async def save_source_holds(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite holds of a source (plan, complaint) by (tenant, source, source_ref); the caller decided
    that each one supersedes what is stored."""
    if not rows:
        return
    statement = insert(HOLDS)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant", "source", "source_ref"], index_where=HOLDS.c.source_ref.is_not(None),
        set_={c: statement.excluded[c] for c in ("starts_at", "source_state", "source_at", "lifted_at", "lifted_by",
                                                "lift_reason")}), list(rows))


async def holds_for(session: AsyncSession, keys: Collection[tuple[str, str]], *, since: datetime) -> list[Any]:
    """Holds of these (tenant, customer_id) not over before ``since`` (neither ended nor lifted)."""
    if not keys:
        return []
    wanted = keys_table(tenant=[t for t, _ in keys], customer_id=[c for _, c in keys])
    return list(await session.execute(
        select(HOLDS).join(wanted, and_(HOLDS.c.tenant == wanted.c.tenant, HOLDS.c.customer_id == wanted.c.customer_id))
        .where(or_(HOLDS.c.ends_at.is_(None), HOLDS.c.ends_at > since),
               or_(HOLDS.c.lifted_at.is_(None), HOLDS.c.lifted_at > since))))


async def suppressions_for(session: AsyncSession, keys: Collection[tuple[str, str]],
                           destinations: Collection[tuple[str, str]]) -> list[Any]:
    """Suppressions in force of these (tenant, customer_id), and of these (tenant, destination_key)."""
    if not keys and not destinations:
        return []
    by_customer = keys_table(tenant=[t for t, _ in keys], customer_id=[c for _, c in keys])
    by_destination = keys_table(tenant=[t for t, _ in destinations], destination_key=[d for _, d in destinations])
    live = SUPPRESSIONS.c.removed_at.is_(None)
    return list(await session.execute(union_all(
        select(SUPPRESSIONS).join(by_customer, and_(SUPPRESSIONS.c.tenant == by_customer.c.tenant,
                                                    SUPPRESSIONS.c.customer_id == by_customer.c.customer_id))
        .where(live),
        select(SUPPRESSIONS).join(by_destination, and_(
            SUPPRESSIONS.c.tenant == by_destination.c.tenant,
            SUPPRESSIONS.c.destination_key == by_destination.c.destination_key))
        .where(live, SUPPRESSIONS.c.customer_id.is_(None)))))


async def consents_for(session: AsyncSession, keys: Collection[tuple[str, str]]) -> list[Any]:
    """Consents of these (tenant, customer_id), revoked ones included (a rule may ask what held when)."""
    if not keys:
        return []
    wanted = keys_table(tenant=[t for t, _ in keys], customer_id=[c for _, c in keys])
    return list(await session.execute(
        select(CONSENTS).join(wanted, and_(CONSENTS.c.tenant == wanted.c.tenant,
                                           CONSENTS.c.customer_id == wanted.c.customer_id))))


# --- calendars -------------------------------------------------------------------------------------------

CALENDARS = table_of(TenantCalendar)
OVERRIDES = table_of(CalendarOverride)


async def calendars_of(session: AsyncSession, tenants: Collection[str]) -> dict[str, str]:
    """The country of each tenant that chose one."""
    if not tenants:
        return {}
    rows = await session.execute(select(CALENDARS.c.tenant, CALENDARS.c.country)
                                 .where(any_of(CALENDARS.c.tenant, tenants)))
    return {r.tenant: r.country for r in rows}


async def save_calendar(session: AsyncSession, *, tenant: str, country: str, updated_by: str) -> Any:
    statement = insert(CALENDARS).values(tenant=tenant, country=country, updated_by=updated_by)
    return (await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant"], set_={"country": country, "updated_by": updated_by, "updated_at": func.now()})
        .returning(*CALENDARS.c))).one()


async def overrides_for(session: AsyncSession, tenants: Collection[str], *, first: date, last: date) -> list[Any]:
    """Calendar overrides of these tenants between ``first`` and ``last`` (inclusive)."""
    if not tenants:
        return []
    return list(await session.execute(
        select(OVERRIDES).where(any_of(OVERRIDES.c.tenant, tenants), OVERRIDES.c.day >= first,
                                OVERRIDES.c.day <= last).order_by(OVERRIDES.c.day)))


async def save_override(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    statement = insert(OVERRIDES).values(**values)
    return (await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant", "day"],
        set_={"kind": statement.excluded.kind, "name": statement.excluded.name,
              "created_by": statement.excluded.created_by, "created_at": func.now()})
        .returning(*OVERRIDES.c))).one()


async def delete_override(session: AsyncSession, *, tenant: str, day: date) -> bool:
    result = await session.execute(delete(OVERRIDES).where(OVERRIDES.c.tenant == tenant, OVERRIDES.c.day == day)
                                   .returning(OVERRIDES.c.day))
    return result.first() is not None


# --- agencies ----------------------------------------------------------------------------------------------

AGENCIES = table_of(Agency)
ASSIGNMENTS = table_of(AgencyAssignment)


async def save_agency(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    statement = insert(AGENCIES).values(**values)
    return (await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant", "agency_id"],
        set_={c: statement.excluded[c] for c in ("name", "listed", "evaluated_on", "updated_by")}
        | {"updated_at": func.now()}).returning(*AGENCIES.c))).one()


async def list_agencies(session: AsyncSession, *, tenant: str) -> list[Any]:
    return list(await session.execute(select(AGENCIES).where(AGENCIES.c.tenant == tenant)
                                      .order_by(AGENCIES.c.agency_id)))


async def agency_of(session: AsyncSession, *, tenant: str, agency_id: str) -> Any | None:
    return (await session.execute(select(AGENCIES).where(AGENCIES.c.tenant == tenant,
                                                         AGENCIES.c.agency_id == agency_id))).one_or_none()


async def save_assignment(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    statement = insert(ASSIGNMENTS).values(**values)
    return (await session.execute(statement.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: statement.excluded[c] for c in ("agency_id", "debtor_notified_at", "assigned_by")}
        | {"assigned_at": func.now()}).returning(*ASSIGNMENTS.c))).one()


async def assignments_for(session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The agency assignment of each (tenant, account_id) that has one, with the agency's listing."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    rows = await session.execute(
        select(ASSIGNMENTS.c.tenant, ASSIGNMENTS.c.account_id, ASSIGNMENTS.c.agency_id,
               ASSIGNMENTS.c.debtor_notified_at, func.coalesce(AGENCIES.c.listed, False).label("listed"),
               AGENCIES.c.evaluated_on)
        .join(wanted, and_(ASSIGNMENTS.c.tenant == wanted.c.tenant, ASSIGNMENTS.c.account_id == wanted.c.account_id))
        .outerjoin(AGENCIES, and_(AGENCIES.c.tenant == ASSIGNMENTS.c.tenant,
                                  AGENCIES.c.agency_id == ASSIGNMENTS.c.agency_id)))
    return {(r.tenant, r.account_id): r for r in rows}


# --- tenant policies ----------------------------------------------------------------------------------------

POLICIES = table_of(TenantPolicyRow)


POLICY_VERSIONS = Versions(POLICIES, "policy")


async def current_policies(session: AsyncSession, tenants: Collection[str]) -> list[Any]:
    """The newest published policy of each of these tenants that has one."""
    return await POLICY_VERSIONS.newest(session, tenants)


async def latest_policy_version(session: AsyncSession, tenant: str, *, lock: bool = False) -> int:
    """The tenant's newest policy version (0: none); ``lock`` serialises publishers of this tenant until the
    transaction ends."""
    return await POLICY_VERSIONS.latest(session, tenant, lock=lock)


async def add_policy(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return await POLICY_VERSIONS.add(session, dict(values))


async def policy_versions(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    return await POLICY_VERSIONS.history(session, tenant, limit=limit)


# --- complaints ---------------------------------------------------------------------------------------------


async def complaint_counts(session: AsyncSession, *, breach_before: datetime) -> tuple[dict[str, int], int]:
    """Complaints per status (every tenant), and open ones whose clock runs out before ``breach_before``."""
    by_status = {r.status: r.n for r in await session.execute(
        select(COMPLAINTS.c.status, func.count().label("n")).group_by(COMPLAINTS.c.status))}
    breaching = (await session.execute(select(func.count()).select_from(COMPLAINTS).where(
        COMPLAINTS.c.status == "open", COMPLAINTS.c.due_at < breach_before))).scalar_one()
    return by_status, int(breaching)


async def complaint_clocks(session: AsyncSession, *, now: datetime,
                           due_before: Mapping[str, datetime]) -> dict[str, dict[str, int]]:
    """Per tenant with open complaints: ``open``, ``overdue`` (due before ``now``) and, for each name of
    ``due_before``, those not yet overdue but due before its instant. One statement (``ix_complaints_status``)."""
    open_ = COMPLAINTS.c.status == "open"
    due = COMPLAINTS.c.due_at
    columns = [func.count().label("open"), func.count().filter(due < now).label("overdue"),
               *(func.count().filter(and_(due >= now, due < until)).label(f"w{n}")
                 for n, until in enumerate(due_before.values()))]
    rows = await session.execute(select(COMPLAINTS.c.tenant, *columns).where(open_).group_by(COMPLAINTS.c.tenant))
    return {r.tenant: {"open": int(r.open), "overdue": int(r.overdue),
                       **{name: int(r._mapping[f"w{n}"]) for n, name in enumerate(due_before)}} for r in rows}


# --- contact attempts reported over REST (agents, dialers) ---------------------------------------------------


async def lock_attempt(session: AsyncSession, *, tenant: str, contact_id: str) -> Any | None:
    """Serialise this transaction with any other recording the same attempt (tenant, contact id) until it ends (an
    advisory lock: there may be no row to lock yet), then return its ledger row, None when there is none."""
    await lock_key(session, "attempt", tenant, contact_id)
    return await attempt_of(session, tenant=tenant, contact_id=contact_id)


async def attempt_of(session: AsyncSession, *, tenant: str, contact_id: str) -> Any | None:
    """The ledger row of one attempt of the tenant, None when there is none."""
    return (await session.execute(select(LEDGER).where(LEDGER.c.tenant == tenant,
                                                       LEDGER.c.contact_id == contact_id))).one_or_none()


async def attempts_of(session: AsyncSession, *, tenant: str, customer_id: str | None, account_id: str | None,
                      limit: int) -> list[Any]:
    """The tenant's ledger rows of a customer and/or an account (None: any), newest first (by first instant)."""
    query = select(LEDGER).where(LEDGER.c.tenant == tenant)
    if customer_id is not None:
        query = query.where(LEDGER.c.customer_id == customer_id)
    if account_id is not None:
        query = query.where(LEDGER.c.account_id == account_id)
    return list(await session.execute(query.order_by(LEDGER.c.occurred_at.desc(), LEDGER.c.id.desc()).limit(limit)))
