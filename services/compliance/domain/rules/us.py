"""The US pack (``../shared/RULES.md``, "United States": Regulation F, FDCPA, TCPA): one class per rule. The
sources are the regulations themselves, so no row is ``unverified``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, ClassVar

from services.compliance.domain.rules.base import ConsentKind, ContactContext, HoldKind, RuleResult, SuppressionKind
from services.compliance.domain.rules.common import (
    BaseRule,
    active_holds,
    consents,
    fmt,
    in_window,
    local,
    next_in_window,
    start_of_local_day,
    suppressions,
    until_holds_end,
    window,
    window_loosens,
)
from shared.contracts.events import Channel

PACK = "US"


@dataclass(frozen=True, slots=True)
class HoursParams:
    start: time = time(8, 0)
    end: time = time(21, 0)


class UsHours(BaseRule):
    id = "US-HOURS"
    pack = PACK
    channels = frozenset({Channel.CALL, Channel.SMS, Channel.EMAIL})
    source = "12 CFR 1006.6(b)(1)(i)"
    summary = ("no contact before 08:00 or from 21:00 consumer-local time, nor at times the consumer called "
               "inconvenient (INCONVENIENT_TIME suppressions)")
    verify = "12 CFR 1006.6(b)(1)(i) (eCFR)"
    params_type = HoursParams
    LIMIT: ClassVar[int] = 20

    def check(self, ctx: ContactContext, at: datetime, params: HoursParams) -> RuleResult:
        found = suppressions(ctx, [SuppressionKind.INCONVENIENT_TIME])
        places = [s for s in found if s.local_start is None or s.local_end is None]
        if places:
            return self.block(f"the consumer called this contact point inconvenient ({places[0].source})")
        windows = [(s.local_start, s.local_end) for s in found]
        t, why = at, ""
        for _ in range(self.LIMIT):
            wall = local(t, ctx.time_zone).time()
            if not in_window(wall, params.start, params.end):
                why = why or (f"local time {local(at, ctx.time_zone):%H:%M} {ctx.time_zone} is outside "
                              f"{window(params.start, params.end)}")
                t = next_in_window(t, ctx.time_zone, params.start, params.end)
                continue
            inside = [(s, e) for s, e in windows if s is not None and e is not None and in_window(wall, s, e)]
            if inside:
                s, e = inside[0]
                assert s is not None and e is not None
                why = why or (f"local time {local(at, ctx.time_zone):%H:%M} {ctx.time_zone} is in "
                              f"{window(s, e)}, a time the consumer called inconvenient")
                t = next_in_window(t, ctx.time_zone, e, s)  # out of [s, e): into [e, s)
                continue
            if t == at:
                return self.allow(f"local time {wall:%H:%M} {ctx.time_zone} is inside "
                                  f"{window(params.start, params.end)} and not a time called inconvenient")
            return self.defer(why, t)
        return self.block("the times the consumer called inconvenient cover the whole contact window")

    def loosens(self, params: HoursParams) -> list[str]:
        default = HoursParams()
        return window_loosens(self.id, params.start, params.end, default.start, default.end)


@dataclass(frozen=True, slots=True)
class SevenParams:
    max_calls: int = 7        # calls per debt within seven consecutive (local) days
    period_days: int = 7      # the period, in the consumer's local days
    quiet_days: int = 7       # after a telephone conversation, its date being day 1


class UsSevenInSeven(BaseRule):
    id = "US-7IN7"
    pack = PACK
    channels = frozenset({Channel.CALL})
    source = "12 CFR 1006.14(b)(2)"
    summary = ("per debt: no call once 7 calls were placed within 7 consecutive days, nor within 7 days of a "
               "telephone conversation (its date is day 1); days are the consumer's local days")
    verify = "12 CFR 1006.14(b)(2) and its official interpretation"
    params_type = SevenParams
    tighter: ClassVar[dict[str, str]] = {"max_calls": "lower", "period_days": "higher", "quiet_days": "higher"}

    def check(self, ctx: ContactContext, at: datetime, params: SevenParams) -> RuleResult:
        if params.max_calls == 0:
            return self.block("the tenant's policy allows no calls about this debt")
        zone = ctx.time_zone
        today = local(at, zone).date()
        retry: datetime | None = None
        reasons = []
        talks = [local(e, zone).date() for e in ctx.ledger.debt_conversations if e <= at]
        recent_talks = [d for d in talks if (today - d).days < params.quiet_days]
        if recent_talks:
            last = max(recent_talks)
            retry = start_of_local_day(last + timedelta(days=params.quiet_days), zone)
            reasons.append(f"a telephone conversation about this debt on {last} (no call for {params.quiet_days} "
                           "days, that day included)")
        calls = sorted(local(e, zone).date() for e in ctx.ledger.debt_calls if e <= at)
        in_period = [d for d in calls if (today - d).days < params.period_days]
        if len(in_period) >= params.max_calls:
            # the count drops below the cap once the oldest len - max + 1 calls fall out of the period
            falls_out = in_period[len(in_period) - params.max_calls]
            when = start_of_local_day(falls_out + timedelta(days=params.period_days), zone)
            retry = max(retry, when) if retry is not None else when
            reasons.append(f"{len(in_period)} calls about this debt in the last {params.period_days} days "
                           f"(cap {params.max_calls})")
        if retry is None:
            return self.allow(f"{len(in_period)} calls about this debt in the last {params.period_days} days "
                              f"(cap {params.max_calls}) and no conversation in the last {params.quiet_days}")
        return self.defer("; ".join(reasons), retry)


class UsCease(BaseRule):
    id = "US-CEASE"
    pack = PACK
    source = "15 USC 1692c(c)"
    summary = "a written cease request or refusal to pay stops all contact but statutory notices"
    verify = "15 USC 1692c(c)"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        if active_holds(ctx, at, [HoldKind.CEASE]):
            return self.held(ctx, at, [HoldKind.CEASE], "the consumer asked in writing to cease, statutory notices "
                             "only")
        return self.allow("no cease request")


class UsEmailOptOut(BaseRule):
    id = "US-EOPTOUT"
    pack = PACK
    channels = frozenset({Channel.EMAIL, Channel.SMS})
    source = "12 CFR 1006.6(e)"
    summary = "every e-mail or text carries an opt-out; an opt-out suppresses that address or number"
    verify = "12 CFR 1006.6(e)"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        found = suppressions(ctx, [SuppressionKind.OPT_OUT])
        if found:
            return self.block(f"the consumer opted out of {ctx.channel.value} at this contact point "
                              f"({found[0].source})")
        return self.allow("no opt-out; the message carries the opt-out instructions")


class UsLimitedContent(BaseRule):
    id = "US-LCM"
    pack = PACK
    channels = frozenset({Channel.CALL})
    source = "12 CFR 1006.2(j)"
    summary = "a voicemail holds only the limited-content message"
    verify = "12 CFR 1006.2(j); the dialer's voicemail script"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("voicemail content is the dialer's limited-content script, not decided per contact")


class UsValidation(BaseRule):
    id = "US-VALID"
    pack = PACK
    source = "12 CFR 1006.34"
    summary = ("validation notice within 5 days of first contact (sent by the notice process); a dispute within 30 "
               "days pauses collection until verified: an active VALIDATION or DISPUTE hold defers to its end")
    verify = "12 CFR 1006.34 and 15 USC 1692g(b)"
    KINDS: ClassVar[tuple[HoldKind, ...]] = (HoldKind.VALIDATION, HoldKind.DISPUTE)

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        holds = active_holds(ctx, at, self.KINDS)
        if not holds:
            return self.allow("no dispute or validation period open; the validation notice is sent by the notice "
                              "process")
        until, _ = until_holds_end(ctx, at, self.KINDS)
        what = f"a {holds[0].kind.value} hold ({holds[0].reason}) pauses collection until the debt is verified"
        if until is None:
            return self.block(what)
        return self.defer(f"{what}, until {fmt(until, ctx.time_zone)}", until)


class UsTcpa(BaseRule):
    id = "US-TCPA"
    pack = PACK
    channels = frozenset({Channel.CALL, Channel.SMS})
    source = "47 CFR 64.1200"
    summary = ("autodialed or prerecorded calls and texts need prior express consent (an active AUTOMATED consent); "
               "a revocation is honoured at once (the rule allows 10 business days)")
    verify = "47 CFR 64.1200(a)(1), (a)(10)"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        if not ctx.automated:
            return self.allow("an agent's manual contact, not autodialed or prerecorded")
        if consents(ctx, ConsentKind.AUTOMATED, at):
            return self.allow(f"prior express consent to automated {ctx.channel.value}")
        return self.block(f"no prior express consent to automated {ctx.channel.value} at this number")


class UsRetain(BaseRule):
    id = "US-RETAIN"
    pack = PACK
    source = "12 CFR 1006.100"
    summary = "records kept 3 years"
    verify = "12 CFR 1006.100; the retention schedule"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("records are kept by the retention schedule, not decided per contact")


RULES: tuple[BaseRule, ...] = (UsHours(), UsSevenInSeven(), UsCease(), UsEmailOptOut(), UsLimitedContent(),
                               UsValidation(), UsTcpa(), UsRetain())
