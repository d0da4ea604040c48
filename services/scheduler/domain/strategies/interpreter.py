"""The strategy interpreter (docs/strategies.md, "How a strategy runs"): pure functions from what the scheduler
knows about an account to the step it should take now, and to the reaction a contact's outcome calls for.

- ``step_for``: the last step of the account's segment and DPD bucket whose day has come and whose conditions
  hold (a step is made once per delinquency cycle: its id names the contact). A step whose channel has no
  contact point is made on the first of its fallbacks that has one, under the step's own id. Before the due
  date (negative DPD: an instalment-due notice) with no step's day come yet, the first step ahead is planned
  for its day: the early warning, a durable timer until then.
- ``after_outcome``: a contact that did not reach the customer is retried (``retries`` times, ``retry_after``
  apart, same channel), then made on the step's next fallback (``fallback_on_failure``); a contact that reached
  the customer waits for the money. Retries and fallbacks are steps of their own, with ids derived from the
  step's (``<id>/retry-<n>``, ``<id>/fallback-<n>``), so a repeated outcome never makes a second one.

Nothing is planned for an account that is not active (paid, or paused by a plan or promise) or held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.scheduler.domain.states import REACHED
from services.scheduler.domain.strategies.document import Alternative, Step, Strategy, bucket_of
from shared.contracts.events import Channel


@dataclass(frozen=True, slots=True)
class Account:
    """What the interpreter reads about an account (the scheduler's treatment)."""

    segment: str
    days_past_due: int
    due_date: date
    overdue_minor: int
    time_zone: str
    has_phone: bool
    has_email: bool
    has_address: bool
    broken_promises: int = 0
    active: bool = True
    held: bool = False

    def reachable(self, channel: Channel) -> bool:
        return {Channel.SMS: self.has_phone, Channel.CALL: self.has_phone, Channel.EMAIL: self.has_email,
                Channel.FIELD: self.has_address}[channel]


@dataclass(frozen=True, slots=True)
class Planned:
    """A step to create: its id (names the contact), channel, template, when it falls due, and why."""

    step: str
    channel: Channel
    template: str
    due_at: datetime
    reason: str


def local_due(*, due_date: date, day: int, at: time | None, time_zone: str, now: datetime) -> datetime:
    """When a step of DPD ``day`` falls due: at its local time on that day (the start of that day when it names
    no time), or now when that has passed."""
    wall = datetime.combine(due_date + timedelta(days=day), at or time(0), tzinfo=ZoneInfo(time_zone))
    return max(now, wall.astimezone(UTC))


def _channel_for(step: Step, account: Account) -> tuple[Channel, str, str] | None:
    if account.reachable(step.channel):
        return step.channel, step.template, ""
    for alt in step.fallback:
        if account.reachable(alt.channel):
            return alt.channel, alt.template, f" on {alt.channel.value}: no {step.channel.value} contact point"
    return None


def step_for(strategy: Strategy, account: Account, *, now: datetime) -> Planned | None:
    """The step the account's DPD calls for now, or None (not active, held, nothing due, no contact point)."""
    if not account.active or account.held:
        return None
    bucket = bucket_of(account.days_past_due)
    chosen: Step | None = None
    ahead: Step | None = None
    for step in strategy.steps(account.segment, bucket):
        if not step.when.holds(overdue_minor=account.overdue_minor, broken_promises=account.broken_promises):
            continue
        if step.day <= account.days_past_due:
            chosen = step  # steps are in (day, listed) order: the last one that holds wins
        elif ahead is None:
            ahead = step
    planned_ahead = chosen is None and account.days_past_due < 0
    if planned_ahead:
        chosen = ahead  # before the due date: the next step, due on its day
    if chosen is None:
        return None
    made = _channel_for(chosen, account)
    if made is None:
        return None
    channel, template, why = made
    # a step whose day the snapshot's DPD says has come, with no time, is due now (the DPD is core banking's,
    # whatever the customer's zone); one with a time, or planned ahead, at its local time on its day
    due_at = now if chosen.at is None and not planned_ahead else local_due(
        due_date=account.due_date, day=chosen.day, at=chosen.at, time_zone=account.time_zone, now=now)
    return Planned(step=chosen.id, channel=channel, template=template, due_at=due_at,
                   reason=f"{strategy.ref} {account.segment} x {bucket}: step {chosen.id!r} (DPD {chosen.day}){why}")


@dataclass(frozen=True, slots=True)
class StepName:
    """A step id as recorded: the strategy step's id, and whether this contact is a retry or a fallback of it."""

    base: str
    retry: int = 0
    fallback: int = 0

    @classmethod
    def parse(cls, name: str) -> StepName:
        base, _, suffix = name.partition("/")
        kind, _, number = suffix.partition("-")
        if kind in ("retry", "fallback") and number.isascii() and number.isdigit():
            return cls(base, retry=int(number)) if kind == "retry" else cls(base, fallback=int(number))
        return cls(name)

    def __str__(self) -> str:
        if self.retry:
            return f"{self.base}/retry-{self.retry}"
        return f"{self.base}/fallback-{self.fallback}" if self.fallback else self.base


def after_outcome(strategy: Strategy, account: Account, *, step: str, channel: Channel, outcome: str,
                  outcome_at: datetime) -> Planned | None:
    """The contact a step's outcome calls for: none when it reached the customer (wait for the money) or the
    account is no longer active or held; else a retry on the same channel, then the next fallback with a
    contact point."""
    if outcome in REACHED or outcome == "revoked" or not account.active or account.held:
        return None
    name = StepName.parse(step)
    base = strategy.find(account.segment, name.base)
    if base is None:
        return None  # the step is not in this strategy (a segment change, or another strategy's step)
    where = f"{strategy.ref}: {outcome} on {channel.value}"
    if name.fallback == 0 and name.retry < base.retries and channel is _first_channel(base, account):
        return Planned(step=str(StepName(name.base, retry=name.retry + 1)), channel=channel,
                       template=_template_of(base, channel),
                       due_at=outcome_at + timedelta(minutes=base.retry_after_minutes),
                       reason=f"{where}: retry {name.retry + 1} of {base.retries} of step {base.id!r}")
    if not base.fallback_on_failure:
        return None
    tried = {channel}
    if name.fallback:
        tried |= {a.channel for a in base.fallback[:name.fallback]}
    tried.add(base.channel)
    for number, alt in enumerate(base.fallback, start=1):
        if number > name.fallback and alt.channel not in tried and account.reachable(alt.channel):
            return Planned(step=str(StepName(name.base, fallback=number)), channel=alt.channel, template=alt.template,
                           due_at=outcome_at + timedelta(minutes=base.fallback_after_minutes),
                           reason=f"{where}: fallback {number} of step {base.id!r} ({alt.channel.value})")
    return None


def _first_channel(step: Step, account: Account) -> Channel | None:
    made = _channel_for(step, account)
    return made[0] if made else None


def _template_of(step: Step, channel: Channel) -> str:
    if channel is step.channel:
        return step.template
    alt: Alternative = next(a for a in step.fallback if a.channel is channel)
    return alt.template
