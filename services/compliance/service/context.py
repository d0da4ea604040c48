"""What the rules see about each contact request of a batch (:class:`ContactContext`), assembled from the records
compliance keeps in a few statements per batch, whatever its size: one per table (the contact ledger, holds,
suppressions, consents, calendar overrides, agency assignments), each an ``= ANY(:array)`` or a join on
``unnest`` of the batch's keys, never one per request.

The ledger holds one row per contact attempt with its newest outcome; the attempts of the trailing 8 days are
read as their first instants (UTC), so a rule counts at any candidate instant:

- ``number_unanswered``: outbound calls to the request's number (its contact-point key, whichever tenant
  made them) that got no answer (no answer, busy, voicemail, failed);
- ``borrower_connects``: conversations (connected, right-party contact; either direction) with the debtor,
  matched by borrower key across tenants and agencies, and by the tenant's customer id;
- ``debt_calls`` / ``debt_conversations``: calls approved or placed, conversations held, on the account;
- ``borrower_contacts``: per channel, outbound contacts approved or made for the debtor (not failed or revoked
  ones);
- ``already_approved``: the contact id was approved before (any age).
One contact counts once per view: at its first instant.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db import repository as repo
from services.compliance.domain.calendar import country_calendar
from services.compliance.domain.rules.base import (
    AgencyView,
    Consent,
    ConsentKind,
    ContactContext,
    Hold,
    HoldKind,
    HolidayCalendar,
    LedgerView,
    Suppression,
    SuppressionKind,
)
from shared.contracts.events import Channel, ContactRequestV1
from shared.crypto import PiiCipher
from shared.identity import IdentityKeys

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=8)  # at least: a week's caps and a day for local-day boundaries
CALENDAR_AHEAD = timedelta(days=400)  # retry instants may be searched this far ahead (past a long hold)

UNANSWERED = frozenset({"no_answer", "busy", "voicemail", "failed"})
CONVERSATIONS = frozenset({"connected", "right_party_contact"})
CALLS_PLACED = UNANSWERED | CONVERSATIONS | frozenset({"approved", "unknown"})  # an approval counts until revoked
NOT_A_CONTACT = frozenset({"failed", "revoked"})  # revoked: approved, then withdrawn before it was sent


@dataclass(frozen=True, slots=True)
class ContactKeys:
    """What turns a request's sealed destination into its contact-point key: the runtime's PII cipher and
    identity keys."""

    cipher: PiiCipher
    identity: IdentityKeys


def calendar_country(settings: Any) -> str:
    """The calendar of tenants that chose none, from the service's settings (``COMPLIANCE_DEFAULT_CALENDAR_COUNTRY``;
    ``none``: no public holidays)."""
    return str(getattr(settings, "default_calendar_country", "CN"))


def destination_key(request: ContactRequestV1, keys: ContactKeys | None) -> str | None:
    """The contact-point key of the request's destination; None without keys or when it does not open."""
    if keys is None or request.destination is None:
        return None
    try:
        plain = keys.cipher.open(request.destination, context=request.tenant)
        return keys.identity.contact_point_key(channel=request.channel.value, destination=plain)
    except Exception:
        return None


def first_instants(rows: Iterable[Any]) -> tuple[datetime, ...]:
    """One instant per contact (its first), oldest first."""
    first: dict[str, datetime] = {}
    for r in rows:
        if r.contact_id not in first or r.occurred_at < first[r.contact_id]:
            first[r.contact_id] = r.occurred_at
    return tuple(sorted(first.values()))


def ledger_view(rows: Sequence[Any]) -> LedgerView:
    """A request's ledger view from its ledger rows, one per attempt with its newest outcome (``branch``:
    number, borrower, customer, debt, contact), each counted at the attempt's first instant."""
    by_branch: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_branch[r.branch].append(r)
    person = list({r.id: r for r in (*by_branch["borrower"], *by_branch["customer"])}.values())
    outbound_person = [r for r in person if r.direction == "outbound" and r.outcome not in NOT_A_CONTACT]
    contacts: dict[Channel, tuple[datetime, ...]] = {}
    for channel in Channel:
        if instants := first_instants(r for r in outbound_person if r.channel == channel.value):
            contacts[channel] = instants
    debt_calls = [r for r in by_branch["debt"] if r.channel == Channel.CALL.value and r.outcome != "revoked"]
    return LedgerView(
        number_unanswered=first_instants(r for r in by_branch["number"] if r.channel == Channel.CALL.value
                                         and r.direction == "outbound" and r.outcome in UNANSWERED),
        borrower_connects=first_instants(r for r in person if r.channel == Channel.CALL.value
                                         and r.outcome in CONVERSATIONS),
        debt_calls=first_instants(r for r in debt_calls if r.direction == "outbound" and r.outcome in CALLS_PLACED),
        debt_conversations=first_instants(r for r in debt_calls if r.outcome in CONVERSATIONS),
        borrower_contacts=contacts,
        already_approved=bool(by_branch["contact"]),
    )


def to_hold(row: Any) -> Hold | None:
    try:
        kind = HoldKind(row.kind)
    except ValueError:
        return None
    ends = [t for t in (row.ends_at, row.lifted_at) if t is not None]
    return Hold(kind=kind, starts_at=row.starts_at, ends_at=min(ends) if ends else None, reason=row.reason,
                account_id=row.account_id)


def to_suppression(row: Any) -> Suppression | None:
    try:
        return Suppression(kind=SuppressionKind(row.kind), channel=Channel(row.channel) if row.channel else None,
                           destination_hash=row.destination_key, source=row.source, at=row.created_at,
                           local_start=row.local_start, local_end=row.local_end)
    except ValueError:
        return None


def to_consent(row: Any) -> Consent | None:
    try:
        return Consent(kind=ConsentKind(row.kind), channel=Channel(row.channel), destination_hash=row.destination_key,
                       granted_at=row.granted_at, revoked_at=row.revoked_at, local_start=row.local_start,
                       local_end=row.local_end)
    except ValueError:
        return None


def holiday_calendar(overrides: Iterable[Any], *, country: str = "CN", years: Iterable[int] = ()) -> HolidayCalendar:
    """The tenant's days without contact: the public holidays of its country in ``years`` (China's make-up
    working days are working days), plus its ``day_off`` overrides, minus its ``working_day`` ones. A country
    the ``holidays`` package does not know contributes no public holidays (logged once per batch)."""
    overrides = list(overrides)
    days_off = {o.day: o.name for o in overrides if o.kind == "day_off"}
    working = [o.day for o in overrides if o.kind == "working_day"]
    try:
        if country.lower() == "none":
            raise NotImplementedError
        return country_calendar(country, years, days_off=days_off, working_days=working)
    except NotImplementedError:
        if country.lower() != "none":
            log.warning("no public holidays known for this country", extra={"country": country})
        return HolidayCalendar(days={d: n for d, n in days_off.items() if d not in set(working)})


async def build_contexts(session: AsyncSession, requests: Sequence[ContactRequestV1], *,
                         keys: ContactKeys | None = None, default_country: str = "CN",
                         now: datetime | None = None, lookback: timedelta = LOOKBACK) -> list[ContactContext]:
    """One :class:`ContactContext` per request, in order, from seven statements whatever the batch size. ``keys``
    (the runtime's) open the sealed destination to its contact-point key; without them ``destination_hash`` is
    None and nothing is counted per number. ``default_country``: the calendar of tenants that chose none
    (``none``: no public holidays). ``lookback``: how far back the ledger and holds are read (the longest period
    the batch's policies count over, :func:`~services.compliance.service.policies.ledger_days`)."""
    if not requests:
        return []
    now = now or datetime.now(UTC)
    since = now - max(lookback, LOOKBACK)
    destinations = [destination_key(r, keys) for r in requests]
    borrowers = [getattr(r, "borrower_key", None) for r in requests]
    customers = {(r.tenant, r.customer_id) for r in requests}
    ledger = await repo.ledger_for(session, since=since, keys=[
        {"idx": str(i), "tenant": r.tenant, "customer_id": r.customer_id, "account_id": r.account_id,
         "contact_id": r.contact_id, "borrower_key": borrowers[i], "destination_key": destinations[i]}
        for i, r in enumerate(requests)])
    holds = await repo.holds_for(session, customers, since=since)
    suppressions = await repo.suppressions_for(
        session, customers, {(r.tenant, d) for r, d in zip(requests, destinations, strict=True) if d is not None})
    consents = await repo.consents_for(session, customers)
    tenants = {r.tenant for r in requests}
    first = min(now.astimezone(ZoneInfo(r.time_zone)).date() for r in requests) - timedelta(days=1)
    overrides = await repo.overrides_for(session, tenants, first=first, last=(now + CALENDAR_AHEAD).date())
    agencies = await repo.assignments_for(session, {(r.tenant, r.account_id) for r in requests})

    ledger_by: dict[int, list[Any]] = defaultdict(list)
    for row in ledger:
        ledger_by[int(row.idx)].append(row)
    holds_by = _group(holds, lambda h: (h.tenant, h.customer_id))
    consents_by = _group(consents, lambda c: (c.tenant, c.customer_id))
    overrides_by = _group(overrides, lambda o: o.tenant)
    by_customer = _group((s for s in suppressions if s.customer_id is not None), lambda s: (s.tenant, s.customer_id))
    by_destination = _group((s for s in suppressions if s.customer_id is None),
                            lambda s: (s.tenant, s.destination_key))
    countries = await repo.calendars_of(session, tenants)
    years = range(first.year, (now + CALENDAR_AHEAD).year + 1)
    calendars = {t: holiday_calendar(overrides_by.get(t, ()), country=countries.get(t, default_country), years=years)
                 for t in tenants}

    contexts = []
    for i, r in enumerate(requests):
        customer = (r.tenant, r.customer_id)
        found = agencies.get((r.tenant, r.account_id))
        own_suppressions = {s.id: s for s in (*by_customer.get(customer, ()),
                                              *by_destination.get((r.tenant, destinations[i]), ()))}.values()
        contexts.append(ContactContext(
            tenant=r.tenant, customer_id=r.customer_id, account_id=r.account_id, channel=r.channel,
            time_zone=r.time_zone, borrower_key=borrowers[i], contact_id=r.contact_id,
            destination_hash=destinations[i], days_past_due=r.days_past_due, overdue_minor=r.overdue_minor,
            ledger=ledger_view(ledger_by.get(i, [])),
            holds=tuple(h for h in map(to_hold, holds_by.get(customer, ()))
                        if h is not None and (h.account_id is None or h.account_id == r.account_id)),
            suppressions=tuple(s for s in map(to_suppression, own_suppressions) if s is not None),
            consents=tuple(c for c in map(to_consent, consents_by.get(customer, ())) if c is not None),
            calendar=calendars[r.tenant],
            agency=AgencyView(agency_id=found.agency_id, listed=found.listed, evaluated_on=found.evaluated_on,
                              debtor_notified_at=found.debtor_notified_at) if found is not None else None,
        ))
    return contexts


def _group(rows: Iterable[Any], key: Any) -> Mapping[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for row in rows:
        grouped[key(row)].append(row)
    return grouped


def local_day_bounds(day: date, time_zone: str) -> tuple[datetime, datetime]:
    """The UTC instants of the start of ``day`` and of the next day in ``time_zone``."""
    zone = ZoneInfo(time_zone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    return start.astimezone(UTC), datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
