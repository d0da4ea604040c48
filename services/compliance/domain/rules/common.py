"""What every rule pack shares: local-time arithmetic (in the customer's IANA zone, across DST changes and
half-hour offsets) and :class:`BaseRule`, the helpers behind the :class:`~.base.Rule` protocol.

Every ``next_*`` function answers an exact boundary: the earliest instant at or after ``at`` at which the
condition holds. A rule's deferral names an instant before which it does not allow (its next change); the
engine looks again there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from services.compliance.domain.rules.base import (
    Consent,
    ConsentKind,
    ContactContext,
    Hold,
    HoldKind,
    RuleResult,
    Suppression,
    SuppressionKind,
)
from shared.contracts.events import Channel

ALL_CHANNELS: frozenset[Channel] = frozenset(Channel)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(at: datetime, time_zone: str) -> datetime:
    """``at`` as a wall-clock time in ``time_zone``."""
    return at.astimezone(zone(time_zone))


def local_instant(day: date, wall: time, time_zone: str) -> datetime:
    """The UTC instant of ``wall`` on ``day`` in ``time_zone``. A wall time that does not exist (a DST gap) is
    read with the offset before the change (02:30 in a 02:00-03:00 gap is 03:30; a gap that starts at the wall
    time, as midnight ones do, gives the change itself); one that happens twice, its first occurrence."""
    return datetime.combine(day, wall, tzinfo=zone(time_zone)).astimezone(UTC)


def in_window(wall: time, start: time, end: time) -> bool:
    """Whether ``wall`` is in the local window [start, end); a window with start after end wraps midnight;
    start == end is empty."""
    if start < end:
        return start <= wall < end
    if start > end:
        return wall >= start or wall < end
    return False


def next_wall_time(at: datetime, time_zone: str, wall: time) -> datetime:
    """The earliest instant >= ``at`` whose local time is ``wall``: either occurrence when the wall time
    happens twice (a DST fall-back); when a spring-forward swallowed it, the instant it would have been with
    the offset before the change (02:30 in a 02:00-03:00 gap is 03:30), as ``zoneinfo`` reads it."""
    tz = zone(time_zone)
    day = local(at, time_zone).date()
    candidates = []
    for offset in (-1, 0, 1, 2):
        first = datetime.combine(day + timedelta(days=offset), wall, tzinfo=tz)
        candidates.append(first.astimezone(UTC))
        second = first.replace(fold=1).astimezone(UTC)
        if second.astimezone(tz).time() == wall:  # it really happens twice (not a gap)
            candidates.append(second)
    return min(c for c in candidates if c >= at)


@lru_cache(maxsize=1024)
def _offset_changes(time_zone: str, year: int) -> tuple[datetime, ...]:
    """The instants (UTC) in ``year`` (UTC) at which ``time_zone``'s offset changes: found day by day, then
    bisected to the second (the tz database changes offsets on whole seconds). Computed once per zone and year."""
    tz = zone(time_zone)
    found = []
    day, second = timedelta(days=1), timedelta(seconds=1)
    t, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    before = t.astimezone(tz).utcoffset()
    while t < end:
        after = (t + day).astimezone(tz).utcoffset()
        if after != before:
            lo, hi = t, t + day  # the offset at lo is the old one, at hi the new one
            while hi - lo > second:
                mid = lo + second * ((hi - lo) // second // 2)
                lo, hi = (mid, hi) if mid.astimezone(tz).utcoffset() == before else (lo, mid)
            found.append(hi)
        t, before = t + day, after
    return tuple(found)


def offset_changes(start: datetime, end: datetime, time_zone: str) -> list[datetime]:
    """The instants in [start, end] at which ``time_zone``'s offset changes (DST starts and ends)."""
    return [c for year in range(start.year, end.year + 1) for c in _offset_changes(time_zone, year)
            if start <= c <= end]


def next_in_window(at: datetime, time_zone: str, start: time, end: time) -> datetime:
    """The earliest instant >= ``at`` whose local time is in [start, end). Outside it, the local time enters the
    window only where it reaches ``start`` (either occurrence of a time a fall-back repeats) or where the clocks
    change: a spring-forward that skips ``start`` enters the window at the change (02:00 EST -> 03:00 EDT for a
    window from 02:30), one that skips the whole window does not, and a fall-back may step back into it."""
    if in_window(local(at, time_zone).time(), start, end):
        return at
    reached = next_wall_time(at, time_zone, start)
    if local(reached, time_zone).time() == start and not offset_changes(at, reached, time_zone):
        return reached  # the clocks run on without a change until they reach ``start``
    tz = zone(time_zone)
    day = local(at, time_zone).date()
    candidates: set[datetime] = set()
    for offset in range(-1, 4):
        wall = datetime.combine(day + timedelta(days=offset), start, tzinfo=tz)
        candidates |= {wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)}
    candidates.update(offset_changes(at, max(candidates), time_zone))
    for candidate in sorted(c for c in candidates if c >= at):
        if in_window(local(candidate, time_zone).time(), start, end):
            return candidate
    return next_wall_time(at, time_zone, start)  # an empty window (start == end) is never entered


def next_local_midnight(at: datetime, time_zone: str) -> datetime:
    """The first instant of the local day after ``at``'s local day."""
    return local_instant(local(at, time_zone).date() + timedelta(days=1), time(0), time_zone)


def start_of_local_day(day: date, time_zone: str) -> datetime:
    return local_instant(day, time(0), time_zone)


def on_local_day(instants: Iterable[datetime], at: datetime, time_zone: str) -> list[datetime]:
    """The instants up to ``at`` on ``at``'s local day."""
    today = local(at, time_zone).date()
    return [e for e in instants if e <= at and local(e, time_zone).date() == today]


def fmt(at: datetime, time_zone: str) -> str:
    """An instant for people: local wall time with the zone, e.g. ``2026-05-12 08:00 Asia/Shanghai``."""
    return f"{local(at, time_zone):%Y-%m-%d %H:%M} {time_zone}"


def window(start: time, end: time) -> str:
    return f"{start:%H:%M}-{end:%H:%M}"


def active_holds(ctx: ContactContext, at: datetime, kinds: Iterable[HoldKind]) -> list[Hold]:
    wanted = frozenset(kinds)
    return [h for h in ctx.holds if h.kind in wanted and h.active_at(at)
            and (h.account_id is None or h.account_id == ctx.account_id)]


def until_holds_end(ctx: ContactContext, at: datetime, kinds: Iterable[HoldKind],
                    limit: int = 100) -> tuple[datetime | None, Hold | None]:
    """The earliest instant >= ``at`` at which no hold of ``kinds`` is active: (that instant, None); or
    (None, the open-ended hold that never ends)."""
    wanted = tuple(kinds)
    t = at
    for _ in range(limit):
        holds = active_holds(ctx, t, wanted)
        if not holds:
            return t, None
        endless = [h for h in holds if h.ends_at is None]
        if endless:
            return None, endless[0]
        t = max(h.ends_at for h in holds if h.ends_at is not None)
    return None, None  # pragma: no cover - more than ``limit`` chained holds


def suppressions(ctx: ContactContext, kinds: Iterable[SuppressionKind],
                 channels: Iterable[Channel] | None = None) -> list[Suppression]:
    """The suppressions of ``kinds`` that bind this contact: its channel (or every channel) and its contact
    point (or the whole customer)."""
    wanted = frozenset(kinds)
    bound = frozenset(channels) if channels is not None else frozenset({ctx.channel})
    return [s for s in ctx.suppressions if s.kind in wanted
            and (s.channel is None or s.channel in bound)
            and (s.destination_hash is None or s.destination_hash == ctx.destination_hash)]


def consents(ctx: ContactContext, kind: ConsentKind, at: datetime) -> list[Consent]:
    """Active consents of ``kind`` for this contact's channel and contact point (or any contact point), newest
    first."""
    found = [c for c in ctx.consents if c.kind is kind and c.channel == ctx.channel and c.active_at(at)
             and (c.destination_hash is None or c.destination_hash == ctx.destination_hash)]
    return sorted(found, key=lambda c: c.granted_at, reverse=True)


@dataclass(frozen=True, slots=True)
class NoParams:
    """A rule without parameters."""


class BaseRule:
    """Shared parts of every rule: channel binding, the three verdicts, default parameters. Subclasses set the
    class attributes of :class:`~.base.Rule`, ``params_type`` (a frozen dataclass whose defaults are the
    legal limits) and implement ``check`` (called only for a channel the rule binds)."""

    id: ClassVar[str]
    pack: ClassVar[str]
    channels: ClassVar[frozenset[Channel]] = ALL_CHANNELS
    source: ClassVar[str]
    unverified: ClassVar[bool] = False
    summary: ClassVar[str]
    params_type: ClassVar[type] = NoParams
    verify: ClassVar[str] = ""           # how a compliance officer verifies it (docs/compliance.md)

    def evaluate(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        if ctx.channel not in self.channels:
            return self.allow(f"{ctx.channel.value} is not bound by {self.id}")
        return self.check(ctx, at, params if params is not None else self.params_type())

    def check(self, ctx: ContactContext, at: datetime, params: Any) -> RuleResult:
        raise NotImplementedError

    def loosens(self, params: Any) -> list[str]:
        """Why ``params`` would loosen the default: every numeric field compared with its default by the
        direction subclasses declare in ``tighter`` (``"lower"``: a lower value is tighter)."""
        reasons = []
        default = self.params_type()
        for f in fields(default):
            direction = self.tighter.get(f.name)
            if direction is None:
                continue
            old, new = getattr(default, f.name), getattr(params, f.name)
            if direction == "lower" and new > old:
                reasons.append(f"{self.id}: {f.name} {new} is above the default {old}")
            if direction == "higher" and new < old:
                reasons.append(f"{self.id}: {f.name} {new} is below the default {old}")
        return reasons

    tighter: ClassVar[dict[str, str]] = {}

    def held(self, ctx: ContactContext, at: datetime, kinds: Iterable[HoldKind], what: str) -> RuleResult:
        """Defer to the end of the holds of ``kinds`` (and of any that follow on without a gap); block while
        one has no end. ``what`` says what the hold means for this rule (the first active hold's kind and
        reason are added)."""
        wanted = tuple(kinds)
        holds = active_holds(ctx, at, wanted)
        first = f"{holds[0].kind.value.replace('_', ' ')} ({holds[0].reason})" if holds else "hold"
        until, _ = until_holds_end(ctx, at, wanted)
        if until is None:
            return self.block(f"{first}: {what}, until it is lifted")
        return self.defer(f"{first}: {what}, until {fmt(until, ctx.time_zone)}", until)

    def daily_cap(self, ctx: ContactContext, at: datetime, instants: Iterable[datetime], cap: int, counted: str,
                  none_allowed: str) -> RuleResult:
        """At most ``cap`` of ``instants`` on the local day of ``at``; over it, defer to local midnight (the count
        resets). ``counted`` names what is counted ("conversations with this debtor"); ``none_allowed`` is the
        block reason of a cap of 0."""
        if cap == 0:
            return self.block(none_allowed)
        today = len(on_local_day(instants, at, ctx.time_zone))
        if today < cap:
            return self.allow(f"{today} {counted} today (cap {cap})")
        return self.defer(f"{today} {counted} today reach the cap of {cap}; the count resets at local midnight",
                          next_local_midnight(at, ctx.time_zone))

    def allow(self, reason: str) -> RuleResult:
        return RuleResult(self.id, self.pack, "allow", reason)

    def defer(self, reason: str, retry_at: datetime) -> RuleResult:
        return RuleResult(self.id, self.pack, "defer", reason, retry_at)

    def block(self, reason: str) -> RuleResult:
        return RuleResult(self.id, self.pack, "block", reason)


def window_loosens(rule_id: str, start: time, end: time, legal_start: time, legal_end: time) -> list[str]:
    """Why a contact window [start, end) would loosen the legal window [legal_start, legal_end)."""
    reasons = []
    if not start < end:
        reasons.append(f"{rule_id}: the window {window(start, end)} must start before it ends (no wrapping)")
    if start < legal_start:
        reasons.append(f"{rule_id}: the window starts at {start:%H:%M}, before the legal {legal_start:%H:%M}")
    if end > legal_end:
        reasons.append(f"{rule_id}: the window ends at {end:%H:%M}, after the legal {legal_end:%H:%M}")
    return reasons
