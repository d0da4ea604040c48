"""The strategy interpreter (services/scheduler/domain/strategies/interpreter.py) as tables: the step each
(segment x DPD x amount x broken promises x contact points) calls for, the reaction each outcome calls for
(retries, fallbacks, nothing), under the built-in strategy and a custom one; when steps with a time of day fall
due; and step names."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.domain.states import NOT_REACHED, REACHED
from services.scheduler.domain.strategies.builtin import BUILTIN, DOCUMENT
from services.scheduler.domain.strategies.document import Strategy, parse_strategy
from services.scheduler.domain.strategies.interpreter import (
    Account,
    Planned,
    StepName,
    after_outcome,
    local_due,
    step_for,
)
from shared.contracts.events import Channel

SMS, EMAIL, CALL, FIELD = Channel.SMS, Channel.EMAIL, Channel.CALL, Channel.FIELD
NOW = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
SHANGHAI = "Asia/Shanghai"


def alt(channel: str, template: str) -> dict[str, str]:
    return {"channel": channel, "template": template}


def custom_document() -> dict[str, Any]:
    """The built-in strategy, with standard customers' first three buckets rewritten: retries, fallbacks, a time
    of day, and escalation by amount and broken promises (field visits from DPD 31: HOUSE-FIELD)."""
    doc = copy.deepcopy(DOCUMENT)
    doc["segments"]["standard"]["1-15"] = [
        {"id": "nudge", "day": 1, "channel": "sms", "template": "nudge.sms", "retries": 2, "retry_after_minutes": 60,
         "fallback": [alt("email", "nudge.email"), alt("call", "nudge.script")], "fallback_after_minutes": 15},
        {"id": "second", "day": 8, "at": "10:00", "channel": "email", "template": "second.email"}]
    doc["segments"]["standard"]["16-30"] = [
        {"id": "ring", "day": 16, "at": "10:00", "channel": "call", "template": "ring.script", "retries": 1,
         "retry_after_minutes": 30, "fallback": [alt("sms", "ring.sms")], "fallback_on_failure": False},
        {"id": "ring-big", "day": 16, "channel": "sms", "template": "big.sms",
         "when": {"overdue_min_minor": 100_000}},
        {"id": "soft", "day": 16, "channel": "sms", "template": "soft.sms", "when": {"overdue_max_minor": 1_000}},
        {"id": "escalate", "day": 20, "channel": "call", "template": "escalate.script",
         "fallback": [alt("email", "escalate.email")], "when": {"broken_promises_min": 2}},
        {"id": "gentle", "day": 25, "channel": "sms", "template": "gentle.sms", "when": {"broken_promises_max": 0}}]
    doc["segments"]["standard"]["31-60"] = [
        {"id": "visit", "day": 31, "channel": "field", "template": "field.visit",
         "fallback": [alt("call", "call.script"), alt("email", "reminder.email")], "fallback_on_failure": False},
        {"id": "raid", "day": 35, "channel": "field", "template": "raid.visit", "retries": 1,
         "fallback": [alt("call", "raid.script"), alt("email", "raid.email")], "when": {"broken_promises_min": 2}}]
    return doc


def custom() -> Strategy:
    strategy, errors = parse_strategy(custom_document(), name="custom", version=2)
    assert strategy is not None, errors
    return strategy


CUSTOM = custom()


def account(segment: str = "standard", dpd: int = 5, *, overdue: int = 50_000, broken: int = 0, phone: bool = True,
            email: bool = True, address: bool = True, active: bool = True, held: bool = False,
            time_zone: str = SHANGHAI, now: datetime = NOW) -> Account:
    return Account(segment=segment, days_past_due=dpd, due_date=now.date() - timedelta(days=dpd),
                   overdue_minor=overdue, time_zone=time_zone, has_phone=phone, has_email=email, has_address=address,
                   broken_promises=broken, active=active, held=held)


class Made(NamedTuple):
    step: str
    channel: Channel
    template: str


def made(planned: Planned | None) -> Made | None:
    return None if planned is None else Made(planned.step, planned.channel, planned.template)


# ---------------------------------------------------------------------------------------------------------------
# step_for


@pytest.mark.parametrize(("dpd", "kw", "expected"), [
    (0, {}, None),  # standard customers: nothing on the due date
    (-2, {}, None),
    (1, {}, Made("nudge", SMS, "nudge.sms")),
    (7, {}, Made("nudge", SMS, "nudge.sms")),
    (1, {"phone": False}, Made("nudge", EMAIL, "nudge.email")),  # the step's id, on its first fallback
    (1, {"phone": False, "email": False}, None),  # its second fallback is a call: no phone either
    (8, {}, Made("second", EMAIL, "second.email")),
    (15, {}, Made("second", EMAIL, "second.email")),
    (8, {"email": False}, None),  # no fallback, and the earlier step is not taken instead
    # DPD 16: the amount picks the step (the last one listed whose conditions hold)
    (16, {}, Made("ring", CALL, "ring.script")),
    (16, {"overdue": 99_999}, Made("ring", CALL, "ring.script")),
    (16, {"overdue": 100_000}, Made("ring-big", SMS, "big.sms")),
    (16, {"overdue": 1_001}, Made("ring", CALL, "ring.script")),
    (16, {"overdue": 1_000}, Made("soft", SMS, "soft.sms")),
    (16, {"overdue": 0}, Made("soft", SMS, "soft.sms")),
    (16, {"phone": False}, None),  # the call's fallback is an SMS: no phone either
    (19, {"broken": 5}, Made("ring", CALL, "ring.script")),
    # DPD 20 on: broken promises escalate
    (20, {"broken": 1}, Made("ring", CALL, "ring.script")),
    (20, {"broken": 2}, Made("escalate", CALL, "escalate.script")),
    (20, {"broken": 2, "overdue": 500_000}, Made("escalate", CALL, "escalate.script")),
    (20, {"broken": 2, "overdue": 500}, Made("escalate", CALL, "escalate.script")),
    (20, {"broken": 2, "phone": False}, Made("escalate", EMAIL, "escalate.email")),
    (20, {"broken": 2, "phone": False, "email": False}, None),
    (24, {"broken": 0, "overdue": 200_000}, Made("ring-big", SMS, "big.sms")),
    # DPD 25 on: a customer who never broke a promise gets a gentle SMS
    (25, {"broken": 0}, Made("gentle", SMS, "gentle.sms")),
    (30, {"broken": 0, "overdue": 500}, Made("gentle", SMS, "gentle.sms")),
    (25, {"broken": 1}, Made("ring", CALL, "ring.script")),
    (25, {"broken": 1, "overdue": 900}, Made("soft", SMS, "soft.sms")),
    (25, {"broken": 3}, Made("escalate", CALL, "escalate.script")),
    (25, {"broken": 0, "phone": False}, None),
    # DPD 31 on: a field visit; from DPD 35 a stronger one after broken promises
    (31, {}, Made("visit", FIELD, "field.visit")),
    (34, {"broken": 2}, Made("visit", FIELD, "field.visit")),
    (35, {"broken": 1}, Made("visit", FIELD, "field.visit")),
    (35, {"broken": 2}, Made("raid", FIELD, "raid.visit")),
    (60, {"broken": 2, "address": False}, Made("raid", CALL, "raid.script")),
    (60, {"broken": 2, "address": False, "phone": False}, Made("raid", EMAIL, "raid.email")),
    # the buckets not rewritten follow the built-in strategy
    (61, {}, Made("field-visit", FIELD, "field.visit")),
    (200, {"address": False}, Made("field-visit", CALL, "call.script")),
    # nothing for an account that is not active (paid, paused) or held
    (1, {"active": False}, None),
    (16, {"held": True}, None),
    (25, {"active": False, "held": True}, None),
])
def test_custom_strategy_step_table(dpd: int, kw: dict[str, Any], expected: Made | None) -> None:
    assert made(step_for(CUSTOM, account(dpd=dpd, **kw), now=NOW)) == expected


@pytest.mark.parametrize("segment", ["prime", "high_risk"])
@pytest.mark.parametrize("dpd", [0, 1, 16, 20, 25, 31, 100])
def test_other_segments_of_the_custom_strategy_follow_the_builtin_one(segment: str, dpd: int) -> None:
    acc = account(segment, dpd, broken=3)
    assert made(step_for(CUSTOM, acc, now=NOW)) == made(step_for(BUILTIN, acc, now=NOW))


def test_a_step_names_why_it_was_chosen() -> None:
    planned = step_for(CUSTOM, account(dpd=20, broken=2, phone=False), now=NOW)
    assert planned is not None
    assert planned.reason == "custom@2 standard x 16-30: step 'escalate' (DPD 20) on email: no call contact point"
    planned = step_for(BUILTIN, account("prime", 3), now=NOW)
    assert planned is not None and planned.reason == "builtin@1 prime x 1-15: step 'reminder' (DPD 1)"


def test_a_segment_the_strategy_does_not_know_gets_nothing() -> None:
    assert step_for(CUSTOM, account("vip", 20), now=NOW) is None


# ---------------------------------------------------------------------------------------------------------------
# due times


@pytest.mark.parametrize(("time_zone", "due", "day", "expected_utc"), [
    (SHANGHAI, date(2026, 3, 10), 5, datetime(2026, 3, 15, 2, 0, tzinfo=UTC)),
    (SHANGHAI, date(2026, 12, 31), 1, datetime(2027, 1, 1, 2, 0, tzinfo=UTC)),
    # New York springs forward on Sunday 8 March 2026 (EST -5 -> EDT -4)
    ("America/New_York", date(2026, 3, 7), 0, datetime(2026, 3, 7, 15, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 7), 1, datetime(2026, 3, 8, 14, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 1), 9, datetime(2026, 3, 10, 14, 0, tzinfo=UTC)),
    # ... and falls back on Sunday 1 November 2026
    ("America/New_York", date(2026, 10, 31), 0, datetime(2026, 10, 31, 14, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 10, 31), 1, datetime(2026, 11, 1, 15, 0, tzinfo=UTC)),
])
def test_local_due_is_the_local_time_on_the_steps_day(time_zone: str, due: date, day: int,
                                                      expected_utc: datetime) -> None:
    before = datetime(2026, 1, 1, tzinfo=UTC)
    due_at = local_due(due_date=due, day=day, at=time(10, 0), time_zone=time_zone, now=before)
    assert due_at == expected_utc
    local = due_at.astimezone(ZoneInfo(time_zone))
    assert (local.date(), local.hour, local.minute) == (due + timedelta(days=day), 10, 0)


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1), timedelta(hours=5), timedelta(days=40)])
def test_local_due_once_the_time_has_passed_is_now(late: timedelta) -> None:
    wall = datetime(2026, 3, 8, 14, 0, tzinfo=UTC)  # 10:00 in New York, the day clocks spring forward
    now = wall + late
    assert local_due(due_date=date(2026, 3, 7), day=1, at=time(10, 0), time_zone="America/New_York", now=now) == now


@pytest.mark.parametrize(("time_zone", "due", "day", "expected_utc"), [
    (SHANGHAI, date(2030, 1, 1), 90, datetime(2030, 3, 31, 16, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 7), 0, datetime(2026, 3, 7, 5, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 3, 7), 1, datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),  # before the change, 02:00
    ("America/New_York", date(2026, 3, 7), 2, datetime(2026, 3, 9, 4, 0, tzinfo=UTC)),
    ("America/New_York", date(2026, 11, 4), -3, datetime(2026, 11, 1, 4, 0, tzinfo=UTC)),  # negative: pre-due
])
def test_local_due_without_a_time_is_the_start_of_its_local_day(time_zone: str, due: date, day: int,
                                                                expected_utc: datetime) -> None:
    before = datetime(2026, 1, 1, tzinfo=UTC)
    assert local_due(due_date=due, day=day, at=None, time_zone=time_zone, now=before) == expected_utc
    assert local_due(due_date=due, day=day, at=None, time_zone=time_zone, now=expected_utc) == expected_utc
    late = expected_utc + timedelta(hours=3)
    assert local_due(due_date=due, day=day, at=None, time_zone=time_zone, now=late) == late


@pytest.mark.parametrize(("dpd", "kw", "expected", "due_at"), [
    # before the due date (an instalment-due notice), the high-risk pre-due reminder is planned for DPD -3
    # (due 30 March: DPD -3 is 27 March, from 00:00 in Shanghai)
    (-10, {}, Made("pre-due", SMS, "pre_due.sms"), datetime(2026, 3, 26, 16, 0, tzinfo=UTC)),
    (-4, {}, Made("pre-due", SMS, "pre_due.sms"), datetime(2026, 3, 20, 16, 0, tzinfo=UTC)),
    (-4, {"phone": False}, Made("pre-due", EMAIL, "pre_due.email"), datetime(2026, 3, 20, 16, 0, tzinfo=UTC)),
    (-4, {"phone": False, "email": False}, None, None),
    (-3, {}, Made("pre-due", SMS, "pre_due.sms"), NOW),
    (0, {}, Made("pre-due", SMS, "pre_due.sms"), NOW),
    (-4, {"held": True}, None, None),
    (-4, {"active": False}, None, None),
])
def test_the_early_warning_is_planned_ahead_for_its_day(dpd: int, kw: dict[str, Any], expected: Made | None,
                                                        due_at: datetime | None) -> None:
    planned = step_for(BUILTIN, account("high_risk", dpd, **kw), now=NOW)
    assert made(planned) == expected
    assert (planned.due_at if planned else None) == due_at
    # nothing ahead for the segments without a pre-due step
    assert step_for(BUILTIN, account("standard", dpd, **kw), now=NOW) is None


def test_step_for_times_a_step_at_its_local_time_on_its_day() -> None:
    early = datetime(2026, 3, 19, 23, 0, tzinfo=UTC)  # 07:00 on 20 March in Shanghai
    on_its_day = step_for(CUSTOM, account(dpd=8, now=early.astimezone(ZoneInfo(SHANGHAI))), now=early)
    assert on_its_day is not None and on_its_day.step == "second"
    assert on_its_day.due_at == datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # 10:00 Shanghai
    assert on_its_day.due_at.astimezone(ZoneInfo(SHANGHAI)).hour == 10
    # a day later the time of its day has passed: due at once
    late = step_for(CUSTOM, account(dpd=9, now=early.astimezone(ZoneInfo(SHANGHAI))), now=early)
    assert late is not None and late.step == "second" and late.due_at == early
    # a step with no time is due at once
    nudge = step_for(CUSTOM, account(dpd=3), now=early)
    assert nudge is not None and nudge.due_at == early


def test_step_for_times_a_new_york_step_across_the_dst_change() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for dpd, due, hour_utc in ((16, date(2026, 2, 19), 15), (16, date(2026, 2, 20), 14), (16, date(2026, 2, 21), 14)):
        acc = Account(segment="standard", days_past_due=dpd, due_date=due, overdue_minor=50_000,
                      time_zone="America/New_York", has_phone=True, has_email=True, has_address=True)
        planned = step_for(CUSTOM, acc, now=now)
        assert planned is not None and planned.step == "ring"
        assert planned.due_at == datetime.combine(due + timedelta(days=16), time(hour_utc), tzinfo=UTC)
        assert planned.due_at.astimezone(ZoneInfo("America/New_York")).time() == time(10, 0)


# ---------------------------------------------------------------------------------------------------------------
# after_outcome

OUTCOME_AT = datetime(2026, 3, 20, 3, 0, tzinfo=UTC)


class Reaction(NamedTuple):
    step: str
    channel: Channel
    template: str
    after: timedelta


def react(strategy: Strategy, acc: Account, step: str, channel: Channel, outcome: str) -> Reaction | None:
    planned = after_outcome(strategy, acc, step=step, channel=channel, outcome=outcome, outcome_at=OUTCOME_AT)
    if planned is None:
        return None
    return Reaction(planned.step, planned.channel, planned.template, planned.due_at - OUTCOME_AT)


M = timedelta(minutes=1)


@pytest.mark.parametrize(("segment", "kw", "step", "channel", "outcome", "expected"), [
    # a reminder that failed falls back to the other channel 30 minutes later, once
    ("standard", {}, "reminder", SMS, "failed", Reaction("reminder/fallback-1", EMAIL, "reminder.email", 30 * M)),
    ("standard", {}, "reminder", SMS, "unknown", Reaction("reminder/fallback-1", EMAIL, "reminder.email", 30 * M)),
    ("prime", {}, "reminder", EMAIL, "failed", Reaction("reminder/fallback-1", SMS, "reminder.sms", 30 * M)),
    ("standard", {}, "reminder/fallback-1", EMAIL, "failed", None),
    ("standard", {"email": False}, "reminder", SMS, "failed", None),
    # a reminder made on its fallback (no phone) has nothing left to fall back to
    ("standard", {"phone": False}, "reminder", EMAIL, "failed", None),
    ("high_risk", {}, "pre-due", SMS, "failed", Reaction("pre-due/fallback-1", EMAIL, "pre_due.email", 30 * M)),
    ("standard", {}, "pre-due", SMS, "failed", None),  # not a step of standard customers
    # calls and visits do not fall back on failure (only when there is no contact point)
    ("standard", {}, "call", CALL, "no_answer", None),
    ("prime", {}, "call", CALL, "busy", None),
    ("standard", {}, "field-visit", FIELD, "failed", None),
    ("standard", {"address": False}, "field-visit", CALL, "voicemail", None),
    # reached the customer, or revoked: wait for the money
    ("standard", {}, "reminder", SMS, "sent", None),
    ("standard", {}, "reminder", SMS, "delivered", None),
    ("standard", {}, "call", CALL, "connected", None),
    ("standard", {}, "reminder", SMS, "revoked", None),
    # not active or held
    ("standard", {"active": False}, "reminder", SMS, "failed", None),
    ("standard", {"held": True}, "reminder", SMS, "failed", None),
    # a step this strategy does not have
    ("standard", {}, "ghost", SMS, "failed", None),
    ("standard", {}, "ghost/retry-1", SMS, "failed", None),
])
def test_builtin_reaction_table(segment: str, kw: dict[str, Any], step: str, channel: Channel, outcome: str,
                                expected: Reaction | None) -> None:
    assert react(BUILTIN, account(segment, 5, **kw), step, channel, outcome) == expected


@pytest.mark.parametrize(("kw", "step", "channel", "outcome", "expected"), [
    # nudge: SMS, retried twice an hour apart, then e-mail, then a call, 15 minutes after each failure
    ({}, "nudge", SMS, "failed", Reaction("nudge/retry-1", SMS, "nudge.sms", 60 * M)),
    ({}, "nudge", SMS, "unknown", Reaction("nudge/retry-1", SMS, "nudge.sms", 60 * M)),
    ({}, "nudge", SMS, "no such outcome", Reaction("nudge/retry-1", SMS, "nudge.sms", 60 * M)),
    ({}, "nudge/retry-1", SMS, "failed", Reaction("nudge/retry-2", SMS, "nudge.sms", 60 * M)),
    ({}, "nudge/retry-2", SMS, "failed", Reaction("nudge/fallback-1", EMAIL, "nudge.email", 15 * M)),
    ({}, "nudge/fallback-1", EMAIL, "failed", Reaction("nudge/fallback-2", CALL, "nudge.script", 15 * M)),
    ({}, "nudge/fallback-2", CALL, "no_answer", None),
    # a fallback is never retried, and retries never come back after a fallback
    ({}, "nudge/fallback-1", EMAIL, "unknown", Reaction("nudge/fallback-2", CALL, "nudge.script", 15 * M)),
    # no e-mail: the call is the first fallback with a contact point, under its own number
    ({"email": False}, "nudge/retry-2", SMS, "failed", Reaction("nudge/fallback-2", CALL, "nudge.script", 15 * M)),
    ({"email": False}, "nudge/fallback-2", CALL, "busy", None),
    # no phone: the step was made on its e-mail fallback, so it is retried there; the call cannot follow
    ({"phone": False}, "nudge", EMAIL, "failed", Reaction("nudge/retry-1", EMAIL, "nudge.email", 60 * M)),
    ({"phone": False}, "nudge/retry-1", EMAIL, "failed", Reaction("nudge/retry-2", EMAIL, "nudge.email", 60 * M)),
    ({"phone": False}, "nudge/retry-2", EMAIL, "failed", None),
    # retries exhausted (or beyond what the step allows): on to the fallback
    ({}, "nudge/retry-3", SMS, "failed", Reaction("nudge/fallback-1", EMAIL, "nudge.email", 15 * M)),
    # reached, revoked: nothing
    ({}, "nudge", SMS, "delivered", None),
    ({}, "nudge/retry-1", SMS, "sent", None),
    ({}, "nudge/fallback-1", EMAIL, "revoked", None),
    ({}, "nudge", SMS, "revoked", None),
    ({"active": False}, "nudge", SMS, "failed", None),
    ({"held": True}, "nudge/retry-2", SMS, "failed", None),
    # ring: retried once on the call, then nothing (fallback_on_failure false: its SMS is only for "no contact point")
    ({}, "ring", CALL, "no_answer", Reaction("ring/retry-1", CALL, "ring.script", 30 * M)),
    ({}, "ring", CALL, "busy", Reaction("ring/retry-1", CALL, "ring.script", 30 * M)),
    ({}, "ring/retry-1", CALL, "voicemail", None),
    ({}, "ring", CALL, "right_party_contact", None),
    # escalate: no retries, falls back to an e-mail
    ({}, "escalate", CALL, "no_answer", Reaction("escalate/fallback-1", EMAIL, "escalate.email", 30 * M)),
    ({}, "escalate/fallback-1", EMAIL, "failed", None),
    ({"email": False}, "escalate", CALL, "no_answer", None),
    # raid: a visit retried once (after the default 240 minutes), then a call, then an e-mail
    ({}, "raid", FIELD, "failed", Reaction("raid/retry-1", FIELD, "raid.visit", 240 * M)),
    ({}, "raid/retry-1", FIELD, "failed", Reaction("raid/fallback-1", CALL, "raid.script", 30 * M)),
    ({}, "raid/fallback-1", CALL, "busy", Reaction("raid/fallback-2", EMAIL, "raid.email", 30 * M)),
    ({"phone": False}, "raid/retry-1", FIELD, "failed", Reaction("raid/fallback-2", EMAIL, "raid.email", 30 * M)),
    # no address: made on its call fallback, retried on the call, then the e-mail
    ({"address": False}, "raid", CALL, "no_answer", Reaction("raid/retry-1", CALL, "raid.script", 240 * M)),
    ({"address": False}, "raid/retry-1", CALL, "no_answer", Reaction("raid/fallback-2", EMAIL, "raid.email", 30 * M)),
    # visit: falls back only when there is no address
    ({}, "visit", FIELD, "failed", None),
    ({"address": False}, "visit", CALL, "no_answer", None),
    # a reaction whatever bucket the account is in now (an outcome of a step of an earlier bucket)
    ({}, "second", EMAIL, "failed", None),
    ({}, "reminder", SMS, "failed", None),  # builtin's reminder is not a step of this strategy's standard segment
    ({}, "field-visit", FIELD, "failed", None),
])
def test_custom_reaction_table(kw: dict[str, Any], step: str, channel: Channel, outcome: str,
                               expected: Reaction | None) -> None:
    assert react(CUSTOM, account("standard", 20, **kw), step, channel, outcome) == expected


@pytest.mark.parametrize("outcome", sorted(NOT_REACHED))
def test_every_outcome_that_did_not_reach_the_customer_is_retried(outcome: str) -> None:
    assert react(CUSTOM, account(), "nudge", SMS, outcome) == Reaction("nudge/retry-1", SMS, "nudge.sms", 60 * M)


@pytest.mark.parametrize("outcome", sorted(REACHED | {"revoked"}))
def test_no_reaction_once_the_customer_was_reached_or_the_contact_revoked(outcome: str) -> None:
    for step, channel in (("nudge", SMS), ("nudge/retry-2", SMS), ("nudge/fallback-1", EMAIL), ("ring", CALL)):
        assert react(CUSTOM, account(), step, channel, outcome) is None


def test_a_reaction_names_why() -> None:
    planned = after_outcome(CUSTOM, account(), step="nudge/retry-2", channel=SMS, outcome="failed",
                            outcome_at=OUTCOME_AT)
    assert planned is not None
    assert planned.reason == "custom@2: failed on sms: fallback 1 of step 'nudge' (email)"
    planned = after_outcome(CUSTOM, account(), step="ring", channel=CALL, outcome="busy", outcome_at=OUTCOME_AT)
    assert planned is not None and planned.reason == "custom@2: busy on call: retry 1 of 1 of step 'ring'"


def test_the_whole_chain_of_a_step_that_never_reaches_anyone() -> None:
    acc = account(dpd=1)
    planned = step_for(CUSTOM, acc, now=NOW)
    chain = []
    while planned is not None:
        chain.append((planned.step, planned.channel, planned.due_at - NOW))
        planned = after_outcome(CUSTOM, acc, step=planned.step, channel=planned.channel, outcome="failed",
                                outcome_at=planned.due_at)
    assert chain == [("nudge", SMS, 0 * M), ("nudge/retry-1", SMS, 60 * M), ("nudge/retry-2", SMS, 120 * M),
                     ("nudge/fallback-1", EMAIL, 135 * M), ("nudge/fallback-2", CALL, 150 * M)]


# ---------------------------------------------------------------------------------------------------------------
# step names


@pytest.mark.parametrize(("name", "parsed"), [
    ("call", StepName("call")),
    ("call/retry-1", StepName("call", retry=1)),
    ("call/retry-3", StepName("call", retry=3)),
    ("call/fallback-2", StepName("call", fallback=2)),
    ("pre_due.v2-x/fallback-1", StepName("pre_due.v2-x", fallback=1)),
    ("retry-1", StepName("retry-1")),
    ("call/retry-", StepName("call/retry-")),
    ("call/retry-x", StepName("call/retry-x")),
    ("call/other-1", StepName("call/other-1")),
])
def test_step_name_parse(name: str, parsed: StepName) -> None:
    assert StepName.parse(name) == parsed


@pytest.mark.parametrize("base", ["call", "a", "pre-due", "x" * 40, "r.2_b-c"])
@pytest.mark.parametrize(("retry", "fallback"), [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (0, 2), (0, 3)])
def test_step_name_round_trip(base: str, retry: int, fallback: int) -> None:
    name = StepName(base, retry=retry, fallback=fallback)
    assert StepName.parse(str(name)) == name
    assert str(StepName.parse(str(name))) == str(name)


@pytest.mark.parametrize("name", ["call/retry-²", "call/fallback-①", "call/retry-١", "call/retry--1", "call/retry-1/x"])
def test_step_name_parse_never_raises(name: str) -> None:
    # was a bug: str.isdigit() accepts digits int() refuses ('²'), and parse raised ValueError
    assert StepName.parse(name) == StepName(name)


# ---------------------------------------------------------------------------------------------------------------
# one step id, one contact


def reused_id_document() -> dict[str, Any]:
    """Standard customers: step 'touch' is an SMS in 1-15 and, reused under the same id, a call retried twice in
    16-30 (the validator accepts a reused id: 'the same contact, made once per delinquency cycle')."""
    doc = copy.deepcopy(DOCUMENT)
    doc["segments"]["standard"]["1-15"] = [{"id": "touch", "day": 1, "channel": "sms", "template": "touch.sms"}]
    doc["segments"]["standard"]["16-30"] = [{"id": "touch", "day": 16, "channel": "call", "template": "touch.script",
                                             "retries": 2, "retry_after_minutes": 30}]
    return doc


def test_a_reaction_follows_the_definition_of_the_step_that_was_made() -> None:
    # was a bug: Strategy.find returns the first step of an id in any bucket, so the reaction to the call followed
    # the SMS's definition (no retry); a document making one id two ways is now refused
    strategy, errors = parse_strategy(reused_id_document(), name="reused", version=1)
    if strategy is None:
        assert any("step id 'touch' (DPD 1 and 16) is one contact made two ways" in e for e in errors), errors
        return
    acc = account(dpd=16)  # the treatment starts at DPD 16 (first notice late, or after a plan)
    planned = step_for(strategy, acc, now=NOW)
    assert made(planned) == Made("touch", CALL, "touch.script")
    # expected: retry 1 of the call; actual: None (the SMS of 1-15 is taken as the step: no retries, no fallback)
    assert react(strategy, acc, "touch", CALL, "no_answer") == Reaction("touch/retry-1", CALL, "touch.script", 30 * M)
