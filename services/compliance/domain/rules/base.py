"""The rule engine's vocabulary (``../shared/DESIGN.md``, "Compliance rules"): what a rule sees about one
contact (:class:`ContactContext`), what it answers (:class:`RuleResult`), what a rule is (:class:`Rule`),
and a tenant's choice of packs and tightened parameters (:class:`Policy`).

Pure: no SQL, HTTP or Kafka. The service assembles one context per request from a handful of queries per
batch (the contact ledger, holds, suppressions, consents, calendars, agencies) and hands it here.

Times are aware datetimes in UTC; a rule that counts "per day" counts the customer's local day in
``ContactContext.time_zone`` (caps reset at local midnight).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol

from shared.contracts.events import Channel

Verdict = Literal["allow", "defer", "block"]


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict on one contact at one instant. ``retry_at``, for ``defer`` only, is the earliest
    instant at which this rule alone would allow it."""

    rule_id: str
    pack: str
    verdict: Verdict
    reason: str
    retry_at: datetime | None = None


class Party(StrEnum):
    """Whom a contact point belongs to (CN-3P)."""

    DEBTOR = "debtor"
    GUARANTOR = "guarantor"
    CONTACT_PERSON = "contact_person"  # a third party: no debt details, only when the debtor is unreachable


class HoldKind(StrEnum):
    """Why automated collection contact is held (HOUSE-HOLDS, US-VALID, US-CEASE, UK-BS, UK-VULN, CN-COMPLAINT)."""

    PLAN = "plan"                        # a repayment plan in good standing
    PROMISE = "promise"                  # an open promise to pay
    DISPUTE = "dispute"
    COMPLAINT = "complaint"              # an open complaint: human review only
    VALIDATION = "validation"            # US validation period after a dispute, until verified
    HARDSHIP = "hardship"
    BREATHING_SPACE = "breathing_space"  # UK, 60 days
    MENTAL_HEALTH = "mental_health"      # UK mental-health crisis moratorium
    VULNERABILITY = "vulnerability"
    DECEASED = "deceased"
    BANKRUPT = "bankrupt"
    CEASE = "cease"                      # a written cease request (US-CEASE)


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold on an account (``account_id``) or on all of a customer's accounts (``account_id`` None)."""

    kind: HoldKind
    starts_at: datetime
    ends_at: datetime | None  # None: until lifted
    reason: str
    account_id: str | None = None

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


class SuppressionKind(StrEnum):
    """Why a contact point may not be used (or not at some times)."""

    OPT_OUT = "opt_out"                  # "TD", "STOP", an unsubscribe link (US-EOPTOUT)
    DO_NOT_CALL = "do_not_call"
    INCONVENIENT_TIME = "inconvenient_time"  # a local window the customer called inconvenient (US-HOURS)
    REFUSED = "refused"                  # a contact person refused to be contacted (CN-3P): for good


@dataclass(frozen=True, slots=True)
class Suppression:
    """A suppression of one contact point (``destination_hash``) or of the customer (None), for one channel
    or all (None). ``local_start``/``local_end`` only for INCONVENIENT_TIME: the local window [start, end)
    (it may wrap midnight)."""

    kind: SuppressionKind
    channel: Channel | None
    destination_hash: str | None
    source: str
    at: datetime
    local_start: time | None = None
    local_end: time | None = None


class ConsentKind(StrEnum):
    """What a customer agreed to."""

    AUTOMATED = "automated"  # US-TCPA prior express consent for autodialed calls / texts to a mobile
    WINDOW = "window"        # CN-HOURS: the debtor agreed another contact window


@dataclass(frozen=True, slots=True)
class Consent:
    """A consent for a channel (and contact point), with when it was given and, if so, revoked."""

    kind: ConsentKind
    channel: Channel
    destination_hash: str | None
    granted_at: datetime
    revoked_at: datetime | None = None
    local_start: time | None = None  # WINDOW only
    local_end: time | None = None

    def active_at(self, at: datetime) -> bool:
        return self.granted_at <= at and (self.revoked_at is None or at < self.revoked_at)


@dataclass(frozen=True, slots=True)
class LedgerView:
    """The contact ledger as one contact needs it: instants of past events (UTC), newest last, covering at
    least the trailing 8 days, so a rule can count at any candidate instant."""

    # dial attempts to this phone number that got no answer (CN-ATTEMPTS)
    number_unanswered: tuple[datetime, ...] = ()
    # effective conversations (human or AI voice) with this borrower, any account, lender or agency (CN-CONNECTS)
    borrower_connects: tuple[datetime, ...] = ()
    # calls placed for this debt (account) (US-7IN7)
    debt_calls: tuple[datetime, ...] = ()
    # telephone conversations about this debt (US-7IN7)
    debt_conversations: tuple[datetime, ...] = ()
    # contacts approved or made per channel for this borrower across all accounts and lenders (HOUSE-DUP)
    borrower_contacts: Mapping[Channel, tuple[datetime, ...]] = field(default_factory=dict)
    # this contact id was already approved once (HOUSE-DUP: never the same contact twice)
    already_approved: bool = False


@dataclass(frozen=True, slots=True)
class HolidayCalendar:
    """A tenant's days without contact (HOUSE-HOLIDAY): public holidays of its country (from the maintained
    ``holidays`` package, with China's make-up working days counted as working days) plus its own
    overrides. ``days`` maps each day without contact to its name."""

    days: Mapping[date, str] = field(default_factory=dict)

    def holiday(self, day: date) -> str | None:
        return self.days.get(day)


@dataclass(frozen=True, slots=True)
class AgencyView:
    """The external agency a contact would be made by (CN-OUTSOURCE)."""

    agency_id: str
    listed: bool                      # on the lender's published list
    evaluated_on: date | None         # last evaluation
    debtor_notified_at: datetime | None  # when the debtor was told the account was assigned to it


@dataclass(frozen=True, slots=True)
class ContactContext:
    """Everything the rules may know about one contact; assembled by the service, per batch."""

    tenant: str
    customer_id: str
    account_id: str
    channel: Channel
    time_zone: str
    borrower_key: str | None = None        # one debtor across accounts and lenders (HMAC; never plaintext)
    contact_id: str | None = None
    destination_hash: str | None = None    # keyed hash of the number or address (never plaintext)
    jurisdiction: str = "CN"               # picks the packs with the tenant policy
    party: Party = Party.DEBTOR
    automated: bool = True                 # sent by the platform (SMS, robocall), not dialled by an agent
    debtor_reachable: bool = True          # CN-3P: a contact person only when the debtor is unreachable
    collectors: int | None = None          # CN-FIELD: collectors on a field visit
    days_past_due: int | None = None
    overdue_minor: int | None = None
    ledger: LedgerView = field(default_factory=LedgerView)
    holds: tuple[Hold, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    consents: tuple[Consent, ...] = ()
    calendar: HolidayCalendar = field(default_factory=HolidayCalendar)
    agency: AgencyView | None = None


class Rule(Protocol):
    """A contact rule. ``channels`` empty: binds every channel. ``params`` is the rule's parameter
    dataclass instance (its defaults are the legal defaults); a tenant may only tighten it."""

    id: ClassVar[str]
    pack: ClassVar[str]                 # CN | US | UK | HOUSE
    channels: ClassVar[frozenset[Channel]]
    source: ClassVar[str]
    unverified: ClassVar[bool]          # rests on secondary sources: a compliance officer should confirm
    summary: ClassVar[str]              # one line for people (docs/compliance.md)

    def evaluate(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        """This rule's verdict on ``ctx`` at instant ``at`` (UTC)."""
        ...

    def loosens(self, params: Any) -> list[str]:
        """Why ``params`` would loosen the legal default (empty: it does not)."""
        ...


@dataclass(frozen=True, slots=True)
class Policy:
    """A tenant's policy: which packs apply per jurisdiction (HOUSE always), and tightened parameters per
    rule id (dataclass instances of that rule's parameters). ``version`` identifies it in decisions."""

    version: int = 0
    packs: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"CN": ("CN",), "US": ("US",),
                                                                           "UK": ("UK",)})
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, the rule that decided, why, when to retry (deferred), and every rule's verdict at the
    moment of the request."""

    outcome: Literal["approved", "deferred", "blocked"]
    rule_id: str
    reason: str
    retry_at: datetime | None
    evaluated: list[RuleResult] = field(default_factory=list)
    policy_version: int = 0
