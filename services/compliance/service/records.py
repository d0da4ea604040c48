"""The records compliance keeps (issue 7) and their use cases: the contact ledger (its own approvals and the
channels' outcomes), holds (from plan events, complaints and people), suppressions, consents, the tenant's
calendar, complaints (CN-COMPLAINT), the agency registry (CN-OUTSOURCE), and what is left of a customer's
contact budget today.

Every change records who (``actor``: the name of the API key's principal, docs/access.md; ``plans`` for a plan's
hold) and why.
Destinations arrive in plaintext over REST and are stored only as contact-point keys (``shared/identity.py``);
complaint summaries are sealed with the tenant as associated data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db import repository as repo
from services.compliance.db.models import Complaint, ConsentRow, HoldRow, SuppressionRow
from services.compliance.domain.calendar import public_holidays
from services.compliance.domain.rules import engine
from services.compliance.domain.rules.base import ConsentKind, ContactContext, HoldKind, SuppressionKind
from services.compliance.service import policies
from services.compliance.service.context import (
    CONVERSATIONS,
    NOT_A_CONTACT,
    UNANSWERED,
    first_instants,
    holiday_calendar,
    local_day_bounds,
)
from shared.contracts import CloudEvent, topics
from shared.contracts.events import Channel, ContactOptOutV1, ContactOutcomeV1, HoldChangedV1, PlanEventV1
from shared.crypto import PiiCipher
from shared.domain import DomainError, NotFound
from shared.identity import IdentityKeys
from shared.snapshots import plan_supersedes
from shared.uow import UnitOfWork


class Invalid(DomainError):
    status = 422
    title = "Invalid request"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def announce_hold(uow: UnitOfWork, hold: Any, *, action: str, at: datetime, cause: CloudEvent | None = None) -> None:
    """Tell channels a hold was placed or lifted (``compliance.hold-changed.v1``): it revokes contacts approved
    for the held account and not yet sent."""
    get = hold.get if isinstance(hold, Mapping) else lambda name: getattr(hold, name)
    reason = get("reason") if action == "placed" else (get("lift_reason") or get("reason"))
    uow.emit(topics.HOLD_CHANGED, HoldChangedV1(
        tenant=get("tenant"), hold_id=get("id"), customer_id=get("customer_id"), account_id=get("account_id"),
        kind=get("kind"), action=action, reason=str(reason)[:500], starts_at=get("starts_at"),  # type: ignore[arg-type]
        ends_at=get("ends_at"), occurred_at=at), cause=cause, subject=get("id"))


# --- contact ledger -----------------------------------------------------------------------------------------


async def record_approvals(uow: UnitOfWork, *, approved: Sequence[ContactContext], at: datetime) -> None:
    """One ledger row per approved contact (outcome ``approved`` until one is heard of), at the instant of the
    decision: the decision use case calls it with the contexts it approved. Counted at once by the caps of
    later requests."""
    rows = [{"tenant": c.tenant, "borrower_key": c.borrower_key, "customer_id": c.customer_id,
             "account_id": c.account_id, "contact_id": c.contact_id, "channel": c.channel.value,
             "destination_key": c.destination_hash, "direction": "outbound",
             "agency_id": c.agency.agency_id if c.agency is not None else None, "agent_id": None,
             "outcome": "approved", "occurred_at": at, "approved_at": at, "outcome_at": None}
            for c in approved if c.contact_id is not None]
    await repo.record_attempts(uow.session, rows)


async def record_outcomes(uow: UnitOfWork, *, outcomes: Sequence[ContactOutcomeV1]) -> None:
    """Each outcome updates its attempt's ledger row (the newest outcome by its own time wins; a redelivered
    or older one changes nothing). An outcome of a contact compliance never approved (an agent's call placed
    outside it) starts a row of its own: with the outcome's borrower key, without a contact point."""
    rows = [{"tenant": o.tenant, "borrower_key": getattr(o, "borrower_key", None), "customer_id": o.customer_id,
             "account_id": o.account_id, "contact_id": o.contact_id, "channel": o.channel.value,
             "destination_key": None, "direction": "outbound", "agency_id": None, "agent_id": None,
             "outcome": o.outcome, "occurred_at": o.occurred_at, "approved_at": None, "outcome_at": o.occurred_at}
            for o in outcomes]
    await repo.record_attempts(uow.session, rows)


# --- holds ----------------------------------------------------------------------------------------------------

PLANS = "plans"


def _plan_hold(current: Mapping[str, Any] | None, event: PlanEventV1) -> dict[str, Any]:
    """The PLAN hold of a plan after ``event``: the same whatever order the plan's events arrive in (it starts
    at the agreement, ends at the plan's last word when that is an end)."""
    kind, at = event.kind, event.occurred_at
    row: dict[str, Any] = dict(current) if current is not None else {
        "id": new_id("hold"), "tenant": event.tenant, "customer_id": event.customer_id,
        "account_id": event.account_id, "kind": HoldKind.PLAN.value, "starts_at": at, "ends_at": None,
        "reason": f"repayment plan {event.plan_id}", "source": "plan", "source_ref": event.plan_id,
        "source_state": None, "source_at": None, "created_by": PLANS, "lifted_at": None, "lifted_by": None,
        "lift_reason": None}
    if kind == "agreed":
        row["starts_at"] = min(row["starts_at"], at)
    stored = (row["source_state"], row["source_at"]) if row["source_state"] is not None else None
    if plan_supersedes(stored=stored, incoming=(kind, at)):
        row["source_state"], row["source_at"] = kind, at
        if kind == "agreed":
            row["lifted_at"] = row["lifted_by"] = row["lift_reason"] = None
        else:
            row["lifted_at"], row["lifted_by"], row["lift_reason"] = at, PLANS, f"plan {kind}"
    return row


_SOURCE_COLUMNS = ("id", "tenant", "customer_id", "account_id", "kind", "starts_at", "ends_at", "reason", "source",
                   "source_ref", "source_state", "source_at", "created_by", "lifted_at", "lifted_by", "lift_reason")


async def record_plan_events(uow: UnitOfWork, *, events: Sequence[PlanEventV1],
                             causes: Sequence[CloudEvent | None] = ()) -> None:
    """An agreed plan holds its account (PLAN) until its end lifts it; idempotent and order-independent. A hold
    that comes into force or is lifted is announced (``causes``: the plan events' envelopes, in order)."""
    stored = await repo.lock_source_holds(uow.session, source="plan", keys={(e.tenant, e.plan_id) for e in events})
    rows: dict[tuple[str, str], dict[str, Any]] = {
        k: {c: getattr(r, c) for c in _SOURCE_COLUMNS} for k, r in stored.items()}
    before = {k: r["lifted_at"] is None for k, r in rows.items()}
    changed: dict[tuple[str, str], CloudEvent | None] = {}
    for n, e in enumerate(events):
        key = (e.tenant, e.plan_id)
        updated = _plan_hold(rows.get(key), e)
        if updated != rows.get(key):
            rows[key] = updated
            changed[key] = causes[n] if n < len(causes) else None
    await repo.save_source_holds(uow.session, [rows[k] for k in sorted(changed)])
    for key in sorted(changed):
        row, was_on = rows[key], before.get(key, False)
        is_on = row["lifted_at"] is None
        if is_on != was_on:
            announce_hold(uow, row, action="placed" if is_on else "lifted",
                          at=row["starts_at"] if is_on else row["lifted_at"], cause=changed[key])


async def place_hold(uow: UnitOfWork, *, tenant: str, actor: str, kind: HoldKind, customer_id: str,
                     account_id: str | None, ends_at: datetime | None, reason: str, now: datetime) -> Any:
    """A hold placed by a person, from now until ``ends_at`` (None: until lifted)."""
    if ends_at is not None and ends_at <= now:
        raise Invalid("ends_at must be in the future.")
    row = await repo.add_row(uow.session, HoldRow, {
        "id": new_id("hold"), "tenant": tenant, "customer_id": customer_id, "account_id": account_id,
        "kind": kind.value, "starts_at": now, "ends_at": ends_at, "reason": reason, "source": "rest",
        "created_by": actor})
    announce_hold(uow, row, action="placed", at=now)
    return row


async def lift_hold(uow: UnitOfWork, *, tenant: str, actor: str, hold_id: str, reason: str, now: datetime) -> Any:
    """Lift a hold now; a hold already lifted is a conflict."""
    row = await repo.get_row(uow.session, HoldRow, tenant=tenant, id=hold_id, lock=True)
    if row is None:
        raise NotFound(f"No hold {hold_id!r}.")
    if row.lifted_at is not None:
        raise Conflict(f"Hold {hold_id!r} was already lifted.")
    lifted = await repo.update_row(uow.session, HoldRow, id=hold_id, values={
        "lifted_at": now, "lifted_by": actor, "lift_reason": reason})
    announce_hold(uow, lifted, action="lifted", at=now)
    return lifted


async def list_holds(session: AsyncSession, *, tenant: str, customer_id: str | None, account_id: str | None,
                     active: bool | None, now: datetime, limit: int) -> list[Any]:
    where = []
    if active is True:
        where.append(repo.active_hold_clause(now))
    elif active is False:
        where.append(~repo.active_hold_clause(now))
    return await repo.list_rows(session, HoldRow, tenant=tenant, where=where, limit=limit,
                                filters={"customer_id": customer_id, "account_id": account_id})


# --- suppressions and consents --------------------------------------------------------------------------------


def contact_point_key(identity: IdentityKeys, channel: Channel | None, destination: str | None) -> str | None:
    """The key of a plaintext destination: a phone number is one key for SMS and calls (and for a suppression of
    every channel), an e-mail address its own."""
    if destination is None:
        return None
    if channel is None:
        channel = Channel.EMAIL if "@" in destination else Channel.SMS
    return identity.contact_point_key(channel=channel.value, destination=destination)


async def add_suppression(uow: UnitOfWork, *, tenant: str, actor: str, identity: IdentityKeys,
                          kind: SuppressionKind, customer_id: str | None, destination: str | None,
                          channel: Channel | None, local_start: time | None, local_end: time | None, source: str,
                          reason: str) -> Any:
    """Suppress a customer and/or one of their contact points (the plaintext destination is kept only as its key)."""
    if customer_id is None and destination is None:
        raise Invalid("Give customer_id, destination or both.")
    window = local_start is not None or local_end is not None
    if (kind is SuppressionKind.INCONVENIENT_TIME) != window or (window and (local_start is None or local_end is None)):
        raise Invalid("local_start and local_end are required for inconvenient_time, and only for it.")
    if window and local_start == local_end:
        raise Invalid("local_start and local_end must differ.")
    return await repo.add_row(uow.session, SuppressionRow, {
        "id": new_id("sup"), "tenant": tenant, "customer_id": customer_id,
        "destination_key": contact_point_key(identity, channel, destination),
        "channel": channel.value if channel is not None else None, "kind": kind.value, "local_start": local_start,
        "local_end": local_end, "source": source, "reason": reason, "created_by": actor})


async def record_opt_outs(uow: UnitOfWork, *, opt_outs: Sequence[ContactOptOutV1]) -> None:
    """A customer's reply asking for no more messages (TD, 退订, STOP): an OPT_OUT suppression of that contact point
    on that channel, at once."""
    for o in opt_outs:
        await repo.add_row(uow.session, SuppressionRow, {
            "id": new_id("sup"), "tenant": o.tenant, "customer_id": o.customer_id,
            "destination_key": o.destination_key, "channel": o.channel.value, "kind": SuppressionKind.OPT_OUT.value,
            "source": o.source, "reason": f"replied {o.keyword!r} ({o.message_id})"[:500], "created_by": "channels"})


async def remove_suppression(uow: UnitOfWork, *, tenant: str, actor: str, suppression_id: str, reason: str,
                             now: datetime) -> Any:
    row = await repo.get_row(uow.session, SuppressionRow, tenant=tenant, id=suppression_id, lock=True)
    if row is None:
        raise NotFound(f"No suppression {suppression_id!r}.")
    if row.removed_at is not None:
        raise Conflict(f"Suppression {suppression_id!r} was already removed.")
    return await repo.update_row(uow.session, SuppressionRow, id=suppression_id, values={
        "removed_at": now, "removed_by": actor, "remove_reason": reason})


async def list_suppressions(session: AsyncSession, *, tenant: str, customer_id: str | None, limit: int) -> list[Any]:
    return await repo.list_rows(session, SuppressionRow, tenant=tenant, filters={"customer_id": customer_id},
                                limit=limit)


async def grant_consent(uow: UnitOfWork, *, tenant: str, actor: str, identity: IdentityKeys, kind: ConsentKind,
                        customer_id: str, destination: str | None, channel: Channel, local_start: time | None,
                        local_end: time | None, granted_at: datetime, source: str, now: datetime) -> Any:
    window = local_start is not None or local_end is not None
    if (kind is ConsentKind.WINDOW) != window or (window and (local_start is None or local_end is None)):
        raise Invalid("local_start and local_end are required for a window consent, and only for it.")
    if granted_at > now:
        raise Invalid("granted_at must not be in the future.")
    return await repo.add_row(uow.session, ConsentRow, {
        "id": new_id("cons"), "tenant": tenant, "customer_id": customer_id,
        "destination_key": contact_point_key(identity, channel, destination), "channel": channel.value,
        "kind": kind.value, "local_start": local_start, "local_end": local_end, "granted_at": granted_at,
        "source": source, "created_by": actor})


async def revoke_consent(uow: UnitOfWork, *, tenant: str, actor: str, consent_id: str, reason: str,
                         now: datetime) -> Any:
    row = await repo.get_row(uow.session, ConsentRow, tenant=tenant, id=consent_id, lock=True)
    if row is None:
        raise NotFound(f"No consent {consent_id!r}.")
    if row.revoked_at is not None:
        raise Conflict(f"Consent {consent_id!r} was already revoked.")
    return await repo.update_row(uow.session, ConsentRow, id=consent_id, values={
        "revoked_at": now, "revoked_by": actor, "revoke_reason": reason})


async def list_consents(session: AsyncSession, *, tenant: str, customer_id: str | None, limit: int) -> list[Any]:
    return await repo.list_rows(session, ConsentRow, tenant=tenant, filters={"customer_id": customer_id}, limit=limit)


# --- calendar -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalendarView:
    country: str
    year: int
    days_off: dict[date, str]
    overrides: list[Any]
    public_holidays_included: bool


async def calendar_of(session: AsyncSession, *, tenant: str, year: int, default_country: str = "CN") -> CalendarView:
    """The tenant's days without contact in ``year``: the public holidays of its country (China's make-up
    working days excluded), plus its ``day_off`` overrides, minus its ``working_day`` ones: what HOUSE-HOLIDAY
    applies. ``public_holidays_included`` is False for a country the ``holidays`` package does not know."""
    country = (await repo.calendars_of(session, [tenant])).get(tenant, default_country)
    overrides = await repo.overrides_for(session, [tenant], first=date(year, 1, 1), last=date(year, 12, 31))
    try:
        public_holidays(country, [year])
        known = True
    except NotImplementedError:
        known = False
    calendar = holiday_calendar(overrides, country=country, years=[year])
    return CalendarView(country=country, year=year, overrides=overrides, public_holidays_included=known,
                        days_off={d: n for d, n in calendar.days.items() if d.year == year})


async def set_country(uow: UnitOfWork, *, tenant: str, actor: str, country: str) -> Any:
    return await repo.save_calendar(uow.session, tenant=tenant, country=country, updated_by=actor)


async def add_override(uow: UnitOfWork, *, tenant: str, actor: str, day: date, kind: str, name: str) -> Any:
    return await repo.save_override(uow.session, {"tenant": tenant, "day": day, "kind": kind, "name": name,
                                                  "created_by": actor})


async def remove_override(uow: UnitOfWork, *, tenant: str, day: date) -> None:
    if not await repo.delete_override(uow.session, tenant=tenant, day=day):
        raise NotFound(f"No override on {day.isoformat()}.")


# --- complaints -----------------------------------------------------------------------------------------------

ANSWER_DAYS = {"simple": 15, "complex": 30}
MAX_DAYS = 60


@dataclass(frozen=True, slots=True)
class ComplaintView:
    row: Any
    summary: str


def _complaint(row: Any, cipher: PiiCipher) -> ComplaintView:
    return ComplaintView(row=row, summary=cipher.open(row.summary, context=row.tenant))


async def file_complaint(uow: UnitOfWork, *, tenant: str, actor: str, cipher: PiiCipher, customer_id: str,
                         account_id: str, received_at: datetime, channel: str, summary: str, complexity: str,
                         now: datetime) -> ComplaintView:
    """Record a complaint (due 15 days after it was received, 30 if complex) and hold its account (COMPLAINT:
    human review only) until it is answered."""
    if received_at > now:
        raise Invalid("received_at must not be in the future.")
    complaint_id = new_id("cmp")
    row = await repo.add_row(uow.session, Complaint, {
        "id": complaint_id, "tenant": tenant, "customer_id": customer_id, "account_id": account_id,
        "received_at": received_at, "channel": channel, "summary": cipher.seal(summary, context=tenant),
        "complexity": complexity, "due_at": received_at + timedelta(days=ANSWER_DAYS[complexity]), "status": "open",
        "created_by": actor})
    hold = {
        "id": new_id("hold"), "tenant": tenant, "customer_id": customer_id, "account_id": account_id,
        "kind": HoldKind.COMPLAINT.value, "starts_at": received_at, "ends_at": None,
        "reason": f"open complaint {complaint_id}", "source": "complaint", "source_ref": complaint_id,
        "source_state": "open", "source_at": received_at, "created_by": actor, "lifted_at": None,
        "lifted_by": None, "lift_reason": None}
    await repo.save_source_holds(uow.session, [hold])
    announce_hold(uow, hold, action="placed", at=now)
    return _complaint(row, cipher)


async def _open_complaint(uow: UnitOfWork, tenant: str, complaint_id: str) -> Any:
    row = await repo.get_row(uow.session, Complaint, tenant=tenant, id=complaint_id, lock=True)
    if row is None:
        raise NotFound(f"No complaint {complaint_id!r}.")
    if row.status != "open":
        raise Conflict(f"Complaint {complaint_id!r} is {row.status}.")
    return row


async def extend_complaint(uow: UnitOfWork, *, tenant: str, cipher: PiiCipher, complaint_id: str, days: int,
                           reason: str, requested_by: str, approved_by: str) -> ComplaintView:
    """Extend the answer deadline to ``days`` after receipt (at most 60), approved by someone else."""
    if requested_by.strip().lower() == approved_by.strip().lower():
        raise Invalid("An extension must be approved by someone other than who requested it.")
    row = await _open_complaint(uow, tenant, complaint_id)
    due = row.received_at + timedelta(days=days)
    if due <= row.due_at:
        raise Conflict(f"The complaint is already due {row.due_at.isoformat()}: {days} days extends nothing.")
    row = await repo.update_row(uow.session, Complaint, id=complaint_id, values={
        "due_at": due, "extension_requested_by": requested_by, "extension_approved_by": approved_by,
        "extension_reason": reason})
    return _complaint(row, cipher)


async def answer_complaint(uow: UnitOfWork, *, tenant: str, actor: str, cipher: PiiCipher, complaint_id: str,
                           now: datetime) -> ComplaintView:
    """Mark an open complaint answered and lift its hold."""
    await _open_complaint(uow, tenant, complaint_id)
    row = await repo.update_row(uow.session, Complaint, id=complaint_id, values={
        "status": "answered", "answered_at": now, "answered_by": actor})
    held = await repo.lock_source_holds(uow.session, source="complaint", keys={(tenant, complaint_id)})
    for hold in held.values():
        if hold.lifted_at is None:
            lifted = await repo.update_row(uow.session, HoldRow, id=hold.id, values={
                "lifted_at": now, "lifted_by": actor, "lift_reason": "complaint answered"})
            announce_hold(uow, lifted, action="lifted", at=now)
    return _complaint(row, cipher)


async def list_complaints(session: AsyncSession, *, tenant: str, cipher: PiiCipher, status: str | None,
                          limit: int) -> list[ComplaintView]:
    rows = await repo.list_rows(session, Complaint, tenant=tenant, filters={"status": status}, order="received_at",
                                limit=limit)
    return [_complaint(r, cipher) for r in rows]


async def complaint_counts(session: AsyncSession, *, now: datetime) -> tuple[dict[str, int], int]:
    """Complaints per status, and open ones due within 3 days (for the metrics)."""
    return await repo.complaint_counts(session, breach_before=now + timedelta(days=3))


# How far ahead the complaint clocks look (the `within` label of compliance_complaints_due_soon).
CLOCK_WINDOWS = {"72h": timedelta(hours=72), "24h": timedelta(hours=24)}


@dataclass(frozen=True, slots=True)
class ComplaintClocks:
    """One tenant's open complaints (CN-COMPLAINT): how many, how many are past due, and how many are due within
    each of ``CLOCK_WINDOWS`` without being past due yet."""

    open: int
    overdue: int
    due_within: dict[str, int]


async def complaint_clocks(session: AsyncSession, *, now: datetime) -> dict[str, ComplaintClocks]:
    """Every tenant with open complaints, and their clocks at ``now`` (for the metrics)."""
    counts = await repo.complaint_clocks(session, now=now, due_before={w: now + d for w, d in CLOCK_WINDOWS.items()})
    return {tenant: ComplaintClocks(open=c["open"], overdue=c["overdue"], due_within={w: c[w] for w in CLOCK_WINDOWS})
            for tenant, c in counts.items()}


# --- agencies -------------------------------------------------------------------------------------------------


async def save_agency(uow: UnitOfWork, *, tenant: str, actor: str, agency_id: str, name: str, listed: bool,
                      evaluated_on: date | None) -> Any:
    return await repo.save_agency(uow.session, {"tenant": tenant, "agency_id": agency_id, "name": name,
                                                "listed": listed, "evaluated_on": evaluated_on, "updated_by": actor})


async def list_agencies(session: AsyncSession, *, tenant: str) -> list[Any]:
    return await repo.list_agencies(session, tenant=tenant)


async def assign_agency(uow: UnitOfWork, *, tenant: str, actor: str, account_id: str, agency_id: str,
                        debtor_notified_at: datetime | None) -> Any:
    if await repo.agency_of(uow.session, tenant=tenant, agency_id=agency_id) is None:
        raise NotFound(f"No agency {agency_id!r}: register it with PUT /v1/agencies/{{agency_id}} first.")
    return await repo.save_assignment(uow.session, {"tenant": tenant, "account_id": account_id,
                                                    "agency_id": agency_id, "debtor_notified_at": debtor_notified_at,
                                                    "assigned_by": actor})


# --- contact budget -------------------------------------------------------------------------------------------

def daily_caps(tp: policies.TenantPolicy) -> dict[Channel, list[tuple[str, int, int, str]]]:
    """The caps the tenant's policy puts on one customer, per channel: (rule, cap, over how many local days
    ending today, what is counted). HOUSE-DUP always; CN-CONNECTS and CN-ATTEMPTS where the CN pack binds the
    tenant's customers. Caps counted per debt (US-7IN7) are not a customer's budget and are not listed."""
    dup = engine.params_of(engine.RULES["HOUSE-DUP"], tp.policy)
    caps: dict[Channel, list[tuple[str, int, int, str]]] = {c: [] for c in (Channel.SMS, Channel.EMAIL, Channel.CALL,
                                                                             Channel.FIELD)}
    for channel, days in dup.interval_days.items():
        if channel in caps:
            what = "contacts per customer per channel per day" if days == 1 else \
                f"contact per customer per channel per {days} local days"
            caps[channel].append(("HOUSE-DUP", 1, days, what))
    if "CN" in tp.policy.packs.get(tp.jurisdiction, (tp.jurisdiction,)):
        connects = engine.params_of(engine.RULES["CN-CONNECTS"], tp.policy)
        attempts = engine.params_of(engine.RULES["CN-ATTEMPTS"], tp.policy)
        caps[Channel.CALL] += [("CN-CONNECTS", connects.max_connects, 1, "effective conversations per debtor per day"),
                               ("CN-ATTEMPTS", attempts.max_unanswered, 1,
                                "unanswered dial attempts per number per day")]
    return caps


BLOCKING_SUPPRESSIONS = {SuppressionKind.OPT_OUT.value, SuppressionKind.DO_NOT_CALL.value,
                         SuppressionKind.REFUSED.value}


@dataclass(frozen=True, slots=True)
class Cap:
    rule_id: str
    what: str
    cap: int
    used: int

    @property
    def left(self) -> int:
        return max(0, self.cap - self.used)


@dataclass(frozen=True, slots=True)
class ChannelBudget:
    channel: Channel
    left: int | None  # None: no daily cap (only holds and suppressions stop it)
    caps: list[Cap]
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Budget:
    customer_id: str
    time_zone: str
    day: date
    channels: list[ChannelBudget]
    holds: list[Any]
    suppressions: list[Any]
    caps_source: str


async def contact_budget(session: AsyncSession, *, tenant: str, customer_id: str, time_zone: str,
                         now: datetime) -> Budget:
    """What is left of the customer's contacts today (their local day) per channel under the tenant's policy,
    and why."""
    day = now.astimezone(ZoneInfo(time_zone)).date()
    tp = await policies.current_policy(session, tenant)
    caps_by_channel = daily_caps(tp)
    longest = max((days for caps in caps_by_channel.values() for _, _, days, _ in caps), default=1)
    today, _ = local_day_bounds(day, time_zone)
    start, _ = local_day_bounds(day - timedelta(days=longest - 1), time_zone)
    identities: list[str | None] = [*await repo.borrower_keys_of(session, tenant=tenant, customer_id=customer_id)]
    own = await repo.ledger_for(session, since=start, keys=[
        {"idx": "0", "tenant": tenant, "customer_id": customer_id, "account_id": None, "contact_id": None,
         "borrower_key": key, "destination_key": None} for key in (identities or [None])])
    person = list({r.id: r for r in own if r.branch in ("borrower", "customer")}.values())
    numbers = {r.destination_key for r in person if r.destination_key is not None and r.channel == "call"}
    by_number = await repo.ledger_for(session, since=start, keys=[
        {"idx": key, "tenant": tenant, "customer_id": None, "account_id": None, "contact_id": None,
         "borrower_key": None, "destination_key": key} for key in sorted(numbers)])
    unanswered = max((len(first_instants(r for r in by_number if r.idx == n and r.channel == "call"
                                         and r.direction == "outbound" and r.outcome in UNANSWERED
                                         and r.occurred_at >= today))
                      for n in numbers), default=0)
    holds = [h for h in await repo.holds_for(session, {(tenant, customer_id)}, since=now) if h.starts_at <= now]
    suppressions = await repo.suppressions_for(session, {(tenant, customer_id)}, set())
    whole_customer_holds = [h for h in holds if h.account_id is None]
    channels = []
    for channel, caps in caps_by_channel.items():
        counted = []
        for rule_id, cap, days, what in caps:
            since, _ = local_day_bounds(day - timedelta(days=days - 1), time_zone)
            if rule_id == "HOUSE-DUP":
                used = len(first_instants(r for r in person if r.channel == channel.value and r.occurred_at >= since
                                          and r.direction == "outbound" and r.outcome not in NOT_A_CONTACT))
            elif rule_id == "CN-CONNECTS":
                used = len(first_instants(r for r in person if r.channel == channel.value and r.occurred_at >= since
                                          and r.outcome in CONVERSATIONS))
            else:
                used = unanswered
            counted.append(Cap(rule_id, what, cap, used))
        reasons = [f"{c.rule_id}: {c.used} of {c.cap} {c.what} used today" for c in counted]
        left: int | None = min((c.left for c in counted), default=None)
        for h in whole_customer_holds:
            left = 0
            reasons.append(f"HOUSE-HOLDS: {h.kind} hold on all accounts ({h.reason})")
        for s in suppressions:
            if s.channel in (None, channel.value) and s.kind in BLOCKING_SUPPRESSIONS and s.destination_key is None:
                left = 0
                reasons.append(f"suppressed: {s.kind} ({s.reason})")
        channels.append(ChannelBudget(channel, left, counted, reasons))
    return Budget(customer_id=customer_id, time_zone=time_zone, day=day, channels=channels, holds=holds,
                  suppressions=suppressions,
                  caps_source=f"policy v{tp.version}" if tp.version else "defaults (no policy published)")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- contact attempts reported by agents and dialers ------------------------------------------------------------


async def record_agent_attempt(uow: UnitOfWork, *, tenant: str, actor: str, identity: IdentityKeys, attempt_id: str,
                               account_id: str, customer_id: str, channel: Channel, direction: str,
                               destination: str | None, national_id: str | None, outcome: str, started_at: datetime,
                               ended_at: datetime | None, agency_id: str | None, now: datetime,
                               max_age: timedelta = timedelta(days=30),
                               skew: timedelta = timedelta(minutes=5)) -> tuple[Any, str]:
    """Record a contact attempt an agent or a dialer made (issue 7: "agent call results feed it") in the contact
    ledger, where the caps count it at once (CN-ATTEMPTS: unanswered outbound calls per number; CN-CONNECTS, US-7IN7:
    conversations). One row per ``attempt_id`` (the client's idempotency key; the ledger's contact id is
    ``agent:<attempt_id>``, apart from compliance's own), upserted by ``repository.record_attempts``: the same report
    again changes nothing, a later outcome (``ended_at``) replaces an earlier one, an older one changes nothing.

    The destination is kept only as its contact-point key. The borrower key (one debtor across lenders) comes from
    ``national_id`` when given, else the one the ledger already knows for the customer, else the phone dialled (a
    number that may belong to someone else is the last resort). Refused (422, nothing stored): an outcome the
    channel cannot have, a phone that is not one, ``started_at`` in the future (beyond ``skew``) or older than
    ``max_age``, ``ended_at`` before ``started_at``. 409: the ``attempt_id`` already records another contact
    (customer, account, channel, direction or number). Returns the row as stored and ``created``, ``updated`` or
    ``unchanged``."""
    from shared.identity import normalise_phone  # only this use case needs it

    outcomes_of = {Channel.CALL: {"no_answer", "busy", "voicemail", "connected", "right_party_contact", "failed"},
                   Channel.FIELD: {"no_answer", "connected", "right_party_contact", "failed"},
                   Channel.SMS: {"sent", "delivered", "failed"}, Channel.EMAIL: {"sent", "delivered", "failed"}}
    if outcome not in outcomes_of[channel]:
        raise Invalid(f"A {channel.value} attempt cannot end {outcome!r}: give one of "
                      f"{', '.join(sorted(outcomes_of[channel]))}.")
    if started_at > now + skew:
        raise Invalid("started_at is in the future.")
    if started_at < now - max_age:
        raise Invalid(f"started_at is more than {max_age.days} days ago: too old to report.")
    if ended_at is not None and not started_at <= ended_at <= now + skew:
        raise Invalid("ended_at must be at or after started_at, and not in the future.")
    phone = None
    if destination is not None and channel in (Channel.CALL, Channel.SMS):
        try:
            phone = normalise_phone(destination.strip())
        except ValueError as exc:
            raise Invalid(f"destination is not a phone number ({exc}).") from None
    elif destination is not None and channel is Channel.EMAIL and "@" not in destination:
        raise Invalid("destination is not an e-mail address.")
    destination_key = contact_point_key(identity, channel, phone or destination)

    contact_id = f"agent:{attempt_id}"
    stored = await repo.lock_attempt(uow.session, tenant=tenant, contact_id=contact_id)
    if stored is not None:
        mine = {"customer_id": customer_id, "account_id": account_id, "channel": channel.value, "direction": direction}
        clash = [name for name, value in mine.items() if getattr(stored, name) != value]
        if destination_key is not None and stored.destination_key not in (None, destination_key):
            clash.append("destination")
        if clash:
            raise Conflict(f"attempt_id {attempt_id!r} already records another contact (its {', '.join(clash)} "
                           "differ): give each attempt its own id.")
    borrower_key = identity.borrower_key(national_id=national_id, phone=None) if national_id else None
    if borrower_key is None and stored is not None:
        borrower_key = stored.borrower_key
    if borrower_key is None:
        known = sorted(await repo.borrower_keys_of(uow.session, tenant=tenant, customer_id=customer_id))
        borrower_key = known[0] if known else None
    if borrower_key is None and phone is not None:
        borrower_key = identity.borrower_key(national_id=None, phone=phone)
    await repo.record_attempts(uow.session, [{
        "tenant": tenant, "borrower_key": borrower_key, "customer_id": customer_id, "account_id": account_id,
        "contact_id": contact_id, "channel": channel.value, "destination_key": destination_key,
        "direction": direction, "agency_id": agency_id, "agent_id": actor, "outcome": outcome,
        "occurred_at": started_at, "approved_at": None, "outcome_at": ended_at or started_at}])
    row = await repo.attempt_of(uow.session, tenant=tenant, contact_id=contact_id)
    assert row is not None  # just upserted, in this transaction
    if stored is None:
        return row, "created"
    return row, "unchanged" if tuple(row) == tuple(stored) else "updated"


async def list_attempts(session: AsyncSession, *, tenant: str, customer_id: str | None, account_id: str | None,
                        limit: int) -> list[Any]:
    """The tenant's contact attempts (the ledger: its approvals, the channels' outcomes, agents' and dialers'
    reports) of a customer and/or an account, newest first."""
    if customer_id is None and account_id is None:
        raise Invalid("Give customer_id or account_id.")
    return await repo.attempts_of(session, tenant=tenant, customer_id=customer_id, account_id=account_id, limit=limit)
