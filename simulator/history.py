"""Run a portfolio over days under a contact policy into an event log in the platform's contract shapes.

Records (one JSON object per line; ``event_time`` is UTC ISO 8601):

- ``{"type": "simulation", ...}``: the first line: seed, start and end of the log, the window, the policy.
- ``core.account-overdue.v1``: ``payload`` is an ``AccountOverdueV1`` as a dict, one snapshot per overdue
  account per day, at 00:30 Asia/Shanghai (the core-banking batch), with the DPD of that day. Contact
  points are placeholders in the sealed form (``pii:v1:sim:...``), not ciphertexts.
- ``core.payment-received.v1``: ``payload`` is a ``PaymentReceivedV1`` as a dict (``paid_at`` = the event time).
- ``account-opened``: ``{"account_id", "customer_id", "opened_on"}``: a fact core banking knows (tenure).
- ``sim.contact``, ``sim.promise``, ``sim.complaint``: what the policy did and how the customer reacted
  (not platform contracts; for evaluating strategies, never scorecard inputs).

Every in-day event falls between that day's snapshot (00:30) and the next day's, at HH:40 bank time,
so a snapshot is always consistent with the payments before it. The log is grouped by account, each
account's events in time order (what a per-account partition of the bus would hold); sort by
``event_time`` for a single time-ordered stream.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulator.behaviour import (
    DEFAULT_BEHAVIOUR,
    AccountState,
    Behaviour,
    Contact,
    DayEvents,
    initial_state,
    segment_of,
    step,
)
from simulator.portfolio import (
    BANK_ZONE,
    DEFAULT_ASSUMPTIONS,
    Account,
    Assumptions,
    account_rng,
    draw_account,
    utc_offset_hours,
)

OVERDUE = "core.account-overdue.v1"
PAYMENT = "core.payment-received.v1"
OPENED = "account-opened"

Policy = Callable[[AccountState, int, random.Random], Sequence[Contact]]


def timeline_step(*, segment: str, days_past_due: int, has_phone: bool, has_email: bool,
                  has_address: bool) -> tuple[str, str] | None:
    """(step, channel) of the contact timeline v1 (docs/domain.md, "Contact timeline"; a copy of the rule,
    so that the simulator does not follow the scheduler's strategies as they change) for DPD >= 1:
    field visits from DPD 31 for standard and high-risk customers with an address, calls from DPD 16 with a
    phone, else reminders: e-mail for prime customers with an address or anyone without a phone, else SMS."""
    if days_past_due > 30 and has_address and segment != "prime":
        return "field-visit", "field"
    if days_past_due > 15 and has_phone:
        return "call", "call"
    if has_email and (segment == "prime" or not has_phone):
        return "reminder", "email"
    if has_phone:
        return "reminder", "sms"
    return None


def timeline_policy(state: AccountState, day: int, rng: random.Random) -> Sequence[Contact]:
    """The platform's contact timeline v1: one contact per step and delinquency cycle, SMS/e-mail
    reminders at DPD 1-15, calls at 16-30, field visits after, made during bank hours (09:00-19:59
    Asia/Shanghai) whatever the customer's own zone. No pre-due reminder: the simulated core banking
    publishes no DPD-0 snapshot."""
    dpd = state.days_past_due(day)
    if dpd <= 0 or state.overdue_minor <= 0:
        return ()
    acc = state.account
    plan = timeline_step(segment=segment_of(acc.rating, acc.credit_score, dpd), days_past_due=dpd,
                         has_phone=acc.has_phone, has_email=acc.has_email, has_address=acc.has_address)
    if plan is None or any(c.step == plan[0] and c.cycle == state.cycles for c in state.contacts):
        return ()
    bank_hour = rng.randint(9, 19)
    local_hour = int(bank_hour + acc.utc_offset_hours - utc_offset_hours(BANK_ZONE, state.start)) % 24
    return (Contact(plan[1], local_hour, plan[0]),)


def no_contact_policy(state: AccountState, day: int, rng: random.Random) -> Sequence[Contact]:
    """Nobody is contacted: the baseline to measure a strategy's lift against."""
    return ()


POLICIES: dict[str, Policy] = {"timeline": timeline_policy, "none": no_contact_policy}


def _contact_dict(acc: Account) -> dict[str, Any]:
    contact: dict[str, Any] = {"name": f"pii:v1:sim:name-{acc.index}"}
    if acc.has_phone:
        contact["phone"] = f"pii:v1:sim:phone-{acc.index}"
    if acc.has_email:
        contact["email"] = f"pii:v1:sim:email-{acc.index}"
    if acc.has_address:
        contact["address"] = f"pii:v1:sim:address-{acc.index}"
    contact["time_zone"] = acc.time_zone
    contact["locale"] = acc.locale
    return contact


class _Clock:
    """Event times: bank day ``day`` at a bank hour, or a customer's local hour on that bank day."""

    def __init__(self, start: date) -> None:
        self.bank_offset = utc_offset_hours(BANK_ZONE, start)
        self.midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) - timedelta(hours=self.bank_offset)
        self._days: dict[int, datetime] = {}

    def day(self, day: int) -> datetime:
        if day not in self._days:
            self._days[day] = self.midnight + timedelta(days=day)
        return self._days[day]

    def snapshot(self, day: int) -> str:
        return (self.day(day) + timedelta(minutes=30)).isoformat()

    def local(self, day: int, local_hour: int, offset_hours: float, minute: int = 40) -> str:
        bank_hour = int(local_hour - offset_hours + self.bank_offset) % 24
        return (self.day(day) + timedelta(hours=bank_hour, minutes=minute)).isoformat()


def account_history(acc: Account, *, seed: int, start: date, days: int, policy: Policy = timeline_policy,
                    params: Behaviour = DEFAULT_BEHAVIOUR, tenant: str = "sim-bank",
                    clock: _Clock | None = None) -> list[dict[str, Any]]:
    """The events of one account over ``days`` days from ``start``, in time order."""
    clock = clock or _Clock(start)
    rng = account_rng(seed, acc.index, stream=1)
    state = initial_state(acc, start)
    contact = _contact_dict(acc)
    opened = datetime(acc.opened_on.year, acc.opened_on.month, acc.opened_on.day, 9, tzinfo=UTC)
    out: list[dict[str, Any]] = [{"type": OPENED, "event_time": opened.isoformat(), "payload": {
        "account_id": acc.account_id, "customer_id": acc.customer_id, "opened_on": acc.opened_on.isoformat()}}]
    n_payments = 0
    day = max(state.next_due_day, 0)
    while day < days and state.closed is None:
        if state.cycle_due_day is not None:
            due = state.start + timedelta(days=state.cycle_due_day)
            out.append({"type": OVERDUE, "event_time": clock.snapshot(day), "payload": {
                "tenant": tenant, "account_id": acc.account_id, "customer_id": acc.customer_id,
                "product": acc.product, "currency": acc.currency, "outstanding_minor": state.outstanding_minor,
                "overdue_minor": state.overdue_minor, "days_past_due": day - state.cycle_due_day,
                "due_date": due.isoformat(), "credit_rating": acc.rating, "credit_score": acc.credit_score,
                "contact": contact, "account_ref": acc.account_ref}})
        contacts = policy(state, day, rng)
        state, events = step(state, day, contacts, rng, params)
        n_payments = _record(out, events, acc, day, clock, tenant, n_payments)
        # the next day anything can happen: every day while overdue, else the next due date or promise
        if state.cycle_due_day is not None:
            day += 1
        else:
            nxt = state.next_due_day
            if state.promise is not None:
                nxt = min(nxt, state.promise.due_day)
            day = max(nxt, day + 1)
    out.sort(key=lambda e: e["event_time"])  # the opening, then by time (a stable sort keeps a day's order)
    return out


def _record(out: list[dict[str, Any]], events: DayEvents, acc: Account, day: int, clock: _Clock, tenant: str,
            n_payments: int) -> int:
    offset = acc.utc_offset_hours
    for c in events.contacts:
        out.append({"type": "sim.contact", "event_time": clock.local(day, c.local_hour, offset, minute=35),
                    "payload": {"account_id": acc.account_id, "channel": c.channel, "step": c.step,
                                "local_hour": c.local_hour, "reached": c.reached}})
    for c in events.complaints:
        out.append({"type": "sim.complaint", "event_time": clock.local(day, c.local_hour, offset, minute=38),
                    "payload": {"account_id": acc.account_id, "channel": c.channel, "local_hour": c.local_hour}})
    for p in events.promises:
        out.append({"type": "sim.promise", "event_time": clock.local(day, 23, clock.bank_offset, minute=0),
                    "payload": {"account_id": acc.account_id, "amount_minor": p.amount_minor,
                                "promised_for": (clock.day(p.due_day)).date().isoformat(), "kept": p.keeps}})
    for pay in events.payments:
        n_payments += 1
        paid_at = clock.local(day, pay.local_hour, offset, minute=40 + min(n_payments % 10, 9))
        out.append({"type": PAYMENT, "event_time": paid_at, "kind": pay.kind, "payload": {
            "tenant": tenant, "account_id": acc.account_id, "customer_id": acc.customer_id,
            "payment_id": f"P{acc.index:08d}-{n_payments:04d}", "amount_minor": pay.amount_minor,
            "currency": acc.currency, "paid_at": paid_at}})
    return n_payments


def simulation_start(start: date, burn_in_days: int) -> date:
    """Day 0 of a simulation whose window starts at ``start``: the portfolio is drawn as of this day."""
    return start - timedelta(days=burn_in_days)


def run(accounts: int, *, seed: int, start: date, days: int, burn_in_days: int = 0, policy: str = "timeline",
        params: Behaviour = DEFAULT_BEHAVIOUR,
        assumptions: Assumptions = DEFAULT_ASSUMPTIONS) -> Iterator[dict[str, Any]]:
    """The event log of a portfolio of ``accounts`` accounts: a ``simulation`` record, then each account's
    events. The simulation starts ``burn_in_days`` before ``start`` (so that payment counts and previous
    cures have a history) and ends ``days`` after it; the window [start, start + days) is where a dataset
    takes its observations."""
    sim_start = simulation_start(start, burn_in_days)
    clock = _Clock(sim_start)
    end = clock.day(burn_in_days + days)
    yield {"type": "simulation", "event_time": clock.day(0).isoformat(), "seed": seed, "accounts": accounts,
           "window_start": clock.day(burn_in_days).isoformat(), "end": end.isoformat(), "days": days,
           "burn_in_days": burn_in_days, "policy": policy}
    chosen = POLICIES[policy]
    for index in range(accounts):
        acc = draw_account(index, seed=seed, start=sim_start, a=assumptions)
        yield from account_history(acc, seed=seed, start=sim_start, days=burn_in_days + days, policy=chosen,
                                   params=params, clock=clock)
