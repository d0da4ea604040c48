"""The rule engine over time (services/compliance/domain/rules/), as a hypothesis state machine: customers of
four tenants (CN, CN, US, UK; one debtor at two lenders shares a borrower key, number and address) in zones with
DST and half-hour offsets; steps request contacts, record channel outcomes and calls agents report (inbound
too), place and lift holds, opt out, call times inconvenient, agree or revoke contact windows and
automated-contact consent, add tenant days off and working days, and move the clock (minutes to days, and onto
the DST changes of 2026/2027).

Each request's :class:`ContactContext` is assembled from in-test records the way
``services/compliance/service/context.py`` ``build_contexts`` does (the ledger's branches, lookback and calendar
range; its pure ``ledger_view``, ``to_hold``, ``to_suppression``, ``to_consent`` and ``holiday_calendar``); the
ledger holds one row per attempt, first instant and newest outcome, as ``repository.record_attempts`` keeps it.
The tenant's jurisdiction picks the packs (default policy, or a tightened one that ``validate_policy`` accepts).
An independent oracle reads the rules (``../shared/RULES.md``, docs/compliance.md) straight off the raw
records: the windows of the packs in force, the tenant's holidays in the customer's local date, holds, opt-outs
and do-not-call, automated-contact consent, and the caps counted on the ledger (HOUSE-DUP per borrower across
tenants, CN-ATTEMPTS per number, CN-CONNECTS per debtor, US-7IN7 per debt). The oracle finds the earliest lawful
instant by trying every instant at which lawfulness can change (local midnights, window starts in both folds,
DST changes, hold ends), and each decision must agree with it:

- approved: nothing breaks a window, holiday, hold, opt-out, consent or cap now;
- deferred: ``retry_at`` > now is the earliest lawful instant (lawful there, not one second before); deciding
  at ``retry_at`` (same records) approves, a minute before it does not approve and defers to the same instant;
- blocked: a rule is named, and no lawful instant exists on the records as they stand.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from services.compliance.domain.rules import cn, engine, house, uk, us
from services.compliance.domain.rules.base import (
    ConsentKind,
    ContactContext,
    Decision,
    HoldKind,
    Policy,
    SuppressionKind,
)
from services.compliance.domain.rules.engine import decide, validate_policy
from services.compliance.service.context import (
    CALENDAR_AHEAD,
    LOOKBACK,
    holiday_calendar,
    ledger_view,
    to_consent,
    to_hold,
    to_suppression,
)
from shared.contracts.events import Channel

ZONES = ("Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Adelaide",
         "America/St_Johns", "Asia/Kathmandu")
# tenant -> (jurisdiction, calendar country)
TENANTS = {"cn-a": ("CN", "CN"), "cn-b": ("CN", "CN"), "us-c": ("US", "US"), "uk-d": ("UK", "GB")}
CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.CALL)

# the ledger's outcomes, as services/compliance/service/context.py documents them
UNANSWERED = frozenset({"no_answer", "busy", "voicemail", "failed"})
CONVERSATIONS = frozenset({"connected", "right_party_contact"})
PLACED = UNANSWERED | CONVERSATIONS | {"approved", "unknown"}
OUTCOMES = {Channel.SMS: ("sent", "delivered", "failed", "unknown", "revoked"),
            Channel.EMAIL: ("sent", "delivered", "failed", "unknown", "revoked"),
            Channel.CALL: ("no_answer", "busy", "voicemail", "failed", "connected", "right_party_contact", "unknown",
                           "revoked")}

# which holds stop a contact (docs/compliance.md): HOUSE-HOLDS everywhere, then per pack; (kind, automated only)
HOUSE_HOLDS = {HoldKind.PLAN, HoldKind.PROMISE, HoldKind.DISPUTE, HoldKind.COMPLAINT, HoldKind.DECEASED,
               HoldKind.BANKRUPT}
PACK_HOLDS = {"CN": {HoldKind.COMPLAINT: True},
              "US": {HoldKind.CEASE: False, HoldKind.VALIDATION: False, HoldKind.DISPUTE: False},
              "UK": {HoldKind.HARDSHIP: True, HoldKind.VULNERABILITY: True, HoldKind.BREATHING_SPACE: False,
                     HoldKind.MENTAL_HEALTH: False}}
WINDOW_CHANNELS = {"CN": {Channel.CALL, Channel.SMS, Channel.FIELD}, "US": {Channel.CALL, Channel.SMS, Channel.EMAIL},
                   "UK": set(Channel)}
MIDNIGHT = time(0)
SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2027, 12, 1, tzinfo=UTC)


# --- time -----------------------------------------------------------------------------------------------------


@functools.cache
def tz(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def wall(at: datetime, zone: str) -> datetime:
    return at.astimezone(tz(zone))


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants (UTC, to the second) at which ``zone``'s offset changes, 2025-2029."""
    found, step = [], timedelta(hours=6)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    while t < datetime(2029, 1, 1, tzinfo=UTC):
        if t.astimezone(tz(zone)).utcoffset() != (t + step).astimezone(tz(zone)).utcoffset():
            lo, hi = t, t + step  # offset(lo) != offset(hi): bisect to the first second of the new offset
            while hi - lo > SECOND:
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(tz(zone)).utcoffset() == lo.astimezone(tz(zone)).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
        t += step
    return tuple(found)


def dst_changes_2026_2027() -> list[datetime]:
    return sorted({t for z in ZONES for t in transitions(z) if START <= t < END})


def occurrences(day: date, at: time, zone: str) -> set[datetime]:
    """The instants of wall time ``at`` on ``day`` in ``zone`` (both folds; a gap's reading too: harmless)."""
    first = datetime.combine(day, at, tzinfo=tz(zone))
    return {first.astimezone(UTC), first.replace(fold=1).astimezone(UTC)}


def inside(at: time, start: time, end: time) -> bool:
    """``at`` in the local window [start, end), wrapping midnight when start > end; empty when equal."""
    if start < end:
        return start <= at < end
    if start > end:
        return at >= start or at < end
    return False


# --- the records ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    tenant: str
    customer_id: str
    accounts: tuple[str, ...]
    time_zone: str
    borrower_key: str | None
    phone: str   # contact-point key: one key for SMS and calls
    email: str

    @property
    def jurisdiction(self) -> str:
        return TENANTS[self.tenant][0]

    def destination(self, channel: Channel) -> str:
        return self.email if channel is Channel.EMAIL else self.phone


@dataclass(frozen=True)
class Request:
    customer: Customer
    account_id: str
    channel: Channel
    automated: bool
    contact_id: str

    @property
    def destination(self) -> str:
        return self.customer.destination(self.channel)


def row(**kw: Any) -> SimpleNamespace:
    return SimpleNamespace(**kw)


@dataclass
class World:
    """The records compliance keeps, in memory, and contexts built from them as build_contexts does."""

    customers: list[Customer]
    policy: Policy
    # the contact ledger: one row per attempt (tenant, contact id) with its first instant and newest outcome
    ledger: dict[tuple[str, str], SimpleNamespace] = field(default_factory=dict)
    holds: list[SimpleNamespace] = field(default_factory=list)
    suppressions: list[SimpleNamespace] = field(default_factory=list)
    consents: list[SimpleNamespace] = field(default_factory=list)
    overrides: dict[tuple[str, date], SimpleNamespace] = field(default_factory=dict)
    ids: itertools.count = field(default_factory=itertools.count)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"

    def record_attempt(self, **values: Any) -> None:
        """repository.record_attempts: the earliest approval and first instant are kept, the newest outcome wins
        (ties by name), keys already known stay."""
        new = row(**values)
        old = self.ledger.get((new.tenant, new.contact_id))
        if old is None:
            self.ledger[(new.tenant, new.contact_id)] = row(id=self.new_id("row"), **values)
            return
        newer = new.outcome_at is not None and (old.outcome_at is None or new.outcome_at > old.outcome_at
                                                or (new.outcome_at == old.outcome_at and new.outcome > old.outcome))
        old.approved_at = min((t for t in (old.approved_at, new.approved_at) if t is not None), default=None)
        old.occurred_at = min(old.occurred_at, new.occurred_at)
        old.outcome = new.outcome if newer else old.outcome
        old.outcome_at = max((t for t in (old.outcome_at, new.outcome_at) if t is not None), default=None)
        for key in ("borrower_key", "destination_key"):
            setattr(old, key, getattr(old, key) if getattr(old, key) is not None else getattr(new, key))

    # -- build_contexts, without a database --

    def calendar(self, tenant: str, first: date, last: date) -> Any:
        days = tuple(sorted((o.day, o.kind, o.name) for (t, d), o in self.overrides.items()
                            if t == tenant and first <= d <= last))
        return _calendar(TENANTS[tenant][1], days, tuple(range(first.year, last.year + 1)))

    def context(self, r: Request, now: datetime) -> ContactContext:
        c, since = r.customer, now - LOOKBACK
        rows = []
        for e in self.ledger.values():
            branches = []
            if e.occurred_at >= since:
                if e.destination_key is not None and e.destination_key == r.destination:
                    branches.append("number")
                if c.borrower_key is not None and e.borrower_key == c.borrower_key:
                    branches.append("borrower")
                if (e.tenant, e.customer_id) == (c.tenant, c.customer_id):
                    branches.append("customer")
                if (e.tenant, e.account_id) == (c.tenant, r.account_id):
                    branches.append("debt")
            if (e.tenant, e.contact_id) == (c.tenant, r.contact_id) and e.approved_at is not None:
                branches.append("contact")
            rows += [SimpleNamespace(branch=b, **vars(e)) for b in branches]
        stored = [h for h in self.holds if (h.tenant, h.customer_id) == (c.tenant, c.customer_id)
                  and (h.ends_at is None or h.ends_at > since) and (h.lifted_at is None or h.lifted_at > since)]
        holds = [h for h in map(to_hold, stored)
                 if h is not None and (h.account_id is None or h.account_id == r.account_id)]
        sups = [s for s in self.suppressions if s.tenant == c.tenant
                and (s.customer_id == c.customer_id or (s.customer_id is None and s.destination_key == r.destination))]
        consents = [k for k in self.consents if (k.tenant, k.customer_id) == (c.tenant, c.customer_id)]
        first = wall(now, c.time_zone).date() - timedelta(days=1)
        return ContactContext(
            tenant=c.tenant, customer_id=c.customer_id, account_id=r.account_id, channel=r.channel,
            time_zone=c.time_zone, borrower_key=c.borrower_key, contact_id=r.contact_id,
            destination_hash=r.destination, jurisdiction=c.jurisdiction, automated=r.automated, days_past_due=40,
            overdue_minor=100_000, ledger=ledger_view(rows), holds=tuple(holds),
            suppressions=tuple(s for s in map(to_suppression, sups) if s is not None),
            consents=tuple(k for k in map(to_consent, consents) if k is not None),
            calendar=self.calendar(c.tenant, first, (now + CALENDAR_AHEAD).date()))


@functools.lru_cache(maxsize=4096)
def _calendar(country: str, days: tuple[tuple[date, str, str], ...], years: tuple[int, ...]) -> Any:
    return holiday_calendar([SimpleNamespace(day=d, kind=k, name=n) for d, k, n in days], country=country,
                            years=years)


# --- the oracle -------------------------------------------------------------------------------------------------


def first_instants(rows: Iterable[SimpleNamespace]) -> list[datetime]:
    first: dict[str, datetime] = {}
    for e in rows:
        first[e.contact_id] = min(first.get(e.contact_id, e.occurred_at), e.occurred_at)
    return sorted(first.values())


class Oracle:
    """What the rules mean for one request, read off the raw records (not the LedgerView), at any instant from
    ``now`` on (every record is at or before ``now``)."""

    def __init__(self, world: World, r: Request, now: datetime) -> None:
        self.world, self.r, self.now = world, r, now
        c, p = r.customer, world.policy
        self.zone, self.j = c.time_zone, c.jurisdiction
        self.params = {rule_id: engine.params_of(engine.RULES[rule_id], p) for rule_id in engine.RULES}
        ledger = list(world.ledger.values())
        person = [e for e in ledger if (c.borrower_key is not None and e.borrower_key == c.borrower_key)
                  or (e.tenant, e.customer_id) == (c.tenant, c.customer_id)]
        debt = [e for e in ledger if (e.tenant, e.account_id) == (c.tenant, r.account_id) and e.channel == "call"
                and e.outcome != "revoked"]
        self.approved_before = any((e.tenant, e.contact_id) == (c.tenant, r.contact_id) and e.approved_at is not None
                                   for e in ledger)
        # HOUSE-DUP counts contacts approved or made, not failed or revoked ones
        self.contacts = self.dates(first_instants(
            e for e in person if e.channel == r.channel.value and e.direction == "outbound"
            and e.outcome not in {"failed", "revoked"}))
        self.unanswered = self.dates(first_instants(
            e for e in ledger if e.destination_key == r.destination and e.channel == "call"
            and e.direction == "outbound" and e.outcome in UNANSWERED))
        self.connects = self.dates(first_instants(
            e for e in person if e.channel == "call" and e.outcome in CONVERSATIONS))
        self.debt_calls = self.dates(first_instants(
            e for e in debt if e.direction == "outbound" and e.outcome in PLACED))
        self.debt_talks = self.dates(first_instants(e for e in debt if e.outcome in CONVERSATIONS))
        # HOUSE-HOLDS binds agents' contacts too; a hardship only automated ones (it routes the case to a person)
        kinds = {HoldKind.HARDSHIP: True} | PACK_HOLDS[self.j] | {k: False for k in HOUSE_HOLDS}
        self.holds = [h for h in world.holds if (h.tenant, h.customer_id) == (c.tenant, c.customer_id)
                      and (h.account_id is None or h.account_id == r.account_id)
                      and HoldKind(h.kind) in kinds and (r.automated or not kinds[HoldKind(h.kind)])]
        mine = [s for s in world.suppressions if s.tenant == c.tenant
                and (s.customer_id in {None, c.customer_id})
                and (s.customer_id is not None or s.destination_key == r.destination)
                and s.destination_key in {None, r.destination} and s.channel in {None, r.channel.value}]
        stops = {SuppressionKind.OPT_OUT.value} | ({SuppressionKind.DO_NOT_CALL.value}
                                                   if r.channel is Channel.CALL else set())
        self.opted_out = [s for s in mine if s.kind in stops]
        self.inconvenient = ([s for s in mine if s.kind == SuppressionKind.INCONVENIENT_TIME.value]
                             if self.j == "US" and r.channel in WINDOW_CHANNELS["US"] else [])
        self.calendar = world.calendar(c.tenant, date(2025, 1, 1), date(2028, 12, 31))
        self.consents = [k for k in world.consents if (k.tenant, k.customer_id) == (c.tenant, c.customer_id)
                         and k.channel == r.channel.value and k.destination_key in {None, r.destination}]

    def dates(self, instants: Sequence[datetime]) -> list[date]:
        return [wall(t, self.zone).date() for t in instants]

    def consent(self, kind: ConsentKind, t: datetime) -> list[SimpleNamespace]:
        found = [k for k in self.consents if k.kind == kind.value and k.granted_at <= t
                 and (k.revoked_at is None or t < k.revoked_at)]
        return sorted(found, key=lambda k: k.granted_at, reverse=True)

    def windows(self, t: datetime) -> list[tuple[str, time, time]]:
        """The windows the packs in force bind this channel to at ``t``."""
        ch, found = self.r.channel, []
        if self.j == "CN" and ch in WINDOW_CHANNELS["CN"]:
            p = self.params["CN-HOURS"]
            agreed = [(k.local_start, k.local_end) for k in self.consent(ConsentKind.WINDOW, t)
                      if k.local_start is not None and k.local_end is not None and k.local_start != k.local_end]
            found.append(("CN-HOURS", *(agreed[0] if agreed else (p.start, p.end))))
        if self.j == "US" and ch in WINDOW_CHANNELS["US"]:
            found.append(("US-HOURS", self.params["US-HOURS"].start, self.params["US-HOURS"].end))
        if self.j == "UK":
            found.append(("UK-HOURS", self.params["UK-HOURS"].start, self.params["UK-HOURS"].end))
        return found

    def active_holds(self, t: datetime) -> list[SimpleNamespace]:
        return [h for h in self.holds if h.starts_at <= t
                and all(x is None or t < x for x in (h.ends_at, h.lifted_at))]

    def violations(self, t: datetime) -> list[str]:
        """Why a contact at ``t`` would break a rule (empty: it is lawful)."""
        r, out = self.r, []
        local = wall(t, self.zone)
        today, clock = local.date(), local.time()
        if self.approved_before:
            out.append("the same contact again")
        for name, start, end in self.windows(t):
            if not inside(clock, start, end):
                out.append(f"{name} window {start:%H:%M}-{end:%H:%M} at {local:%H:%M}")
        for s in self.inconvenient:
            if s.local_start is None or inside(clock, s.local_start, s.local_end):
                out.append(f"a time or place called inconvenient {s.local_start}-{s.local_end}")
        if (name := self.calendar.holiday(today)) is not None:
            out.append(f"holiday {today} ({name})")
        out += [f"{h.kind} hold until {h.lifted_at or h.ends_at}" for h in self.active_holds(t)]
        out += [f"{s.kind} for {r.channel.value}" for s in self.opted_out]
        if self.j == "US" and r.automated and r.channel in {Channel.CALL, Channel.SMS} \
                and not self.consent(ConsentKind.AUTOMATED, t):
            out.append("no consent to automated contact")
        interval = self.params["HOUSE-DUP"].interval_days.get(r.channel)
        if interval and any((today - d).days < interval for d in self.contacts if d <= today):
            out.append(f"HOUSE-DUP: a {r.channel.value} within {interval} local days")
        if r.channel is Channel.CALL and self.j == "CN":
            if sum(d == today for d in self.unanswered) >= self.params["CN-ATTEMPTS"].max_unanswered:
                out.append("CN-ATTEMPTS cap")
            if sum(d == today for d in self.connects) >= self.params["CN-CONNECTS"].max_connects:
                out.append("CN-CONNECTS cap")
        if r.channel is Channel.CALL and self.j == "US":
            p = self.params["US-7IN7"]
            if sum((today - d).days < p.period_days for d in self.debt_calls) >= p.max_calls:
                out.append("US-7IN7 calls cap")
            if any((today - d).days < p.quiet_days for d in self.debt_talks):
                out.append(f"US-7IN7: a conversation in the last {p.quiet_days} local days")
        return out

    def permanent(self, t: datetime) -> bool:
        """Nothing on the records as they stand ends what stops the contact at ``t``."""
        r = self.r
        return (self.approved_before or bool(self.opted_out)
                or any(h.ends_at is None and h.lifted_at is None for h in self.active_holds(t))
                or any(s.local_start is None for s in self.inconvenient)
                or (self.j == "US" and r.automated and r.channel in {Channel.CALL, Channel.SMS}
                    and not self.consent(ConsentKind.AUTOMATED, t))
                or (r.channel is Channel.CALL and self.j == "CN"
                    and 0 in (self.params["CN-ATTEMPTS"].max_unanswered, self.params["CN-CONNECTS"].max_connects))
                or (r.channel is Channel.CALL and self.j == "US" and self.params["US-7IN7"].max_calls == 0))

    def candidates(self, until: datetime) -> list[datetime]:
        """Every instant in [now, until] at which lawfulness may begin: now, local midnights and window starts
        (and ends of times called inconvenient) in both folds, DST changes, hold ends."""
        walls = {MIDNIGHT} | {start for _, start, _ in self.windows(self.now)} | {
            s.local_end for s in self.inconvenient if s.local_end is not None}
        found = {self.now}
        day, last = wall(self.now, self.zone).date() - timedelta(days=1), wall(until, self.zone).date() + timedelta(1)
        while day <= last:
            for w in walls:
                found |= occurrences(day, w, self.zone)
            day += timedelta(days=1)
        changes = transitions(self.zone)
        found |= set(changes[bisect.bisect_left(changes, self.now):bisect.bisect_right(changes, until)])
        found |= {x for h in self.holds for x in (h.ends_at, h.lifted_at) if x is not None}
        return sorted(t for t in found if self.now <= t <= until)

    def earliest(self) -> datetime | None:
        """The earliest lawful instant from now (None: none on the records as they stand)."""
        if self.permanent(self.now):
            return None
        ends = [x for h in self.holds for x in (h.ends_at, h.lifted_at) if x is not None and x > self.now]
        until = max([self.now, *ends]) + timedelta(days=45)
        for t in self.candidates(until):
            if not self.violations(t):
                return t
            if self.permanent(t):
                return None
        return None


# --- the machine ----------------------------------------------------------------------------------------------

walls = st.integers(0, 47).map(lambda h: time(h // 2, 30 * (h % 2)))
# wall times the spring-forward of these zones swallows, or the fall-back repeats (00:00-03:00 local)
picks = st.integers(0, 7)  # which customer, account or record (modulo how many there are)
night_walls = st.sampled_from([time(0, 30), time(1, 0), time(1, 30), time(2, 0), time(2, 30), time(2, 45)])


@st.composite
def tightened(draw: st.DrawFn) -> Policy:
    """A valid policy with every tightenable number drawn (windows narrower, caps lower, intervals longer; the
    seven-day periods stay seven: the ledger is read for the trailing 8 days only)."""
    def window(legal: tuple[int, int]) -> tuple[time, time]:
        start = draw(st.integers(legal[0] * 2, legal[1] * 2 - 1))
        end = draw(st.integers(start + 1, legal[1] * 2))
        return time(start // 2, 30 * (start % 2)), time(end // 2, 30 * (end % 2))
    dup = {Channel.SMS: draw(st.integers(1, 7))}
    for ch in (Channel.EMAIL, Channel.CALL):
        if n := draw(st.integers(0, 3)):
            dup[ch] = n
    return Policy(version=9, params={
        "CN-HOURS": cn.HoursParams(*window((8, 22))), "US-HOURS": us.HoursParams(*window((8, 21))),
        "UK-HOURS": uk.HoursParams(*window((8, 21))),
        "CN-ATTEMPTS": cn.AttemptsParams(draw(st.integers(0, 6))),
        "CN-CONNECTS": cn.ConnectsParams(draw(st.integers(0, 3))),
        "US-7IN7": us.SevenParams(max_calls=draw(st.integers(0, 7))),
        "HOUSE-DUP": house.DupParams(dup)})


starts = st.one_of(
    st.datetimes(min_value=START.replace(tzinfo=None), max_value=END.replace(tzinfo=None)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)),
    st.builds(lambda t, m: t + timedelta(minutes=m), st.sampled_from(dst_changes_2026_2027()),
              st.integers(-26 * 60, 2 * 60)),
    # the eves of Spring Festival and National Day 2026, Christmas 2026, Spring Festival 2027
    st.builds(lambda d, m: d + timedelta(minutes=m),
              st.sampled_from([datetime(2026, 2, 14, tzinfo=UTC), datetime(2026, 9, 30, tzinfo=UTC),
                               datetime(2026, 12, 24, tzinfo=UTC), datetime(2027, 2, 5, tzinfo=UTC)]),
              st.integers(0, 36 * 60)))


class EngineMachine(RuleBasedStateMachine):
    """Requests, outcomes, records and clock moves; every decision checked against the oracle."""

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.now = START
        self.approved: list[tuple[Request, datetime]] = []   # approved contacts, with when
        self.finished: set[str] = set()                      # contacts with a final (revoked) outcome
        self.deferred: list[tuple[Request, datetime]] = []

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @initialize(data=st.data())
    def setup(self, data: st.DataObject) -> None:
        policy = data.draw(st.one_of(st.just(Policy()), st.just(Policy()), tightened()), label="policy")
        assert validate_policy(policy) == []
        tenants = sorted(TENANTS)
        debtor_zone = data.draw(st.sampled_from(ZONES), label="debtor zone")
        other = data.draw(st.sampled_from([t for t in tenants if t != "cn-a"]), label="debtor's second lender")
        customers = [
            Customer("cn-a", "C0", ("C0-A1", "C0-A2"), debtor_zone, "B-debtor", "cp:phone-0", "cp:mail-0"),
            Customer(other, "C1", ("C1-A1",),
                     data.draw(st.sampled_from([debtor_zone, *ZONES]), label="zone at the second lender"),
                     "B-debtor", "cp:phone-0", "cp:mail-0")]
        for i in range(2, 2 + data.draw(st.integers(1, 3), label="other customers")):
            customers.append(Customer(data.draw(st.sampled_from(tenants), label=f"tenant {i}"), f"C{i}",
                                      (f"C{i}-A1",), data.draw(st.sampled_from(ZONES), label=f"zone {i}"),
                                      data.draw(st.sampled_from([f"B{i}", None]), label=f"borrower {i}"),
                                      f"cp:phone-{i}", f"cp:mail-{i}"))
        self.world = World(customers, policy)
        self.now = data.draw(starts, label="start")
        for c in customers:
            if c.jurisdiction == "US" and data.draw(st.integers(0, 4), label="automated consent") > 0:
                for ch in (Channel.SMS, Channel.CALL):
                    self.w.consents.append(row(tenant=c.tenant, customer_id=c.customer_id,
                                               kind=ConsentKind.AUTOMATED.value, channel=ch.value,
                                               destination_key=None, granted_at=self.now - timedelta(days=30),
                                               revoked_at=None, local_start=None, local_end=None))

    # -- requests --
    # Rules take plain integers to pick a customer, an account or a record (modulo how many there are), not
    # st.data(): failures shrink far faster.

    def customer(self, who: int) -> Customer:
        return self.w.customers[who % len(self.w.customers)]

    def request(self, who: int, account: int, channel: Channel, automated: bool) -> None:
        c = self.customer(who)
        self.check(Request(c, c.accounts[account % len(c.accounts)], channel, automated, self.w.new_id("contact")))

    # one rule per channel, so that requests are a good share of the steps
    @rule(who=picks, account=picks, automated=st.booleans())
    def request_sms(self, who: int, account: int, automated: bool) -> None:
        self.request(who, account, Channel.SMS, automated)

    @rule(who=picks, account=picks, automated=st.booleans())
    def request_email(self, who: int, account: int, automated: bool) -> None:
        self.request(who, account, Channel.EMAIL, automated)

    @rule(who=picks, account=picks, automated=st.booleans())
    def request_call(self, who: int, account: int, automated: bool) -> None:
        self.request(who, account, Channel.CALL, automated)

    @rule(who=picks, account=picks, channel=st.sampled_from(CHANNELS))
    def request_by_an_agent(self, who: int, account: int, channel: Channel) -> None:
        self.request(who, account, channel, False)

    @precondition(lambda self: self.deferred)
    @rule(which=picks)
    def retry_when_told(self, which: int) -> None:
        """The scheduler sends a deferred contact again at its retry_at (or now, when that has passed)."""
        r, retry = self.deferred.pop(which % len(self.deferred))
        self.now = max(self.now, retry)
        self.check(r)

    @precondition(lambda self: self.approved)
    @rule(which=picks)
    def request_an_approved_contact_again(self, which: int) -> None:
        r, _ = self.approved[which % len(self.approved)]
        decision = self.check(r)
        assert decision.outcome == "blocked", decision

    # -- what happened --

    @precondition(lambda self: self.approved)
    @rule(which=picks, kind=picks, share=st.sampled_from([0.0, 0.5, 1.0]))
    def outcome(self, which: int, kind: int, share: float) -> None:
        """channels.contact-outcome.v1 (records.record_outcomes): no contact point, the event's borrower key; it
        may arrive late, or out of order: it happened between the approval and now."""
        r, approved_at = self.approved[which % len(self.approved)]
        if r.contact_id in self.finished:
            return
        attempt = self.w.ledger[(r.customer.tenant, r.contact_id)]
        kinds = [k for k in OUTCOMES[r.channel] if k != "revoked" or attempt.outcome == "approved"]
        at = (approved_at + (self.now - approved_at) * share).replace(microsecond=0)
        c, outcome = r.customer, kinds[kind % len(kinds)]
        self.w.record_attempt(tenant=c.tenant, borrower_key=c.borrower_key, customer_id=c.customer_id,
                              account_id=r.account_id, contact_id=r.contact_id, channel=r.channel.value,
                              destination_key=None, direction="outbound", outcome=outcome,
                              occurred_at=max(at, approved_at), approved_at=None, outcome_at=max(at, approved_at))
        if outcome == "revoked":
            self.finished.add(r.contact_id)

    @rule(who=picks, account=picks, outcome=st.sampled_from(OUTCOMES[Channel.CALL][:-2]),
          direction=st.sampled_from(["outbound", "inbound"]), ago=st.integers(0, 180), took=st.integers(0, 30))
    def agent_reports_a_call(self, who: int, account: int, outcome: str, direction: str, ago: int, took: int) -> None:
        """records.record_agent_attempt: a call an agent or dialer made or took, reported after it happened."""
        c = self.customer(who)
        started = self.now - timedelta(minutes=ago)
        self.w.record_attempt(tenant=c.tenant, borrower_key=c.borrower_key, customer_id=c.customer_id,
                              account_id=c.accounts[account % len(c.accounts)],
                              contact_id=f"agent:{self.w.new_id('attempt')}", channel="call", destination_key=c.phone,
                              direction=direction, outcome=outcome, occurred_at=started, approved_at=None,
                              outcome_at=min(self.now, started + timedelta(minutes=took)))

    @rule(who=picks, account=picks, unanswered=st.sampled_from([0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 8]),
          talks=st.sampled_from([0, 0, 0, 1, 2, 3, 4]),
          gap=st.sampled_from([1, 10, 60, 6 * 60, 20 * 60]), automated=st.booleans())
    def a_dialer_reports_a_burst(self, who: int, account: int, unanswered: int, talks: int, gap: int,
                                 automated: bool) -> None:
        """Calls to one debtor reported at once, ``gap`` minutes apart up to now (conversations first, then
        unanswered ones), then a call to them requested: enough to reach the daily caps (CN-ATTEMPTS, CN-CONNECTS)
        and the seven-day ones (US-7IN7)."""
        c = self.customer(who)
        no_answer = sorted(UNANSWERED)
        for i in range(talks + unanswered):
            started = self.now - timedelta(minutes=gap * i)
            self.w.record_attempt(tenant=c.tenant, borrower_key=c.borrower_key, customer_id=c.customer_id,
                                  account_id=c.accounts[account % len(c.accounts)],
                                  contact_id=f"agent:{self.w.new_id('attempt')}", channel="call",
                                  destination_key=c.phone, direction="outbound",
                                  outcome="connected" if i < talks else no_answer[i % len(no_answer)],
                                  occurred_at=started, approved_at=None, outcome_at=started)
        self.request(who, account, Channel.CALL, automated)

    # -- holds, suppressions, consents, calendars --

    @rule(who=picks, account=picks, kind=st.sampled_from(list(HoldKind)),
          minutes=st.one_of(st.none(), st.integers(1, 180), st.integers(180, 3 * 1440),
                            st.integers(3 * 1440, 40 * 1440), st.integers(3 * 1440, 40 * 1440)))
    def place_hold(self, who: int, account: int, kind: HoldKind, minutes: int | None) -> None:
        """records.place_hold: from now, until a date or until lifted; on an account or all the customer's."""
        c = self.customer(who)
        accounts = [None, *c.accounts]
        self.w.holds.append(row(id=self.w.new_id("hold"), tenant=c.tenant, customer_id=c.customer_id,
                                account_id=accounts[account % len(accounts)], kind=kind.value, starts_at=self.now,
                                ends_at=self.now + timedelta(minutes=minutes) if minutes else None,
                                lifted_at=None, reason=f"{kind.value} (test)"))

    @precondition(lambda self: any(h.lifted_at is None for h in self.w.holds))
    @rule(which=picks)
    def lift_hold(self, which: int) -> None:
        holds = [h for h in self.w.holds if h.lifted_at is None]
        holds[which % len(holds)].lifted_at = self.now

    @rule(who=picks, channel=st.sampled_from([*CHANNELS, None]),
          kind=st.sampled_from([SuppressionKind.OPT_OUT, SuppressionKind.OPT_OUT, SuppressionKind.DO_NOT_CALL]),
          whom=st.sampled_from(["number", "customer", "customer's number"]), rare=st.integers(0, 2))
    def opt_out(self, who: int, channel: Channel | None, kind: SuppressionKind, whom: str, rare: int) -> None:
        if rare:  # an opt-out is for good: not too many of them
            return
        c = self.customer(who)
        destination = c.destination(channel or Channel.SMS) if whom != "customer" else None
        self.w.suppressions.append(row(
            id=self.w.new_id("sup"), tenant=c.tenant, customer_id=None if whom == "number" else c.customer_id,
            destination_key=destination, channel=channel.value if channel else None, kind=kind.value,
            local_start=None, local_end=None, source="test", created_at=self.now))

    @rule(who=picks, channel=st.sampled_from([*CHANNELS, None]), start=walls, end=walls, place=st.integers(0, 9))
    def call_a_time_inconvenient(self, who: int, channel: Channel | None, start: time, end: time,
                                 place: int) -> None:
        """US-HOURS: a local window the consumer called inconvenient; rarely a place (no window): for good."""
        if start == end and place:
            return
        c = self.customer(who)
        window = (start, end) if place else (None, None)
        self.w.suppressions.append(row(
            id=self.w.new_id("sup"), tenant=c.tenant, customer_id=c.customer_id, destination_key=None,
            channel=channel.value if channel else None, kind=SuppressionKind.INCONVENIENT_TIME.value,
            local_start=window[0], local_end=window[1], source="test", created_at=self.now))

    @rule(who=picks, channel=st.sampled_from([Channel.CALL, Channel.SMS]), start=st.one_of(walls, night_walls),
          end=st.one_of(walls, night_walls), own_number=st.booleans())
    def agree_a_window(self, who: int, channel: Channel, start: time, end: time, own_number: bool) -> None:
        """CN-HOURS: the debtor agreed another window (any hours, DST gaps and folds included)."""
        c = self.customer(who)
        self.w.consents.append(row(tenant=c.tenant, customer_id=c.customer_id, kind=ConsentKind.WINDOW.value,
                                   channel=channel.value, destination_key=c.phone if own_number else None,
                                   granted_at=self.now, revoked_at=None, local_start=start, local_end=end))

    @precondition(lambda self: any(k.revoked_at is None for k in self.w.consents))
    @rule(which=picks)
    def revoke_a_consent(self, which: int) -> None:
        """A window agreed, or consent to automated calls and texts (US-TCPA), revoked now."""
        live = [k for k in self.w.consents if k.revoked_at is None]
        live[which % len(live)].revoked_at = self.now

    @rule(tenant=st.sampled_from(sorted(TENANTS)), days=st.integers(-1, 14),
          kind=st.sampled_from(["day_off", "day_off", "working_day"]))
    def calendar_override(self, tenant: str, days: int, kind: str) -> None:
        """A tenant's own day off, or a working day that overrides a public holiday."""
        day = self.now.date() + timedelta(days=days)
        self.w.overrides[(tenant, day)] = row(day=day, kind=kind, name=f"{kind} (test)")

    # -- the clock --

    @rule(minutes=st.one_of(st.integers(1, 59), st.integers(60, 24 * 60), st.integers(1, 10).map(lambda d: d * 1440),
                            st.integers(1440, 10 * 1440)))
    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(who=st.one_of(picks, st.none()), zone=st.sampled_from(ZONES), minutes=st.integers(-120, 120),
          seconds=st.sampled_from([0, 0, -1, 1]))
    def to_a_dst_change(self, who: int | None, zone: str, minutes: int, seconds: int) -> None:
        """Just before or after the next change of a customer's zone (``who``), or of any zone."""
        if who is not None:
            zone = self.customer(who).time_zone
        later = [t for t in transitions(zone) if t > self.now]
        if later:
            self.now = max(self.now, later[0] + timedelta(minutes=minutes, seconds=seconds))

    # -- the checks --

    def decide(self, r: Request, at: datetime) -> Decision:
        return decide(self.w.context(r, at), at, self.w.policy)

    def check(self, r: Request) -> Decision:
        now, c = self.now, r.customer
        d = self.decide(r, now)
        oracle = Oracle(self.w, r, now)
        lawful_now = oracle.violations(now)
        earliest = oracle.earliest()
        show = (f"{r.channel.value} to {c.customer_id}@{c.tenant} ({c.jurisdiction}, {c.time_zone}, automated="
                f"{r.automated}) at {wall(now, c.time_zone):%Y-%m-%d %H:%M %Z}: {d.outcome} by {d.rule_id}: "
                f"{d.reason}; retry_at {d.retry_at and wall(d.retry_at, c.time_zone)}; the oracle: now "
                f"{lawful_now}, earliest {earliest and wall(earliest, c.time_zone)}")
        assert d.policy_version == self.w.policy.version
        if d.outcome == "approved":
            assert d.retry_at is None and lawful_now == [], show
            self.approved.append((r, now))
            self.w.record_attempt(tenant=c.tenant, borrower_key=c.borrower_key, customer_id=c.customer_id,
                                  account_id=r.account_id, contact_id=r.contact_id, channel=r.channel.value,
                                  destination_key=r.destination, direction="outbound", outcome="approved",
                                  occurred_at=now, approved_at=now, outcome_at=None)
        elif d.outcome == "deferred":
            retry = d.retry_at
            assert retry is not None and retry > now, show
            assert lawful_now, f"deferred although lawful now: {show}"
            assert d.rule_id in {v.rule_id for v in d.evaluated if v.verdict == "defer"}, show
            assert oracle.violations(retry) == [], f"retry_at is not lawful: {oracle.violations(retry)}; {show}"
            assert earliest == retry, f"retry_at is not the earliest lawful instant: {show}"
            again = self.decide(r, retry)
            assert again.outcome == "approved", f"at retry_at the same records give {again}; {show}"
            before = retry - MINUTE
            if before >= now:
                early = self.decide(r, before)
                assert early.outcome != "approved", f"approved a minute before retry_at: {show}"
                assert early.outcome == "blocked" or early.retry_at == retry, (early, show)
            self.deferred.append((r, retry))
        else:
            assert d.outcome == "blocked" and d.retry_at is None, show
            assert d.reason and (d.rule_id in engine.RULES or d.rule_id == engine.ENGINE), show
            if d.rule_id != engine.ENGINE:
                assert any(v.rule_id == d.rule_id for v in d.evaluated), show
            assert earliest is None, f"blocked although lawful at {earliest}: {show}"
        if d.outcome != "blocked":
            assert earliest == (now if d.outcome == "approved" else d.retry_at), show
        return d


EngineMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None, database=None,
                                           report_multiple_bugs=False,
                                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# a failure's steps take minutes to shrink (hypothesis gives up after five): let it report before the timeout
TestEngineOverTime = pytest.mark.timeout(900)(EngineMachine.TestCase)


# --- windows across DST changes, more often than the machine reaches them --------------------------------------


DST_ZONES = [z for z in ZONES if len(transitions(z)) > 1]


@st.composite
def near_a_change(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone with DST, and an instant from a day before one of its 2026/2027 changes to a few hours after."""
    zone = draw(st.sampled_from(DST_ZONES))
    change = draw(st.sampled_from([t for t in transitions(zone) if START <= t < END]))
    return zone, change + timedelta(minutes=draw(st.integers(-26 * 60, 4 * 60)))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tenant=st.sampled_from(["cn-a", "cn-a", "us-c", "uk-d"]), case=near_a_change(),
       channel=st.sampled_from([Channel.SMS, Channel.CALL, Channel.EMAIL]), start=st.one_of(night_walls, walls),
       end=st.one_of(night_walls, walls), agreed=st.booleans())
def test_a_window_across_a_dst_change_opens_at_the_earliest_lawful_instant(
        tenant: str, case: tuple[str, datetime], channel: Channel, start: time, end: time, agreed: bool) -> None:
    """A request a day before to a few hours after a DST change of the customer's zone, with or without a window
    the debtor agreed (CN-HOURS; its hours may fall in the gap or the repeated hour)."""
    zone, now = case
    machine = EngineMachine()
    customer = Customer(tenant, "C0", ("C0-A1",), zone, "B0", "cp:phone-0", "cp:mail-0")
    machine.world = World([customer], Policy())
    machine.now = now
    if agreed:
        machine.w.consents.append(row(tenant=tenant, customer_id="C0", kind=ConsentKind.WINDOW.value,
                                      channel=channel.value, destination_key=None, granted_at=START, revoked_at=None,
                                      local_start=start, local_end=end))
    machine.check(Request(customer, "C0-A1", channel, False, "contact-1"))


def at_local(zone: str, year: int, month: int, day: int, hour: int, minute: int, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz(zone), fold=fold).astimezone(UTC)


NY, LONDON = "America/New_York", "Europe/London"


@pytest.mark.parametrize(("zone", "now", "window", "retry"), [
    # 02:30 does not exist in New York on 2026-03-08: the agreed window from 02:30 opens at the change, 03:00 EDT
    # (it said 03:30)
    (NY, at_local(NY, 2026, 3, 8, 0, 30), (time(2, 30), time(0, 0)), at_local(NY, 2026, 3, 8, 3, 0)),
    # the whole window 02:00-02:30 is skipped that night: the next night's (it was blocked: no later instant)
    (NY, at_local(NY, 2026, 3, 8, 0, 30), (time(2, 0), time(2, 30)), at_local(NY, 2026, 3, 9, 2, 0)),
    # London skips 01:00-02:00 on 2026-03-29: a window from 01:30 opens at 02:00 BST (it said 02:30)
    (LONDON, at_local(LONDON, 2026, 3, 29, 0, 30), (time(1, 30), time(5, 0)), at_local(LONDON, 2026, 3, 29, 2, 0)),
    # New York repeats 01:00-02:00 on 2026-11-01: at 01:45 EDT the clocks step back into 00:30-01:30, at 01:00 EST
    # (it said the next night's 00:30)
    (NY, at_local(NY, 2026, 11, 1, 1, 45), (time(0, 30), time(1, 30)), at_local(NY, 2026, 11, 1, 1, 0, fold=1)),
])
def test_agreed_windows_open_at_dst_changes(zone: str, now: datetime, window: tuple[time, time],
                                            retry: datetime) -> None:
    machine = EngineMachine()
    customer = Customer("cn-a", "C0", ("C0-A1",), zone, "B0", "cp:phone-0", "cp:mail-0")
    machine.world = World([customer], Policy())
    machine.now = now
    machine.w.consents.append(row(tenant="cn-a", customer_id="C0", kind=ConsentKind.WINDOW.value, channel="sms",
                                  destination_key=None, granted_at=START, revoked_at=None, local_start=window[0],
                                  local_end=window[1]))
    decision = machine.check(Request(customer, "C0-A1", Channel.SMS, True, "contact-1"))
    assert (decision.outcome, decision.rule_id, decision.retry_at) == ("deferred", "CN-HOURS", retry)
