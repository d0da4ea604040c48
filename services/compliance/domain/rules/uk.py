"""The UK pack (``../shared/RULES.md``, "United Kingdom"): one class per rule. UK-HOURS is ``unverified``: CONC
7.9 asks for no contact at unreasonable times without naming hours; the 08:00-21:00 window is borrowed from
MCOB 13.5 and common practice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, ClassVar

from services.compliance.domain.rules.base import ContactContext, HoldKind, RuleResult
from services.compliance.domain.rules.common import (
    BaseRule,
    active_holds,
    fmt,
    in_window,
    local,
    next_in_window,
    until_holds_end,
    window,
    window_loosens,
)
from shared.contracts.events import Channel

PACK = "UK"


class UkForbearance(BaseRule):
    id = "UK-FORBEAR"
    pack = PACK
    source = "FCA CONC 7.3"
    summary = ("an arrears or hardship flag requires forbearance to be offered before escalation: a HARDSHIP hold "
               "stops automated escalation; no pressure to pay in one go, borrow, or sell property")
    verify = "FCA Handbook CONC 7.3"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        holds = active_holds(ctx, at, [HoldKind.HARDSHIP])
        if not holds:
            return self.allow("no hardship flag")
        if ctx.automated:
            return self.held(ctx, at, [HoldKind.HARDSHIP], "forbearance is offered by an agent before any "
                             "automated escalation")
        return self.allow(f"hardship ({holds[0].reason}): an agent's contact to offer forbearance")


class UkVulnerability(BaseRule):
    id = "UK-VULN"
    pack = PACK
    source = "FCA CONC 7.2, FG21/1"
    summary = "a vulnerability flag routes the case to its specific treatment: no automated contact"
    verify = "FCA CONC 7.2 and FG21/1"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        holds = active_holds(ctx, at, [HoldKind.VULNERABILITY])
        if not holds:
            return self.allow("no vulnerability flag")
        if ctx.automated:
            return self.held(ctx, at, [HoldKind.VULNERABILITY], "vulnerable customer routed to the specific "
                             "treatment, no automated contact")
        return self.allow(f"vulnerable customer ({holds[0].reason}): an agent's contact within the specific treatment")


@dataclass(frozen=True, slots=True)
class HoursParams:
    start: time = time(8, 0)
    end: time = time(21, 0)


class UkHours(BaseRule):
    id = "UK-HOURS"
    pack = PACK
    source = "FCA CONC 7.9 (window from MCOB 13.5)"
    unverified = True
    summary = "no contact at unreasonable times; default the customer's local 08:00-21:00"
    verify = "CONC 7.9.4 and the firm's own policy; the window is not in the rule's text"
    params_type = HoursParams

    def check(self, ctx: ContactContext, at: datetime, params: HoursParams) -> RuleResult:
        wall = local(at, ctx.time_zone)
        if in_window(wall.time(), params.start, params.end):
            return self.allow(f"local time {wall:%H:%M} {ctx.time_zone} is inside {window(params.start, params.end)}")
        return self.defer(f"local time {wall:%H:%M} {ctx.time_zone} is outside {window(params.start, params.end)}",
                          next_in_window(at, ctx.time_zone, params.start, params.end))

    def loosens(self, params: HoursParams) -> list[str]:
        default = HoursParams()
        return window_loosens(self.id, params.start, params.end, default.start, default.end)


class UkBreathingSpace(BaseRule):
    id = "UK-BS"
    pack = PACK
    source = "SI 2020/1311 (Debt Respite Scheme)"
    summary = ("during Breathing Space (60 days) or a mental-health crisis moratorium: no demand for payment, no "
               "enforcement, no interest or fees; contact waits for its end")
    verify = "The Debt Respite Scheme (Breathing Space Moratorium and Mental Health Crisis Moratorium) (England and "\
             "Wales) Regulations 2020, SI 2020/1311"
    KINDS: ClassVar[tuple[HoldKind, ...]] = (HoldKind.BREATHING_SPACE, HoldKind.MENTAL_HEALTH)

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        holds = active_holds(ctx, at, self.KINDS)
        if not holds:
            return self.allow("no breathing space or crisis moratorium")
        what = f"{holds[0].kind.value.replace('_', ' ')} moratorium ({holds[0].reason})"
        until, _ = until_holds_end(ctx, at, self.KINDS)
        if until is None:
            return self.block(f"{what}, open-ended: no collection contact until it is lifted")
        return self.defer(f"{what} until {fmt(until, ctx.time_zone)}", until)


class UkDialer(BaseRule):
    id = "UK-DIALER"
    pack = PACK
    channels = frozenset({Channel.CALL})
    source = "Ofcom statement of policy on persistent misuse"
    summary = ("abandoned calls at most 3% per campaign per 24 h; no re-dial of an abandoned call within 72 h without "
               "a live agent")
    verify = "Ofcom's revised statement of policy on the persistent misuse of an electronic communications network"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("abandoned-call rate and re-dial spacing are enforced by the dialer, not per contact")


RULES: tuple[BaseRule, ...] = (UkForbearance(), UkVulnerability(), UkHours(), UkBreathingSpace(), UkDialer())
