"""The house rules (``../shared/RULES.md``, "Everywhere"): on for every tenant and jurisdiction. They are the
platform's own policy, not law; their defaults may be tightened like the law's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from services.compliance.domain.rules.base import ContactContext, HoldKind, RuleResult, SuppressionKind
from services.compliance.domain.rules.common import (
    BaseRule,
    active_holds,
    fmt,
    local,
    start_of_local_day,
    suppressions,
    until_holds_end,
)
from shared.contracts.events import Channel

PACK = "HOUSE"
HOUSE_SOURCE = "house rule (../shared/RULES.md, Everywhere)"


class HouseHolds(BaseRule):
    id = "HOUSE-HOLDS"
    pack = PACK
    source = HOUSE_SOURCE
    summary = ("no collection contact while a plan is in good standing, a promise to pay or a dispute or complaint "
               "is open, the customer declared hardship (automated contact only: a person reviews the case and lifts "
               "the hold), or the customer is deceased or bankrupt: defer to the hold's end, block when it has none")
    verify = "the tenant's collections policy"
    KINDS: ClassVar[tuple[HoldKind, ...]] = (HoldKind.PLAN, HoldKind.PROMISE, HoldKind.DISPUTE, HoldKind.COMPLAINT,
                                             HoldKind.DECEASED, HoldKind.BANKRUPT)
    # a declared hardship (the customer portal) routes the case to a person: it holds automated contact only
    AUTOMATED_KINDS: ClassVar[tuple[HoldKind, ...]] = (*KINDS, HoldKind.HARDSHIP)

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        kinds = self.AUTOMATED_KINDS if ctx.automated else self.KINDS
        holds = active_holds(ctx, at, kinds)
        if not holds:
            return self.allow("no plan, promise, dispute, complaint, hardship, death or bankruptcy hold")
        until, endless = until_holds_end(ctx, at, kinds)
        if until is None:
            hold = endless or holds[0]
            return self.block(f"{hold.kind.value} hold ({hold.reason}) until it is lifted")
        return self.defer(f"{holds[0].kind.value} hold ({holds[0].reason}) until {fmt(until, ctx.time_zone)}", until)


def _sms_daily() -> Mapping[Channel, int]:
    return {Channel.SMS: 1}


@dataclass(frozen=True, slots=True)
class DupParams:
    """At most one contact per borrower per channel per ``interval_days[channel]`` local days (1: one per local
    day), across all the borrower's accounts and lenders. Channels not listed are not limited here (calls have
    CN-ATTEMPTS, CN-CONNECTS and US-7IN7)."""

    interval_days: Mapping[Channel, int] = field(default_factory=_sms_daily)


class HouseDuplicate(BaseRule):
    id = "HOUSE-DUP"
    pack = PACK
    source = HOUSE_SOURCE
    summary = ("never the same contact twice; at most one contact per borrower per channel per interval (default "
               "one SMS per local day), across all the borrower's accounts and lenders")
    verify = "the tenant's contact strategy"
    params_type = DupParams

    def check(self, ctx: ContactContext, at: datetime, params: DupParams) -> RuleResult:
        if ctx.ledger.already_approved:
            return self.block("this contact was already approved once")
        days = params.interval_days.get(ctx.channel)
        if not days:
            return self.allow(f"first approval of this contact; {ctx.channel.value} has no interval")
        earlier = [e for e in ctx.ledger.borrower_contacts.get(ctx.channel, ()) if e <= at]
        span = "local day" if days == 1 else f"{days} local days"
        if not earlier:
            return self.allow(f"first approval of this contact; no {ctx.channel.value} to this borrower in the last "
                              f"{span}")
        last = local(max(earlier), ctx.time_zone).date()
        today = local(at, ctx.time_zone).date()
        if (today - last).days >= days:
            return self.allow(f"first approval of this contact; the last {ctx.channel.value} was on {last}")
        return self.defer(f"one {ctx.channel.value} per borrower per {span}: the last was on {last}",
                          start_of_local_day(last + timedelta(days=days), ctx.time_zone))

    def loosens(self, params: DupParams) -> list[str]:
        reasons = []
        for channel, days in DupParams().interval_days.items():
            mine = params.interval_days.get(channel, 0)
            if mine < days:
                reasons.append(f"{self.id}: {channel.value} every {mine} days is more often than the default "
                               f"{days}")
        return reasons


class HouseOptOut(BaseRule):
    id = "HOUSE-OPTOUT"
    pack = PACK
    source = "house rule: the opt-out line every template carries (回复TD退订 / Reply STOP)"
    summary = "an opt-out (TD, STOP, unsubscribe) suppresses that channel or contact point; do-not-call stops calls"
    verify = "the channels' templates and the suppression list"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        found = suppressions(ctx, [SuppressionKind.OPT_OUT])
        if ctx.channel is Channel.CALL:
            found += suppressions(ctx, [SuppressionKind.DO_NOT_CALL])
        if found:
            return self.block(f"{found[0].kind.value.replace('_', ' ')} for {ctx.channel.value} ({found[0].source})")
        return self.allow("no opt-out or do-not-call")


class HouseHoliday(BaseRule):
    id = "HOUSE-HOLIDAY"
    pack = PACK
    source = HOUSE_SOURCE
    summary = ("no contact on the tenant's holidays (public holidays of its country, China's make-up working days "
               "counted as working days, plus its own days off) in the customer's local date")
    verify = "the tenant's calendar (GET the compliance calendar) against the official holiday notice"
    LIMIT: ClassVar[int] = 366

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        today = local(at, ctx.time_zone).date()
        name = ctx.calendar.holiday(today)
        if name is None:
            return self.allow(f"{today} is not a holiday")
        day = today
        for _ in range(self.LIMIT):
            day += timedelta(days=1)
            if ctx.calendar.holiday(day) is None:
                return self.defer(f"{today} is a holiday ({name}) in {ctx.time_zone}; next working day {day}",
                                  start_of_local_day(day, ctx.time_zone))
        return self.block(f"{today} is a holiday ({name}) and so is every day of the following year")


@dataclass(frozen=True, slots=True)
class FieldParams:
    min_days_past_due: int = 31
    min_overdue_minor: int = 0  # in the account's currency's minor units; the tenant sets its own


class HouseField(BaseRule):
    id = "HOUSE-FIELD"
    pack = PACK
    channels = frozenset({Channel.FIELD})
    source = HOUSE_SOURCE
    summary = "field visits only for long-overdue, large balances (tenant thresholds of DPD and amount), by appointment"
    verify = "the tenant's field policy"
    params_type = FieldParams
    tighter: ClassVar[dict[str, str]] = {"min_days_past_due": "higher", "min_overdue_minor": "higher"}

    def check(self, ctx: ContactContext, at: datetime, params: FieldParams) -> RuleResult:
        if ctx.days_past_due is None:
            return self.block("a field visit needs the days past due, which are unknown")
        if ctx.days_past_due < params.min_days_past_due:
            return self.block(f"{ctx.days_past_due} days past due: field visits from {params.min_days_past_due}")
        if params.min_overdue_minor > 0 and (ctx.overdue_minor is None
                                             or ctx.overdue_minor < params.min_overdue_minor):
            return self.block(f"overdue amount {ctx.overdue_minor} (minor units) below the field threshold "
                              f"{params.min_overdue_minor}")
        return self.allow(f"{ctx.days_past_due} days past due, overdue {ctx.overdue_minor} minor units: a field "
                          "visit by appointment")


RULES: tuple[BaseRule, ...] = (HouseDuplicate(), HouseHolds(), HouseOptOut(), HouseHoliday(), HouseField())
