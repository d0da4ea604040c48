"""A tenant's days without contact (HOUSE-HOLIDAY) as a :class:`HolidayCalendar`: the public holidays of its
country from the maintained ``holidays`` package, plus the tenant's own overrides.

China announces each break as a run of days off that includes the weekends inside or next to it, and moves
working days onto weekends to pay for it (调休). ``holidays.China`` lists the holidays and substituted days
off and, separately, the make-up working days (``weekend_workdays``). So for China (``bridge_weekends``) a
weekend day joined to a holiday by other days off counts as part of the break, unless it is a make-up
working day: those are always working days. Elsewhere weekends are ordinary contact days.

Pure: no I/O beyond the package's own tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date, timedelta

import holidays

from services.compliance.domain.rules.base import HolidayCalendar

BRIDGED_BY_DEFAULT = frozenset({"CN"})


def public_holidays(country: str, years: Iterable[int], *, subdiv: str | None = None) -> holidays.HolidayBase:
    """The ``holidays`` calendar of ``country`` (ISO 3166-1 alpha-2) for ``years``; raises
    ``NotImplementedError`` for a country the package does not know. Cached: a year's holidays are computed
    once per process, not per contact."""
    return _public_holidays(country.upper(), tuple(sorted(set(years))), subdiv)


@functools.lru_cache(maxsize=256)
def _public_holidays(country: str, years: tuple[int, ...], subdiv: str | None) -> holidays.HolidayBase:
    return holidays.country_holidays(country, subdiv=subdiv, years=list(years))


def make_up_working_days(country: str, years: Iterable[int]) -> frozenset[date]:
    """Weekend days that are working days (China's 调休), in ``years``."""
    wanted = set(years)
    found = getattr(public_holidays(country, wanted), "weekend_workdays", ()) or ()
    return frozenset(d for d in found if d.year in wanted)


def country_calendar(country: str, years: Iterable[int], *, subdiv: str | None = None,
                     days_off: Mapping[date, str] | None = None, working_days: Iterable[date] = (),
                     bridge_weekends: bool | None = None) -> HolidayCalendar:
    """The days without contact of a tenant in ``country`` for ``years``: public holidays (for China with the
    weekends of each break and never a make-up working day), plus ``days_off`` (the tenant's own, by name),
    minus ``working_days`` (the tenant's overrides; they win over everything)."""
    wanted = sorted(set(years))
    found = public_holidays(country, wanted, subdiv=subdiv)
    workdays = frozenset(getattr(found, "weekend_workdays", ()) or ())
    weekend = frozenset(getattr(found, "weekend", {5, 6}))
    days: dict[date, str] = {d: str(name) for d, name in found.items() if d.year in wanted}
    if bridge_weekends if bridge_weekends is not None else country.upper() in BRIDGED_BY_DEFAULT:
        days |= _bridged_weekends(days, weekend, workdays)
    for day in workdays:
        days.pop(day, None)
    days |= dict(days_off or {})
    for day in working_days:
        days.pop(day, None)
    return HolidayCalendar(days=dict(sorted(days.items())))


def _bridged_weekends(days: Mapping[date, str], weekend: frozenset[int],
                      workdays: frozenset[date]) -> dict[date, str]:
    """Weekend days (not make-up working days) reached from a holiday through weekend days only."""
    bridged: dict[date, str] = {}
    for holiday, name in days.items():
        for step in (timedelta(days=1), timedelta(days=-1)):
            day = holiday + step
            while day.weekday() in weekend and day not in workdays and day not in days:
                bridged.setdefault(day, f"{name} (weekend in the break)")
                day += step
    return bridged
