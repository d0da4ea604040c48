"""Segmentation's use cases: store and classify overdue accounts, record payments, accept partners'
events, show an account to its servicer or a co-lender; publish, read and try out tenants' segmentation policies.

Facts are kept whatever order they arrive in (docs/events.md, "Keys and ordering"): an account's newest
overdue snapshot (by its event time ``as_of``) and every payment, once, even before the account is
known. The account's balances and status are derived from them (``domain/accounts.py``) whenever a
snapshot or a payment arrives, so the end state never depends on the arrival order.

A snapshot is classified by its tenant's current segmentation policy (``domain/policy.py``; the built-in
``seg-v1`` for a tenant that has published none), read through ``POLICIES`` (``shared/cache.py``: one statement
per batch at most; a policy published through this process applies to its next batch, one published through
another replica within ``ttl`` seconds). The features a policy reads beyond the snapshot (payments, previous
cures, tenure) are computed for the whole batch from batched reads, and only those the policy names.

Before it is classified, a snapshot is scored by its tenant's live repayment-propensity scorecard (the newest
promotion in the registry, else the shipped default; ``SCORECARDS``, the same kind of cache, each version parsed
once), from the features the scorecard is worth points on, computed at the snapshot's time from the same batched
reads; the probability is the policies' ``propensity``. docs/scoring.md.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.db import repository as repo
from services.segmentation.db.models import Account
from services.segmentation.domain.accounts import (
    AccountStatus,
    PaymentFact,
    Snapshot,
    SnapshotFact,
    balances,
    cures_before,
    in_other_currencies,
    supersedes,
)
from services.segmentation.domain.policy import (
    BUILTIN,
    BUILTIN_DOCUMENT,
    Features,
    SegmentationPolicy,
    classify_with,
    parse_document,
)
from services.segmentation.domain.scorecard import Scorecard, features_at, load_default, problems, rounded
from services.segmentation.domain.segments import Classification, rating_of
from shared.cache import TenantCache
from shared.contracts import CloudEvent, topics
from shared.contracts.events import (
    AccountOverdueV1,
    AccountSegmentedV1,
    InstalmentDueV1,
    PaymentReceivedV1,
    PropensityScore,
    Segment,
)
from shared.db import lock_account_keys
from shared.domain import DomainError, NotFound, Refused
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
PARTNER_SOURCE = "urn:gentle-collections:segmentation:partner-api"
AccountKey = tuple[str, str]


class CurrencyMismatch(DomainError):
    status = 422
    title = "Currency mismatch"


async def account_currencies(session: Any, *, tenant: str, account_ids: Sequence[str]) -> dict[str, str]:
    """The stored currency of each of these accounts of the tenant that exists."""
    return await repo.currencies(session, tenant=tenant, account_ids=account_ids)


def _snapshot(account: Mapping[str, Any]) -> Snapshot:
    return Snapshot(account["as_of"], account["due_date"], account["days_past_due"],
                    account["reported_overdue_minor"], account["reported_outstanding_minor"])


async def _derive(uow: UnitOfWork, accounts: Mapping[AccountKey, dict[str, Any]],
                  payments: Mapping[AccountKey, Sequence[Any]] | None = None) -> None:
    """Set each account's balances and status from its snapshot and the payments kept for it (read here unless
    given), in place."""
    if payments is None:
        payments = await repo.payments_of(uow.session, accounts.keys())
    for key, a in accounts.items():
        facts = [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments.get(key, ())]
        if foreign := in_other_currencies(facts, currency=a["currency"]):
            # kept before the account was known; never counted (a later one is refused: CurrencyMismatch)
            log.warning("payments in another currency than their account are not counted", extra={
                "tenant": a["tenant"], "account_id": a["account_id"], "account_currency": a["currency"],
                "payment_currencies": sorted({p.currency for p in foreign}), "count": len(foreign)})
        now = balances(reported_overdue_minor=a["reported_overdue_minor"],
                       reported_outstanding_minor=a["reported_outstanding_minor"], currency=a["currency"],
                       as_of=a["as_of"], payments=facts, days_past_due=a["days_past_due"])
        a.update(overdue_minor=now.overdue_minor, outstanding_minor=now.outstanding_minor, status=now.status.value)


def _account_row(p: AccountOverdueV1, event: CloudEvent) -> dict[str, Any]:
    """The account as the snapshot reports it; the classification, ``first_seen_at`` and (``_derive``) the
    balances and status are added before it is saved."""
    return {
        "as_of": event.time,
        "tenant": p.tenant, "account_id": p.account_id, "customer_id": p.customer_id, "product": p.product,
        "currency": p.currency, "reported_outstanding_minor": p.outstanding_minor,
        "reported_overdue_minor": p.overdue_minor, "days_past_due": p.days_past_due, "due_date": p.due_date,
        "credit_rating": p.credit_rating, "credit_score": p.credit_score, "account_ref": p.account_ref,
        "name_sealed": p.contact.name, "phone_sealed": p.contact.phone, "email_sealed": p.contact.email,
        "address_sealed": p.contact.address, "time_zone": p.contact.time_zone, "locale": p.contact.locale,
        "co_lenders": [x.model_dump(mode="json") for x in p.co_lenders],
    }


def features_of(account: Mapping[str, Any], *, payments: Sequence[Any], snapshots: Sequence[Any] | None,
                uses: Collection[str], propensity: float | None = None) -> Features:
    """What a policy reads about an account (``domain/policy.py`` ``Features``), at its snapshot's time
    (``as_of``), from the stored (or about to be stored) account, the payments kept for it and, when the policy
    counts previous cures, the snapshots recorded in its segment history. ``uses``: the features the policy
    names; the others beyond the snapshot are left unknown (not computed). ``propensity``: the snapshot's score's
    probability (to 4 places), scored before it is classified; None when no scorecard scored it."""
    as_of: datetime = account["as_of"]
    currency = account["currency"]
    payment_times = cures = None
    if "payments" in uses:
        payment_times = tuple(p.paid_at for p in payments if p.currency == currency and p.paid_at <= as_of)
    if "previous_cures" in uses:
        cures = cures_before([SnapshotFact(s.as_of, s.overdue_minor) for s in snapshots or ()],
                             [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments],
                             currency=currency, as_of=as_of)
    return Features(
        rating=rating_of(credit_rating=account["credit_rating"], credit_score=account["credit_score"]),
        days_past_due=account["days_past_due"], credit_score=account["credit_score"], propensity=propensity,
        overdue_minor=account["reported_overdue_minor"], outstanding_minor=account["reported_outstanding_minor"],
        product=account["product"], as_of=as_of, payment_times=payment_times, previous_cures=cures,
        tenure_days=max((as_of - account["first_seen_at"]).days, 0))


@dataclass(frozen=True, slots=True)
class AccountScore:
    """A snapshot's repayment-propensity score: by which scorecard version, its points, the probability (4
    places) and up to three reasons (code, text), the costliest first."""

    scorecard: str
    points: int
    probability: Decimal
    reasons: tuple[tuple[str, str], ...]

    def columns(self) -> dict[str, Any]:
        """As stored on the account and its segment history row."""
        return {"scorecard_version": self.scorecard, "score_points": self.points,
                "score_probability": self.probability,
                "score_reasons": [{"code": code, "text": text} for code, text in self.reasons]}

    def event(self) -> PropensityScore:
        return PropensityScore(scorecard=self.scorecard, points=self.points, probability=self.probability,
                               reasons=[code for code, _ in self.reasons])


NO_SCORE: dict[str, Any] = {"scorecard_version": None, "score_points": None, "score_probability": None,
                            "score_reasons": None}
PAYMENT_FEATURES = frozenset({"payments_last_30d", "payments_last_90d", "previous_cures"})


def score_of(card: Scorecard, account: Mapping[str, Any], *, payments: Iterable[Any],
             snapshots: Sequence[Any] | None) -> AccountScore:
    """Score a snapshot (the stored or about-to-be-stored account) at its time ``as_of`` by event time, from the
    payments kept for it and, when the scorecard counts previous cures, its recorded snapshots; only the features
    the scorecard is worth points on are computed (``domain/scorecard.py`` ``features_at``)."""
    uses = card.uses
    as_of: datetime = account["as_of"]
    currency = account["currency"]
    cures = None
    payments = [p for p in payments if p.currency == currency] if uses & PAYMENT_FEATURES else ()
    if "previous_cures" in uses:
        cures = cures_before([SnapshotFact(s.as_of, s.overdue_minor) for s in snapshots or ()],
                             [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments],
                             currency=currency, as_of=as_of)
    scored = card.score(features_at(
        uses=uses, as_of=as_of, credit_rating=account["credit_rating"], credit_score=account["credit_score"],
        days_past_due=account["days_past_due"], overdue_minor=account["reported_overdue_minor"],
        outstanding_minor=account["reported_outstanding_minor"], product=account["product"],
        payment_times=[p.paid_at for p in payments], previous_cures=cures))
    return AccountScore(card.version, scored.points, rounded(scored.probability),
                        tuple((r.code, r.text) for r in scored.reasons))


async def _classify_all(session: AsyncSession, accounts: Mapping[AccountKey, Mapping[str, Any]],
                        policies: Mapping[str, SegmentationPolicy],
                        payments: Mapping[AccountKey, Sequence[Any]], *,
                        scorecards: Mapping[str, Scorecard] | None = None,
                        propensities: Mapping[AccountKey, Any] | None = None,
                        ) -> dict[AccountKey, tuple[Classification, AccountScore | None]]:
    """Each account scored by its tenant's scorecard in ``scorecards`` (when given), then classified by its
    tenant's policy in ``policies`` with that score's probability as its propensity (else ``propensities``', the
    stored one). The snapshot history is read (one statement) only for the accounts whose tenant's policy or
    scorecard counts previous cures."""
    uses = {tenant: policy.features() for tenant, policy in policies.items()}
    card_uses = {tenant: card.uses for tenant, card in (scorecards or {}).items()}
    wanted = [key for key in accounts
              if "previous_cures" in uses[key[0]] or "previous_cures" in card_uses.get(key[0], ())]
    history = await repo.snapshots_classified(session, wanted) if wanted else {}
    decided: dict[AccountKey, tuple[Classification, AccountScore | None]] = {}
    for key, a in accounts.items():
        score = None
        propensity: float | None
        if scorecards is not None:
            score = score_of(scorecards[key[0]], a, payments=payments.get(key, ()), snapshots=history.get(key))
            propensity = float(score.probability)
        else:
            stored = (propensities or {}).get(key)
            propensity = None if stored is None else float(stored)
        decided[key] = (classify_with(policies[key[0]], features_of(
            a, payments=payments.get(key, ()), snapshots=history.get(key), uses=uses[key[0]],
            propensity=propensity)), score)
    return decided


BorrowerKeyOf = Callable[[AccountOverdueV1], str | None]


async def record_overdue(uow: UnitOfWork, *, overdue: Sequence[tuple[AccountOverdueV1, CloudEvent]],
                         borrower_key_of: BorrowerKeyOf | None = None) -> None:
    """Keep each account's newest snapshot (by event time, in the batch and against what is stored), score it
    by the tenant's live scorecard, classify it by the tenant's segmentation policy (the score's probability is
    its propensity), derive its balances from the payments kept, record the segment change (with the policy
    version and the score) and announce it with the score and the debtor's borrower key (``borrower_key_of``;
    shared/identity.py). An older or repeated snapshot changes nothing but, when it is the earliest yet, the
    account's ``first_seen_at``."""
    latest: dict[AccountKey, tuple[dict[str, Any], AccountOverdueV1, CloudEvent]] = {}
    earliest: dict[AccountKey, datetime] = {}
    for p, event in overdue:
        key = (p.tenant, p.account_id)
        row = _account_row(p, event)
        earliest[key] = min(earliest.get(key, event.time), event.time)
        if key not in latest or supersedes(_snapshot(row), _snapshot(latest[key][0])):
            latest[key] = (row, p, event)
    await lock_account_keys(uow.session, latest.keys())
    stored = await repo.lock_accounts(uow.session, latest.keys())
    fresh = {key: item for key, item in latest.items()
             if supersedes(_snapshot(item[0]), _snapshot(stored[key]._mapping) if key in stored else None)}
    await repo.set_first_seen(uow.session, [
        (*key, earliest[key]) for key, s in stored.items() if key not in fresh and earliest[key] < s.first_seen_at])
    if not fresh:
        return
    rows = {key: row for key, (row, _, _) in fresh.items()}
    for key, row in rows.items():
        row["first_seen_at"] = min(earliest[key], stored[key].first_seen_at) if key in stored else earliest[key]
    tenants = {t for t, _ in fresh}
    policies = {t: tp.policy for t, tp in (await POLICIES.current(uow.session, tenants)).items()}
    cards = {t: live.card for t, live in (await SCORECARDS.current(uow.session, tenants)).items()}
    payments = await repo.payments_of(uow.session, fresh.keys())
    decided = await _classify_all(uow.session, rows, policies, payments, scorecards=cards)
    scores = {key: score.columns() if score else NO_SCORE for key, (_, score) in decided.items()}
    for key, row in rows.items():
        c = decided[key][0]
        row.update(segment=c.segment.value, dpd_bucket=c.dpd_bucket, **scores[key])
    await _derive(uow, rows, payments)
    await repo.save_accounts(uow.session, list(rows.values()))
    await repo.add_segment_changes(uow.session, [
        {"tenant": p.tenant, "account_id": p.account_id, "segment": c.segment.value, "dpd_bucket": c.dpd_bucket,
         "reason": c.reason, "event_id": event.id, "policy_version": c.policy_version, "as_of": event.time,
         "overdue_minor": p.overdue_minor, **scores[key]}
        for key, (_, p, event) in fresh.items() for c in [decided[key][0]]])
    for key, (_, p, event) in fresh.items():
        c, score = decided[key]
        # the snapshot's amounts as reported: the scheduler deducts the payments after ``as_of`` itself
        uow.emit(topics.ACCOUNT_SEGMENTED, AccountSegmentedV1(
            tenant=p.tenant, account_id=p.account_id, customer_id=p.customer_id, segment=c.segment,
            dpd_bucket=c.dpd_bucket, days_past_due=p.days_past_due, due_date=p.due_date, currency=p.currency,
            overdue_minor=p.overdue_minor, outstanding_minor=p.outstanding_minor, reason=c.reason,
            contact=p.contact, account_ref=p.account_ref, as_of=event.time,
            borrower_key=borrower_key_of(p) if borrower_key_of else None,
            score=score.event() if score else None), cause=event, subject=p.account_id)


def _days_left(due: InstalmentDueV1, event: CloudEvent) -> int:
    """Days from the notice's time to the due date, in the customer's time zone (0 on the due date itself)."""
    return (due.due_date - event.time.astimezone(ZoneInfo(due.contact.time_zone)).date()).days


def due_as_snapshot(due: InstalmentDueV1, event: CloudEvent) -> AccountOverdueV1:
    """An instalment announced before its due date as the account's snapshot at the notice's time: the amount
    falling due as its ``overdue_minor`` and the days left as a negative DPD (0 on the due date itself). Built
    without the overdue contract's checks (its DPD is never negative)."""
    fields = due.model_dump(exclude={"amount_due_minor"}) | {
        "overdue_minor": due.amount_due_minor, "days_past_due": min(0, -_days_left(due, event)),
        "contact": due.contact, "co_lenders": due.co_lenders}
    return AccountOverdueV1.model_construct(**fields)


async def record_due(uow: UnitOfWork, *, due: Sequence[tuple[InstalmentDueV1, CloudEvent]],
                     borrower_key_of: BorrowerKeyOf | None = None) -> None:
    """Keep, score, classify and announce instalments announced before their due date exactly as overdue
    snapshots (``record_overdue``), with a negative DPD: the early warning (docs/strategies.md). The newest
    snapshot wins by event time, so the overdue notices after the due date take over. Not an early warning, and
    so ignored (logged): a notice whose due date had passed at its time, and a notice for an account in arrears
    (its overdue notices speak for it: an announced instalment must not hide what is already late)."""
    timely = [(d, event) for d, event in due if _days_left(d, event) >= 0]
    for d, event in due:
        if _days_left(d, event) < 0:
            log.warning("an instalment-due notice for a due date already past is ignored", extra={
                "tenant": d.tenant, "account_id": d.account_id, "due_date": str(d.due_date)})
    keys = {(d.tenant, d.account_id) for d, _ in timely}
    await lock_account_keys(uow.session, keys)
    stored = await repo.lock_accounts(uow.session, keys)
    in_arrears = {key for key, a in stored.items() if a.days_past_due > 0 and a.status == AccountStatus.OVERDUE.value}
    if in_arrears:
        log.info("instalment-due notices for accounts in arrears are ignored", extra={"count": len(in_arrears)})
    await record_overdue(uow, overdue=[(due_as_snapshot(d, event), event) for d, event in timely
                                       if (d.tenant, d.account_id) not in in_arrears],
                         borrower_key_of=borrower_key_of)


async def record_payments(uow: UnitOfWork, *, payments: Sequence[PaymentReceivedV1]) -> None:
    """Keep each payment once (even before its account is known), then derive again the balances of the
    stored accounts that got a new one: a payment booked after the account's snapshot reduces them, and
    clearing the overdue amount cures the account. A new payment in another currency than its stored
    account is refused (``CurrencyMismatch``: the consumer dead-letters it). A payment booked at or before its
    account's snapshot (``as_of``) that arrives after it re-scores the snapshot when the live scorecard counts
    payments, so the stored score does not depend on the arrival order (the segment is not re-classified)."""
    unique: dict[tuple[str, str], PaymentReceivedV1] = {}
    for p in payments:
        unique.setdefault((p.tenant, p.payment_id), p)  # the first one recorded wins, as in the table
    await lock_account_keys(uow.session, {(p.tenant, p.account_id) for p in unique.values()})
    new = await repo.record_payments(uow.session, [
        {"tenant": p.tenant, "payment_id": p.payment_id, "account_id": p.account_id, "amount_minor": p.amount_minor,
         "currency": p.currency, "paid_at": p.paid_at} for p in unique.values()])
    fresh = [p for key, p in unique.items() if key in new]
    stored = await repo.lock_accounts(uow.session, {(p.tenant, p.account_id) for p in fresh})
    accounts = {key: dict(row._mapping) for key, row in stored.items()}
    for p in fresh:
        account = accounts.get((p.tenant, p.account_id))
        if account is not None and account["currency"] != p.currency:
            # never silently ignored: the consumer dead-letters it with this reason
            raise CurrencyMismatch(f"payment {p.payment_id} is in {p.currency}, account {p.account_id} in "
                                   f"{account['currency']}")
    before = {key: (a["overdue_minor"], a["outstanding_minor"], a["status"]) for key, a in accounts.items()}
    kept = await repo.payments_of(uow.session, accounts.keys()) if accounts else {}
    await _derive(uow, accounts, kept)
    await repo.set_balances(uow.session, [
        a for key, a in accounts.items() if (a["overdue_minor"], a["outstanding_minor"], a["status"]) != before[key]])
    late = {key for p in fresh if (key := (p.tenant, p.account_id)) in accounts
            and p.paid_at <= accounts[key]["as_of"]}
    if late:
        await _rescore(uow.session, {key: accounts[key] for key in sorted(late)}, kept)


async def _rescore(session: AsyncSession, accounts: Mapping[AccountKey, Mapping[str, Any]],
                   payments: Mapping[AccountKey, Sequence[Any]]) -> None:
    """Score again, by the live scorecard, the stored snapshots of accounts that got a payment booked before
    them, when that scorecard counts payments (one executemany statement; the history read only for cures)."""
    cards = {t: live.card for t, live in (await SCORECARDS.current(session, {t for t, _ in accounts})).items()}
    wanted = {key: a for key, a in accounts.items() if cards[key[0]].uses & PAYMENT_FEATURES}
    if not wanted:
        return
    cured = [key for key in wanted if "previous_cures" in cards[key[0]].uses]
    history = await repo.snapshots_classified(session, cured) if cured else {}
    await repo.set_scores(session, [
        {"tenant": key[0], "account_id": key[1], **score_of(
            cards[key[0]], a, payments=payments.get(key, ()), snapshots=history.get(key)).columns()}
        for key, a in wanted.items()])


@dataclass(frozen=True, slots=True)
class PartnerEvent:
    """A partner's event, validated and sealed at the edge; ``event_id`` set when the partner named one."""

    topic: topics.Topic
    payload: BaseModel
    subject: str
    event_id: str | None


def accept_partner_events(uow: UnitOfWork, *, events: Sequence[PartnerEvent]) -> list[str]:
    """Publish partners' events to the same topics core banking uses; returns their event ids."""
    return [uow.emit(e.topic, e.payload, subject=e.subject, event_id=e.event_id, source=PARTNER_SOURCE).id
            for e in events]


Access = Literal["servicer", "co-lender"]


async def account_for(session: Any, *, tenant: str, account_id: str) -> tuple[Account, Access]:
    """An account for its servicer, or for one of its co-lenders (who may read it, never act on it)."""
    candidates = await repo.accounts_with_id(session, account_id)
    rows = [a for a in candidates if a.tenant == tenant] or [
        a for a in candidates if any(c.get("tenant") == tenant for c in a.co_lenders)]
    if not rows:
        raise NotFound(f"No account {account_id!r} for your tenant.")
    return rows[0], "servicer" if rows[0].tenant == tenant else "co-lender"


# --- segmentation policies -----------------------------------------------------------------------------------------


class PolicyRefused(Refused):
    """A policy document that cannot be used: every reason, nothing stored."""

    title = "Segmentation policy refused"
    loc = ("body", "document")
    kind = "policy_refused"


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's segmentation policy as the classifier uses it, with the document it came from and who
    published it why (version 0: the built-in ``seg-v1``, nothing published)."""

    tenant: str
    version: int
    policy: SegmentationPolicy
    document: Mapping[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    reason: str | None = None
    created_at: datetime | None = None

    @property
    def label(self) -> str:
        return self.policy.label


def builtin_policy(tenant: str) -> TenantPolicy:
    return TenantPolicy(tenant=tenant, version=0, policy=BUILTIN, document=copy.deepcopy(dict(BUILTIN_DOCUMENT)))


def _from_row(row: Any) -> TenantPolicy:
    policy, errors = parse_document(row.document, version=row.version)
    if policy is None:  # it was valid when published; only a stricter later release could refuse it
        log.error("a published segmentation policy no longer parses; classifying by the built-in seg-v1", extra={
            "tenant": row.tenant, "version": row.version, "errors": errors[:10]})
        policy = BUILTIN
    return TenantPolicy(tenant=row.tenant, version=row.version, policy=policy, document=row.document,
                        created_by=row.created_by, reason=row.reason, created_at=row.created_at)


async def _load(session: AsyncSession, tenants: list[str]) -> dict[str, TenantPolicy]:
    rows = {r.tenant: r for r in await repo.current_policies(session, tenants)}
    return {t: _from_row(rows[t]) if t in rows else builtin_policy(t) for t in tenants}


POLICIES: TenantCache[TenantPolicy] = TenantCache(_load)  # one statement per batch at most, each held 5 s


async def current_policy(session: AsyncSession, tenant: str, *, fresh: bool = False) -> TenantPolicy:
    """The tenant's current policy (``fresh``: as stored now, not this replica's cached copy)."""
    if fresh:
        POLICIES.forget(tenant)
    return (await POLICIES.current(session, [tenant]))[tenant]


async def publish_policy(session: AsyncSession, *, tenant: str, document: Mapping[str, Any], created_by: str,
                         reason: str) -> TenantPolicy:
    """Publish a new version of the tenant's policy (the next number); refused with every reason, storing
    nothing, when the document cannot be used. Applies to the next batch classified (within the cache's ttl on
    other replicas)."""
    latest = await repo.latest_policy_version(session, tenant, lock=True)
    version = latest + 1
    _, errors = parse_document(document, version=version)
    if errors:
        raise PolicyRefused(errors)
    row = await repo.add_policy(session, {"tenant": tenant, "version": version, "document": dict(document),
                                          "created_by": created_by, "reason": reason})
    POLICIES.forget(tenant)
    return _from_row(row)


async def policy_history(session: AsyncSession, tenant: str, *, limit: int) -> list[TenantPolicy]:
    """The versions the tenant published, newest first."""
    return [_from_row(r) for r in await repo.policy_versions(session, tenant, limit=limit)]


MAX_DRY_RUN_SAMPLE = 5000
MAX_DRY_RUN_EXAMPLES = 50


@dataclass(frozen=True, slots=True)
class Move:
    """``accounts`` accounts the current policy puts in ``from_segment`` and the proposed one in ``to_segment``."""

    from_segment: Segment
    to_segment: Segment
    accounts: int


@dataclass(frozen=True, slots=True)
class Example:
    account_id: str
    current: Classification
    proposed: Classification


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a proposed policy would change over a sample of the tenant's accounts, against its current policy."""

    current: TenantPolicy
    proposed: SegmentationPolicy
    sampled: int
    changed: int
    moves: list[Move]
    examples: list[Example]


async def dry_run(session: AsyncSession, *, tenant: str, document: Mapping[str, Any], sample: int) -> DryRun:
    """Classify up to ``sample`` of the tenant's stored accounts (the newest snapshots first) by the proposed
    document and by the current policy, at each account's snapshot time (its propensity: the score stored with
    its snapshot); store nothing. Refused with every reason (``PolicyRefused``) when the document cannot be used.
    Reads: the accounts, their payments and, when either policy counts previous cures, their segment history
    (one statement each)."""
    current = await current_policy(session, tenant, fresh=True)
    proposed, errors = parse_document(document, version=current.version + 1)
    if proposed is None:
        raise PolicyRefused(errors)
    rows = await repo.newest_accounts(session, tenant=tenant, limit=max(1, min(sample, MAX_DRY_RUN_SAMPLE)))
    accounts = {(r.tenant, r.account_id): r._mapping for r in rows}
    payments = await repo.payments_of(session, accounts.keys())
    stored = {key: a["score_probability"] for key, a in accounts.items()}
    before = {key: c for key, (c, _) in (await _classify_all(
        session, accounts, {tenant: current.policy}, payments, propensities=stored)).items()}
    after = {key: c for key, (c, _) in (await _classify_all(
        session, accounts, {tenant: proposed}, payments, propensities=stored)).items()}
    moves = Counter((before[key].segment, after[key].segment) for key in accounts)
    changed = [key for key in accounts if before[key].segment is not after[key].segment]
    order = {s: i for i, s in enumerate(Segment)}
    return DryRun(
        current=current, proposed=proposed, sampled=len(accounts), changed=len(changed),
        moves=[Move(a, b, n) for (a, b), n in sorted(moves.items(), key=lambda m: (order[m[0][0]], order[m[0][1]]))],
        examples=[Example(key[1], before[key], after[key]) for key in changed[:MAX_DRY_RUN_EXAMPLES]])


# --- the scorecard registry ----------------------------------------------------------------------------------------


class ScorecardRefused(Refused):
    """A scorecard document the scorer cannot load: every reason, nothing stored."""

    title = "Scorecard refused"
    loc = ("body", "document")
    kind = "scorecard_refused"


class ScorecardConflict(DomainError):
    status = 409
    title = "Scorecard version already registered"


@cache
def default_scorecard() -> Scorecard:
    """The shipped scorecard (services/segmentation/scorecards/default.json), parsed once."""
    return load_default()


@dataclass(frozen=True, slots=True)
class LiveScorecard:
    """A tenant's live scorecard: the version it promoted last (``source`` "registered", with who promoted it
    why and when), or the shipped default (``source`` "default") when it promoted none."""

    tenant: str
    card: Scorecard
    source: Literal["registered", "default"]
    promoted_by: str | None = None
    reason: str | None = None
    promoted_at: datetime | None = None

    @property
    def version(self) -> str:
        return self.card.version


MAX_PARSED = 1024
_PARSED: dict[tuple[str, str], Scorecard] = {}  # registered versions are immutable: each parsed once


def _parsed(tenant: str, version: str, document: Mapping[str, Any]) -> Scorecard | None:
    card, errors = problems(document)
    if card is None:  # it loaded when registered; only a stricter later release could refuse it
        log.error("a registered scorecard no longer loads; scoring by the shipped default", extra={
            "tenant": tenant, "version": version, "errors": errors[:10]})
        return None
    if len(_PARSED) >= MAX_PARSED:
        _PARSED.clear()
    _PARSED[(tenant, version)] = card
    return card


async def _load_scorecards(session: AsyncSession, tenants: list[str]) -> dict[str, LiveScorecard]:
    """Each tenant's live scorecard: one statement for the promotions, and one for the documents of versions not
    parsed yet (none once every live version has been)."""
    promoted = {r.tenant: r for r in await repo.live_promotions(session, tenants)}
    unparsed = {(r.tenant, r.version) for r in promoted.values() if (r.tenant, r.version) not in _PARSED}
    for (tenant, version), document in (await repo.scorecard_documents(session, unparsed)).items():
        _parsed(tenant, version, document)
    live = {}
    for t in tenants:
        row = promoted.get(t)
        card = _PARSED.get((t, row.version)) if row is not None else None
        live[t] = (LiveScorecard(t, card, "registered", row.promoted_by, row.reason, row.promoted_at)
                   if row is not None and card is not None else LiveScorecard(t, default_scorecard(), "default"))
    return live


SCORECARDS: TenantCache[LiveScorecard] = TenantCache(_load_scorecards)  # one statement per batch at most, held 5 s


async def live_scorecard(session: AsyncSession, tenant: str, *, fresh: bool = False) -> LiveScorecard:
    """The tenant's live scorecard (``fresh``: as stored now, not this replica's cached copy)."""
    if fresh:
        SCORECARDS.forget(tenant)
    return (await SCORECARDS.current(session, [tenant]))[tenant]


def held_out_metrics(document: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out metrics a document reports (AUC, KS, Gini, calibration), None where it reports none."""
    metrics = document.get("metrics")
    held = metrics.get("held_out") if isinstance(metrics, Mapping) else None
    held = held if isinstance(held, Mapping) else {}

    def number(key: str) -> float | None:
        value = held.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    calibration = held.get("calibration")
    return {"auc": number("auc"), "ks": number("ks"), "gini": number("gini"),
            "calibration": calibration if isinstance(calibration, list) else None}


async def register_scorecard(session: AsyncSession, *, tenant: str, document: Mapping[str, Any],
                             registered_by: str, reason: str) -> Any:
    """Register a version of the tenant's scorecard (not live until promoted). Refused with every reason, storing
    nothing, when the scorer cannot load it (``ScorecardRefused``); a version the tenant registered already is a
    conflict (``ScorecardConflict``)."""
    card, errors = problems(document)
    if card is None:
        raise ScorecardRefused(errors)
    row = await repo.add_scorecard(session, {
        "tenant": tenant, "version": card.version, "document": dict(document),
        "features": [f.name for f in card.features if f.name in card.uses], **held_out_metrics(document),
        "registered_by": registered_by, "reason": reason})
    if row is None:
        raise ScorecardConflict(f"Scorecard version {card.version!r} is already registered; a version is "
                                f"immutable: register the new one under another version.")
    return row


async def registered_scorecards(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    """The tenant's registered versions (without documents), the newest first."""
    return await repo.scorecards_of(session, tenant, limit=limit)


async def scorecard_document(session: AsyncSession, *, tenant: str, version: str) -> tuple[Any | None, Scorecard]:
    """A registered version of the tenant (its row and scorecard), or the shipped default under its version when
    the tenant registered none by that name (row None); NotFound otherwise."""
    row = await repo.scorecard(session, tenant, version)
    if row is not None:
        card = _PARSED.get((tenant, version)) or _parsed(tenant, version, row.document)
        if card is not None:
            return row, card
    if version == default_scorecard().version:
        return None, default_scorecard()
    raise NotFound(f"No scorecard {version!r} registered for your tenant.")


async def promote_scorecard(session: AsyncSession, *, tenant: str, version: str, promoted_by: str,
                            reason: str) -> LiveScorecard:
    """Make a registered version the tenant's live scorecard (NotFound for a version it did not register).
    Scores the next snapshots (within the cache's ttl on other replicas); stored scores stay as they were."""
    if await repo.scorecard(session, tenant, version) is None:
        raise NotFound(f"No scorecard {version!r} registered for your tenant: register it first.")
    row = await repo.add_promotion(session, {"tenant": tenant, "version": version, "promoted_by": promoted_by,
                                             "reason": reason})
    SCORECARDS.forget(tenant)  # and again once committed (the route): a batch may load it in between
    _, card = await scorecard_document(session, tenant=tenant, version=version)
    return LiveScorecard(tenant, card, "registered", row.promoted_by, row.reason, row.promoted_at)
