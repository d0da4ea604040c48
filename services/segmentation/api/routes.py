"""Partner REST: push overdue events and payments in batches, read account status."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.segmentation import service
from shared.contracts import topics
from shared.contracts.events import AccountOverdueV1, InstalmentDueV1, PaymentReceivedV1, TimeZone
from shared.crypto import PiiCipher
from shared.deps import CipherDep, SessionDep, TenantDep, UowDep

router = APIRouter(prefix="/v1", tags=["partners"])
MAX_BATCH = 1000
MAX_EVENT_ID = 200  # CloudEvent.id (shared/contracts/envelope.py)


class ContactIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    address: str | None = Field(default=None, max_length=500)
    national_id: str | None = Field(default=None, min_length=4, max_length=64,
                                    description="National ID number; sealed at once, and (as a keyed hash) it "
                                                "identifies the debtor across accounts and lenders")
    time_zone: TimeZone = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"


class OverdueIn(AccountOverdueV1):
    """An overdue account as a partner sends it: the contract's fields and checks, with contact data in
    plaintext (over TLS) that we seal before storing or publishing; the tenant comes from the API key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                 description="Your id; resending it is a no-op")
    tenant: str | None = None  # type: ignore[assignment]
    contact: ContactIn  # type: ignore[assignment]


class DueIn(InstalmentDueV1):
    """An instalment falling due soon, as a partner sends it (the early warning): the contract's fields and checks,
    contact data in plaintext (over TLS) that we seal; the tenant comes from the API key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                 description="Your id; resending it is a no-op")
    tenant: str | None = None  # type: ignore[assignment]
    contact: ContactIn  # type: ignore[assignment]


class PaymentIn(PaymentReceivedV1):
    """A payment as a partner sends it; the tenant comes from the API key."""

    event_id: str | None = Field(default=None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                 description="Your id; resending it is a no-op")
    tenant: str | None = None  # type: ignore[assignment]


class BatchIn(BaseModel):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ItemResult(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    event_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]


def _seal_account(item: OverdueIn | DueIn, tenant: str, cipher: PiiCipher) -> AccountOverdueV1 | InstalmentDueV1:
    c = item.contact
    contact = {"name": cipher.seal(c.name, context=tenant), "phone": cipher.seal_optional(c.phone, context=tenant),
               "email": cipher.seal_optional(c.email, context=tenant),
               "address": cipher.seal_optional(c.address, context=tenant),
               "national_id": cipher.seal_optional(c.national_id, context=tenant),
               "time_zone": c.time_zone, "locale": c.locale}
    data = item.model_dump(exclude={"event_id", "tenant", "contact"}) | {"tenant": tenant, "contact": contact}
    return (AccountOverdueV1 if isinstance(item, OverdueIn) else InstalmentDueV1).model_validate(data)


async def _ingest(uow: UowDep, cipher: PiiCipher, tenant: str, batch: BatchIn,
                  kind: Literal["overdue", "due", "payment"]) -> BatchResult:
    """Validate and seal each item on its own; the accepted ones are published in one unit of work."""
    topic = {"overdue": topics.ACCOUNT_OVERDUE, "due": topics.INSTALMENT_DUE, "payment": topics.PAYMENT_RECEIVED}[kind]
    models: dict[str, type[OverdueIn] | type[DueIn] | type[PaymentIn]] = {
        "overdue": OverdueIn, "due": DueIn, "payment": PaymentIn}
    model = models[kind]
    results: list[ItemResult] = []
    accepted: list[tuple[ItemResult, service.PartnerEvent]] = []
    for index, raw in enumerate(batch.events):
        try:
            item = model.model_validate(raw)
            if item.tenant not in (None, tenant):
                results.append(ItemResult(index=index, status="rejected", errors=[
                    {"loc": ["tenant"], "msg": "you may only submit events for your own tenant"}]))
                continue
            payload = (
                PaymentReceivedV1.model_validate(item.model_dump(exclude={"event_id"}) | {"tenant": tenant})
                if isinstance(item, PaymentIn) else _seal_account(item, tenant, cipher))
        except ValidationError as exc:
            results.append(ItemResult(index=index, status="rejected", errors=_errors(exc)))
            continue
        # A partner-chosen id makes a resent batch harmless: consumers dedupe on it. A payment without
        # one is identified by its payment id, so re-posting it can never count it twice.
        partner_id = item.event_id or (f"payment-{item.payment_id}" if isinstance(item, PaymentIn) else None)
        event_id = f"{tenant}:{kind}:{partner_id}" if partner_id else None
        if event_id is not None and len(event_id) > MAX_EVENT_ID:
            results.append(ItemResult(index=index, status="rejected", errors=[{
                "loc": ["event_id" if item.event_id else "payment_id"],
                "msg": f"too long: the event id '{tenant}:{kind}:<your id>' must fit in {MAX_EVENT_ID} characters"}]))
            continue
        result = ItemResult(index=index, status="accepted")
        results.append(result)
        accepted.append((result, service.PartnerEvent(topic, payload, subject=item.account_id, event_id=event_id)))
    if kind == "payment" and accepted:
        accepted = await _refuse_currency_mismatches(uow, tenant, accepted)
    if accepted:
        ids = service.accept_partner_events(uow, events=[e for _, e in accepted])
        await uow.commit()
        for (result, _), event_id in zip(accepted, ids, strict=True):
            result.event_id = event_id
    n = sum(r.status == "accepted" for r in results)
    return BatchResult(accepted=n, rejected=len(results) - n, results=results)


async def _refuse_currency_mismatches(uow: UowDep, tenant: str,
                                      accepted: list[tuple[ItemResult, service.PartnerEvent]]
                                      ) -> list[tuple[ItemResult, service.PartnerEvent]]:
    """A payment in another currency than its (known) account is rejected here, never silently ignored."""
    known = await service.account_currencies(uow.session, tenant=tenant,
                                             account_ids=[e.subject for _, e in accepted])
    kept = []
    for result, event in accepted:
        currency = getattr(event.payload, "currency", None)
        if event.subject in known and known[event.subject] != currency:
            result.status, result.errors = "rejected", [{
                "loc": ["currency"], "msg": f"account {event.subject} is in {known[event.subject]}, not {currency}"}]
            continue
        kept.append((result, event))
    return kept


@router.post("/overdue-events", response_model=BatchResult)
async def submit_overdue_events(uow: UowDep, cipher: CipherDep, tenant: TenantDep, batch: BatchIn) -> BatchResult:
    """Push up to 1,000 overdue accounts; each item is accepted or rejected on its own."""
    return await _ingest(uow, cipher, tenant, batch, "overdue")


@router.post("/due-events", response_model=BatchResult)
async def submit_due_events(uow: UowDep, cipher: CipherDep, tenant: TenantDep, batch: BatchIn) -> BatchResult:
    """Push up to 1,000 instalments falling due soon (the early warning: docs/strategies.md); each item is
    accepted or rejected on its own. Published as core.instalment-due.v1: the account is scored and classified as
    of now, with a negative DPD, and a strategy's pre-due steps apply."""
    return await _ingest(uow, cipher, tenant, batch, "due")


@router.post("/payments", response_model=BatchResult)
async def submit_payments(uow: UowDep, cipher: CipherDep, tenant: TenantDep, batch: BatchIn) -> BatchResult:
    """Push up to 1,000 payments; each item is accepted or rejected on its own."""
    return await _ingest(uow, cipher, tenant, batch, "payment")


class ScoreReasonOut(BaseModel):
    code: str = Field(description="e.g. DPD, RATING, SCORE, PAY_90D (docs/scoring.md)")
    text: str


class ScoreOut(BaseModel):
    """The repayment-propensity score of the account's newest snapshot (docs/scoring.md)."""

    scorecard: str = Field(description="The scorecard version that scored it")
    points: int = Field(description="Higher: more likely to cure")
    probability: Decimal = Field(description="The probability of curing within 30 days, 4 decimal places")
    reasons: list[ScoreReasonOut] = Field(description="Up to three: what cost the most points, the costliest first")


class AccountPublic(BaseModel):
    """An account now: the newest overdue snapshot's amounts less the payments booked after it (``as_of``)."""

    tenant: str
    account_id: str
    account_ref: str | None
    customer_id: str
    product: str
    currency: str
    outstanding_minor: int
    overdue_minor: int
    days_past_due: int
    due_date: date
    segment: str
    dpd_bucket: str
    status: str = Field(description="`overdue`; `due` (an instalment announced before its due date, not yet "
                                    "paid); `cured` (paid)")
    phone_masked: str | None
    email_masked: str | None
    time_zone: str
    co_lenders: list[dict[str, Any]]
    access: Literal["servicer", "co-lender"]
    score: ScoreOut | None = Field(description="null: not scored yet (a snapshot from before scoring existed)")


def _score(a: Any) -> ScoreOut | None:
    if a.scorecard_version is None or a.score_points is None or a.score_probability is None:
        return None
    return ScoreOut(scorecard=a.scorecard_version, points=a.score_points, probability=a.score_probability,
                    reasons=[ScoreReasonOut(code=r["code"], text=r["text"]) for r in a.score_reasons or ()])


def _mask(value: str | None, keep: int = 4) -> str | None:
    if value is None:
        return None
    if "@" in value:
        user, _, domain = value.partition("@")
        return f"{user[:1]}***@{domain}"
    return "*" * max(len(value) - keep, 0) + value[-keep:]


@router.get("/accounts/{account_id}", response_model=AccountPublic)
async def get_account(session: SessionDep, cipher: CipherDep, tenant: TenantDep, account_id: str) -> AccountPublic:
    """An account's collection status, for its servicer or one of its co-lenders (who see the same, score
    included)."""
    a, access = await service.account_for(session, tenant=tenant, account_id=account_id)
    return AccountPublic(
        tenant=a.tenant, account_id=a.account_id, account_ref=a.account_ref, customer_id=a.customer_id,
        product=a.product, currency=a.currency, outstanding_minor=a.outstanding_minor, overdue_minor=a.overdue_minor,
        days_past_due=a.days_past_due, due_date=a.due_date, segment=a.segment, dpd_bucket=a.dpd_bucket,
        status=a.status, phone_masked=_mask(cipher.open_optional(a.phone_sealed, context=a.tenant)),
        email_masked=_mask(cipher.open_optional(a.email_sealed, context=a.tenant)), time_zone=a.time_zone,
        co_lenders=a.co_lenders, access=access, score=_score(a),
    )
