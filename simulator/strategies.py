"""Offline comparison of contact strategies: a synthetic portfolio whose contacts are decided by the platform's own
pure code, and the experiment report of the scheduler (docs/simulator.md, "Comparing strategies").

Each simulated day, each overdue account (its core-banking snapshot at 00:30 bank time) is:

- **classified** by segmentation's built-in policy (``services.segmentation.domain.policy`` ``BUILTIN``,
  ``classify_with``), as a tenant that has published no policy;
- **assigned an arm** by ``arm_of`` (``services.scheduler.domain.strategies.experiments``) from the experiment's
  assignment (checked by ``parse_assignment``), the borrower being ``customer:<customer_id>``, what the scheduler
  hashes when a snapshot carries no borrower key; before the experiment starts (the lead-in) everyone follows
  the champion;
- **planned** by the scheduler's interpreter ``step_for``: one step per strategy step id per delinquency cycle,
  as ``services/scheduler/service/__init__.py`` ``_open_steps`` does (a step already created this cycle is not
  made again); a timed step falls due at its local hour;
- **contacted**, approximating compliance: a contact is made only between 08:00 and 21:00 local time (else
  deferred to the next 08:00) and at most one automated message (SMS, e-mail) per channel per local day (else
  deferred to the next day); calls and visits are not capped; holds, consents, holidays and the other rules are
  not simulated;
- **answered**: ``simulator.behaviour.contact_outcome`` says what the platform hears (an SMS to a dead number
  ``failed``, a call ``no_answer``, ...) and whether the customer was reached; a contact that did not reach the
  customer gets the retry or fallback ``after_outcome`` names, as ``_react`` does (a step of its own, due after
  its delay, following the strategy of the step it reacts to);
- **stepped**: ``simulator.behaviour.step`` takes the day's contacts (channel, local hour, reached) and returns
  the payments, promises and complaints; a cure cancels the steps still pending.

An account enters the experiment when its first step in it is planned (``AccountFacts.start``), with what it owed
then; its contacts (and their cost, ``Costs``), payments and complaints from then on are its facts, and
``services.scheduler.domain.strategies.report.report`` turns them into the per-arm report. Amounts are in CNY minor
units (USD and GBP converted at the portfolio's scale, ``Assumptions.currencies``). Deterministic by seed: each
account runs alone on its own random streams (``account_rng``: 1 for its behaviour, 2 for its contacts' outcomes).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.scheduler.domain.states import REACHED
from services.scheduler.domain.strategies import builtin
from services.scheduler.domain.strategies.document import Strategy, parse_strategy
from services.scheduler.domain.strategies.experiments import (
    CHAMPION,
    Assignment,
    StrategyRef,
    arm_of,
    parse_assignment,
)
from services.scheduler.domain.strategies.interpreter import Account as Treatment
from services.scheduler.domain.strategies.interpreter import after_outcome, step_for
from services.scheduler.domain.strategies.report import AccountFacts, ArmReport, Comparison, Rate, report
from services.segmentation.domain.policy import BUILTIN, Features, classify_with
from services.segmentation.domain.segments import rating_of
from shared.contracts.events import Channel
from simulator.behaviour import DEFAULT_BEHAVIOUR, Behaviour, Contact, contact_outcome, initial_state, step
from simulator.history import _Clock, simulation_start
from simulator.portfolio import DEFAULT_ASSUMPTIONS, Account, Assumptions, _src, account_rng, draw_account

STRATEGIES_DIR = Path(__file__).parent / "strategies"
AUTOMATED = frozenset({Channel.SMS, Channel.EMAIL})
OPEN_FROM, OPEN_UNTIL = time(8, 0), time(21, 0)  # the narrowest built-in packs' hours (US, UK: 08:00-21:00)


@dataclass(frozen=True)
class Costs:
    """What one contact attempt costs, in CNY minor units (fen), with its source."""

    sms: int = _src(5, "assumed: a domestic bulk SMS, about CNY 0.05")
    email: int = _src(1, "assumed: about CNY 0.01 an e-mail (sending service and template upkeep)")
    call: int = _src(300, "assumed: about 3 agent minutes with dialing and wrap-up at about CNY 1 a minute")
    field: int = _src(5000, "assumed: a visit by two collectors (HOUSE-FIELD), travel included, about CNY 50")

    def of(self, channel: Channel) -> int:
        return int(getattr(self, channel.value))

    def source_of(self, name: str) -> str:
        for f in fields(self):
            if f.name == name:
                return str(f.metadata["source"])
        raise KeyError(name)


DEFAULT_COSTS = Costs()


# --- the experiment ---------------------------------------------------------------------------------------------


def load_strategy(source: str | Path, *, name: str | None = None) -> Strategy:
    """``builtin`` or ``builtin@1``: the built-in strategy (under another ``name``: its document published as
    ``<name>@1``, a copy to test the report with); else a JSON strategy document (docs/strategies.md), published as
    ``<name or file stem>@1``. A refused document raises ``ValueError`` with every reason."""
    if str(source) in ("builtin", builtin.BUILTIN.ref):
        if name is None or name == builtin.NAME:
            return builtin.BUILTIN
        document, where = builtin.DOCUMENT, "builtin"
    else:
        path = Path(source)
        document, where, name = json.loads(path.read_text()), str(path), name or path.stem
    strategy, errors = parse_strategy(document, name=name, version=1)
    if strategy is None:
        raise ValueError(f"{where}: refused: " + "; ".join(errors))
    return strategy


def parse_challenger(spec: str, *, default_share: int) -> tuple[str, Strategy, dict[str, int]]:
    """``[ARM:]SOURCE[:SHARES]``: an arm (default: the file's stem), a strategy (a JSON file or ``builtin``: see
    ``load_strategy``; published as ``<arm>@1``) and its shares (``parse_shares``; default ``default_share`` in
    every segment)."""
    parts = spec.split(":")
    shares = parse_shares(parts.pop()) if len(parts) > 1 and _is_shares(parts[-1]) else None
    arm = parts.pop(0) if len(parts) > 1 else None
    source = ":".join(parts)
    arm = arm or Path(source).stem
    return arm, load_strategy(source, name=arm), shares or parse_shares(str(default_share))


def _is_shares(text: str) -> bool:
    return text.isdigit() or all("=" in part for part in text.split(","))


def parse_shares(text: str) -> dict[str, int]:
    """``5000`` (every segment) or ``prime=2000,standard=5000`` (the others 0): basis points by segment."""
    if "=" not in text:
        return dict.fromkeys(("prime", "standard", "high_risk"), int(text))
    return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(","))}


@dataclass(frozen=True)
class Experiment:
    """The champion and its challengers, as the scheduler's assignment (``parse_assignment`` checks it)."""

    name: str
    assignment: Assignment
    strategies: Mapping[StrategyRef, Strategy]
    champion: Strategy

    @property
    def arms(self) -> list[str]:
        return [CHAMPION, *(c.arm for c in self.assignment.challengers)]

    def follow(self, *, borrower: str, segment: str) -> tuple[str, Strategy]:
        arm, ref = arm_of(self.assignment, borrower=borrower, segment=segment)
        return arm, self.strategies[ref]

    def document(self) -> dict[str, Any]:
        return {"champion": {"strategy": self.champion.name, "version": self.champion.version},
                "experiment": self.name,
                "challengers": [{"arm": c.arm, "strategy": c.strategy.name, "version": c.strategy.version,
                                 "share_bp": dict(c.share_bp)} for c in self.assignment.challengers]}


def experiment(champion: Strategy, challengers: Sequence[tuple[str, Strategy, Mapping[str, int]]],
               name: str = "sim") -> Experiment:
    """An experiment of ``champion`` against ``(arm, strategy, share_bp by segment)`` challengers."""
    doc = {"champion": {"strategy": champion.name, "version": champion.version}, "experiment": name,
           "challengers": [{"arm": arm, "strategy": s.name, "version": s.version, "share_bp": dict(shares)}
                           for arm, s, shares in challengers]}
    assignment, errors = parse_assignment(doc)
    if assignment is None:
        raise ValueError("assignment refused: " + "; ".join(errors))
    strategies = {StrategyRef(champion.name, champion.version): champion}
    for _, s, _ in challengers:
        ref = StrategyRef(s.name, s.version)
        if ref in strategies and strategies[ref] is not s:
            raise ValueError(f"two different strategies are both {ref}")
        strategies[ref] = s
    return Experiment(name, assignment, strategies, champion)


# --- one account ------------------------------------------------------------------------------------------------


@cache
def segment_for(rating: str, credit_score: int | None, days_past_due: int) -> str:
    """The segment segmentation's built-in policy gives (it reads only the rating and the DPD)."""
    features = Features(rating=rating_of(credit_rating=rating, credit_score=credit_score),
                        days_past_due=days_past_due, credit_score=credit_score)
    return classify_with(BUILTIN, features).segment.value


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def allowed_at(at: datetime, zone: ZoneInfo, channel: Channel, sent: set[tuple[Channel, date]]) -> datetime:
    """The first instant from ``at`` at which approximated compliance allows the contact: 08:00-21:00 local, and
    no second automated message on a channel the same local day."""
    local = at.astimezone(zone)
    while True:
        if local.time() < OPEN_FROM:
            local = datetime.combine(local.date(), OPEN_FROM, tzinfo=zone)
        elif local.time() >= OPEN_UNTIL:
            local = datetime.combine(local.date() + timedelta(days=1), OPEN_FROM, tzinfo=zone)
        elif channel in AUTOMATED and (channel, local.date()) in sent:
            local = datetime.combine(local.date() + timedelta(days=1), OPEN_FROM, tzinfo=zone)
        else:
            return local.astimezone(UTC)


@dataclass(order=True)
class _Pending:
    due_at: datetime
    seq: int
    step: str = field(compare=False)
    channel: Channel = field(compare=False)
    strategy: Strategy = field(compare=False)


@dataclass
class AccountRun:
    """One account's facts in the experiment (None when it never entered it) and its contacts by channel."""

    facts: AccountFacts | None
    channels: Counter[str]
    outcomes: Counter[str]


def run_account(acc: Account, *, seed: int, sim_start: date, window_day: int, entry_until_day: int, end_day: int,
                exp: Experiment, params: Behaviour = DEFAULT_BEHAVIOUR, costs: Costs = DEFAULT_COSTS,
                clock: _Clock | None = None, scale: float = 1.0) -> AccountRun:
    """Simulate one account from day 0 to ``end_day``; the experiment runs from ``window_day`` (before it the
    champion, for everyone) and takes accounts whose first step in it is planned before ``entry_until_day``."""
    clock = clock or _Clock(sim_start)
    behave = account_rng(seed, acc.index, stream=1)
    answers = account_rng(seed, acc.index, stream=2)
    zone = _zone(acc.time_zone)
    borrower = f"customer:{acc.customer_id}"
    state = initial_state(acc, sim_start)
    pending: list[_Pending] = []
    created: set[str] = set()
    cycle: int | None = None
    sent: set[tuple[Channel, date]] = set()
    seq = 0
    arm: str | None = None
    start: datetime | None = None
    owed = contacts = cost = 0
    paid: list[tuple[datetime, int]] = []
    complained = False
    channels: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    day = max(state.next_due_day, 0)
    while day < end_day and state.closed is None:
        made: list[Contact] = []
        if state.cycle_due_day is not None:
            if cycle != state.cycle_due_day:
                cycle, created, pending = state.cycle_due_day, set(), []
            now = clock.day(day) + timedelta(minutes=30)
            dpd = day - state.cycle_due_day
            segment = segment_for(acc.rating, acc.credit_score, dpd)
            if day >= window_day:
                step_arm, strategy = exp.follow(borrower=borrower, segment=segment)
            else:
                step_arm, strategy = CHAMPION, exp.champion
            treatment = Treatment(segment=segment, days_past_due=dpd, due_date=sim_start + timedelta(days=cycle),
                                  overdue_minor=state.overdue_minor, time_zone=acc.time_zone,
                                  has_phone=acc.has_phone, has_email=acc.has_email, has_address=acc.has_address)
            if start is None and window_day <= day < entry_until_day:
                arm, start, owed = step_arm, now, round(state.overdue_minor / scale)
            plan = step_for(strategy, treatment, now=now)
            if plan is not None and plan.step not in created:
                created.add(plan.step)
                seq += 1
                heapq.heappush(pending, _Pending(plan.due_at, seq, plan.step, plan.channel, strategy))
            day_end = clock.day(day + 1)
            while pending and pending[0].due_at < day_end:
                item = heapq.heappop(pending)
                at = allowed_at(item.due_at, zone, item.channel, sent)
                if at != item.due_at:  # deferred: back in line at its new time
                    item.due_at = at
                    heapq.heappush(pending, item)
                    continue
                local = at.astimezone(zone)
                outcome, reached = contact_outcome(item.channel.value, local.hour, answers, params)
                if item.channel in AUTOMATED:
                    sent.add((item.channel, local.date()))
                made.append(Contact(item.channel.value, local.hour, item.step, reached))
                if start is not None:
                    contacts += 1
                    cost += costs.of(item.channel)
                    channels[item.channel.value] += 1
                    outcomes[outcome] += 1
                if outcome not in REACHED:
                    follow = after_outcome(item.strategy, treatment, step=item.step, channel=item.channel,
                                           outcome=outcome, outcome_at=at)
                    if follow is not None and follow.step not in created:
                        created.add(follow.step)
                        seq += 1
                        heapq.heappush(pending, _Pending(follow.due_at, seq, follow.step, follow.channel,
                                                         item.strategy))
        state, events = step(state, day, made, behave, params)
        if start is not None:
            for payment in events.payments:
                bank_hour = int(payment.local_hour - acc.utc_offset_hours + clock.bank_offset) % 24
                paid.append((clock.day(day) + timedelta(hours=bank_hour, minutes=40),
                             round(payment.amount_minor / scale)))
            complained = complained or bool(events.complaints)
        if state.cycle_due_day is None:
            pending = []  # paid: the treatment stops, its pending steps are cancelled
            nxt = state.next_due_day if state.promise is None else min(state.next_due_day, state.promise.due_day)
            day = max(nxt, day + 1)  # as history.account_history: nothing happens in between
        else:
            day += 1
    if start is None or arm is None:
        return AccountRun(None, channels, outcomes)
    return AccountRun(AccountFacts(arm=arm, start=start, overdue_minor=owed, contacts=contacts, cost_minor=cost,
                                   paid=tuple(paid), plans=0, complained=complained), channels, outcomes)


# --- the portfolio ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    accounts: int
    seed: int
    start: date  # the experiment's first day
    days: int  # days in which accounts enter the experiment
    burn_in_days: int = 90  # the lead-in: the champion for everyone
    follow_up_days: int = 0  # simulated after the entry window, so that horizons mature

    @property
    def sim_start(self) -> date:
        return simulation_start(self.start, self.burn_in_days)


@dataclass
class Result:
    """What ``compare`` returns: the report (champion first) and each arm's contact mix."""

    setup: Setup
    experiment: Experiment
    now: datetime
    arms: list[ArmReport]
    channels: dict[str, Counter[str]]
    outcomes: dict[str, Counter[str]]


def runs(setup: Setup, exp: Experiment, *, params: Behaviour = DEFAULT_BEHAVIOUR, costs: Costs = DEFAULT_COSTS,
         assumptions: Assumptions = DEFAULT_ASSUMPTIONS, indices: range | None = None) -> Iterator[AccountRun]:
    clock = _Clock(setup.sim_start)
    scales = {c: s for c, _, s in assumptions.currencies}
    window = setup.burn_in_days
    for index in indices if indices is not None else range(setup.accounts):
        acc = draw_account(index, seed=setup.seed, start=setup.sim_start, a=assumptions)
        yield run_account(acc, seed=setup.seed, sim_start=setup.sim_start, window_day=window,
                          entry_until_day=window + setup.days, end_day=window + setup.days + setup.follow_up_days,
                          exp=exp, params=params, costs=costs, clock=clock, scale=scales[acc.currency])


def compare(setup: Setup, exp: Experiment, *, params: Behaviour = DEFAULT_BEHAVIOUR, costs: Costs = DEFAULT_COSTS,
            assumptions: Assumptions = DEFAULT_ASSUMPTIONS) -> Result:
    """Run the portfolio under the experiment and report it as the scheduler's experiment report would."""
    facts: list[AccountFacts] = []
    channels: dict[str, Counter[str]] = {a: Counter() for a in exp.arms}
    outcomes: dict[str, Counter[str]] = {a: Counter() for a in exp.arms}
    for r in runs(setup, exp, params=params, costs=costs, assumptions=assumptions):
        if r.facts is not None:
            facts.append(r.facts)
            channels[r.facts.arm].update(r.channels)
            outcomes[r.facts.arm].update(r.outcomes)
    # as of the next core-banking snapshot after the last simulated day: every fact of that day is known
    now = _Clock(setup.sim_start).day(setup.burn_in_days + setup.days + setup.follow_up_days) + timedelta(minutes=30)
    return Result(setup, exp, now, report(facts, arms=exp.arms, now=now), channels, outcomes)


# --- output -----------------------------------------------------------------------------------------------------


def _pct(rate: Rate) -> str:
    if rate.value is None or rate.low is None or rate.high is None:
        return f"n/a (0 of {rate.denominator})"
    return f"{rate.value * 100:5.1f}% [{rate.low * 100:.1f}, {rate.high * 100:.1f}]"


def _money(minor: int | None) -> str:
    return "n/a" if minor is None else f"{minor / 100:,.2f}"


def render_text(result: Result) -> str:
    s, exp = result.setup, result.experiment
    lines = [f"experiment {exp.name}: {s.accounts} accounts, seed {s.seed}, lead-in {s.burn_in_days} days, "
             f"entry {s.start} + {s.days} days, follow-up {s.follow_up_days} days, "
             f"report as of {result.now:%Y-%m-%d %H:%M} UTC",
             f"assignment: {json.dumps(exp.document(), separators=(',', ':'))}",
             "amounts in CNY (USD, GBP converted at the portfolio's scale); intervals are 95%"]
    for a in result.arms:
        strategy = exp.champion.ref if a.arm == CHAMPION else next(
            str(c.strategy) for c in exp.assignment.challengers if c.arm == a.arm)
        mix = ", ".join(f"{k} {v}" for k, v in sorted(result.channels.get(a.arm, Counter()).items()))
        lines += ["", f"== {a.arm} ({strategy}): {a.accounts} accounts",
                  f"  contacts per account {a.contacts_per_account or 0:.2f} ({mix}); cost {_money(a.cost_minor)} "
                  f"({_money(a.cost_per_account_minor)} per account); complaint rate {_pct(a.complaint_rate)}"]
        for h in sorted(a.cure_rate):
            lines.append(f"  {h:>2} days: cure {_pct(a.cure_rate[h])} of {a.cure_rate[h].denominator} matured; "
                         f"recovery {_pct(a.recovery_rate[h])} ({_money(a.recovered_minor[h])} of "
                         f"{_money(a.recovery_rate[h].denominator)})")
        lines += [f"  - {c.statement}" for c in a.compared]
    return "\n".join(lines) + "\n"


def _comparison(c: Comparison) -> dict[str, Any]:
    return asdict(c)


def to_json(result: Result) -> dict[str, Any]:
    s = result.setup
    return {
        "setup": {"accounts": s.accounts, "seed": s.seed, "start": s.start.isoformat(), "days": s.days,
                  "burn_in_days": s.burn_in_days, "follow_up_days": s.follow_up_days,
                  "report_as_of": result.now.isoformat()},
        "assignment": result.experiment.document(),
        "currency": "CNY",
        "arms": [{
            "arm": a.arm, "accounts": a.accounts, "contacts_per_account": a.contacts_per_account,
            "contacts_by_channel": dict(sorted(result.channels.get(a.arm, Counter()).items())),
            "outcomes": dict(sorted(result.outcomes.get(a.arm, Counter()).items())),
            "cost_minor": a.cost_minor, "cost_per_account_minor": a.cost_per_account_minor, "plans": a.plans,
            "complaint_rate": asdict(a.complaint_rate),
            "cure_rate": {str(h): asdict(r) for h, r in a.cure_rate.items()},
            "recovery_rate": {str(h): asdict(r) for h, r in a.recovery_rate.items()},
            "recovered_minor": {str(h): v for h, v in a.recovered_minor.items()},
            "compared": [_comparison(c) for c in a.compared]} for a in result.arms],
    }
