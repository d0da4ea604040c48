"""Versioned event payloads, one model per topic. Money is integer minor units + ISO 4217."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from shared.crypto import is_sealed
from shared.money import is_currency


def _require_sealed(value: str) -> str:
    if not is_sealed(value):
        raise ValueError("PII must be sealed (pii:v1:<key id>:<data>), never plaintext on the bus")
    return value


def _require_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    # OSError: 'Asia' names a directory of the zone database, a very long name is too long for a path
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


Sealed = Annotated[str, AfterValidator(_require_sealed)]
TimeZone = Annotated[str, AfterValidator(_require_zone)]
def _require_currency(value: str) -> str:
    if not is_currency(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code with a minor unit")
    return value


Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$"), AfterValidator(_require_currency)]
# an identifier: no control characters (a NUL cannot be stored in PostgreSQL text: a poison message downstream)
Ident = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
# Money in minor units: at most 10^15 (ten trillion in a two-decimal currency), so sums of a plan's
# instalments stay far inside PostgreSQL's BIGINT and every JSON encoder's 64-bit integers.
MAX_MINOR = 10**15
TenantId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
# What the customer recognises the account by, as the lender shows it: the last 2-6 letters or digits of
# the card or account number ("1234" is shown as 尾号1234 / "ending 1234"). Longer values are refused,
# so a full card or account number can never travel in clear.
AccountRef = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{2,6}$")]
# One debtor across accounts and lenders, as a keyed hash (shared/identity.py): never a plaintext identifier.
BorrowerKey = Annotated[str, Field(pattern=r"^bk1:[0-9a-f]{32}$")]
ContactPointKey = Annotated[str, Field(pattern=r"^cp1:[0-9a-f]{32}$")]


class Payload(BaseModel):
    """Base of every event payload: strict (unknown fields refused) and immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Channel(StrEnum):
    """How a contact is made."""

    SMS = "sms"
    EMAIL = "email"
    CALL = "call"
    FIELD = "field"


class Segment(StrEnum):
    """A customer's collection segment."""

    PRIME = "prime"
    STANDARD = "standard"
    HIGH_RISK = "high_risk"


class CustomerContact(Payload):
    """Contact points; every PII field is sealed with shared.crypto, bound to the tenant."""

    name: Sealed
    phone: Sealed | None = None
    email: Sealed | None = None
    address: Sealed | None = None
    national_id: Sealed | None = None
    time_zone: TimeZone = "Asia/Shanghai"
    locale: Literal["zh-CN", "en"] = "zh-CN"


class CoLender(Payload):
    """A co-lender of an account and its share of the loan: ``share_bp`` in basis points (1-10,000), or the older
    ``share`` as a fraction (0.3); give either (both must then agree). The servicer (the event's tenant) holds
    what the co-lenders do not: all shares, the servicer's included, add up to 10,000 basis points."""

    tenant: TenantId
    share: Decimal | None = Field(default=None, gt=0, le=1, description=(
        "The co-lender's share as a fraction of 1 (`\"0.3\"`), a whole number of basis points; the older form of "
        "`share_bp`, still accepted; filled in from `share_bp` when absent."))
    share_bp: int | None = Field(default=None, ge=1, le=10_000, strict=True, description=(
        "The co-lender's share in basis points (3000 = 30%); filled in from `share` when absent. Payments are "
        "split by these shares (docs/plans.md, \"Co-lending\")."))

    @model_validator(mode="before")
    @classmethod
    def _one_share(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        share, share_bp = data.get("share"), data.get("share_bp")
        if share is None and share_bp is None:
            raise ValueError("give the co-lender's share_bp (basis points, 1-10000) or share (a fraction, 0.3)")
        if share_bp is None and share is not None and not isinstance(share, bool):
            try:
                bp = Decimal(str(share)) * 10_000
            except ArithmeticError:
                return data  # the field's own validation names it
            if bp == bp.to_integral_value():
                data = {**data, "share_bp": int(bp)}
            else:
                raise ValueError(f"share {share} is not a whole number of basis points: send share_bp")
        elif share is None and isinstance(share_bp, int) and not isinstance(share_bp, bool):
            data = {**data, "share": Decimal(share_bp) / 10_000}
        return data

    @model_validator(mode="after")
    def _shares_agree(self) -> CoLender:
        if self.share is not None and self.share_bp is not None and self.share * 10_000 != self.share_bp:
            raise ValueError(f"share {self.share} and share_bp {self.share_bp} disagree: send one of them")
        return self


class AccountOverdueV1(Payload):
    """core.account-overdue.v1: an account is past due, or its DPD changed."""

    tenant: TenantId
    account_id: Ident
    customer_id: Ident
    product: str = Field(min_length=1, max_length=64)
    currency: Currency
    outstanding_minor: int = Field(ge=0, le=MAX_MINOR)
    overdue_minor: int = Field(gt=0, le=MAX_MINOR)
    days_past_due: int = Field(ge=0, le=36500)
    due_date: date
    credit_rating: Literal["A", "B", "C", "D", "E"] | None = None
    credit_score: int | None = Field(default=None, ge=300, le=950)
    contact: CustomerContact
    co_lenders: list[CoLender] = Field(default_factory=list, max_length=20)
    account_ref: AccountRef | None = None

    @model_validator(mode="after")
    def _check(self) -> AccountOverdueV1:
        _check_account(self.credit_rating, self.credit_score, self.co_lenders, part=self.overdue_minor,
                       whole=self.outstanding_minor, part_name="overdue_minor", tenant=self.tenant)
        return self


def _check_account(rating: str | None, score: int | None, co_lenders: list[CoLender], *, part: int, whole: int,
                   part_name: str, tenant: str) -> None:
    if rating is None and score is None:
        raise ValueError("give credit_rating (A-E) or credit_score (300-950), or both")
    if part > whole:
        raise ValueError(f"{part_name} cannot exceed outstanding_minor")
    if sum(c.share_bp or 0 for c in co_lenders) > 10_000:
        raise ValueError("co-lender shares add up to more than 10,000 basis points (1)")
    if any(c.tenant == tenant for c in co_lenders):
        raise ValueError("the servicer (the event's tenant) is not listed as a co-lender: it holds the shares the "
                         "co-lenders do not")
    if len({c.tenant for c in co_lenders}) != len(co_lenders):
        raise ValueError("a co-lender is listed twice: give each one once, with its whole share")


class InstalmentDueV1(Payload):
    """core.instalment-due.v1: an instalment of an account falls due soon (core banking, some days before its due
    date), so the platform scores the account and a strategy can act before the due date for high-risk
    customers (the early warning)."""

    tenant: TenantId
    account_id: Ident
    customer_id: Ident
    product: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
    currency: Currency
    outstanding_minor: int = Field(ge=0, le=MAX_MINOR, strict=True)
    amount_due_minor: int = Field(gt=0, le=MAX_MINOR, strict=True)
    due_date: date = Field(ge=date(1970, 1, 1), le=date(2999, 12, 31))
    credit_rating: Literal["A", "B", "C", "D", "E"] | None = None
    credit_score: int | None = Field(default=None, ge=300, le=950)
    contact: CustomerContact
    co_lenders: list[CoLender] = Field(default_factory=list, max_length=20)
    account_ref: AccountRef | None = None

    @model_validator(mode="after")
    def _check(self) -> InstalmentDueV1:
        _check_account(self.credit_rating, self.credit_score, self.co_lenders, part=self.amount_due_minor,
                       whole=self.outstanding_minor, part_name="amount_due_minor", tenant=self.tenant)
        return self


class PaymentReceivedV1(Payload):
    """core.payment-received.v1: money arrived on an account."""

    tenant: TenantId
    account_id: Ident
    customer_id: Ident
    payment_id: Ident
    amount_minor: int = Field(gt=0, le=MAX_MINOR)
    currency: Currency
    paid_at: datetime


class PropensityScore(Payload):
    """A repayment-propensity score (docs/scoring.md): the scorecard version, its points, the probability of
    curing within 30 days, and the codes of the reasons that cost the most points."""

    scorecard: str = Field(min_length=1, max_length=64)
    points: int = Field(ge=-100_000, le=100_000)
    probability: Decimal = Field(ge=0, le=1, max_digits=5, decimal_places=4)
    reasons: list[str] = Field(default_factory=list, max_length=5)


class AccountSegmentedV1(Payload):
    """segmentation.account-segmented.v1: an overdue account was (re)classified."""

    tenant: TenantId
    account_id: Ident
    customer_id: Ident
    segment: Segment
    dpd_bucket: str
    days_past_due: int
    due_date: date
    currency: Currency
    overdue_minor: int
    outstanding_minor: int
    reason: str
    contact: CustomerContact
    account_ref: AccountRef | None = None
    borrower_key: BorrowerKey | None = None
    # the time of the overdue fact this classification is of (its event time): payments made after it
    # are not yet in ``overdue_minor``. None from producers older than this field: the envelope's time.
    as_of: datetime | None = None
    # additive: the account's repayment-propensity score at ``as_of``; None when no scorecard scored it
    score: PropensityScore | None = None


class ContactRequestV1(Payload):
    """scheduler.contact-requested.v1: the scheduler wants this contact made now."""

    tenant: TenantId
    contact_id: Ident
    attempt: int = Field(ge=1)
    account_id: Ident
    customer_id: Ident
    channel: Channel
    treatment_step: str
    segment: Segment
    days_past_due: int
    destination: Sealed | None
    time_zone: TimeZone
    locale: Literal["zh-CN", "en"]
    template_id: str
    currency: Currency
    overdue_minor: int
    due_date: date
    requested_at: datetime
    account_ref: AccountRef | None = None
    borrower_key: BorrowerKey | None = None


class ContactApprovedV1(Payload):
    """compliance.contact-approved.v1: the contact may be made now."""

    decision_id: Ident
    request: ContactRequestV1


class ContactRejectedV1(Payload):
    """compliance.contact-rejected.v1: blocked, or deferred to ``retry_at``."""

    tenant: TenantId
    decision_id: Ident
    contact_id: Ident
    attempt: int
    account_id: Ident
    customer_id: Ident
    channel: Channel
    rule_id: str
    reason: str
    retry_at: datetime | None


class PromiseToPay(Payload):
    """What a customer promised on a call: this amount, in this currency, paid by the end of ``due_on`` (the
    customer's local day)."""

    amount_minor: int = Field(gt=0, le=MAX_MINOR)
    currency: Currency
    due_on: date


class ContactOutcomeV1(Payload):
    """channels.contact-outcome.v1: what happened to an approved contact: a provider's answer, or a dialer's or
    agent's call result (docs/events.md: the outcome values)."""

    tenant: TenantId
    contact_id: Ident
    account_id: Ident
    customer_id: Ident
    channel: Channel
    # additive: dialers and agents report the call outcomes (no_answer ... right_party_contact) too
    outcome: Literal["sent", "delivered", "failed", "task_created", "unknown", "revoked", "no_answer", "busy",
                     "voicemail", "connected", "right_party_contact"]
    provider_ref: str | None = None
    detail: str | None = None
    occurred_at: datetime
    borrower_key: BorrowerKey | None = None
    # additive: a promise to pay made in the conversation (``connected`` or ``right_party_contact`` only)
    promise: PromiseToPay | None = None

    @model_validator(mode="after")
    def _promise_in_a_conversation(self) -> ContactOutcomeV1:
        if self.promise is not None and self.outcome not in ("connected", "right_party_contact"):
            raise ValueError("a promise to pay comes with a conversation: outcome connected or right_party_contact")
        return self


class HoldChangedV1(Payload):
    """compliance.hold-changed.v1: a hold on automated contact was placed on (or lifted from) an account, or
    all of a customer's accounts when ``account_id`` is absent. Channels revokes contacts approved for
    it but not yet sent."""

    tenant: TenantId
    hold_id: Ident
    customer_id: Ident
    account_id: Ident | None = None
    kind: str = Field(min_length=1, max_length=32)
    action: Literal["placed", "lifted"]
    reason: str = Field(max_length=500)
    starts_at: datetime
    ends_at: datetime | None = None
    occurred_at: datetime


class ContactOptOutV1(Payload):
    """channels.opt-out.v1: a customer asked for no more messages to a contact point: a reply such as
    ``TD`` / ``退订`` / ``STOP`` to our SMS. Compliance suppresses that contact point for the tenant at once."""

    tenant: TenantId
    customer_id: Ident
    channel: Channel
    destination_key: ContactPointKey
    keyword: str = Field(min_length=1, max_length=32)
    message_id: Ident
    received_at: datetime
    source: Literal["sms-reply", "email-link"]


class Instalment(Payload):
    """One instalment of a repayment plan."""

    seq: int = Field(ge=1)
    due_date: date
    amount_minor: int = Field(gt=0, le=MAX_MINOR)


class PlanEventV1(Payload):
    """plans.plan-event.v1: a repayment plan was agreed, cancelled, completed or broken."""

    tenant: TenantId
    plan_id: Ident
    account_id: Ident
    customer_id: Ident
    kind: Literal["agreed", "cancelled", "completed", "broken"]
    currency: Currency
    total_minor: int = Field(ge=0, le=60 * MAX_MINOR)
    instalments: list[Instalment]
    occurred_at: datetime


class PromiseEventV1(Payload):
    """plans.promise-event.v1: a promise to pay recorded in plans (by an agent, the customer on the portal, a
    strategy step or a partner) was made, or became kept, partial, broken or cancelled (docs/plans.md,
    "Promises to pay"). The scheduler pauses the treatment while it is open; compliance holds on it."""

    tenant: TenantId
    promise_id: Ident
    account_id: Ident
    customer_id: Ident
    status: Literal["open", "kept", "partial", "broken", "cancelled"] = Field(description=(
        "`open` when made; then `kept` (payments reached the amount by the deadline), `partial` (some but not "
        "all), `broken` (none) or `cancelled`."))
    source: Literal["agent", "portal", "strategy", "partner"] = Field(description="Who recorded the promise.")
    currency: Currency
    amount_minor: int = Field(gt=0, le=MAX_MINOR, description="The amount promised, in minor units.")
    paid_minor: int = Field(ge=0, le=60 * MAX_MINOR, description=(
        "Payments counted towards the promise so far (booked since it was made, by its deadline)."))
    due_on: date = Field(description="The customer's local day by the end of which the amount is promised.")
    deadline: datetime = Field(description=(
        "The end of `due_on` plus the grace days, in the customer's time zone, as UTC: the promise is decided "
        "then at the latest."))
    made_at: datetime = Field(description="When the promise was made.")
    occurred_at: datetime


class WrittenOffShare(Payload):
    """One lender's part of a written-off amount (the servicer's included)."""

    lender: TenantId = Field(description="The lender's tenant id: the servicer or a co-lender.")
    share_bp: int = Field(ge=1, le=10_000, description="Its share of the loan in basis points.")
    amount_minor: int = Field(ge=0, le=MAX_MINOR, description="Its part of the written-off amount, in minor units.")


class WriteOffV1(Payload):
    """plans.write-off.v1: an approved settlement or waiver was fulfilled, so core banking writes off the rest:
    ``amount_minor`` of the account's balance is forgiven (split between its lenders by share)."""

    tenant: TenantId
    write_off_id: Ident
    plan_id: Ident
    account_id: Ident
    customer_id: Ident
    kind: Literal["settlement", "waiver"] = Field(description=(
        "`settlement`: the customer paid the agreed part of the balance; `waiver`: interest or fees waived."))
    currency: Currency
    amount_minor: int = Field(gt=0, le=MAX_MINOR, description="The amount written off, in minor units.")
    shares: list[WrittenOffShare] = Field(max_length=21, description=(
        "How the amount splits between the lenders, by share (docs/plans.md, \"Co-lending\"); adds up to "
        "`amount_minor` exactly."))
    approved_by: list[str] = Field(max_length=10, description="The principals who approved the agreement.")
    occurred_at: datetime


class CustomerRequestV1(Payload):
    """plans.customer-request.v1: the customer asked for something on the self-service portal that compliance
    acts on: ``hardship`` (a hold on contact, routed to a human), ``complaint`` (a complaint whose answer clock
    starts now) or ``opt_out`` (no more messages on ``channel``)."""

    tenant: TenantId
    request_id: Ident
    account_id: Ident
    customer_id: Ident
    kind: Literal["hardship", "complaint", "opt_out"] = Field(description=(
        "`hardship` places a hold, `complaint` files a complaint, `opt_out` stops a channel."))
    channel: Channel | None = Field(default=None, description="The channel opted out of (`opt_out` only).")
    detail: Sealed | None = Field(default=None, description=(
        "What the customer wrote, sealed like any PII (it may name people or circumstances)."))
    occurred_at: datetime

    @model_validator(mode="after")
    def _channel_for_opt_out(self) -> CustomerRequestV1:
        if (self.kind == "opt_out") != (self.channel is not None):
            raise ValueError("an opt_out names its channel; hardship and complaint name none")
        return self


def payload_owner(payload: BaseModel) -> tuple[str, str] | None:
    """The (tenant, customer_id) a payload is about, top level or inside a wrapped request (an approved
    contact); None when it names neither. Reads the instance's fields (a missing attribute on a pydantic model
    takes its slow ``__getattr__`` path: this runs for every event consumed and emitted)."""
    fields = payload.__dict__
    tenant, customer_id = fields.get("tenant"), fields.get("customer_id")
    if tenant is not None and customer_id is not None:
        return str(tenant), str(customer_id)
    request = fields.get("request")
    if isinstance(request, BaseModel):
        return payload_owner(request)
    return None
