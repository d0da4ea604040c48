"""The records compliance keeps, over REST: holds, suppressions, consents, the tenant's calendar, complaints, the
agency registry, and a customer's contact budget today.

Every change records who made it, the principal of the API key (``created_by``, ``lifted_by`` ...: never a name the
caller types), and why (a required ``reason``), in the record itself where it has a column for it and always in
the audit log (``shared/audit.py``), in the same transaction. Reads take any role of the tenant; changes need the
``compliance`` role, or ``supervisor`` for holds, complaints filed and deadline extensions (docs/access.md)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from services.compliance.domain.rules.base import ConsentKind, HoldKind, SuppressionKind
from services.compliance.service import records
from services.compliance.service.context import calendar_country
from shared.audit import record_change
from shared.contracts.events import Channel, Ident, TimeZone
from shared.deps import CipherDep, Principal, Role, RuntimeDep, SessionDep, SettingsDep, TenantDep, UowDep, require
from shared.uow import UnitOfWork

# A local wall-clock time ("08:00" or "08:00:00", no offset: it is read in the customer's time zone).
LocalTime = Annotated[time, PlainSerializer(lambda t: t.replace(tzinfo=None).isoformat(), return_type=str),
                      WithJsonSchema({"type": "string", "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
                                      "description": "local wall-clock time, HH:MM[:SS], no offset"})]
router = APIRouter(prefix="/v1", tags=["compliance records"])

Reason = Annotated[str, Field(min_length=1, max_length=500)]
Actor = Annotated[str, Field(min_length=1, max_length=128)]
# Who may change what (docs/access.md, "Roles"): the compliance officer keeps every record; a supervisor may also
# hold an account, take a complaint and approve its deadline extension.
Officer = Annotated[Principal, require(Role.COMPLIANCE)]
OfficerOrSupervisor = Annotated[Principal, require(Role.COMPLIANCE, Role.SUPERVISOR)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone offset (e.g. 2025-03-20T08:00:00+08:00 or Z)")
    if not 1970 <= value.year <= 2999:
        raise ValueError("give an instant between the years 1970 and 2999")
    return value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_aware)]


def _iso_date(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("give a date as YYYY-MM-DD")
    return value


# A calendar date written YYYY-MM-DD (pydantic alone would also take "0" as 1970-01-01).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


async def commit_change(uow: UnitOfWork, principal: Principal, *, action: str, subject: str, reason: str) -> None:
    """Audit the change (who, what, why) in its unit of work, then commit both."""
    await record_change(uow, principal, action=action, subject=subject, reason=reason)
    await uow.commit()


def _now() -> datetime:
    return datetime.now(UTC)


# --- holds ---------------------------------------------------------------------------------------------------


class HoldIn(BaseModel):
    kind: HoldKind
    customer_id: Ident
    account_id: Ident | None = Field(None, description="None: every account of the customer")
    ends_at: Instant | None = Field(None, description="None: until lifted")
    reason: Reason


class LiftIn(BaseModel):
    reason: Reason


class HoldPublic(BaseModel):
    id: str
    customer_id: str
    account_id: str | None
    kind: str
    starts_at: datetime
    ends_at: datetime | None
    reason: str
    source: str = Field(description="plan, complaint or rest")
    source_ref: str | None
    created_by: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None


def _hold(row: Any) -> HoldPublic:
    return HoldPublic.model_validate(row, from_attributes=True)


@router.post("/holds", status_code=201, response_model=HoldPublic)
async def place_hold(uow: UowDep, principal: OfficerOrSupervisor, body: HoldIn) -> HoldPublic:
    """Hold automated collection contact for a customer (or one account) from now until lifted or ``ends_at``."""
    row = await records.place_hold(uow, tenant=principal.tenant, actor=principal.name, kind=body.kind,
                                   customer_id=body.customer_id, account_id=body.account_id, ends_at=body.ends_at,
                                   reason=body.reason, now=_now())
    await commit_change(uow, principal, action="hold.place", subject=row.id, reason=body.reason)
    return _hold(row)


@router.post("/holds/{hold_id}/lift", response_model=HoldPublic)
async def lift_hold(uow: UowDep, principal: OfficerOrSupervisor, hold_id: str, body: LiftIn) -> HoldPublic:
    """Lift a hold now (409 if it was lifted already)."""
    row = await records.lift_hold(uow, tenant=principal.tenant, actor=principal.name, hold_id=hold_id,
                                  reason=body.reason, now=_now())
    await commit_change(uow, principal, action="hold.lift", subject=hold_id, reason=body.reason)
    return _hold(row)


@router.get("/holds", response_model=list[HoldPublic])
async def list_holds(session: SessionDep, tenant: TenantDep, customer_id: str | None = None,
                     account_id: str | None = None,
                     active: bool | None = Query(None, description="true: in force now; false: over or not begun"),
                     limit: Limit = 500) -> list[HoldPublic]:
    """Your holds, newest first."""
    rows = await records.list_holds(session, tenant=tenant, customer_id=customer_id, account_id=account_id,
                                    active=active, now=_now(), limit=limit)
    return [_hold(r) for r in rows]


# --- suppressions and consents ---------------------------------------------------------------------------------


class SuppressionIn(BaseModel):
    kind: SuppressionKind
    customer_id: Ident | None = None
    destination: str | None = Field(None, min_length=3, max_length=320,
                                    description="The phone number or address, plaintext over TLS: only its keyed "
                                                "hash is stored")
    channel: Channel | None = Field(None, description="None: every channel")
    local_start: LocalTime | None = Field(None, description="inconvenient_time only: local start of the window")
    local_end: LocalTime | None = None
    source: str = Field("rest", min_length=1, max_length=64)
    reason: Reason


class SuppressionPublic(BaseModel):
    id: str
    customer_id: str | None
    destination_key: str | None
    channel: str | None
    kind: str
    local_start: LocalTime | None
    local_end: LocalTime | None
    source: str
    reason: str
    created_by: str
    created_at: datetime
    removed_at: datetime | None
    removed_by: str | None
    remove_reason: str | None


class RemoveIn(BaseModel):
    reason: Reason


@router.post("/suppressions", status_code=201, response_model=SuppressionPublic)
async def add_suppression(uow: UowDep, runtime: RuntimeDep, principal: Officer,
                          body: SuppressionIn) -> SuppressionPublic:
    """Suppress a customer and/or a contact point (opt-out, do-not-call, an inconvenient local window, a contact
    person's refusal)."""
    row = await records.add_suppression(
        uow, tenant=principal.tenant, actor=principal.name, identity=runtime.identity, kind=body.kind,
        customer_id=body.customer_id, destination=body.destination, channel=body.channel,
        local_start=body.local_start, local_end=body.local_end, source=body.source, reason=body.reason)
    await commit_change(uow, principal, action="suppression.add", subject=row.id, reason=body.reason)
    return SuppressionPublic.model_validate(row, from_attributes=True)


@router.post("/suppressions/{suppression_id}/remove", response_model=SuppressionPublic)
async def remove_suppression(uow: UowDep, principal: Officer, suppression_id: str,
                             body: RemoveIn) -> SuppressionPublic:
    """End a suppression (kept, with who removed it and why)."""
    row = await records.remove_suppression(uow, tenant=principal.tenant, actor=principal.name,
                                           suppression_id=suppression_id, reason=body.reason, now=_now())
    await commit_change(uow, principal, action="suppression.remove", subject=suppression_id, reason=body.reason)
    return SuppressionPublic.model_validate(row, from_attributes=True)


@router.get("/suppressions", response_model=list[SuppressionPublic])
async def list_suppressions(session: SessionDep, tenant: TenantDep, customer_id: str | None = None,
                            limit: Limit = 500) -> list[SuppressionPublic]:
    rows = await records.list_suppressions(session, tenant=tenant, customer_id=customer_id, limit=limit)
    return [SuppressionPublic.model_validate(r, from_attributes=True) for r in rows]


class ConsentIn(BaseModel):
    kind: ConsentKind
    customer_id: Ident
    channel: Channel
    destination: str | None = Field(None, min_length=3, max_length=320,
                                    description="Plaintext over TLS: only its keyed hash is stored")
    local_start: LocalTime | None = Field(None, description="window only: the agreed local window")
    local_end: LocalTime | None = None
    granted_at: Instant | None = Field(None, description="When the customer agreed; default now")
    source: str = Field("rest", min_length=1, max_length=64, description="How it was given (call recording, form…)")
    reason: Reason


class ConsentPublic(BaseModel):
    id: str
    customer_id: str
    destination_key: str | None
    channel: str
    kind: str
    local_start: LocalTime | None
    local_end: LocalTime | None
    granted_at: datetime
    revoked_at: datetime | None
    source: str
    created_by: str
    created_at: datetime
    revoked_by: str | None
    revoke_reason: str | None


@router.post("/consents", status_code=201, response_model=ConsentPublic)
async def grant_consent(uow: UowDep, runtime: RuntimeDep, principal: Officer, body: ConsentIn) -> ConsentPublic:
    """Record a customer's consent (to a channel, a destination, a local window)."""
    now = _now()
    row = await records.grant_consent(
        uow, tenant=principal.tenant, actor=principal.name, identity=runtime.identity, kind=body.kind,
        customer_id=body.customer_id, destination=body.destination, channel=body.channel,
        local_start=body.local_start, local_end=body.local_end, granted_at=body.granted_at or now,
        source=body.source, now=now)
    await commit_change(uow, principal, action="consent.grant", subject=row.id, reason=body.reason)
    return ConsentPublic.model_validate(row, from_attributes=True)


@router.post("/consents/{consent_id}/revoke", response_model=ConsentPublic)
async def revoke_consent(uow: UowDep, principal: Officer, consent_id: str, body: RemoveIn) -> ConsentPublic:
    """End a consent (kept, with who revoked it and why)."""
    row = await records.revoke_consent(uow, tenant=principal.tenant, actor=principal.name, consent_id=consent_id,
                                       reason=body.reason, now=_now())
    await commit_change(uow, principal, action="consent.revoke", subject=consent_id, reason=body.reason)
    return ConsentPublic.model_validate(row, from_attributes=True)


@router.get("/consents", response_model=list[ConsentPublic])
async def list_consents(session: SessionDep, tenant: TenantDep, customer_id: str | None = None,
                        limit: Limit = 500) -> list[ConsentPublic]:
    rows = await records.list_consents(session, tenant=tenant, customer_id=customer_id, limit=limit)
    return [ConsentPublic.model_validate(r, from_attributes=True) for r in rows]


# --- calendar -------------------------------------------------------------------------------------------------


class OverrideIn(BaseModel):
    day: IsoDate
    kind: Literal["day_off", "working_day"]
    name: str = Field(min_length=1, max_length=200)
    reason: Reason


class OverridePublic(BaseModel):
    day: date
    kind: str
    name: str
    created_by: str


class DayOff(BaseModel):
    day: date
    name: str


class CalendarPublic(BaseModel):
    country: str
    year: int
    days_off: list[DayOff]
    overrides: list[OverridePublic]
    public_holidays_included: bool = Field(description="false: only your own days off are listed, not yet the "
                                                       "public holidays of your country")


class CalendarIn(BaseModel):
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. CN")


class CountryIn(CalendarIn):
    reason: Reason


@router.get("/calendar", response_model=CalendarPublic)
async def get_calendar(session: SessionDep, tenant: TenantDep, settings: SettingsDep,
                       year: int = Query(ge=2000, le=2100)) -> CalendarPublic:
    """Your days without contact in a year (HOUSE-HOLIDAY)."""
    view = await records.calendar_of(session, tenant=tenant, year=year,
                                     default_country=calendar_country(settings))
    return CalendarPublic(
        country=view.country, year=view.year, public_holidays_included=view.public_holidays_included,
        days_off=[DayOff(day=d, name=n) for d, n in sorted(view.days_off.items())],
        overrides=[OverridePublic.model_validate(o, from_attributes=True) for o in view.overrides])


@router.put("/calendar", response_model=CalendarIn)
async def set_calendar(uow: UowDep, principal: Officer, body: CountryIn) -> CalendarIn:
    """Whose public holidays you observe."""
    row = await records.set_country(uow, tenant=principal.tenant, actor=principal.name, country=body.country)
    await commit_change(uow, principal, action="calendar.country", subject=body.country, reason=body.reason)
    return CalendarIn(country=row.country)


@router.post("/calendar/overrides", status_code=201, response_model=OverridePublic)
async def add_override(uow: UowDep, principal: Officer, body: OverrideIn) -> OverridePublic:
    """A day off of your own, or a public holiday you work (replaces an override on that day)."""
    row = await records.add_override(uow, tenant=principal.tenant, actor=principal.name, day=body.day,
                                     kind=body.kind, name=body.name)
    await commit_change(uow, principal, action=f"calendar.override.{body.kind}", subject=body.day.isoformat(),
                        reason=body.reason)
    return OverridePublic.model_validate(row, from_attributes=True)


@router.delete("/calendar/overrides/{day}", status_code=204)
async def remove_override(uow: UowDep, principal: Officer, day: date,
                          reason: Annotated[str, Query(min_length=1, max_length=500, description="Why")]) -> None:
    """Remove the override on ``day``."""
    await records.remove_override(uow, tenant=principal.tenant, day=day)
    await commit_change(uow, principal, action="calendar.override.remove", subject=day.isoformat(), reason=reason)


# --- complaints -----------------------------------------------------------------------------------------------


class ComplaintIn(BaseModel):
    customer_id: Ident
    account_id: Ident
    received_at: Instant
    channel: str = Field(min_length=1, max_length=64, description="How it came in: phone, letter, regulator…")
    summary: str = Field(min_length=1, max_length=4000, description="Personal data: stored sealed")
    complexity: Literal["simple", "complex"] = "simple"
    reason: Reason = Field(description="Why it is recorded (e.g. how it was taken); the summary says what it is")


class ExtendIn(BaseModel):
    days: int = Field(60, ge=16, le=records.MAX_DAYS, description="The answer is due this many days after receipt")
    reason: Reason
    requested_by: Actor = Field(description="Who asked for the extension; the approver is the principal of your API "
                                            "key, and must be someone else")


class AnswerIn(BaseModel):
    reason: Reason = Field(description="How it was answered (e.g. the letter's reference)")


class ComplaintPublic(BaseModel):
    id: str
    customer_id: str
    account_id: str
    received_at: datetime
    channel: str
    summary: str
    complexity: str
    due_at: datetime
    status: str
    extension_requested_by: str | None
    extension_approved_by: str | None
    extension_reason: str | None
    created_by: str
    answered_at: datetime | None
    answered_by: str | None


def _complaint(view: records.ComplaintView) -> ComplaintPublic:
    row = view.row
    return ComplaintPublic.model_validate({c: getattr(row, c) for c in ComplaintPublic.model_fields if c != "summary"}
                                          | {"summary": view.summary})


@router.post("/complaints", status_code=201, response_model=ComplaintPublic)
async def file_complaint(uow: UowDep, cipher: CipherDep, principal: OfficerOrSupervisor,
                         body: ComplaintIn) -> ComplaintPublic:
    """Record a complaint (CN-COMPLAINT): due 15 days after receipt (30 if complex); its account is on human review
    (a COMPLAINT hold) until it is answered."""
    view = await records.file_complaint(
        uow, tenant=principal.tenant, actor=principal.name, cipher=cipher, customer_id=body.customer_id,
        account_id=body.account_id, received_at=body.received_at, channel=body.channel, summary=body.summary,
        complexity=body.complexity, now=_now())
    await commit_change(uow, principal, action="complaint.file", subject=view.row.id, reason=body.reason)
    return _complaint(view)


@router.get("/complaints", response_model=list[ComplaintPublic])
async def list_complaints(session: SessionDep, cipher: CipherDep, tenant: TenantDep,
                          status: Literal["open", "answered", "closed"] | None = None,
                          limit: Limit = 500) -> list[ComplaintPublic]:
    views = await records.list_complaints(session, tenant=tenant, cipher=cipher, status=status, limit=limit)
    return [_complaint(v) for v in views]


@router.post("/complaints/{complaint_id}/extend", response_model=ComplaintPublic)
async def extend_complaint(uow: UowDep, cipher: CipherDep, principal: OfficerOrSupervisor, complaint_id: str,
                           body: ExtendIn) -> ComplaintPublic:
    """Extend the deadline (at most 60 days after receipt), approved by the principal of your API key, who must not
    be the requester."""
    view = await records.extend_complaint(uow, tenant=principal.tenant, cipher=cipher, complaint_id=complaint_id,
                                          days=body.days, reason=body.reason, requested_by=body.requested_by,
                                          approved_by=principal.name)
    await commit_change(uow, principal, action="complaint.extend", subject=complaint_id, reason=body.reason)
    return _complaint(view)


@router.post("/complaints/{complaint_id}/answer", response_model=ComplaintPublic)
async def answer_complaint(uow: UowDep, cipher: CipherDep, principal: Officer, complaint_id: str,
                           body: AnswerIn) -> ComplaintPublic:
    """The complaint was answered: its hold is lifted."""
    view = await records.answer_complaint(uow, tenant=principal.tenant, actor=principal.name, cipher=cipher,
                                          complaint_id=complaint_id, now=_now())
    await commit_change(uow, principal, action="complaint.answer", subject=complaint_id, reason=body.reason)
    return _complaint(view)


# --- agencies -------------------------------------------------------------------------------------------------


class AgencyIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    listed: bool = Field(description="On your published list of agencies")
    evaluated_on: IsoDate | None = Field(None, description="Its last evaluation")
    reason: Reason


class AgencyPublic(BaseModel):
    agency_id: str
    name: str
    listed: bool
    evaluated_on: date | None
    updated_by: str


class AssignmentIn(BaseModel):
    agency_id: Ident
    debtor_notified_at: Instant | None = Field(None, description="When the debtor was told of the assignment")
    reason: Reason


class AssignmentPublic(BaseModel):
    account_id: str
    agency_id: str
    debtor_notified_at: datetime | None
    assigned_by: str


@router.put("/agencies/{agency_id}", response_model=AgencyPublic)
async def save_agency(uow: UowDep, principal: Officer, agency_id: Ident, body: AgencyIn) -> AgencyPublic:
    """Register or update an external collection agency (CN-OUTSOURCE)."""
    row = await records.save_agency(uow, tenant=principal.tenant, actor=principal.name, agency_id=agency_id,
                                    name=body.name, listed=body.listed, evaluated_on=body.evaluated_on)
    await commit_change(uow, principal, action="agency.save", subject=agency_id, reason=body.reason)
    return AgencyPublic.model_validate(row, from_attributes=True)


@router.get("/agencies", response_model=list[AgencyPublic])
async def list_agencies(session: SessionDep, tenant: TenantDep) -> list[AgencyPublic]:
    return [AgencyPublic.model_validate(r, from_attributes=True)
            for r in await records.list_agencies(session, tenant=tenant)]


@router.post("/accounts/{account_id}/agency", response_model=AssignmentPublic)
async def assign_agency(uow: UowDep, principal: Officer, account_id: Ident, body: AssignmentIn) -> AssignmentPublic:
    """Assign an account to one of your registered agencies (404 if it is not registered)."""
    row = await records.assign_agency(uow, tenant=principal.tenant, actor=principal.name, account_id=account_id,
                                      agency_id=body.agency_id, debtor_notified_at=body.debtor_notified_at)
    await commit_change(uow, principal, action="agency.assign", subject=f"account:{account_id}", reason=body.reason)
    return AssignmentPublic.model_validate(row, from_attributes=True)


# --- contact budget -------------------------------------------------------------------------------------------


class CapPublic(BaseModel):
    rule_id: str
    what: str
    cap: int
    used: int
    left: int


class ChannelBudgetPublic(BaseModel):
    channel: Channel
    left: int | None = Field(description="Contacts left today; null: no daily cap")
    caps: list[CapPublic]
    reasons: list[str]


class BudgetPublic(BaseModel):
    customer_id: str
    time_zone: str
    day: date
    channels: list[ChannelBudgetPublic]
    holds: list[HoldPublic]
    suppressions: list[SuppressionPublic]
    caps_source: str = Field(description="whose caps: your published policy (policy vN), or the legal defaults")


@router.get("/customers/{customer_id}/contact-budget", response_model=BudgetPublic)
async def contact_budget(session: SessionDep, tenant: TenantDep, customer_id: str,
                         time_zone: TimeZone = "Asia/Shanghai") -> BudgetPublic:
    """What is left of the customer's contacts today (their local day), per channel, and why."""
    budget = await records.contact_budget(session, tenant=tenant, customer_id=customer_id, time_zone=time_zone,
                                          now=_now())
    return BudgetPublic(
        customer_id=budget.customer_id, time_zone=budget.time_zone, day=budget.day, caps_source=budget.caps_source,
        channels=[ChannelBudgetPublic(channel=c.channel, left=c.left, reasons=c.reasons, caps=[
            CapPublic(rule_id=x.rule_id, what=x.what, cap=x.cap, used=x.used, left=x.left) for x in c.caps])
            for c in budget.channels],
        holds=[_hold(h) for h in budget.holds],
        suppressions=[SuppressionPublic.model_validate(s, from_attributes=True) for s in budget.suppressions])
