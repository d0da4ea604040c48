"""The offline comparison of strategies (simulator/strategies.py) and the replay's events (simulator/live.py)."""

from __future__ import annotations

import copy
import inspect
import json
import random
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.domain.strategies import builtin, experiments, interpreter
from services.scheduler.domain.strategies import report as scheduler_report
from services.segmentation.domain import policy
from services.segmentation.domain.segments import classify
from shared.contracts.events import Channel
from simulator import live, simulate, strategies
from simulator.behaviour import DEFAULT_BEHAVIOUR, Contact, contact_outcome, initial_state, step
from simulator.history import run
from simulator.portfolio import draw_account

START = date(2025, 1, 1)
CHALLENGER = strategies.STRATEGIES_DIR / "email-first.json"


def _setup(accounts: int, seed: int = 7, burn_in_days: int = 30) -> strategies.Setup:
    return strategies.Setup(accounts=accounts, seed=seed, start=START, days=60, burn_in_days=burn_in_days)


def _experiment(challenger: Any = None, shares: str = "5000", name: str = "test") -> strategies.Experiment:
    return strategies.experiment(builtin.BUILTIN, [("challenger", challenger or strategies.load_strategy(CHALLENGER),
                                                    strategies.parse_shares(shares))], name)


def _compared(result: strategies.Result) -> list[scheduler_report.Comparison]:
    return [c for a in result.arms for c in a.compared]


def test_the_simulator_runs_the_platforms_own_code_not_a_copy() -> None:
    assert strategies.step_for is interpreter.step_for
    assert strategies.after_outcome is interpreter.after_outcome
    assert strategies.arm_of is experiments.arm_of
    assert strategies.parse_assignment is experiments.parse_assignment
    assert strategies.report is scheduler_report.report
    assert strategies.AccountFacts is scheduler_report.AccountFacts
    assert strategies.classify_with is policy.classify_with and strategies.BUILTIN is policy.BUILTIN
    source = inspect.getsource(strategies)
    for name in ("def step_for", "def after_outcome", "def arm_of", "def point", "def wilson", "def classify"):
        assert name not in source


@pytest.mark.parametrize(("rating", "score", "dpd"), [("A", None, 5), ("B", 640, 12), ("A", 760, 31), ("D", None, 31),
                                                       ("C", 820, 95), ("E", None, 1), ("B", None, 30)])
def test_segments_are_segmentations_builtin_policy(rating: str, score: int | None, dpd: int) -> None:
    expected = classify(credit_rating=rating, credit_score=score, days_past_due=dpd).segment.value
    assert strategies.segment_for(rating, score, dpd) == expected


def test_the_shipped_challenger_is_a_valid_strategy() -> None:
    s = strategies.load_strategy(CHALLENGER)
    assert s.ref == "email-first@1"
    first = s.steps("prime", "1-15")[0]
    assert (first.channel, [a.channel for a in first.fallback]) == (Channel.EMAIL, [Channel.SMS])
    assert [st.channel for st in s.steps("standard", "31-60")] == [Channel.CALL, Channel.FIELD]
    assert s.steps("standard", "31-60")[1].when.overdue_min_minor == 1_000_000


def test_compliance_is_approximated_by_hours_and_one_message_per_channel_a_day() -> None:
    zone = ZoneInfo("Asia/Shanghai")
    night = datetime(2025, 1, 2, 0, 30, tzinfo=zone)
    at = strategies.allowed_at(night, zone, Channel.SMS, set())
    assert at.astimezone(zone) == datetime(2025, 1, 2, 8, 0, tzinfo=zone)
    late = datetime(2025, 1, 2, 21, 5, tzinfo=zone)
    next_morning = datetime(2025, 1, 3, 8, tzinfo=zone)
    assert strategies.allowed_at(late, zone, Channel.CALL, set()).astimezone(zone) == next_morning
    noon = datetime(2025, 1, 2, 12, 0, tzinfo=zone)
    sent = {(Channel.SMS, date(2025, 1, 2))}
    assert strategies.allowed_at(noon, zone, Channel.SMS, sent).astimezone(zone) == next_morning
    assert strategies.allowed_at(noon, zone, Channel.EMAIL, sent) == noon.astimezone(UTC)
    assert strategies.allowed_at(noon, zone, Channel.CALL, sent) == noon.astimezone(UTC)  # calls are not capped


def test_contact_outcomes_keep_the_documented_reach() -> None:
    rng = random.Random(3)
    for channel, reach in DEFAULT_BEHAVIOUR.reach:
        draws = [contact_outcome(channel, 12, rng) for _ in range(20_000)]
        assert sum(r for _, r in draws) / len(draws) == pytest.approx(reach, abs=0.015)
    sms = [o for o, _ in (contact_outcome("sms", 12, rng) for _ in range(20_000))]
    assert sms.count("failed") / len(sms) == pytest.approx(dict(DEFAULT_BEHAVIOUR.delivery_failure)["sms"], abs=0.01)
    assert {o for o, _ in (contact_outcome("call", 12, rng) for _ in range(200))} == {"no_answer",
                                                                                      "right_party_contact"}


def test_a_contact_reached_as_decided_by_the_caller_else_as_drawn() -> None:
    acc = draw_account(0, seed=1, start=START)
    state = replace(initial_state(acc, START), overdue_minor=acc.instalment_minor, cycle_due_day=15, cycles=1)
    rng = random.Random(1)
    drawn = [step(state, 20, [Contact("call", 12, "call")], rng)[1].contacts[0].reached for _ in range(400)]
    assert 0.3 < sum(drawn) / len(drawn) < 0.6  # reach 0.45, drawn in step() as the history's policies need
    for reached in (True, False):
        made = [step(state, 20, [Contact("call", 12, "call", reached)], rng)[1].contacts[0].reached for _ in range(50)]
        assert set(made) == {reached}


def test_the_comparison_is_deterministic_by_seed() -> None:
    exp = _experiment()
    first = strategies.to_json(strategies.compare(_setup(400), exp))
    assert strategies.to_json(strategies.compare(_setup(400), exp)) == first
    assert strategies.to_json(strategies.compare(_setup(400, seed=8), exp)) != first
    assert strategies.render_text(strategies.compare(_setup(400), exp)) == strategies.render_text(
        strategies.compare(_setup(400), exp))


def test_the_arms_get_their_shares() -> None:
    result = strategies.compare(_setup(4000), _experiment(shares="3000"))
    counts = {a.arm: a.accounts for a in result.arms}
    assert counts["challenger"] / sum(counts.values()) == pytest.approx(0.3, abs=0.05)
    nobody = strategies.compare(_setup(800), _experiment(shares="prime=0"))
    assert {a.arm: a.accounts for a in nobody.arms}["challenger"] == 0


def test_each_account_is_in_its_borrowers_arm() -> None:
    exp = _experiment(shares="5000")
    setup = _setup(600)
    for index, r in enumerate(strategies.runs(setup, exp)):
        if r.facts is None:
            continue
        challenger = experiments.point(exp.name, f"customer:C{index:08d}") < 5000
        assert r.facts.arm == ("challenger" if challenger else "champion")


def test_an_identical_challenger_is_not_significant() -> None:
    # One fixed draw (seed 1): at 95% one comparison in twenty of identical arms is "significant" by chance, so
    # some seeds show one (seeds 4, 5 and 7 of 1-8 do, on some metric); this one shows none, as most do.
    same = strategies.load_strategy("builtin", name="same")
    result = strategies.compare(_setup(3000, seed=1), _experiment(same))
    compared = _compared(result)
    assert len(compared) == 7 and all(c.difference is not None for c in compared)
    assert not any(c.significant for c in compared), [c.statement for c in compared]
    assert all("not significant" in c.statement for c in compared)


def test_a_clearly_better_challenger_is_significant() -> None:
    # customers respond far more to e-mail than to SMS; the challenger reminds everyone with an address by e-mail
    params = replace(DEFAULT_BEHAVIOUR, lift=(("sms", 0.2), ("email", 3.5), ("call", 1.4), ("field", 1.7)),
                     lift_cap=4.0)
    document = copy.deepcopy(builtin.DOCUMENT)
    for segment in ("standard", "high_risk"):
        document["segments"][segment]["1-15"] = [
            {"id": "reminder", "day": 1, "channel": "email", "template": "reminder.email",
             "fallback": [{"channel": "sms", "template": "reminder.sms"}]}]
    better, errors = strategies.parse_strategy(document, name="all-email", version=1)
    assert better is not None, errors
    result = strategies.compare(_setup(3000), _experiment(better), params=params)
    by_metric = {c.metric: c for c in _compared(result)}
    cure = by_metric["cure rate at 7 days"]
    assert cure.significant and cure.difference is not None and cure.difference > 0
    assert "is higher than the champion's" in cure.statement


def test_the_cli_prints_the_report_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    assert simulate.main(["compare", "--accounts", "300", "--days", "20", "--burn-in-days", "20", "--challenger",
                          f"email-first:{CHALLENGER}:prime=5000,standard=5000,high_risk=5000",
                          "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "== champion (builtin@1)" in text and "== email-first (email-first@1)" in text
    data = json.loads(out.read_text())
    assert [a["arm"] for a in data["arms"]] == ["champion", "email-first"]
    assert data["assignment"]["challengers"][0]["share_bp"] == {"prime": 5000, "standard": 5000, "high_risk": 5000}
    assert set(data["arms"][1]["cure_rate"]) == {"7", "30", "60"} and data["arms"][1]["compared"]


def test_challenger_specs() -> None:
    arm, s, shares = strategies.parse_challenger(str(CHALLENGER), default_share=3333)
    assert (arm, s.ref, shares["standard"]) == ("email-first", "email-first@1", 3333)
    arm, s, shares = strategies.parse_challenger("same:builtin:prime=2000", default_share=5000)
    assert (arm, s.ref, shares) == ("same", "same@1", {"prime": 2000})
    with pytest.raises(ValueError, match="champion's own"):
        strategies.experiment(builtin.BUILTIN, [("copy", builtin.BUILTIN, {"prime": 10})])


def test_replay_orders_by_event_time_and_seals_the_placeholders() -> None:
    records = list(run(5, seed=3, start=START, days=30, burn_in_days=30))
    events = live.replay_events(records, tenant="tenant-a")
    times = [at for _, _, at in events]
    assert times == sorted(times) and len(events) == sum(
        r["type"] in ("core.account-overdue.v1", "core.payment-received.v1") for r in records)
    overdue = next(p for t, p, _ in events if t.name == "core.account-overdue.v1")
    assert overdue.tenant == "tenant-a"
    assert live.CIPHER.open(overdue.contact.name, context="tenant-a").startswith("Sim Customer")
