"""Segmentation's repository: accounts, segment history, payments, segmentation policies, the scorecard registry.
Adds, never commits; decides nothing."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.db.models import (
    Account,
    Payment,
    ScorecardPromotion,
    ScorecardRow,
    SegmentationPolicyRow,
    SegmentChange,
)
from shared.db import Versions, any_of, keys_table, table_of

ACCOUNTS = table_of(Account)
PAYMENTS = table_of(Payment)
HISTORY = table_of(SegmentChange)
POLICIES = table_of(SegmentationPolicyRow)
SCORECARDS = table_of(ScorecardRow)
PROMOTIONS = table_of(ScorecardPromotion)
AccountKey = tuple[str, str]
# what orders two snapshots of one account (domain/accounts.py ``Snapshot``), as stored
_SNAPSHOT = ("as_of", "due_date", "days_past_due", "reported_overdue_minor", "reported_outstanding_minor")


def _of_accounts(table: Any, keys: Collection[AccountKey]) -> Any:
    wanted = keys_table(tenant=[t for t, _ in keys], account_id=[a for _, a in keys])
    return table.join(wanted, and_(table.c.tenant == wanted.c.tenant, table.c.account_id == wanted.c.account_id))


async def lock_accounts(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, Any]:
    """The stored accounts of these keys (snapshot, what a scorecard reads of it, currency, derived balances),
    locked for this transaction."""
    if not keys:
        return {}
    rows = await session.execute(
        select(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id, ACCOUNTS.c.currency, ACCOUNTS.c.overdue_minor,
               ACCOUNTS.c.outstanding_minor, ACCOUNTS.c.status, ACCOUNTS.c.first_seen_at, ACCOUNTS.c.product,
               ACCOUNTS.c.credit_rating, ACCOUNTS.c.credit_score,
               *(ACCOUNTS.c[c] for c in _SNAPSHOT))
        .select_from(_of_accounts(ACCOUNTS, keys))
        .order_by(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id).with_for_update(of=ACCOUNTS))
    return {(r.tenant, r.account_id): r for r in rows}


async def save_accounts(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert or overwrite whole accounts, one executemany statement."""
    if not rows:
        return
    stmt = insert(ACCOUNTS)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=["tenant", "account_id"],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("tenant", "account_id")} | {
            "updated_at": func.now(),
            "first_seen_at": func.least(ACCOUNTS.c.first_seen_at, stmt.excluded.first_seen_at)},
        # the service decided with the accounts locked; this guard only keeps an older snapshot out
        where=tuple_(*(ACCOUNTS.c[c] for c in _SNAPSHOT)) < tuple_(*(stmt.excluded[c] for c in _SNAPSHOT)),
    ), list(rows))


_SET_BALANCES = (
    update(ACCOUNTS).where(ACCOUNTS.c.tenant == bindparam("b_tenant"),
                           ACCOUNTS.c.account_id == bindparam("b_account_id"))
    .values(overdue_minor=bindparam("b_overdue_minor"), outstanding_minor=bindparam("b_outstanding_minor"),
            status=bindparam("b_status"), updated_at=func.now())
)


async def set_balances(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store accounts' derived balances and status, one executemany statement."""
    if rows:
        await session.execute(_SET_BALANCES, [
            {"b_tenant": r["tenant"], "b_account_id": r["account_id"], "b_overdue_minor": r["overdue_minor"],
             "b_outstanding_minor": r["outstanding_minor"], "b_status": r["status"]} for r in rows])


_SET_SCORES = (
    update(ACCOUNTS).where(ACCOUNTS.c.tenant == bindparam("b_tenant"),
                           ACCOUNTS.c.account_id == bindparam("b_account_id"))
    .values(scorecard_version=bindparam("b_scorecard_version"), score_points=bindparam("b_score_points"),
            score_probability=bindparam("b_score_probability"), score_reasons=bindparam("b_score_reasons"),
            updated_at=func.now())
)


async def set_scores(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store accounts' scores (scorecard_version, score_points, score_probability, score_reasons), one
    executemany statement."""
    if rows:
        await session.execute(_SET_SCORES, [{f"b_{k}": r[k] for k in (
            "tenant", "account_id", "scorecard_version", "score_points", "score_probability", "score_reasons")}
            for r in rows])


_FIRST_SEEN = (
    update(ACCOUNTS).where(ACCOUNTS.c.tenant == bindparam("b_tenant"),
                           ACCOUNTS.c.account_id == bindparam("b_account_id"),
                           ACCOUNTS.c.first_seen_at > bindparam("b_first_seen_at"))
    .values(first_seen_at=bindparam("b_first_seen_at"))
)


async def set_first_seen(session: AsyncSession, rows: Sequence[tuple[str, str, Any]]) -> None:
    """Move accounts' ``first_seen_at`` back to an earlier snapshot's time ((tenant, account_id, time) each),
    one executemany statement; a later time changes nothing."""
    if rows:
        await session.execute(_FIRST_SEEN, [{"b_tenant": t, "b_account_id": a, "b_first_seen_at": at}
                                            for t, a, at in rows])


async def add_segment_changes(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(HISTORY), list(rows))


async def snapshots_classified(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, list[Any]]:
    """The snapshots recorded in these accounts' segment history (as_of, overdue_minor), oldest first, by account;
    rows from before they were recorded (migration 0004) are left out."""
    found: dict[AccountKey, list[Any]] = {}
    if keys:
        rows = await session.execute(
            select(HISTORY.c.tenant, HISTORY.c.account_id, HISTORY.c.as_of, HISTORY.c.overdue_minor)
            .select_from(_of_accounts(HISTORY, keys))
            .where(HISTORY.c.as_of.is_not(None), HISTORY.c.overdue_minor.is_not(None))
            .order_by(HISTORY.c.as_of, HISTORY.c.id))
        for r in rows:
            found.setdefault((r.tenant, r.account_id), []).append(r)
    return found


async def record_payments(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """Keep payments once per (tenant, payment_id); returns the (tenant, payment_id) of those new here."""
    if not rows:
        return set()
    inserted = await session.execute(
        insert(PAYMENTS).on_conflict_do_nothing().returning(PAYMENTS.c.tenant, PAYMENTS.c.payment_id), list(rows))
    return {(r.tenant, r.payment_id) for r in inserted}


async def payments_of(session: AsyncSession, keys: Collection[AccountKey]) -> dict[AccountKey, list[Any]]:
    """Every payment kept for these accounts (payment_id, amount, currency, paid_at), by account."""
    found: dict[AccountKey, list[Any]] = {}
    if keys:
        rows = await session.execute(
            select(PAYMENTS.c.tenant, PAYMENTS.c.account_id, PAYMENTS.c.payment_id, PAYMENTS.c.amount_minor,
                   PAYMENTS.c.currency, PAYMENTS.c.paid_at).select_from(_of_accounts(PAYMENTS, keys)))
        for r in rows:
            found.setdefault((r.tenant, r.account_id), []).append(r)
    return found


async def currencies(session: AsyncSession, *, tenant: str, account_ids: Sequence[str]) -> dict[str, str]:
    rows = await session.execute(select(ACCOUNTS.c.account_id, ACCOUNTS.c.currency)
                                 .where(ACCOUNTS.c.tenant == tenant, any_of(ACCOUNTS.c.account_id, account_ids)))
    return {r.account_id: r.currency for r in rows}


async def accounts_with_id(session: AsyncSession, account_id: str) -> list[Account]:
    """Every tenant's account with this id (the caller filters by servicer or co-lender)."""
    return list((await session.execute(select(Account).where(Account.account_id == account_id))).scalars().all())  # type: ignore[arg-type]


async def newest_accounts(session: AsyncSession, *, tenant: str, limit: int) -> list[Any]:
    """Up to ``limit`` of the tenant's accounts, the newest snapshots first (what a policy dry-run classifies)."""
    return list(await session.execute(
        select(ACCOUNTS.c.tenant, ACCOUNTS.c.account_id, ACCOUNTS.c.product, ACCOUNTS.c.currency,
               ACCOUNTS.c.reported_overdue_minor, ACCOUNTS.c.reported_outstanding_minor, ACCOUNTS.c.days_past_due,
               ACCOUNTS.c.credit_rating, ACCOUNTS.c.credit_score, ACCOUNTS.c.segment, ACCOUNTS.c.as_of,
               ACCOUNTS.c.first_seen_at, ACCOUNTS.c.score_probability)
        .where(ACCOUNTS.c.tenant == tenant)
        .order_by(ACCOUNTS.c.as_of.desc(), ACCOUNTS.c.account_id).limit(limit)))


# --- segmentation policies -----------------------------------------------------------------------------------------


POLICY_VERSIONS = Versions(POLICIES, "segmentation-policy")


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


# --- the scorecard registry ----------------------------------------------------------------------------------------


async def add_scorecard(session: AsyncSession, values: Mapping[str, Any]) -> Any | None:
    """Register a version; None when the tenant already registered that version (nothing changed)."""
    return (await session.execute(insert(SCORECARDS).values(**values).on_conflict_do_nothing()
                                  .returning(*SCORECARDS.c))).one_or_none()


_SUMMARY = tuple(c for c in SCORECARDS.c if c.name != "document")


async def scorecards_of(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    """The tenant's registered versions without their documents, the newest registration first."""
    return list(await session.execute(select(*_SUMMARY).where(SCORECARDS.c.tenant == tenant)
                                      .order_by(SCORECARDS.c.registered_at.desc(), SCORECARDS.c.version.desc())
                                      .limit(limit)))


async def scorecard(session: AsyncSession, tenant: str, version: str) -> Any | None:
    """One registered version with its document."""
    return (await session.execute(select(SCORECARDS).where(SCORECARDS.c.tenant == tenant,
                                                           SCORECARDS.c.version == version))).one_or_none()


async def scorecard_documents(session: AsyncSession, keys: Collection[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The documents of these (tenant, version)s."""
    if not keys:
        return {}
    wanted = keys_table(tenant=[t for t, _ in keys], version=[v for _, v in keys])
    rows = await session.execute(
        select(SCORECARDS.c.tenant, SCORECARDS.c.version, SCORECARDS.c.document)
        .select_from(SCORECARDS.join(wanted, and_(SCORECARDS.c.tenant == wanted.c.tenant,
                                                  SCORECARDS.c.version == wanted.c.version))))
    return {(r.tenant, r.version): r.document for r in rows}


async def live_promotions(session: AsyncSession, tenants: Collection[str]) -> list[Any]:
    """The newest promotion of each of these tenants that promoted a scorecard."""
    if not tenants:
        return []
    return list(await session.execute(
        select(PROMOTIONS).distinct(PROMOTIONS.c.tenant).where(any_of(PROMOTIONS.c.tenant, list(tenants)))
        .order_by(PROMOTIONS.c.tenant, PROMOTIONS.c.id.desc())))


async def add_promotion(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return (await session.execute(insert(PROMOTIONS).values(**values).returning(*PROMOTIONS.c))).one()
