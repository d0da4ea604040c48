"""Tenant holiday calendars (services/compliance/domain/calendar.py) against the official 2025/2026 notices."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.compliance.domain.calendar import country_calendar, make_up_working_days


def span(first: date, last: date) -> set[date]:
    return {first + timedelta(days=i) for i in range((last - first).days + 1)}


@pytest.mark.parametrize(("first", "last"), [
    (date(2025, 1, 28), date(2025, 2, 4)),    # Spring Festival 2025
    (date(2025, 10, 1), date(2025, 10, 8)),   # National Day and Mid-Autumn 2025
    (date(2026, 2, 15), date(2026, 2, 23)),   # Spring Festival 2026
    (date(2026, 5, 1), date(2026, 5, 5)),     # Labour Day 2026
    (date(2026, 10, 1), date(2026, 10, 7)),   # National Day 2026
])
def test_china_breaks_are_whole_including_their_weekends(first: date, last: date) -> None:
    calendar = country_calendar("CN", [first.year])
    assert span(first, last) <= set(calendar.days)
    assert calendar.holiday(first - timedelta(days=1)) is None
    assert calendar.holiday(last + timedelta(days=1)) is None


def test_china_make_up_working_days_are_working_days() -> None:
    makeups = make_up_working_days("CN", [2025, 2026])
    assert {date(2025, 1, 26), date(2025, 2, 8), date(2026, 2, 14), date(2026, 2, 28), date(2026, 10, 10)} <= makeups
    calendar = country_calendar("CN", [2025, 2026])
    assert not makeups & set(calendar.days)


def test_weekends_are_not_holidays_outside_china() -> None:
    us = country_calendar("US", [2026])
    assert us.holiday(date(2026, 7, 3)) and us.holiday(date(2026, 7, 4))   # observed, and the day
    assert us.holiday(date(2026, 7, 5)) is None                              # a Sunday
    assert us.holiday(date(2026, 11, 26)) == "Thanksgiving Day"
    gb = country_calendar("GB", [2026], subdiv="ENG")
    assert gb.holiday(date(2026, 12, 28)) and gb.holiday(date(2026, 12, 27)) is None


def test_tenant_overrides_win() -> None:
    calendar = country_calendar("CN", [2026], days_off={date(2026, 3, 2): "company day"},
                                working_days=[date(2026, 2, 23)])
    assert calendar.holiday(date(2026, 3, 2)) == "company day"
    assert calendar.holiday(date(2026, 2, 23)) is None
    assert calendar.holiday(date(2026, 2, 22)) is not None


def test_unknown_country() -> None:
    with pytest.raises(NotImplementedError):
        country_calendar("XX", [2026])
