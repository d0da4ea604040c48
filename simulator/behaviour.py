"""How a customer behaves, one day at a time: pure functions of the account's state and a seeded RNG.

The plug-in point for contact strategies is ``step(state, day, contacts, rng)``: it takes the account's
state, the day (an index from the simulation start) and the contacts made that day (channel and the
customer's local hour), and returns the next state and the day's events (payments, promises,
complaints, whether the account went overdue or cured). It never mutates its inputs, and with the same
RNG state it returns the same result. A strategy is any function ``(state, day) -> Sequence[Contact]``;
``simulator.history.run`` calls it, then ``step``.

The model, per day (figures in ``Behaviour``, each with its source):

- an instalment falls due once a month; a current customer pays it on time with a probability that rises
  with the latent willingness and ability, otherwise the account goes overdue (a delinquency cycle starts);
  an overdue account's next instalment adds to the overdue amount;
- while overdue, the customer pays (in full, or part) with a daily probability (a logistic hazard) of the
  latent willingness and ability, the rating, the product and the days past due, plus the lift of the
  contacts received in the days before (decaying with a half-life), less a penalty after a complaint;
- a contact reaches the customer or not (a call answered, a message read), depending on the channel and
  the local hour; its lift depends on the channel, the local hour and the customer's segment;
- a reached call or visit may bring a promise to pay within days, kept or not depending on willingness;
- every contact may bring a complaint, more likely after many contacts in a week and at bad hours
  (before 08:00 or from 22:00 local: docs/compliance.md CN-HOURS);
- an account overdue for ``charge_off_dpd`` days is charged off; one whose balance is paid is closed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import date
from functools import lru_cache

from simulator.portfolio import Account, _add_months, _src

CHANNELS = ("sms", "email", "call", "field")


@dataclass(frozen=True)
class Behaviour:
    """Every behavioural figure, with its source."""

    on_time_intercept: float = _src(
        2.9, "assumed: about 8% of instalments are missed on the due date across the portfolio")
    on_time_willingness: float = _src(0.9, "assumed")
    on_time_ability: float = _src(0.9, "assumed")
    pay_intercept: float = _src(
        -1.0, "assumed: about two thirds of new delinquencies cure within 30 days under the timeline policy")
    pay_willingness: float = _src(0.8, "assumed")
    pay_ability: float = _src(0.6, "assumed")
    pay_dpd: float = _src(0.45, "assumed: the daily hazard falls with ln(1 + DPD) (cure rates fall with DPD)")
    rating_effect: tuple[tuple[str, float], ...] = _src(
        (("A", 0.4), ("B", 0.2), ("C", 0.0), ("D", -0.2), ("E", -0.4)),
        "assumed: beyond the latent traits, a better rating adds to the hazard (the bank's knowledge)")
    product_effect: tuple[tuple[str, float], ...] = _src(
        (("consumer_loan", 0.0), ("credit_card", 0.15), ("auto_loan", 0.3)),
        "assumed: secured auto loans cure more; card minimum payments are small")
    full_payment_intercept: float = _src(0.4, "assumed: about 60% of payments while overdue pay it all")
    full_payment_ability: float = _src(0.8, "assumed")
    partial_share: tuple[float, float] = _src((0.2, 0.7), "assumed: a part payment is 20-70% of the overdue")
    reach: tuple[tuple[str, float], ...] = _src(
        (("sms", 0.95), ("email", 0.8), ("call", 0.45), ("field", 0.6)),
        "assumed: delivered and read, answered, met (in good hours)")
    bad_hour_reach: float = _src(0.5, "assumed: reach is halved before 08:00 or from 22:00 local")
    lift: tuple[tuple[str, float], ...] = _src(
        (("sms", 1.3), ("email", 0.8), ("call", 1.4), ("field", 1.7)),
        "assumed: added to the daily hazard's log-odds on the contact day; sized so that the timeline policy "
        "cures roughly a fifth more within 30 days than no contact, the order of 001 5.1's +20% recovery")
    lift_half_life_days: float = _src(5.0, "assumed: a reminder's effect halves every 5 days")
    lift_cap: float = _src(2.0, "assumed: contacts' lift saturates")
    segment_effect: tuple[tuple[str, float], ...] = _src(
        (("prime", 1.3), ("standard", 1.0), ("high_risk", 0.5)),
        "assumed, after 001 3.1/5.2: reminders work on good customers who forgot, gentle contact works "
        "less on high-risk ones")
    edge_hour_effect: float = _src(0.7, "assumed: lift at 08:00 and 20:00-21:59 local")
    bad_hour_effect: float = _src(0.2, "assumed: lift before 08:00 or from 22:00 local (CN-HOURS forbids them)")
    promise_intercept: float = _src(-0.6, "assumed: about a third of reached calls end with a promise")
    promise_willingness: float = _src(0.7, "assumed")
    promise_days: tuple[int, int] = _src((1, 7), "assumed: promised within 1-7 days")
    keep_intercept: float = _src(0.3, "assumed: about 55-60% of promises are kept")
    keep_willingness: float = _src(0.9, "assumed")
    keep_ability: float = _src(0.4, "assumed")
    complaint_base: tuple[tuple[str, float], ...] = _src(
        (("sms", 0.0005), ("email", 0.0002), ("call", 0.004), ("field", 0.01)),
        "assumed; 002 reports complaints about frequent calls and rough tone")
    complaint_per_extra_contact: float = _src(
        0.5, "assumed: each contact beyond 2 in the last 7 days adds 50% to the complaint probability (002)")
    complaint_bad_hour: float = _src(4.0, "assumed: 4x at bad hours (002; CN-HOURS)")
    complaint_penalty: float = _src(0.5, "assumed: a complaint lowers the hazard's log-odds for 30 days")
    charge_off_dpd: int = _src(180, "assumed: charged off at 180 DPD (a common write-off point)")
    delivery_failure: tuple[tuple[str, float], ...] = _src(
        (("sms", 0.04), ("email", 0.06), ("call", 0.0), ("field", 0.0)),
        "assumed: an SMS to a dead or wrong number, a bounced e-mail; the platform hears `failed` (a call's "
        "no-answer is its `reach`; a field visit is an agent's task, `task_created`, whatever happens)")


DEFAULT_BEHAVIOUR = Behaviour()


def source_of(params: Behaviour, name: str) -> str:
    for f in fields(params):
        if f.name == name:
            return str(f.metadata["source"])
    raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact a strategy makes on a day: its channel, the customer's local hour and the step's name."""

    channel: str
    local_hour: int
    step: str = ""
    reached: bool | None = None  # decided by the caller (``contact_outcome``); None: drawn by ``step``


@dataclass(frozen=True, slots=True)
class ContactMade:
    """A contact as it happened: the day, whether it reached the customer, the delinquency cycle."""

    day: int
    channel: str
    local_hour: int
    step: str
    reached: bool
    cycle: int


@dataclass(frozen=True, slots=True)
class Promise:
    made_day: int
    due_day: int
    amount_minor: int
    keeps: bool  # the customer's intention, decided when promising, revealed on the due day


@dataclass(frozen=True, slots=True)
class Payment:
    amount_minor: int
    local_hour: int
    kind: str  # "instalment" (on time), "full", "partial", "promise"


@dataclass(frozen=True, slots=True)
class DayEvents:
    payments: tuple[Payment, ...] = ()
    contacts: tuple[ContactMade, ...] = ()
    promises: tuple[Promise, ...] = ()
    complaints: tuple[ContactMade, ...] = ()
    became_overdue: bool = False
    cured: bool = False
    closed: str | None = None


NOTHING = DayEvents()


@dataclass(frozen=True, slots=True)
class AccountState:
    """An account's state at the start of a day."""

    account: Account
    start: date  # day 0
    outstanding_minor: int
    overdue_minor: int = 0
    dues: int = 0  # instalments fallen due so far
    next_due_day: int = 0
    cycle_due_day: int | None = None  # the first unpaid due day of the current delinquency cycle
    cycles: int = 0
    cures: int = 0
    contacts: tuple[ContactMade, ...] = ()  # this cycle's, and any of the last 14 days
    promise: Promise | None = None
    complaints: int = 0
    last_complaint_day: int | None = None
    closed: str | None = None  # "paid_off" or "charged_off"

    def days_past_due(self, day: int) -> int:
        return 0 if self.cycle_due_day is None else day - self.cycle_due_day


def initial_state(account: Account, start: date) -> AccountState:
    return AccountState(account=account, start=start, outstanding_minor=account.outstanding_minor,
                        next_due_day=(account.first_due - start).days)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


_SCORE_TO_RATING = ((750, "A"), (700, "B"), (650, "C"), (600, "D"))


@lru_cache(maxsize=65536)
def segment_of(rating: str, credit_score: int | None, days_past_due: int) -> str:
    """The customer's segment as the platform classifies it by default: seg-v1 of docs/domain.md (a copy of
    its rule, so that the simulator does not follow segmentation's code as it changes; a test compares
    them): the worse of the rating and the score's rating; high_risk for E, DPD > 90 or D with DPD > 30;
    prime for A/B up to DPD 30; standard otherwise."""
    ratings = [rating]
    if credit_score is not None:
        ratings.append(next((r for floor, r in _SCORE_TO_RATING if credit_score >= floor), "E"))
    worst = max(ratings)
    if worst == "E" or days_past_due > 90 or (worst == "D" and days_past_due > 30):
        return "high_risk"
    if worst in ("A", "B") and days_past_due <= 30:
        return "prime"
    return "standard"


def hour_class(local_hour: int) -> str:
    """"good" 09:00-19:59, "edge" 08:00-08:59 and 20:00-21:59, "bad" before 08:00 or from 22:00 (CN-HOURS)."""
    if local_hour < 8 or local_hour >= 22:
        return "bad"
    return "good" if 9 <= local_hour < 20 else "edge"


def contact_lift(state: AccountState, day: int, params: Behaviour = DEFAULT_BEHAVIOUR) -> float:
    """The contacts' lift on the log-odds of paying today: each reached contact's channel effect, times its
    segment and hour factors, halving every ``lift_half_life_days``; capped."""
    if not state.contacts:
        return 0.0
    acc = state.account
    segment_factor = dict(params.segment_effect)[segment_of(acc.rating, acc.credit_score,
                                                             max(state.days_past_due(day), 0))]
    lifts = dict(params.lift)
    total = 0.0
    for c in state.contacts:
        if not c.reached or c.day > day:
            continue
        hours = hour_class(c.local_hour)
        hour_factor = 1.0 if hours == "good" else params.edge_hour_effect if hours == "edge" else params.bad_hour_effect
        total += lifts[c.channel] * hour_factor * 0.5 ** ((day - c.day) / params.lift_half_life_days)
    return min(total * segment_factor, params.lift_cap)


def pay_probability(state: AccountState, day: int, params: Behaviour = DEFAULT_BEHAVIOUR) -> float:
    """The probability that an overdue customer pays something today."""
    acc = state.account
    x = (params.pay_intercept + params.pay_willingness * acc.willingness + params.pay_ability * acc.ability
         + dict(params.rating_effect)[acc.rating] + dict(params.product_effect)[acc.product]
         - params.pay_dpd * math.log1p(max(state.days_past_due(day), 0)) + contact_lift(state, day, params))
    if state.last_complaint_day is not None and day - state.last_complaint_day < 30:
        x -= params.complaint_penalty
    return _sigmoid(x)


def on_time_probability(state: AccountState, params: Behaviour = DEFAULT_BEHAVIOUR) -> float:
    """The probability that a current customer pays an instalment by its due date."""
    acc = state.account
    return _sigmoid(params.on_time_intercept + params.on_time_willingness * acc.willingness
                    + params.on_time_ability * acc.ability + dict(params.product_effect)[acc.product])


def _payment_hour(rng: random.Random) -> int:
    return rng.randint(8, 22)


def contact_outcome(channel: str, local_hour: int, rng: random.Random,
                    params: Behaviour = DEFAULT_BEHAVIOUR) -> tuple[str, bool]:
    """What the platform hears of a contact (its outcome in ``channels.contact-outcome.v1``) and whether it
    reached the customer (read, answered, met), for a caller that reacts to outcomes before the day's ``step``
    (``simulator.strategies``: retries and fallbacks). The overall reach is ``reach`` (halved at bad hours) as
    when ``step`` draws it: an SMS or e-mail fails to be delivered with ``delivery_failure`` (the platform hears
    ``failed``), else is read with ``reach / (1 - delivery_failure)`` (it hears ``delivered`` or ``sent`` either
    way); a call is answered with ``reach`` (``right_party_contact``, else ``no_answer``, the dialer's results);
    a visit is an agent's task (``task_created``) that meets the customer with ``reach``."""
    if channel in ("sms", "email"):
        if rng.random() < dict(params.delivery_failure)[channel]:
            return "failed", False
        return ("delivered" if channel == "sms" else "sent"), reached_once_made(channel, local_hour, rng, params)
    reached = reached_once_made(channel, local_hour, rng, params)
    if channel == "call":
        return ("right_party_contact" if reached else "no_answer"), reached
    return "task_created", reached


def reached_once_made(channel: str, local_hour: int, rng: random.Random,
                      params: Behaviour = DEFAULT_BEHAVIOUR) -> bool:
    """Whether a contact that was made (an SMS delivered, an e-mail not bounced, a call dialled, a visit made)
    reached the customer: ``reach`` (halved at bad hours), over ``1 - delivery_failure`` for a message, so that
    with the failures the overall reach is ``reach``."""
    reach = dict(params.reach)[channel] * (params.bad_hour_reach if hour_class(local_hour) == "bad" else 1.0)
    return rng.random() < min(1.0, reach / (1.0 - dict(params.delivery_failure)[channel]))


def _contacts(state: AccountState, day: int, contacts: Sequence[Contact], rng: random.Random,
              params: Behaviour) -> tuple[list[ContactMade], list[ContactMade], Promise | None]:
    made: list[ContactMade] = []
    complained: list[ContactMade] = []
    promise = None
    acc = state.account
    recent = sum(1 for c in state.contacts if day - c.day < 7)
    for contact in contacts:
        bad = hour_class(contact.local_hour) == "bad"
        if contact.reached is None:
            reached = rng.random() < dict(params.reach)[contact.channel] * (params.bad_hour_reach if bad else 1.0)
        else:
            reached = contact.reached
        c = ContactMade(day, contact.channel, contact.local_hour, contact.step, reached, state.cycles)
        made.append(c)
        recent += 1
        p_complaint = (dict(params.complaint_base)[contact.channel]
                       * (1 + params.complaint_per_extra_contact * max(0, recent - 3))
                       * (params.complaint_bad_hour if bad else 1.0))
        if reached and rng.random() < p_complaint:
            complained.append(c)
        if (reached and contact.channel in ("call", "field") and promise is None and state.promise is None
                and state.overdue_minor > 0
                and rng.random() < _sigmoid(params.promise_intercept + params.promise_willingness * acc.willingness)):
            lo, hi = params.promise_days
            keeps = rng.random() < _sigmoid(params.keep_intercept + params.keep_willingness * acc.willingness
                                            + params.keep_ability * acc.ability)
            promise = Promise(day, day + rng.randint(lo, hi), state.overdue_minor, keeps)
    return made, complained, promise


def step(state: AccountState, day: int, contacts: Sequence[Contact], rng: random.Random,
         params: Behaviour = DEFAULT_BEHAVIOUR) -> tuple[AccountState, DayEvents]:
    """One day of one account: the contacts made today in, the next state and the day's events out."""
    if state.closed is not None:
        return state, NOTHING
    acc = state.account
    made, complained, new_promise = _contacts(state, day, contacts, rng, params) if contacts else ([], [], None)
    all_contacts = state.contacts + tuple(made)
    promise = state.promise if state.promise is not None else new_promise
    complaints = state.complaints + len(complained)
    last_complaint = day if complained else state.last_complaint_day
    seen = replace(state, contacts=all_contacts, last_complaint_day=last_complaint)
    overdue, outstanding = state.overdue_minor, state.outstanding_minor
    payments: list[Payment] = []

    def pay(amount: int, kind: str) -> None:
        nonlocal overdue, outstanding
        amount = min(amount, outstanding)
        if amount > 0:
            payments.append(Payment(amount, _payment_hour(rng), kind))
            overdue, outstanding = max(overdue - amount, 0), outstanding - amount

    was_overdue = overdue > 0
    if was_overdue:
        if promise is not None and promise.due_day == day and promise.made_day < day:
            if promise.keeps:
                pay(min(promise.amount_minor, overdue), "promise")
            promise = None
        elif rng.random() < pay_probability(seen, day, params):
            if rng.random() < _sigmoid(params.full_payment_intercept + params.full_payment_ability * acc.ability):
                pay(overdue, "full")
            else:
                lo, hi = params.partial_share
                pay(max(round(overdue * rng.uniform(lo, hi)), 1), "partial")
    if promise is not None and promise.due_day < day:
        promise = None
    cured = was_overdue and overdue == 0
    became_overdue = False
    dues, next_due, cycle_due, cycles = state.dues, state.next_due_day, state.cycle_due_day, state.cycles
    if cured:
        cycle_due, promise = None, None
    if day == next_due:
        amount = min(acc.instalment_minor, outstanding - overdue)
        if amount > 0:
            if overdue == 0 and rng.random() < on_time_probability(state, params):
                pay(amount, "instalment")
            else:
                overdue += amount
                if cycle_due is None:
                    cycle_due, cycles, became_overdue = day, cycles + 1, True
        dues += 1
        next_due = (_add_months(acc.first_due, dues) - state.start).days
    closed = None
    if outstanding == 0:
        closed = "paid_off"
    elif cycle_due is not None and day - cycle_due >= params.charge_off_dpd:
        closed = "charged_off"
    kept = tuple(c for c in all_contacts if day - c.day < 14 or (cycle_due is not None and c.cycle == cycles))
    new_state = replace(
        state, outstanding_minor=outstanding, overdue_minor=overdue, dues=dues, next_due_day=next_due,
        cycle_due_day=cycle_due, cycles=cycles, cures=state.cures + cured, contacts=kept, promise=promise,
        complaints=complaints, last_complaint_day=last_complaint, closed=closed)
    events = DayEvents(tuple(payments), tuple(made), (new_promise,) if new_promise else (), tuple(complained),
                       became_overdue, cured, closed)
    return new_state, events
