"""Properties of strategies (services/scheduler/domain/strategies/) over random documents, accounts and outcomes:

- (a) a validated strategy never plans a step, nor reacts to an outcome, for an account not active or held;
- (b) it always progresses: an active account with every contact point gets a step on every DPD of an overdue
  bucket from the first step whose conditions hold onward (and none before it), the last such step;
- (c) what it plans uses a channel the account can be reached on, a (channel, template) pair the step names,
  and falls due no earlier than now (than the outcome, for a reaction), at the step's local time when it has one;
- (d) reactions terminate: failing outcome after failing outcome gives a finite chain of distinct step ids, at
  most 1 + retries + len(fallback) long, the retries on the first channel, then never a channel twice;
- (e) experiments: ``arm_of`` is deterministic, challengers take their share of borrowers, a challenger's
  borrowers at a smaller share are among its borrowers at a larger one, and ``parse_assignment`` refuses shares
  over 10,000 bp and arms used twice.

Documents are drawn valid by construction as far as ids, days, shadowing and conditions go, and filtered through
``parse_strategy`` for the call caps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from services.scheduler.domain.states import NOT_REACHED, REACHED
from services.scheduler.domain.strategies.document import (
    BUCKET_DAYS,
    BUCKETS,
    CHANNELS,
    FIELD_FROM_DPD,
    MAX_CALLS_A_DAY,
    SEGMENTS,
    Step,
    Strategy,
    bucket_of,
    parse_strategy,
)
from services.scheduler.domain.strategies.experiments import (
    BASIS,
    CHAMPION,
    Assignment,
    arm_of,
    assignment_document,
    parse_assignment,
)
from services.scheduler.domain.strategies.interpreter import Account, Planned, StepName, after_outcome, step_for
from shared.contracts.events import Channel

PROPS = settings(max_examples=120, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
ZONES = ("Asia/Shanghai", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Adelaide")
FAILED = sorted(NOT_REACHED | {"bounced-or-whatever"})  # an outcome no table knows counts as a failure
OUTCOMES = sorted(REACHED | NOT_REACHED | {"revoked"})
TEMPLATES = ("t.one", "t.two", "reminder.sms", "call.script", "x_y-z")
LAST_DAY = 140  # steps of the 90+ bucket are drawn from DPD 91 to here

# ---------------------------------------------------------------------------------------------------------------
# documents


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, int]:
    when: dict[str, int] = {}
    for low, high, top in (("overdue_min_minor", "overdue_max_minor", 300_000),
                           ("broken_promises_min", "broken_promises_max", 4)):
        # a minimum of 0 always holds (When.unconditional): a real condition's minimum is 1 or more
        a, b = sorted(draw(st.lists(st.integers(1, top), min_size=2, max_size=2)))
        kind = draw(st.sampled_from(["none", "min", "max", "both"]))
        if kind in ("min", "both"):
            when[low] = a
        if kind in ("max", "both"):
            when[high] = b
    return when or {"broken_promises_min": draw(st.integers(1, 4))}


@st.composite
def steps(draw: st.DrawFn, step_id: str, bucket: str, unconditional: bool) -> dict[str, Any]:
    low, high = BUCKET_DAYS[bucket]
    usable = [c for c in CHANNELS if c != "field" or low >= FIELD_FROM_DPD]  # HOUSE-FIELD
    channel = draw(st.sampled_from(usable))
    others = draw(st.permutations([c for c in usable if c != channel]))
    step: dict[str, Any] = {"id": step_id, "day": draw(st.integers(low, min(high, LAST_DAY))), "channel": channel,
                            "template": draw(st.sampled_from(TEMPLATES))}
    optional = {
        "at": st.none() | st.times(time(8, 0), time(20, 59)).map(lambda t: t.strftime("%H:%M")),
        "retries": st.integers(0, 2 if channel == "call" else 3),
        "retry_after_minutes": st.integers(5, 1440),
        "fallback": st.integers(0, 3).flatmap(lambda n: st.tuples(*(st.sampled_from(TEMPLATES) for _ in range(n))))
        .map(lambda ts: [{"channel": c, "template": t} for c, t in zip(others, ts, strict=False)]),
        "fallback_on_failure": st.booleans(),
        "fallback_after_minutes": st.integers(0, 1440),
    }
    for key, values in optional.items():
        if draw(st.booleans()):
            step[key] = draw(values)
    if not unconditional:
        step["when"] = draw(conditions())
    return step


@st.composite
def cells(draw: st.DrawFn, prefix: str, bucket: str) -> list[dict[str, Any]]:
    count = draw(st.integers(0 if bucket == "0" else 1, 3))
    drawn = [draw(steps(f"{prefix}-{i}", bucket, unconditional=(i == 0 and bucket != "0") or draw(st.booleans())))
             for i in range(count)]
    # no step shadowed by an unconditional one listed after it on its day: one unconditional step a day, first
    kept, unconditional_days = [], set()
    for step in drawn:
        if "when" not in step:
            if step["day"] in unconditional_days:
                continue
            unconditional_days.add(step["day"])
        kept.append(step)
    return sorted(kept, key=lambda s: (s["day"], "when" in s))


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """One segment's cells drawn, the others' copied from it or from the first drawn (cheaper to draw)."""
    drawn = {bucket: draw(cells(f"b{i}", bucket)) for i, bucket in enumerate(BUCKETS)}
    return {"description": "drawn", "segments": {segment: drawn for segment in SEGMENTS}}


def validated(doc: dict[str, Any]) -> Strategy:
    strategy, errors = parse_strategy(doc, name="drawn", version=1)
    # only the call caps may refuse a drawn document
    assert all("calls" in e for e in errors), errors
    assume(strategy is not None)
    assert strategy is not None
    return strategy


NOW = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))


@st.composite
def accounts(draw: st.DrawFn, *, now: datetime, active: bool | None = None, held: bool | None = None,
             reachable: bool = False, dpd: int | None = None) -> Account:
    days = draw(st.integers(-40, LAST_DAY + 20) | st.integers(LAST_DAY, 40_000)) if dpd is None else dpd
    return Account(segment=draw(st.sampled_from(SEGMENTS)), days_past_due=days,
                   due_date=now.date() - timedelta(days=days), overdue_minor=draw(st.integers(0, 400_000)),
                   time_zone=draw(st.sampled_from(ZONES)), has_phone=reachable or draw(st.booleans()),
                   has_email=reachable or draw(st.booleans()), has_address=reachable or draw(st.booleans()),
                   broken_promises=draw(st.integers(0, 5)),
                   active=draw(st.booleans()) if active is None else active,
                   held=draw(st.booleans()) if held is None else held)


def holds(step: Step, account: Account) -> bool:
    return step.when.holds(overdue_minor=account.overdue_minor, broken_promises=account.broken_promises)


def expected_step(cell: tuple[Step, ...], account: Account) -> Step | None:
    """The last step (by day, then listed) whose day has come and whose conditions hold; before the due date
    with none come yet, the first one ahead that holds (planned for its day)."""
    holding = [s for s in cell if holds(s, account)]
    come = [s for s in holding if s.day <= account.days_past_due]
    if come:
        return come[-1]
    return holding[0] if holding and account.days_past_due < 0 else None


def first_channel(step: Step, account: Account) -> Channel | None:
    return next((c for c in (step.channel, *(a.channel for a in step.fallback)) if account.reachable(c)), None)


def names(step: Step) -> list[str]:
    return [step.id, *(f"{step.id}/retry-{n}" for n in range(1, 5)), *(f"{step.id}/fallback-{n}" for n in range(1, 4))]


def pairs(step: Step) -> set[tuple[Channel, str]]:
    return {(step.channel, step.template), *((a.channel, a.template) for a in step.fallback)}


def chain(strategy: Strategy, account: Account, first: Planned, outcomes: list[str]) -> list[Planned]:
    """The contacts made when every outcome fails (at most 12: more fails the property)."""
    made = [first]
    for outcome in itertools.cycle(outcomes):
        if len(made) > 12:
            break
        last = made[-1]
        nxt = after_outcome(strategy, account, step=last.step, channel=last.channel, outcome=outcome,
                            outcome_at=last.due_at)
        if nxt is None:
            break
        assert nxt.due_at >= last.due_at
        made.append(nxt)
    return made


# ---------------------------------------------------------------------------------------------------------------
# (a) nothing for an account that is not active, or held


@PROPS
@given(data=st.data(), doc=documents(), now=NOW, inactive=st.sampled_from([(False, False), (False, True),
                                                                           (True, True)]))
def test_nothing_for_an_account_not_active_or_held(data: st.DataObject, doc: dict[str, Any], now: datetime,
                                                   inactive: tuple[bool, bool]) -> None:
    strategy = validated(doc)
    active, held = inactive
    account = data.draw(accounts(now=now, active=active, held=held))
    assert step_for(strategy, account, now=now) is None
    # nor on any DPD, nor a reaction to any outcome of any of its steps, on any channel
    for dpd in (0, 1, 16, 31, 61, 91, LAST_DAY):
        moved = Account(**{**{f: getattr(account, f) for f in Account.__slots__}, "days_past_due": dpd})
        assert step_for(strategy, moved, now=now) is None
    for bucket in BUCKETS:
        for step in strategy.steps(account.segment, bucket):
            for name, channel, outcome in itertools.product(names(step), Channel, OUTCOMES):
                assert after_outcome(strategy, account, step=name, channel=channel, outcome=outcome,
                                     outcome_at=now) is None


# ---------------------------------------------------------------------------------------------------------------
# (b) progress


@PROPS
@given(data=st.data(), doc=documents(), now=NOW)
def test_every_overdue_bucket_calls_for_a_step_from_its_first_step_that_holds(data: st.DataObject,
                                                                             doc: dict[str, Any],
                                                                             now: datetime) -> None:
    strategy = validated(doc)
    template = data.draw(accounts(now=now, active=True, held=False, reachable=True, dpd=0))
    for bucket in BUCKETS:
        low, high = BUCKET_DAYS[bucket]
        cell = strategy.steps(template.segment, bucket)
        if bucket != "0":
            unconditional = [s for s in cell if s.when.unconditional]
            assert unconditional, "a validated overdue bucket has an unconditional step"
        holding = [s for s in cell if holds(s, template)]
        first = min((s.day for s in holding), default=None)
        if first is not None and bucket == "0":
            first = low  # before the due date, the first step ahead is planned for its day
        for dpd in range(low, min(high, LAST_DAY + 3) + 1):
            account = Account(segment=template.segment, days_past_due=dpd, due_date=now.date() - timedelta(days=dpd),
                              overdue_minor=template.overdue_minor, time_zone=template.time_zone, has_phone=True,
                              has_email=True, has_address=True, broken_promises=template.broken_promises)
            planned = step_for(strategy, account, now=now)
            if first is None or dpd < first:
                assert planned is None, (bucket, dpd, planned)
                continue
            assert planned is not None, (bucket, dpd)
            expected = expected_step(cell, account)
            assert expected is not None
            assert (planned.step, planned.channel, planned.template) == (expected.id, expected.channel,
                                                                         expected.template)
        if bucket != "0":
            # the bucket yields a step on the day of its unconditional step, whatever the account's amount
            day = min(s.day for s in unconditional)
            account = Account(segment=template.segment, days_past_due=day, due_date=now.date() - timedelta(days=day),
                              overdue_minor=data.draw(st.integers(0, 10**9)), time_zone=template.time_zone,
                              has_phone=True, has_email=True, has_address=True,
                              broken_promises=data.draw(st.integers(0, 50)))
            assert step_for(strategy, account, now=now) is not None


# ---------------------------------------------------------------------------------------------------------------
# (c) what is planned


@PROPS
@given(data=st.data(), doc=documents(), now=NOW)
def test_a_planned_step_is_one_the_strategy_names_on_a_reachable_channel_due_no_earlier_than_now(
        data: st.DataObject, doc: dict[str, Any], now: datetime) -> None:
    strategy = validated(doc)
    for _ in range(10):
        account = data.draw(accounts(now=now, active=True, held=False))
        planned = step_for(strategy, account, now=now)
        cell = strategy.steps(account.segment, bucket_of(account.days_past_due))
        step = next((s for s in cell if s.id == planned.step), None) if planned else None
        expected = expected_step(cell, account)
        if planned is None:
            # nothing: no step of the cell is due, or the chosen one cannot reach the account at all
            assert expected is None or first_channel(expected, account) is None
            continue
        assert step is not None and step == expected and holds(step, account)
        assert step.day <= account.days_past_due or account.days_past_due < 0
        assert account.reachable(planned.channel)
        assert (planned.channel, planned.template) in pairs(step)
        assert planned.channel is first_channel(step, account)
        assert planned.due_at >= now
        if planned.due_at > now:  # at the step's local time (the start of the day without one) on its day
            local = planned.due_at.astimezone(ZoneInfo(account.time_zone))
            assert local.date() == account.due_date + timedelta(days=step.day)
            assert local.time() == (step.at or time(0))  # (no zone drawn skips midnight or 08:00-21:00)


@PROPS
@given(data=st.data(), doc=documents(), now=NOW)
def test_a_reaction_is_one_the_step_names_on_a_reachable_channel_after_the_outcome(
        data: st.DataObject, doc: dict[str, Any], now: datetime) -> None:
    strategy = validated(doc)
    account = data.draw(accounts(now=now, active=True, held=False))
    every = [s for b in BUCKETS for s in strategy.steps(account.segment, b)]
    for step in every:
        for name, channel, outcome in itertools.product(names(step), Channel, ("failed", "no_answer", "delivered")):
            reaction = after_outcome(strategy, account, step=name, channel=channel, outcome=outcome, outcome_at=now)
            if reaction is None:
                continue
            assert outcome not in REACHED and outcome != "revoked"
            parsed = StepName.parse(reaction.step)
            assert parsed.base == step.id and (parsed.retry > 0) != (parsed.fallback > 0)
            assert account.reachable(reaction.channel)
            assert (reaction.channel, reaction.template) in pairs(step)
            assert reaction.due_at >= now
            if parsed.retry:
                assert reaction.channel is channel and parsed.retry <= step.retries
                assert reaction.due_at == now + timedelta(minutes=step.retry_after_minutes)
            else:
                assert step.fallback_on_failure and reaction.channel is not channel
                assert reaction.due_at == now + timedelta(minutes=step.fallback_after_minutes)


# ---------------------------------------------------------------------------------------------------------------
# (d) reactions terminate


@PROPS
@given(data=st.data(), doc=documents(), now=NOW, outcomes=st.lists(st.sampled_from(FAILED), min_size=1, max_size=4))
def test_failing_outcomes_give_a_finite_chain_of_distinct_contacts(data: st.DataObject, doc: dict[str, Any],
                                                                   now: datetime, outcomes: list[str]) -> None:
    strategy = validated(doc)
    account = data.draw(accounts(now=now, active=True, held=False))
    for step in (s for b in BUCKETS for s in strategy.steps(account.segment, b)):
        channel = first_channel(step, account)
        if channel is None:
            continue
        template = step.template if channel is step.channel else next(
            a.template for a in step.fallback if a.channel is channel)
        made = chain(strategy, account, Planned(step.id, channel, template, now, "test"), outcomes)
        ids = [p.step for p in made]
        assert len(ids) == len(set(ids)), ids
        assert len(made) <= 1 + step.retries + len(step.fallback), ids
        # the retries first, numbered 1..n, on the first channel
        retries = [p for p in made[1:] if StepName.parse(p.step).retry]
        assert [str(StepName(step.id, retry=n)) for n in range(1, len(retries) + 1)] == [p.step for p in retries]
        assert len(retries) == step.retries and all(p.channel is channel for p in retries)
        # then the fallbacks, in the order listed, never a channel already used
        rest = made[1 + len(retries):]
        numbers = [StepName.parse(p.step).fallback for p in rest]
        assert all(n > 0 for n in numbers) and numbers == sorted(numbers)
        assert all(step.fallback[n - 1].channel is p.channel for n, p in zip(numbers, rest, strict=True))
        used = [channel, *(p.channel for p in rest)]
        assert len(used) == len(set(used)) and step.channel not in used[1:]
        if not step.fallback_on_failure:
            assert not rest
        else:
            # every fallback after the first channel that can reach the account was tried
            start = 0 if channel is step.channel else 1 + [a.channel for a in step.fallback].index(channel)
            reachable = [a.channel for a in step.fallback[start:] if account.reachable(a.channel)]
            assert [p.channel for p in rest] == reachable


# ---------------------------------------------------------------------------------------------------------------
# the call caps by construction: what a validated strategy's step makes on its day, when no call reaches anyone

# was a bug: a field visit retried 3 times on its call fallback (4 calls) passed as 1 call; now counted as 1 + retries
RETRIED_ON_THEIR_CALL_FALLBACKS: dict[str, Any] = {"description": "", "segments": {
    segment: {bucket: [] if bucket == "0" else [
        {"id": f"b{i}", "day": BUCKET_DAYS[bucket][0], "channel": "field" if i >= 3 else "email", "template": "t.one",
         "retries": 2, "fallback": [{"channel": "call", "template": "call.script"}]}]
              for i, bucket in enumerate(BUCKETS)} for segment in SEGMENTS}}


@PROPS
@example(doc=RETRIED_ON_THEIR_CALL_FALLBACKS, now=datetime(2026, 3, 20, tzinfo=UTC), email=False, address=False)
@given(doc=documents(), now=NOW, email=st.booleans(), address=st.booleans())
def test_no_step_makes_more_calls_a_day_than_the_cap(doc: dict[str, Any], now: datetime, email: bool,
                                                     address: bool) -> None:
    strategy = validated(doc)
    for (segment, _), cell in strategy.cells.items():
        for step in cell:
            account = Account(segment=segment, days_past_due=step.day, due_date=now.date(), overdue_minor=0,
                              time_zone="Asia/Shanghai", has_phone=True, has_email=email, has_address=address)
            channel = first_channel(step, account)
            if channel is None:
                continue
            first = Planned(step.id, channel, "t", now, "test")
            calls = [p for p in chain(strategy, account, first, ["no_answer"]) if p.channel is Channel.CALL]
            assert len(calls) <= MAX_CALLS_A_DAY, (step, [p.step for p in calls])


# ---------------------------------------------------------------------------------------------------------------
# (e) experiments

ARMS = ("a", "b", "c", "d")
BORROWERS = [f"borrower-{i}" for i in range(20_000)]
EXPERIMENT_NAMES = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True)


@st.composite
def assignment_docs(draw: st.DrawFn, *, challengers: int | None = None) -> dict[str, Any]:
    count = draw(st.integers(1, 4)) if challengers is None else challengers
    shares = []
    for _ in range(count):
        shares.append({s: draw(st.integers(0, BASIS)) for s in draw(st.sets(st.sampled_from(SEGMENTS), min_size=1))})
    blocks = sum(max(s.values()) for s in shares)  # each challenger's block is as wide as its largest share
    if blocks > BASIS:
        shares = [{k: v * BASIS // blocks for k, v in s.items()} for s in shares]
    return {"champion": {"strategy": "champ", "version": draw(st.integers(1, 5))},
            "experiment": draw(EXPERIMENT_NAMES),
            "challengers": [{"arm": ARMS[i], "strategy": f"s-{ARMS[i]}", "version": 1, "share_bp": share}
                            for i, share in enumerate(shares)]}


def assignment(doc: dict[str, Any]) -> Assignment:
    parsed, errors = parse_assignment(doc)
    assert parsed is not None, errors
    return parsed


@settings(max_examples=8, deadline=None, database=None)
@given(doc=assignment_docs(), segment=st.sampled_from(SEGMENTS))
def test_arm_of_is_deterministic_and_challengers_take_their_share(doc: dict[str, Any], segment: str) -> None:
    a = assignment(doc)
    again = assignment(assignment_document(a))  # the stored document parses to the same assignment
    assert again == a
    arms = [arm_of(a, borrower=b, segment=segment) for b in BORROWERS]
    assert arms[:500] == [arm_of(again, borrower=b, segment=segment) for b in BORROWERS[:500]]
    refs = {c.arm: c.strategy for c in a.challengers} | {CHAMPION: a.champion}
    assert all(refs[arm] == ref for arm, ref in arms)
    counts = {arm: 0 for arm in refs}
    for arm, _ in arms:
        counts[arm] += 1
    champion_share = BASIS - sum(c.share_bp.get(segment, 0) for c in a.challengers)
    for c in a.challengers:
        share = c.share_bp.get(segment, 0)
        if share == 0:
            assert counts[c.arm] == 0
        assert abs(counts[c.arm] / len(BORROWERS) - share / BASIS) < 0.02, (c.arm, counts, share)
    assert abs(counts[CHAMPION] / len(BORROWERS) - champion_share / BASIS) < 0.02


def test_arm_of_without_an_experiment_is_the_champion() -> None:
    a = assignment({"champion": {"strategy": "champ", "version": 2}})
    assert all(arm_of(a, borrower=b, segment=s) == (CHAMPION, a.champion) for b in BORROWERS[:100] for s in SEGMENTS)


@settings(max_examples=30, deadline=None, database=None)
@given(doc=assignment_docs(challengers=1))
def test_a_challengers_borrowers_at_a_smaller_share_are_among_its_borrowers_at_a_larger_one(
        doc: dict[str, Any]) -> None:
    a = assignment(doc)
    c = a.challengers[0]
    ordered = sorted(SEGMENTS, key=lambda s: c.share_bp.get(s, 0))
    for borrower in BORROWERS[:2000]:
        taken = [arm_of(a, borrower=borrower, segment=s)[0] == c.arm for s in ordered]
        assert taken == sorted(taken), (borrower, ordered, taken)  # once taken, taken at every larger share


NOT_NESTED: dict[str, Any] = {
    "champion": {"strategy": "champ", "version": 1}, "experiment": "exp",
    "challengers": [{"arm": "a", "strategy": "s-a", "version": 1, "share_bp": {"prime": 0, "standard": 5000}},
                    {"arm": "b", "strategy": "s-b", "version": 1, "share_bp": {"prime": 1000, "standard": 2000}}]}


@settings(max_examples=30, deadline=None, database=None)
@example(doc=NOT_NESTED)
@given(doc=assignment_docs())
def test_every_challengers_borrowers_are_nested_across_segments(doc: dict[str, Any]) -> None:
    a = assignment(doc)
    for c in a.challengers:
        ordered = sorted(SEGMENTS, key=lambda s: c.share_bp.get(s, 0))
        for borrower in BORROWERS[:2000]:
            taken = [arm_of(a, borrower=borrower, segment=s)[0] == c.arm for s in ordered]
            assert taken == sorted(taken), (c.arm, borrower, ordered, taken)


@settings(max_examples=40, deadline=None, database=None)
@given(doc=assignment_docs(), data=st.data())
def test_parse_assignment_refuses_too_large_shares_and_arms_used_twice(doc: dict[str, Any],
                                                                     data: st.DataObject) -> None:
    assert parse_assignment(doc)[0] is not None
    # one share over 10,000 basis points
    over = {**doc, "challengers": [dict(c) for c in doc["challengers"]]}
    i = data.draw(st.integers(0, len(over["challengers"]) - 1))
    segment = data.draw(st.sampled_from(SEGMENTS))
    over["challengers"][i]["share_bp"] = {**over["challengers"][i]["share_bp"],
                                          segment: data.draw(st.integers(BASIS + 1, 10**9))}
    parsed, errors = parse_assignment(over)
    assert parsed is None and any(f"share_bp.{segment} must be 0-10000 basis points" in e for e in errors), errors
    # blocks (each challenger's largest share) adding up to more than 10,000
    if len(doc["challengers"]) >= 2:
        total = {**doc, "challengers": [{**c, "share_bp": {**c["share_bp"], segment: 6000}}
                                        for c in doc["challengers"]]}
        parsed, errors = parse_assignment(total)
        assert parsed is None
        assert any("the challengers' largest shares add up to" in e for e in errors), errors
    # an arm used twice
    again = {**doc["challengers"][0], "strategy": "other", "share_bp": {segment: 0}}
    kept = doc["challengers"] if len(doc["challengers"]) < 4 else doc["challengers"][:-1]
    twice = {**doc, "challengers": [*kept, again]}
    parsed, errors = parse_assignment(twice)
    assert parsed is None and any(f"arm {doc['challengers'][0]['arm']!r} is used twice" in e for e in errors), errors


@pytest.mark.parametrize(("doc", "fragment"), [
    ([], "the assignment must be a JSON object"),
    ({"champion": {"strategy": "c", "version": 1}, "owner": 1}, "unknown field 'owner'"),
    ({"champion": {"strategy": "C", "version": 1}}, "champion.strategy must be a strategy name"),
    ({"champion": {"strategy": "c", "version": 0}}, "champion.version must be a published version number"),
    ({"champion": {"strategy": "c", "version": True}}, "champion.version must be a published version number"),
    ({"champion": {"strategy": "c"}}, "champion must be {\"strategy\": name, \"version\": number}"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e"}, "names an experiment with no challengers"),
    ({"champion": {"strategy": "c", "version": 1},
      "challengers": [{"arm": "a", "strategy": "s", "version": 1, "share_bp": {"prime": 1}}]},
     "an experiment needs a name"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": "champion", "strategy": "s", "version": 1, "share_bp": {"prime": 1}}]},
     "arm must be a name other than 'champion'"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": "a", "strategy": "c", "version": 1, "share_bp": {"prime": 1}}]},
     "a challenger runs the champion's own strategy version"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": "a", "strategy": "s", "version": 1, "share_bp": {"vip": 1}}]},
     "unknown segment 'vip'"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": "a", "strategy": "s", "version": 1, "share_bp": {"prime": True}}]},
     "share_bp.prime must be 0-10000 basis points, not True"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": "a", "strategy": "s", "version": 1, "share_bp": {}}]},
     "share_bp must map segments to basis points"),
    ({"champion": {"strategy": "c", "version": 1}, "experiment": "e",
      "challengers": [{"arm": n, "strategy": "s", "version": 1, "share_bp": {"prime": 1}} for n in "abcde"]},
     "challengers must be a list of at most 4"),
])
def test_parse_assignment_refusals(doc: Any, fragment: str) -> None:
    parsed, errors = parse_assignment(doc)
    assert parsed is None and any(fragment in e for e in errors), errors
