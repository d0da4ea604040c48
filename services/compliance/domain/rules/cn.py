"""The CN pack (``../shared/RULES.md``, "China"): one class per rule. Rows resting on the China Banking
Association's 2026 guideline (试行), GB/T 45251-2025 and the NIFA 2024 guideline are ``unverified``: we work
from secondary summaries of them, so a tenant's compliance officer confirms the numbers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, ClassVar

from services.compliance.domain.rules.base import (
    ConsentKind,
    ContactContext,
    HoldKind,
    Party,
    RuleResult,
    SuppressionKind,
)
from services.compliance.domain.rules.common import (
    ALL_CHANNELS,
    BaseRule,
    active_holds,
    consents,
    fmt,
    in_window,
    local,
    next_in_window,
    suppressions,
    window,
    window_loosens,
)
from shared.contracts.events import Channel

PACK = "CN"
CBA_2026 = "China Banking Association 《金融机构个人消费类贷款催收工作指引(试行)》 (2026)"


@dataclass(frozen=True, slots=True)
class HoursParams:
    """The allowed local window [start, end); a tenant may only narrow it."""

    start: time = time(8, 0)
    end: time = time(22, 0)


class CnHours(BaseRule):
    id = "CN-HOURS"
    pack = PACK
    channels = frozenset({Channel.CALL, Channel.SMS, Channel.FIELD})
    source = f"{CBA_2026}; GB/T 45251-2025; NIFA 《互联网金融贷后催收业务指引》 (2024)"
    unverified = True
    summary = ("no call, AI voice, SMS/IM or field visit in the debtor's local [22:00, 08:00), unless the debtor "
               "agreed another window (a WINDOW consent)")
    verify = "read the CBA 2026 guideline's article on contact hours and GB/T 45251-2025's frequency clause"
    params_type = HoursParams

    def check(self, ctx: ContactContext, at: datetime, params: HoursParams) -> RuleResult:
        start, end, whose = params.start, params.end, "the contact window"
        for c in consents(ctx, ConsentKind.WINDOW, at):
            if c.local_start is not None and c.local_end is not None and c.local_start != c.local_end:
                start, end, whose = c.local_start, c.local_end, "the window the debtor agreed"
                break
        wall = local(at, ctx.time_zone)
        if in_window(wall.time(), start, end):
            return self.allow(f"local time {wall:%H:%M} {ctx.time_zone} is inside {whose} {window(start, end)}")
        retry = next_in_window(at, ctx.time_zone, start, end)
        # an agreed window granted or revoked before then changes the window: look again at that instant
        changes = [t for c in ctx.consents if c.kind is ConsentKind.WINDOW and c.channel == ctx.channel
                   for t in (c.granted_at, c.revoked_at) if t is not None and at < t < retry]
        retry = min([retry, *changes])
        return self.defer(f"local time {wall:%H:%M} {ctx.time_zone} is outside {whose} {window(start, end)}", retry)

    def loosens(self, params: HoursParams) -> list[str]:
        default = HoursParams()
        return window_loosens(self.id, params.start, params.end, default.start, default.end)


@dataclass(frozen=True, slots=True)
class AttemptsParams:
    max_unanswered: int = 6  # unanswered dial attempts per number per local day


class CnAttempts(BaseRule):
    id = "CN-ATTEMPTS"
    pack = PACK
    channels = frozenset({Channel.CALL})
    source = CBA_2026
    unverified = True
    summary = "at most 6 unanswered dial attempts per number per local day"
    verify = "the CBA 2026 guideline's cap on unanswered calls to one number"
    params_type = AttemptsParams
    tighter: ClassVar[dict[str, str]] = {"max_unanswered": "lower"}

    def check(self, ctx: ContactContext, at: datetime, params: AttemptsParams) -> RuleResult:
        return self.daily_cap(ctx, at, ctx.ledger.number_unanswered, params.max_unanswered,
                              "unanswered attempts to this number", "the tenant's policy allows no dial attempts")


@dataclass(frozen=True, slots=True)
class ConnectsParams:
    max_connects: int = 3  # effective conversations per borrower per local day, across lender and agencies


class CnConnects(BaseRule):
    id = "CN-CONNECTS"
    pack = PACK
    channels = frozenset({Channel.CALL})
    source = "GB/T 45251-2025; NIFA 2024"
    unverified = True
    summary = ("at most 3 effective conversations (human or AI voice) per debtor per local day, across the lender "
               "and all its agencies")
    verify = "GB/T 45251-2025 and the NIFA 2024 guideline's daily cap on effective conversations"
    params_type = ConnectsParams
    tighter: ClassVar[dict[str, str]] = {"max_connects": "lower"}

    def check(self, ctx: ContactContext, at: datetime, params: ConnectsParams) -> RuleResult:
        return self.daily_cap(ctx, at, ctx.ledger.borrower_connects, params.max_connects,
                              "conversations with this debtor", "the tenant's policy allows no conversations")


class CnThirdParty(BaseRule):
    id = "CN-3P"
    pack = PACK
    source = f"{CBA_2026}; 商业银行信用卡业务监督管理办法 Art. 68"
    unverified = True
    summary = ("only the debtor (or a guarantor within the contract); a contact person only while the debtor is "
               "unreachable, only to pass a message or ask for the debtor's number, never with debt details; a "
               "contact person's refusal blocks them for good")
    verify = "the CBA 2026 guideline's third-party clause; Art. 68 of the credit-card measures"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        if ctx.party is Party.DEBTOR:
            return self.allow("the debtor")
        if ctx.party is Party.GUARANTOR:
            return self.allow("a guarantor, within the contract")
        refused = suppressions(ctx, [SuppressionKind.REFUSED], ALL_CHANNELS)
        if refused:
            return self.block("this contact person refused to be contacted: never again")
        if ctx.debtor_reachable:
            return self.block("a contact person may be contacted only while the debtor is unreachable")
        return self.allow("a contact person while the debtor is unreachable: only to pass a message or ask for the "
                          "debtor's number, never with debt details")


class CnContent(BaseRule):
    id = "CN-CONTENT"
    pack = PACK
    source = f"{CBA_2026}; 银行保险机构消费者权益保护管理办法 (2022)"
    unverified = True
    summary = ("templates and scripts: no posing as courts, police or government, no threats, insults, deception, "
               "extra fees, nor pushing the debtor to borrow to repay")
    verify = "review the channels' templates (services/channels/domain/templates.py) and agent scripts"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("content is checked when templates and scripts are reviewed, not per contact")


class CnRecord(BaseRule):
    id = "CN-RECORD"
    pack = PACK
    channels = frozenset({Channel.CALL, Channel.FIELD})
    source = "商业银行信用卡业务监督管理办法 Art. 68"
    unverified = True
    summary = "every contact logged; call and visit recordings kept at least 2 years"
    verify = "Art. 68 of the credit-card measures and the tenant's retention schedule"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("every decision is logged here and every attempt in the contact ledger; recordings are "
                          "kept by the dialer and the field app (retention), not decided per contact")


@dataclass(frozen=True, slots=True)
class OutsourceParams:
    max_evaluation_age_days: int = 365  # the agency was evaluated within 12 months


class CnOutsource(BaseRule):
    id = "CN-OUTSOURCE"
    pack = PACK
    source = "银行保险机构消费者权益保护管理办法 (2022); the 2022 credit-card notice"
    unverified = True
    summary = ("an external agency contacts the debtor only after the debtor was notified, if it is on the "
               "published list and was evaluated within 12 months")
    verify = "the 2022 consumer-protection measures' outsourcing articles and the 2022 credit-card notice"
    params_type = OutsourceParams
    tighter: ClassVar[dict[str, str]] = {"max_evaluation_age_days": "lower"}

    def check(self, ctx: ContactContext, at: datetime, params: OutsourceParams) -> RuleResult:
        agency = ctx.agency
        if agency is None:
            return self.allow("the lender's own contact, no external agency")
        if not agency.listed:
            return self.block(f"agency {agency.agency_id} is not on the published list")
        if agency.evaluated_on is None:
            return self.block(f"agency {agency.agency_id} was never evaluated")
        age = (local(at, ctx.time_zone).date() - agency.evaluated_on).days
        if age > params.max_evaluation_age_days:
            return self.block(f"agency {agency.agency_id} was last evaluated {age} days ago "
                              f"(at most {params.max_evaluation_age_days})")
        if agency.debtor_notified_at is None:
            return self.block(f"the debtor was not notified of the assignment to agency {agency.agency_id}")
        if agency.debtor_notified_at > at:
            return self.defer(f"the debtor is notified of agency {agency.agency_id} only at "
                              f"{fmt(agency.debtor_notified_at, ctx.time_zone)}", agency.debtor_notified_at)
        return self.allow(f"agency {agency.agency_id}: listed, evaluated {age} days ago, debtor notified")


class CnComplaint(BaseRule):
    id = "CN-COMPLAINT"
    pack = PACK
    source = "银行业保险业消费投诉处理管理办法 (2020)"
    summary = ("a complaint is answered within 15 days (30 if complex, 60 at most with approval); an open complaint "
               "puts the account on human review: no automated contact")
    verify = "the 2020 complaint-handling measures' time limits"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        holds = active_holds(ctx, at, [HoldKind.COMPLAINT])
        if not holds:
            return self.allow("no open complaint")
        if ctx.automated:
            return self.held(ctx, at, [HoldKind.COMPLAINT], "an open complaint puts the account on human review, "
                             "no automated contact")
        return self.allow(f"an open complaint ({holds[0].reason}): an agent's contact under human review")


@dataclass(frozen=True, slots=True)
class FieldParams:
    min_collectors: int = 2
    start: time = time(8, 0)
    end: time = time(22, 0)


class CnField(BaseRule):
    id = "CN-FIELD"
    pack = PACK
    channels = frozenset({Channel.FIELD})
    source = f"{CBA_2026} Art. 22"
    unverified = True
    summary = "field visits need at least 2 collectors, outside the local [22:00, 08:00)"
    verify = "Art. 22 of the CBA 2026 guideline"
    params_type = FieldParams
    tighter: ClassVar[dict[str, str]] = {"min_collectors": "higher"}

    def check(self, ctx: ContactContext, at: datetime, params: FieldParams) -> RuleResult:
        if ctx.collectors is not None and ctx.collectors < params.min_collectors:
            return self.block(f"a field visit needs at least {params.min_collectors} collectors, "
                              f"{ctx.collectors} planned")
        wall = local(at, ctx.time_zone)
        team = (f"{ctx.collectors} collectors" if ctx.collectors is not None
                else f"the field app must send at least {params.min_collectors} collectors")
        if in_window(wall.time(), params.start, params.end):
            return self.allow(f"local time {wall:%H:%M} {ctx.time_zone} is inside "
                              f"{window(params.start, params.end)}; {team}")
        return self.defer(f"no field visit at local time {wall:%H:%M} {ctx.time_zone}, outside "
                          f"{window(params.start, params.end)}",
                          next_in_window(at, ctx.time_zone, params.start, params.end))

    def loosens(self, params: FieldParams) -> list[str]:
        default = FieldParams()
        return super().loosens(params) + window_loosens(self.id, params.start, params.end, default.start,
                                                        default.end)


class CnPipl(BaseRule):
    id = "CN-PIPL"
    pack = PACK
    source = "个人信息保护法 Arts. 6, 21, 23, 28-29, 55"
    summary = ("only data needed for the purpose, never the debtor's phone contact list; financial data is "
               "sensitive; sharing with an agency needs a contract or separate consent")
    verify = "the PIPL articles cited; the data map and agency contracts"

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        return self.allow("a data-handling rule: PII is sealed, contact points are keyed hashes, agencies get data "
                          "under contract; not decided per contact")


RULES: tuple[BaseRule, ...] = (CnHours(), CnAttempts(), CnConnects(), CnThirdParty(), CnContent(), CnRecord(),
                               CnOutsource(), CnComplaint(), CnField(), CnPipl())
