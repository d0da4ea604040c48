"""The rule engine (services/compliance/domain/rules/engine.py): which rules bind, blocking beats deferring,
the deferral is the earliest instant every rule allows, policies only tighten; with hypothesis over random
contexts (zones with DST and half hours, ledgers, holds, holidays, suppressions, consents, agencies)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.compliance.domain.rules import cn, engine, house, uk, us
from services.compliance.domain.rules.base import (
    AgencyView,
    ConsentKind,
    ContactContext,
    Decision,
    HoldKind,
    HolidayCalendar,
    LedgerView,
    Party,
    Policy,
    SuppressionKind,
)
from services.compliance.domain.rules.common import BaseRule, local
from services.compliance.domain.rules.engine import decide, rule_catalog, validate_policy
from shared.contracts.events import Channel
from tests.compliance.unit.support import NEW_YORK, SHANGHAI, at, consent, ctx, hold, ledger, suppression

PROPS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ZONES = ["Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "Australia/Lord_Howe",
         "America/New_York", "America/St_Johns", "America/Sao_Paulo", "Europe/London", "Pacific/Chatham",
         "Pacific/Apia", "UTC"]
ROOT = Path(__file__).resolve().parents[3]


# --- examples --------------------------------------------------------------------------------------------------

def test_blocking_beats_deferring_and_every_rule_is_evaluated() -> None:
    night = at(SHANGHAI, 2026, 5, 12, 23, 0)
    decision = decide(ctx(ledger=LedgerView(already_approved=True)), night)
    assert (decision.outcome, decision.rule_id, decision.retry_at) == ("blocked", "HOUSE-DUP", None)
    verdicts = {r.rule_id: r.verdict for r in decision.evaluated}
    assert verdicts["CN-HOURS"] == "defer" and verdicts["HOUSE-DUP"] == "block"
    assert [r.rule_id for r in decision.evaluated] == [r.id for r in (*cn.RULES, *house.RULES)]


def test_approved_in_hours() -> None:
    decision = decide(ctx(), at(SHANGHAI, 2026, 5, 12, 12, 0))
    assert (decision.outcome, decision.rule_id, decision.reason, decision.retry_at) == (
        "approved", "-", "all rules allow", None)
    assert {r.verdict for r in decision.evaluated} == {"allow"}


def test_a_deferral_waits_for_every_rule() -> None:
    # 23:00 on the eve of a two-day holiday: 08:00 is a holiday, so 08:00 the day after it
    calendar = HolidayCalendar({date(2026, 2, 17): "Spring Festival", date(2026, 2, 18): "Spring Festival"})
    decision = decide(ctx(calendar=calendar), at(SHANGHAI, 2026, 2, 16, 23, 0))
    assert (decision.outcome, decision.rule_id) == ("deferred", "CN-HOURS")
    assert decision.retry_at == at(SHANGHAI, 2026, 2, 19, 8, 0)
    assert "HOUSE-HOLIDAY" in decision.reason and "every rule allows from 2026-02-19 08:00" in decision.reason
    # one SMS a day already sent today, at 21:30: tomorrow 08:00 (CN-HOURS), not midnight (HOUSE-DUP)
    sent = LedgerView(borrower_contacts={Channel.SMS: (at(SHANGHAI, 2026, 5, 12, 21, 30),)})
    decision = decide(ctx(ledger=sent), at(SHANGHAI, 2026, 5, 12, 21, 45))
    assert (decision.outcome, decision.rule_id, decision.retry_at) == (
        "deferred", "HOUSE-DUP", at(SHANGHAI, 2026, 5, 13, 8, 0))


def test_a_hold_that_ends_at_night_defers_to_the_next_morning() -> None:
    now = at(NEW_YORK, 2026, 5, 12, 12, 0)
    promise = hold(HoldKind.PROMISE, ends=at(NEW_YORK, 2026, 5, 14, 23, 0))
    decision = decide(ctx(Channel.EMAIL, NEW_YORK, "US", holds=(promise,)), now)
    assert (decision.outcome, decision.rule_id, decision.retry_at) == (
        "deferred", "HOUSE-HOLDS", at(NEW_YORK, 2026, 5, 15, 8, 0))


def test_a_later_block_blocks() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 23, 0)
    bankrupt = hold(HoldKind.BANKRUPT, starts=at(SHANGHAI, 2026, 5, 13, 1, 0))
    decision = decide(ctx(holds=(bankrupt,)), now)
    assert (decision.outcome, decision.rule_id) == ("blocked", "HOUSE-HOLDS")
    assert "at 2026-05-13 08:00 Asia/Shanghai" in decision.reason


@pytest.mark.parametrize("jurisdiction", ["CN", "US", "UK"])
def test_a_declared_hardship_stops_automated_contact_but_not_a_person(jurisdiction: str) -> None:
    now = at(SHANGHAI, 2026, 5, 12, 11, 0)
    hardship = hold(HoldKind.HARDSHIP, account_id="A1")
    automated = decide(ctx(Channel.SMS, jurisdiction=jurisdiction, holds=(hardship,)), now)
    house_holds = next(r for r in automated.evaluated if r.rule_id == "HOUSE-HOLDS")
    assert automated.outcome == "blocked" and house_holds.verdict == "block" and "hardship" in house_holds.reason
    by_hand = decide(ctx(Channel.CALL, jurisdiction=jurisdiction, holds=(hardship,), automated=False), now)
    by_hand_holds = next(r for r in by_hand.evaluated if r.rule_id == "HOUSE-HOLDS")
    assert by_hand_holds.verdict == "allow", by_hand_holds.reason


def test_packs_by_jurisdiction_and_policy() -> None:
    now = at(NEW_YORK, 2026, 5, 12, 12, 0)
    us_sms = ctx(Channel.SMS, NEW_YORK, "US")
    assert decide(us_sms, now).rule_id == "US-TCPA"   # automated text without consent
    assert [r.pack for r in decide(us_sms, now).evaluated].count("US") == len(us.RULES)
    both = Policy(version=3, packs={"US": ("US", "UK")})
    decision = decide(us_sms, now, both)
    assert decision.policy_version == 3
    assert {r.pack for r in decision.evaluated} == {"US", "UK", "HOUSE"}
    unknown = decide(ctx(jurisdiction="FR"), now)
    assert (unknown.outcome, unknown.rule_id) == ("blocked", "ENGINE")
    assert decide(ctx(zone=NEW_YORK, jurisdiction="FR"), now, Policy(packs={"FR": ("UK",)})).outcome == "approved"


class Always(BaseRule):
    """A broken rule that defers a minute at a time, for ever."""

    id = "TEST-ALWAYS"
    pack = "CN"
    source = summary = "test"
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)

    def check(self, c: ContactContext, when: datetime, params: Any) -> Any:
        return self.defer("again", when + timedelta(minutes=1))


class Stuck(Always):
    id = "TEST-STUCK"

    def check(self, c: ContactContext, when: datetime, params: Any) -> Any:
        return self.defer("stuck", when)


def test_the_engine_never_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    monkeypatch.setitem(engine.PACKS, "CN", (Always(),))  # type: ignore[index]
    decision = decide(ctx(), now)
    assert (decision.outcome, decision.rule_id) == ("blocked", "ENGINE")
    assert f"within {engine.MAX_STEPS} steps" in decision.reason
    monkeypatch.setitem(engine.PACKS, "CN", (Stuck(),))  # type: ignore[index]
    decision = decide(ctx(), now)
    assert (decision.outcome, decision.rule_id) == ("blocked", "TEST-STUCK")


# --- policies and the catalogue ---------------------------------------------------------------------------------

def test_validate_policy() -> None:
    assert validate_policy(Policy()) == []
    tighter = Policy(params={"CN-HOURS": cn.HoursParams(time(9), time(20)), "CN-ATTEMPTS": cn.AttemptsParams(3),
                             "HOUSE-DUP": house.DupParams({Channel.SMS: 2, Channel.EMAIL: 1})})
    assert validate_policy(tighter) == []
    errors = validate_policy(Policy(
        packs={"CN": ("CN", "XX"), "US": ("HOUSE",)},
        params={"NOPE": 1, "CN-ATTEMPTS": us.HoursParams(), "CN-CONNECTS": cn.ConnectsParams("3"),  # type: ignore[arg-type]
                 "US-HOURS": us.HoursParams(time(20), time(9)), "UK-HOURS": uk.HoursParams(time(7), time(22)),
                 "US-7IN7": us.SevenParams(max_calls=8), "HOUSE-DUP": house.DupParams({})}))
    text = "\n".join(errors)
    for expected in ["unknown pack 'XX'", "HOUSE always applies", "unknown rule 'NOPE'",
                     "CN-ATTEMPTS: parameters must be a AttemptsParams", "CN-CONNECTS: max_connects must be like 3",
                     "US-HOURS: the window 20:00-09:00 must start before it ends",
                     "UK-HOURS: the window starts at 07:00, before the legal 08:00",
                     "UK-HOURS: the window ends at 22:00, after the legal 21:00",
                     "US-7IN7: max_calls 8 is above the default 7", "HOUSE-DUP: sms every 0 days"]:
        assert expected in text, (expected, errors)


def test_the_catalogue_lists_every_rule_of_every_pack_once() -> None:
    catalog = rule_catalog()
    ids = [r.id for r in catalog]
    assert len(ids) == len(set(ids)) == sum(len(p) for p in engine.PACKS.values())
    for required in ["CN-HOURS", "CN-ATTEMPTS", "CN-CONNECTS", "CN-3P", "CN-CONTENT", "CN-RECORD", "CN-OUTSOURCE",
                     "CN-COMPLAINT", "CN-FIELD", "CN-PIPL", "US-HOURS", "US-7IN7", "US-CEASE", "US-EOPTOUT",
                     "US-LCM", "US-VALID", "US-TCPA", "US-RETAIN", "UK-FORBEAR", "UK-VULN", "UK-HOURS", "UK-BS",
                     "UK-DIALER", "HOUSE-HOLDS", "HOUSE-DUP", "HOUSE-HOLIDAY", "HOUSE-FIELD"]:
        assert required in ids
    for r in catalog:
        assert r.id.startswith(f"{r.pack}-") and r.source and r.summary and r.verify and r.channels
    assert next(r for r in catalog if r.id == "CN-HOURS").parameters == {"start": "08:00", "end": "22:00"}


def test_docs_list_every_rule() -> None:
    doc = (ROOT / "docs" / "compliance.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^### ([A-Z]+-[A-Z0-9]+)", doc, flags=re.M))
    assert listed == {r.id for r in rule_catalog()}
    for r in rule_catalog():
        section = doc.split(f"### {r.id}", 1)[1].split("\n### ", 1)[0]
        assert ("unverified" in section) == r.unverified, r.id
        for name in r.parameters:
            assert f"`{name}`" in section, (r.id, name)


# --- properties -------------------------------------------------------------------------------------------------

seconds = st.integers(min_value=0, max_value=8 * 86400).map(lambda s: timedelta(seconds=s))
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))
walls = st.integers(min_value=0, max_value=47).map(lambda h: time(h // 2, 30 * (h % 2)))


@st.composite
def contexts(draw: st.DrawFn) -> tuple[ContactContext, datetime]:
    now = draw(instants)
    channel = draw(st.sampled_from(list(Channel)))
    past = st.lists(seconds.map(lambda d: now - d), max_size=9).map(lambda xs: tuple(sorted(xs)))
    offsets = st.integers(min_value=-10 * 86400, max_value=4 * 86400).map(lambda s: now + timedelta(seconds=s))
    holds = st.lists(st.builds(lambda kind, start, length: hold(kind, start, start + length if length else None),
                               st.sampled_from(list(HoldKind)), offsets,
                               st.one_of(st.none(), st.integers(3600, 20 * 86400).map(lambda s: timedelta(seconds=s)))),
                     max_size=3)
    sups = st.lists(st.builds(suppression, st.sampled_from(list(SuppressionKind)),
                              st.one_of(st.none(), st.sampled_from(list(Channel))),
                              st.sampled_from([None, "cp1:x", "cp1:other"]), st.one_of(st.none(), walls),
                              st.one_of(st.none(), walls)), max_size=2)
    cons = st.lists(st.builds(consent, st.sampled_from(list(ConsentKind)), st.sampled_from(list(Channel)),
                              st.sampled_from([None, "cp1:x"]), st.one_of(st.none(), offsets),
                              st.one_of(st.none(), walls), st.one_of(st.none(), walls)), max_size=2)
    today = now.date()
    days = st.lists(st.integers(-2, 12).map(lambda d: today + timedelta(days=d)), max_size=6)
    agency = st.one_of(st.none(), st.none(), st.none(), st.builds(AgencyView, st.just("AG"), st.booleans(),
                                            st.one_of(st.none(), st.integers(0, 500).map(
                                                lambda d: today - timedelta(days=d))),
                                            st.one_of(st.none(), offsets)))
    c = ContactContext(
        tenant="t", customer_id="C", account_id="A1", channel=channel, time_zone=draw(st.sampled_from(ZONES)),
        contact_id="c", destination_hash="cp1:x", jurisdiction=draw(st.sampled_from(["CN", "US", "UK"])),
        party=draw(st.sampled_from([Party.DEBTOR] * 4 + list(Party))), automated=draw(st.booleans()),
        debtor_reachable=draw(st.booleans()), collectors=draw(st.one_of(st.none(), st.integers(1, 3))),
        days_past_due=draw(st.one_of(st.none(), st.integers(0, 120))), overdue_minor=draw(st.integers(0, 10**6)),
        ledger=LedgerView(number_unanswered=draw(past), borrower_connects=draw(past), debt_calls=draw(past),
                          debt_conversations=draw(past),
                          borrower_contacts={Channel.SMS: draw(past), Channel.EMAIL: draw(past)},
                          already_approved=draw(st.sampled_from([False] * 9 + [True]))),
        holds=tuple(draw(holds)), suppressions=tuple(draw(sups)), consents=tuple(draw(cons)),
        calendar=HolidayCalendar({d: "holiday" for d in draw(days)}), agency=draw(agency))
    return c, now


def verdicts_at(c: ContactContext, when: datetime, policy: Policy | None = None) -> dict[str, str]:
    policy = policy or Policy()
    return {r.rule_id: r.verdict for r in engine.evaluate_all(c, when, engine.rules_for(c, policy), policy)}


def check_decision(c: ContactContext, now: datetime, decision: Decision, fraction: float,
                   policy: Policy | None = None) -> None:
    assert decision.evaluated and all(r.reason for r in decision.evaluated)
    assert {r.rule_id: r.verdict for r in decision.evaluated} == verdicts_at(c, now, policy)
    if decision.outcome == "approved":
        assert set(verdicts_at(c, now, policy).values()) == {"allow"}
    elif decision.outcome == "deferred":
        retry = decision.retry_at
        assert retry is not None and retry > now
        assert decision.rule_id in {r.rule_id for r in decision.evaluated if r.verdict == "defer"}
        assert set(verdicts_at(c, retry, policy).values()) == {"allow"}, "the retry instant must be lawful"
        before = retry - timedelta(seconds=1)
        if before >= now:
            assert set(verdicts_at(c, before, policy).values()) != {"allow"}, "the retry instant must be the earliest"
        between = now + timedelta(seconds=int((retry - now).total_seconds() * fraction))
        assert between < retry
        assert set(verdicts_at(c, between, policy).values()) != {"allow"}, "no instant before retry_at is lawful"
    else:
        assert decision.retry_at is None and "block" in {r.verdict for r in decision.evaluated} | {
            "block" if decision.rule_id in {"ENGINE", *(r.rule_id for r in decision.evaluated)} else ""}


@PROPS
@given(case=contexts(), fraction=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_approved_breaks_no_rule_and_a_deferral_is_lawful_and_earliest(
        case: tuple[ContactContext, datetime], fraction: float) -> None:
    c, now = case
    decision = decide(c, now)  # returns: the engine never loops
    check_decision(c, now, decision, fraction)


@st.composite
def tighter_policies(draw: st.DrawFn) -> Policy:
    def window(legal_start: int, legal_end: int) -> tuple[time, time]:
        start = draw(st.integers(legal_start * 2, legal_end * 2 - 1))
        end = draw(st.integers(start + 1, legal_end * 2))
        return time(start // 2, 30 * (start % 2)), time(end // 2 % 24, 30 * (end % 2)) if end < 48 else time(23, 59)
    params: dict[str, Any] = {
        "CN-HOURS": cn.HoursParams(*window(8, 22)), "US-HOURS": us.HoursParams(*window(8, 21)),
        "UK-HOURS": uk.HoursParams(*window(8, 21)),
        "CN-ATTEMPTS": cn.AttemptsParams(draw(st.integers(0, 6))),
        "CN-CONNECTS": cn.ConnectsParams(draw(st.integers(0, 3))),
        "CN-FIELD": cn.FieldParams(draw(st.integers(2, 4)), *window(8, 22)),
        "CN-OUTSOURCE": cn.OutsourceParams(draw(st.integers(0, 365))),
        "US-7IN7": us.SevenParams(draw(st.integers(0, 7)), draw(st.integers(7, 14)), draw(st.integers(7, 14))),
        "HOUSE-DUP": house.DupParams({Channel.SMS: draw(st.integers(1, 7)),
                                      **({Channel.EMAIL: draw(st.integers(1, 3))} if draw(st.booleans()) else {})}),
        "HOUSE-FIELD": house.FieldParams(draw(st.integers(31, 90)), draw(st.integers(0, 10**6))),
    }
    chosen = draw(st.sets(st.sampled_from(sorted(params))))
    return Policy(version=7, params={k: v for k, v in params.items() if k in chosen})


@PROPS
@given(case=contexts(), policy=tighter_policies(), fraction=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_a_tighter_policy_never_lets_through_what_the_default_stops(
        case: tuple[ContactContext, datetime], policy: Policy, fraction: float) -> None:
    assert validate_policy(policy) == []
    c, now = case
    default, tight = decide(c, now), decide(c, now, policy)
    check_decision(c, now, tight, fraction, policy)
    assert tight.policy_version == 7
    if default.outcome == "blocked":
        assert tight.outcome == "blocked"
    elif default.outcome == "deferred":
        assert tight.outcome != "approved"
        if tight.outcome == "deferred":
            assert tight.retry_at is not None and default.retry_at is not None
            assert tight.retry_at >= default.retry_at


@PROPS
@given(case=contexts())
def test_decisions_are_in_the_customers_local_time(case: tuple[ContactContext, datetime]) -> None:
    c, now = case
    decision = decide(replace(c, holds=(), suppressions=(), agency=None, party=Party.DEBTOR, consents=(),
                              automated=False, ledger=ledger(), calendar=HolidayCalendar(),
                              channel=Channel.SMS, jurisdiction="CN"), now)
    hour = local(now, c.time_zone).hour
    assert decision.outcome == ("approved" if 8 <= hour < 22 else "deferred")
    if decision.retry_at is not None:
        assert local(decision.retry_at, c.time_zone).time() >= time(8, 0)
