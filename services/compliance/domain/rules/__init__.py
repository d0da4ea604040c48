"""Contact rules (docs/domain.md, "Compliance") as pure functions. Every decision keeps every rule's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.contracts.events import Channel

Verdict = Literal["pass", "defer", "block"]

# CN-HOURS binds calls, AI voice, SMS/IM and field visits; e-mail is not listed in the rule.
HOURS_CHANNELS = frozenset({Channel.CALL, Channel.SMS, Channel.FIELD})


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict on one contact."""

    rule_id: str
    verdict: Verdict
    reason: str
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome, the rule that decided it, and every rule's verdict."""

    outcome: Literal["approved", "deferred", "blocked"]
    rule_id: str
    reason: str
    retry_at: datetime | None
    evaluated: list[RuleResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """Allowed local hours [start, end). CN default 08:00-22:00; a tenant may only narrow it."""

    start: time = time(8, 0)
    end: time = time(22, 0)


def next_window_start(now_utc: datetime, zone: ZoneInfo, window: ContactWindow) -> datetime:
    """The first instant at or after ``now_utc`` that falls inside the window, in UTC."""
    local = now_utc.astimezone(zone)
    day = local.date() if local.time() < window.start else local.date() + timedelta(days=1)
    candidate = datetime.combine(day, window.start, tzinfo=zone)
    # Wall-clock arithmetic can land in a DST gap; round-tripping through UTC normalises it.
    return candidate.astimezone(UTC)


def check_contact_hours(channel: Channel, now_utc: datetime, time_zone: str,
                        window: ContactWindow | None = None) -> RuleResult:
    """CN-HOURS: no contact in the debtor's local [22:00, 08:00)."""
    window = window or ContactWindow()
    if channel not in HOURS_CHANNELS:
        return RuleResult("CN-HOURS", "pass", f"{channel.value} is not bound by CN-HOURS")
    zone = ZoneInfo(time_zone)
    local = now_utc.astimezone(zone)
    if window.start <= local.time() < window.end:
        return RuleResult("CN-HOURS", "pass", f"local time {local:%H:%M} {time_zone} is inside "
                                              f"{window.start:%H:%M}-{window.end:%H:%M}")
    retry_at = next_window_start(now_utc, zone, window)
    return RuleResult("CN-HOURS", "defer", f"local time {local:%H:%M} {time_zone} is outside "
                                           f"{window.start:%H:%M}-{window.end:%H:%M}", retry_at)


def check_duplicate(already_approved: bool) -> RuleResult:
    """HOUSE-DUP: never the same contact twice."""
    if already_approved:
        return RuleResult("HOUSE-DUP", "block", "this contact was already approved once")
    return RuleResult("HOUSE-DUP", "pass", "first approval for this contact")


def decide(*, channel: Channel, time_zone: str, now_utc: datetime, already_approved: bool,
           window: ContactWindow | None = None) -> Decision:
    """Evaluate every rule; the first blocking rule decides, else the first deferring one."""
    evaluated = [check_duplicate(already_approved), check_contact_hours(channel, now_utc, time_zone, window)]
    for verdict, outcome in (("block", "blocked"), ("defer", "deferred")):
        for result in evaluated:
            if result.verdict == verdict:
                return Decision(outcome, result.rule_id, result.reason, result.retry_at, evaluated)  # type: ignore[arg-type]
    return Decision("approved", "-", "all rules passed", None, evaluated)
