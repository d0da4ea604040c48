"""Strategy documents (docs/strategies.md): for each segment and DPD bucket, the steps a treatment takes, as a
document a tenant publishes, versioned and immutable once published.

A document is JSON::

    {"description": "e-mail first for prime customers",
     "segments": {
       "prime": {
         "0": [],                                   # DPD 0 (the due date): an empty list means no contact
         "1-15": [{"id": "reminder", "day": 1, "at": "10:00", "channel": "email",
                   "template": "reminder.email", "retries": 1, "retry_after_minutes": 240,
                   "fallback": [{"channel": "sms", "template": "reminder.sms"}]},
                  {"id": "second-reminder", "day": 8, "channel": "sms", "template": "reminder.sms",
                   "when": {"overdue_min_minor": 50000}}],
         "16-30": [...], "31-60": [...], "61-90": [...], "90+": [...]},
       "standard": {...}, "high_risk": {...}}}

Pure: parsing returns the strategy and every reason it cannot be used, so a refusal names them all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any

from shared.contracts.events import Channel, Segment

SEGMENTS: tuple[str, ...] = tuple(s.value for s in Segment)
# segmentation's DPD buckets (services/segmentation/domain/segments.py dpd_bucket) and the days each holds
# "0" holds the due date and the days before it (negative DPD: an instalment-due notice, the early warning)
PRE_DUE_DAYS = 30
BUCKET_DAYS: dict[str, tuple[int, int]] = {"0": (-PRE_DUE_DAYS, 0), "1-15": (1, 15), "16-30": (16, 30),
                                           "31-60": (31, 60), "61-90": (61, 90), "90+": (91, 36500)}
BUCKETS: tuple[str, ...] = tuple(BUCKET_DAYS)
CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
# What a document may never do, whatever the tenant's compliance policy (docs/strategies.md, "Limits by
# construction"): the strictest of the built-in rule packs' defaults.
LAWFUL_FROM, LAWFUL_UNTIL = time(8, 0), time(21, 0)  # CN-HOURS 08-22, US-HOURS and UK-HOURS 08-21
MAX_CALLS_A_DAY = 3      # CN-CONNECTS: three conversations a day
MAX_CALLS_IN_7_DAYS = 7  # US-7IN7: seven calls within seven days
FIELD_FROM_DPD = 31      # HOUSE-FIELD: field visits from DPD 31 (a tenant's policy may only raise it)
MAX_STEPS_PER_CELL = 20
MAX_RETRIES = 3
STEP_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
TEMPLATE_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
STEP_KEYS = frozenset({"id", "day", "at", "channel", "template", "retries", "retry_after_minutes", "fallback",
                       "fallback_on_failure", "fallback_after_minutes", "when"})
WHEN_KEYS = frozenset({"overdue_min_minor", "overdue_max_minor", "broken_promises_min", "broken_promises_max"})


def bucket_of(days_past_due: int) -> str:
    """The DPD bucket a day falls in (0 is the due date itself and the days before it)."""
    for bucket, (low, high) in BUCKET_DAYS.items():
        if low <= days_past_due <= high:
            return bucket
    return "0" if days_past_due < 0 else "90+"


@dataclass(frozen=True, slots=True)
class When:
    """Conditions a step needs (every one given must hold): the amount overdue now, in the account's minor units,
    and how many promises or plans the customer broke in this delinquency cycle."""

    overdue_min_minor: int | None = None
    overdue_max_minor: int | None = None
    broken_promises_min: int | None = None
    broken_promises_max: int | None = None

    def holds(self, *, overdue_minor: int, broken_promises: int) -> bool:
        return ((self.overdue_min_minor is None or overdue_minor >= self.overdue_min_minor)
                and (self.overdue_max_minor is None or overdue_minor <= self.overdue_max_minor)
                and (self.broken_promises_min is None or broken_promises >= self.broken_promises_min)
                and (self.broken_promises_max is None or broken_promises <= self.broken_promises_max))

    @property
    def unconditional(self) -> bool:
        """Whether it always holds (no condition, or only minimums of 0)."""
        return (self.overdue_min_minor in (None, 0) and self.overdue_max_minor is None
                and self.broken_promises_min in (None, 0) and self.broken_promises_max is None)


@dataclass(frozen=True, slots=True)
class Alternative:
    """Another channel for a step: used when the step's own has no contact point, or its contact failed."""

    channel: Channel
    template: str


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a cell: made once per delinquency cycle (its id names the contact), on DPD ``day`` at the
    customer's local ``at`` (as soon as the day comes when None)."""

    id: str
    day: int
    channel: Channel
    template: str
    at: time | None = None
    retries: int = 0
    retry_after_minutes: int = 240
    fallback: tuple[Alternative, ...] = ()
    fallback_on_failure: bool = True
    fallback_after_minutes: int = 30
    when: When = field(default_factory=When)


@dataclass(frozen=True, slots=True)
class Strategy:
    """A validated strategy: its steps per (segment, bucket), each cell's steps in (day, listed) order."""

    name: str
    version: int
    cells: Mapping[tuple[str, str], tuple[Step, ...]]
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def steps(self, segment: str, bucket: str) -> tuple[Step, ...]:
        return self.cells.get((segment, bucket), ())

    def find(self, segment: str, step_id: str) -> Step | None:
        """The step of this id in the segment's cells (the base of a retry or fallback names it; a validated
        strategy makes every step of one id the same way)."""
        for bucket in BUCKETS:
            for step in self.cells.get((segment, bucket), ()):
                if step.id == step_id:
                    return step
        return None


def _int(value: Any, where: str, errors: list[str], *, low: int, high: int, default: int | None = None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{where} must be a whole number from {low} to {high}, not {value!r}")
        return default
    return value


def _time(value: Any, where: str, errors: list[str]) -> time | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        errors.append(f"{where} must be a local time HH:MM, not {value!r}")
        return None
    at = time.fromisoformat(value)
    if not LAWFUL_FROM <= at < LAWFUL_UNTIL:
        errors.append(f"{where} {value} would breach the contact hours by construction: steps are timed between "
                      f"{LAWFUL_FROM:%H:%M} and {LAWFUL_UNTIL:%H:%M} local time (the strictest built-in pack)")
    return at


def _channel(value: Any, where: str, errors: list[str]) -> Channel | None:
    if value not in CHANNELS:
        errors.append(f"{where} must be one of {', '.join(CHANNELS)}, not {value!r}")
        return None
    return Channel(value)


def _template(value: Any, where: str, errors: list[str]) -> str:
    if not isinstance(value, str) or not TEMPLATE_ID.fullmatch(value):
        errors.append(f"{where} must be a template id (lower case letters, digits, '.', '_', '-'), not {value!r}")
        return ""
    return value


def _when(value: Any, where: str, errors: list[str]) -> When:
    if value is None:
        return When()
    if not isinstance(value, dict):
        errors.append(f"{where} must be an object")
        return When()
    known = ", ".join(sorted(WHEN_KEYS))
    errors += [f"{where}: unknown condition {k!r} ({known})" for k in sorted(set(value) - WHEN_KEYS)]
    got = {k: _int(value.get(k), f"{where}.{k}", errors, low=0, high=10**17) for k in sorted(WHEN_KEYS)}
    for low, high in (("overdue_min_minor", "overdue_max_minor"), ("broken_promises_min", "broken_promises_max")):
        if got[low] is not None and got[high] is not None and got[low] > got[high]:  # type: ignore[operator]
            errors.append(f"{where}: {low} {got[low]} is above {high} {got[high]}: the step is unreachable")
    return When(**got)


def _alternatives(value: Any, where: str, errors: list[str], channel: Channel | None) -> tuple[Alternative, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > len(CHANNELS) - 1:
        errors.append(f"{where} must be a list of at most {len(CHANNELS) - 1} {{channel, template}}")
        return ()
    result: list[Alternative] = []
    for i, alt in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(alt, dict) or set(alt) != {"channel", "template"}:
            errors.append(f"{here} must be {{\"channel\": ..., \"template\": ...}}")
            continue
        c = _channel(alt["channel"], f"{here}.channel", errors)
        t = _template(alt["template"], f"{here}.template", errors)
        if c is not None and (c == channel or c in {a.channel for a in result}):
            errors.append(f"{here}.channel {c.value} is already the step's or an earlier fallback's: unreachable")
        elif c is not None:
            result.append(Alternative(c, t))
    return tuple(result)


def _step(value: Any, where: str, bucket: str, errors: list[str]) -> Step | None:
    if not isinstance(value, dict):
        errors.append(f"{where} must be an object")
        return None
    before = len(errors)
    errors += [f"{where}: unknown field {k!r}" for k in sorted(set(value) - STEP_KEYS)]
    errors += [f"{where}: {k} is required" for k in ("id", "day", "channel", "template") if k not in value]
    step_id = value.get("id")
    if "id" in value and (not isinstance(step_id, str) or not STEP_ID.fullmatch(step_id)):
        errors.append(f"{where}.id must be 1-40 lower case letters, digits, '.', '_' or '-', starting with a "
                      f"letter or digit, not {step_id!r}")
    low, high = BUCKET_DAYS[bucket]
    day = value.get("day")
    if "day" in value and (isinstance(day, bool) or not isinstance(day, int) or not low <= day <= high):
        errors.append(f"{where}.day must be a DPD within the bucket {bucket} ({low}-{high}), not {day!r}: "
                      f"outside it the step is unreachable")
    channel = _channel(value.get("channel"), f"{where}.channel", errors) if "channel" in value else None
    template = _template(value.get("template"), f"{where}.template", errors) if "template" in value else ""
    at = _time(value.get("at"), f"{where}.at", errors)
    retries = _int(value.get("retries"), f"{where}.retries", errors, low=0, high=MAX_RETRIES, default=0)
    retry_after = _int(value.get("retry_after_minutes"), f"{where}.retry_after_minutes", errors, low=5, high=1440,
                       default=240)
    fallback_after = _int(value.get("fallback_after_minutes"), f"{where}.fallback_after_minutes", errors, low=0,
                          high=1440, default=30)
    on_failure = value.get("fallback_on_failure", True)
    if not isinstance(on_failure, bool):
        errors.append(f"{where}.fallback_on_failure must be true or false")
    fallback = _alternatives(value.get("fallback"), f"{where}.fallback", errors, channel)
    when = _when(value.get("when"), f"{where}.when", errors)
    if len(errors) > before or channel is None:
        return None
    return Step(id=step_id, day=day, channel=channel, template=template, at=at, retries=retries or 0,  # type: ignore[arg-type]
                retry_after_minutes=retry_after or 240, fallback=fallback, fallback_on_failure=bool(on_failure),
                fallback_after_minutes=fallback_after if fallback_after is not None else 30, when=when)


def _check_cell(steps: list[Step], where: str, errors: list[str]) -> None:
    ids = [s.id for s in steps]
    errors += [f"{where}: step id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    # the interpreter takes the last step (by day, then as listed) whose conditions hold: a step followed on the
    # same day by an unconditional one is never taken
    for i, s in enumerate(steps):
        later = [t for t in steps[i + 1:] if t.day == s.day and t.when.unconditional]
        if later:
            errors.append(f"{where}: step {s.id!r} is unreachable: step {later[0].id!r} on the same day (DPD {s.day}) "
                          f"has no condition and is listed after it")


def _calls(step: Step) -> int:
    """The most calls one step may make: its attempt and retries when it is made on a call, whether a call is its
    own channel or a fallback it is made on for want of its own contact point (retries follow the channel it was
    made on); a call fallback after a failure is one call, never more than that."""
    return 1 + step.retries if Channel.CALL in (step.channel, *(a.channel for a in step.fallback)) else 0


_SAME_CONTACT = ("channel", "template", "retries", "retry_after_minutes", "fallback", "fallback_on_failure",
                 "fallback_after_minutes")


def _check_segment(segment: str, cells: Mapping[tuple[str, str], tuple[Step, ...]], errors: list[str]) -> None:
    """Limits by construction across a segment's buckets: no field visit before FIELD_FROM_DPD; the steps of one day
    (a change of amount or a broken promise within the day may select each of them) at most MAX_CALLS_A_DAY calls;
    the steps that may be made within any seven days at most MAX_CALLS_IN_7_DAYS (a step is made on its day or, if
    the treatment starts or resumes late, on any later day before the segment's next step). A step id used twice is
    one contact: its two definitions must make it the same way."""
    steps = sorted((s for bucket in BUCKETS for s in cells.get((segment, bucket), ())), key=lambda s: s.day)
    for step in steps:
        if step.day < FIELD_FROM_DPD and Channel.FIELD in (step.channel, *(a.channel for a in step.fallback)):
            errors.append(f"{segment} x {bucket_of(step.day)}: step {step.id!r} may visit on DPD {step.day}: would "
                          f"breach HOUSE-FIELD by construction (field visits from DPD {FIELD_FROM_DPD})")
    first: dict[str, Step] = {}
    for step in steps:
        seen = first.setdefault(step.id, step)
        if any(getattr(seen, f) != getattr(step, f) for f in _SAME_CONTACT):
            errors.append(f"{segment}: step id {step.id!r} (DPD {seen.day} and {step.day}) is one contact made two "
                          f"ways: give it one channel, template, retries and fallbacks, or another id")
    # a step may be made on any day from its own until the next step that always applies (a later step with
    # conditions may not hold, and a treatment that starts or resumes late makes the step of its day then)
    spans = []
    for k, step in enumerate(steps):
        after = [t.day for t in steps[k + 1:] if t.day > step.day and t.when.unconditional]
        spans.append((step.day, (after[0] - 1) if after else 10**9, _calls(step)))
    for day in sorted({start for start, _, _ in spans}):
        calls = sum(c for start, end, c in spans if start <= day <= end)
        if calls > MAX_CALLS_A_DAY:
            errors.append(f"{segment}: the steps that may be made on DPD {day} may make {calls} calls: would breach "
                          f"the limit of {MAX_CALLS_A_DAY} a day by construction (CN-CONNECTS)")
            break
    for last in sorted({start for start, _, _ in spans}):  # the busiest weeks end on a step's first day
        since = last - 6
        week = sum(c for start, end, c in spans if start <= last and end >= since)
        if week > MAX_CALLS_IN_7_DAYS:
            errors.append(f"{segment}: the steps that may be made in DPD {since}-{last} may make {week} calls: "
                          f"would breach the limit of {MAX_CALLS_IN_7_DAYS} in seven days by construction (US-7IN7)")
            break


def parse_strategy(document: Any, *, name: str, version: int) -> tuple[Strategy | None, list[str]]:
    """The strategy a document describes, and every reason it cannot be used (empty: it can).

    Refused: an unknown field, segment, bucket or channel; a segment or bucket missing (incomplete: every segment
    has every bucket; only DPD 0 may be an empty list, "no contact on the due date"); an overdue bucket with no
    unconditional step (an account in it could wait forever); an unreachable step (a day outside its bucket,
    conditions that cannot hold, shadowed by a later unconditional step on the same day, a fallback repeating a
    channel); a time outside the lawful hours or more calls than the strictest caps allow (by construction).
    """
    errors: list[str] = []
    if not isinstance(document, dict):
        return None, ["the strategy document must be a JSON object"]
    errors += [f"unknown field {k!r} (description, segments)" for k in sorted(set(document) - {"description",
                                                                                                 "segments"})]
    description = document.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        errors.append("description must be text of at most 500 characters")
        description = ""
    segments = document.get("segments")
    if not isinstance(segments, dict):
        return None, [*errors, f"segments must be an object with every segment ({', '.join(SEGMENTS)})"]
    errors += [f"unknown segment {s!r} ({', '.join(SEGMENTS)})" for s in sorted(set(segments) - set(SEGMENTS))]
    cells: dict[tuple[str, str], tuple[Step, ...]] = {}
    for segment in SEGMENTS:
        buckets = segments.get(segment)
        if not isinstance(buckets, dict):
            errors.append(f"incomplete: segment {segment!r} is missing (every segment needs every bucket: "
                          f"{', '.join(BUCKETS)})")
            continue
        errors += [f"{segment}: unknown bucket {b!r} ({', '.join(BUCKETS)})"
                   for b in sorted(set(buckets) - set(BUCKETS))]
        for bucket in BUCKETS:
            where = f"{segment} x {bucket}"
            raw = buckets.get(bucket)
            if not isinstance(raw, list):
                errors.append(f"incomplete: {where} has no steps (give a list; [] means no contact, allowed only "
                              f"for DPD 0)")
                continue
            if len(raw) > MAX_STEPS_PER_CELL:
                errors.append(f"{where}: at most {MAX_STEPS_PER_CELL} steps")
                continue
            steps = [s for i, item in enumerate(raw) if (s := _step(item, f"{where}[{i}]", bucket, errors))]
            if len(steps) < len(raw):
                continue
            if bucket != "0" and not any(s.when.unconditional for s in steps):
                errors.append(f"incomplete: {where} needs at least one step without conditions, or an account "
                              f"there could wait with no step")
            ordered = sorted(steps, key=lambda s: s.day)  # stable: the listed order within a day
            _check_cell(ordered, where, errors)
            cells[(segment, bucket)] = tuple(ordered)
        _check_segment(segment, cells, errors)
    if errors:
        return None, errors
    return Strategy(name=name, version=version, cells=cells, description=description), []
