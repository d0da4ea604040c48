"""Unit tests for the contact rules (services/compliance/domain/rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.compliance.domain.rules import (
    ContactWindow,
    Decision,
    check_contact_hours,
    check_duplicate,
    decide,
    next_window_start,
)
from shared.contracts.events import Channel

PROPS = settings(max_examples=200, deadline=None, database=None)
SHANGHAI = "Asia/Shanghai"
NEW_YORK = "America/New_York"
ZONES = [
    "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu", "Europe/London",
    "Europe/Berlin", "America/New_York", "America/Los_Angeles", "America/Sao_Paulo", "America/St_Johns",
    "Australia/Sydney", "Australia/Lord_Howe", "Pacific/Auckland", "Pacific/Chatham", "UTC",
]


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    """A wall-clock time in ``zone`` as a UTC instant."""
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)  # type: ignore[misc]


def sms(now: datetime, zone: str = SHANGHAI, *, already_approved: bool = False) -> Decision:
    return decide(channel=Channel.SMS, time_zone=zone, now_utc=now, already_approved=already_approved)


# --- CN-HOURS in the customer's own time zone --------------------------------------------------------

@pytest.mark.parametrize(
    ("hh", "mm", "outcome"),
    [(8, 0, "approved"), (12, 0, "approved"), (21, 59, "approved"), (22, 0, "deferred"),
     (23, 30, "deferred"), (0, 0, "deferred"), (7, 59, "deferred")],
)
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CALL, Channel.FIELD])
def test_contact_hours_boundaries_in_local_time(hh: int, mm: int, outcome: str, channel: Channel) -> None:
    now = local(SHANGHAI, 2026, 5, 12, hh, mm)
    decision = decide(channel=channel, time_zone=SHANGHAI, now_utc=now, already_approved=False)
    assert decision.outcome == outcome
    if outcome == "deferred":
        assert decision.rule_id == "CN-HOURS"
        assert decision.retry_at is not None
    else:
        assert decision.rule_id == "-"
        assert decision.retry_at is None


def test_hours_use_customer_zone_not_utc() -> None:
    now = datetime(2026, 5, 12, 13, 0, tzinfo=UTC)  # 21:00 Shanghai, 22:00 Tokyo, 09:00 New York
    assert sms(now, SHANGHAI).outcome == "approved"
    assert sms(now, "Asia/Tokyo").outcome == "deferred"
    assert sms(now, NEW_YORK).outcome == "approved"
    assert sms(now, "Europe/London").outcome == "approved"  # 14:00 BST


@pytest.mark.parametrize("hh", [0, 3, 7, 22, 23])
def test_email_is_not_bound_by_contact_hours(hh: int) -> None:
    now = local(SHANGHAI, 2026, 5, 12, hh, 0)
    result = check_contact_hours(Channel.EMAIL, now, SHANGHAI)
    assert (result.rule_id, result.verdict, result.retry_at) == ("CN-HOURS", "pass", None)
    decision = decide(channel=Channel.EMAIL, time_zone=SHANGHAI, now_utc=now, already_approved=False)
    assert decision.outcome == "approved"


# --- retry_at: the next 08:00 local -----------------------------------------------------------------

def test_retry_same_day_when_before_eight() -> None:
    now = local(SHANGHAI, 2026, 5, 12, 6, 15)
    assert sms(now).retry_at == local(SHANGHAI, 2026, 5, 12, 8, 0)


def test_retry_same_day_just_after_midnight() -> None:
    now = local(SHANGHAI, 2026, 5, 12, 0, 0)
    assert sms(now).retry_at == local(SHANGHAI, 2026, 5, 12, 8, 0)


@pytest.mark.parametrize(("hh", "mm"), [(22, 0), (23, 59)])
def test_retry_next_day_when_after_ten_pm(hh: int, mm: int) -> None:
    now = local(SHANGHAI, 2026, 12, 31, hh, mm)
    retry = sms(now).retry_at
    assert retry == local(SHANGHAI, 2027, 1, 1, 8, 0)
    assert retry is not None and retry.tzinfo is not None and retry.utcoffset() == timedelta(0)


def test_retry_at_is_utc_and_eight_local() -> None:
    now = local(SHANGHAI, 2026, 5, 12, 23, 0)
    retry = sms(now).retry_at
    assert retry == datetime(2026, 5, 13, 0, 0, tzinfo=UTC)  # 08:00 CST == 00:00 UTC


def test_narrowed_window() -> None:
    window = ContactWindow(start=time(9, 0), end=time(20, 0))
    now = local(SHANGHAI, 2026, 5, 12, 8, 30)
    result = check_contact_hours(Channel.CALL, now, SHANGHAI, window)
    assert result.verdict == "defer"
    assert result.retry_at == local(SHANGHAI, 2026, 5, 12, 9, 0)
    late = check_contact_hours(Channel.CALL, local(SHANGHAI, 2026, 5, 12, 20, 0), SHANGHAI, window)
    assert late.retry_at == local(SHANGHAI, 2026, 5, 13, 9, 0)
    inside = check_contact_hours(Channel.CALL, local(SHANGHAI, 2026, 5, 12, 19, 59), SHANGHAI, window)
    assert inside.verdict == "pass"


# --- DST transitions --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("now", "retry"),
    [
        # spring forward, 2026-03-08 02:00 EST -> 03:00 EDT
        (local(NEW_YORK, 2026, 3, 7, 22, 30), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 3, 8, 1, 30), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 3, 8, 3, 30), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 3, 8, 23, 0), datetime(2026, 3, 9, 12, 0, tzinfo=UTC)),
        # fall back, 2026-11-01 02:00 EDT -> 01:00 EST (01:30 happens twice)
        (local(NEW_YORK, 2026, 10, 31, 22, 0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
        (local(NEW_YORK, 2026, 11, 1, 22, 0), datetime(2026, 11, 2, 13, 0, tzinfo=UTC)),
    ],
)
def test_retry_across_dst_is_eight_local(now: datetime, retry: datetime) -> None:
    decision = sms(now, NEW_YORK)
    assert decision.outcome == "deferred"
    assert decision.retry_at == retry
    assert decision.retry_at.astimezone(ZoneInfo(NEW_YORK)).time() == time(8, 0)


def test_dst_change_day_hours_still_in_local_time() -> None:
    # 08:00 EDT on the spring-forward day is 12:00 UTC; 07:59 EDT is still too early.
    assert sms(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), NEW_YORK).outcome == "approved"
    assert sms(datetime(2026, 3, 8, 11, 59, tzinfo=UTC), NEW_YORK).outcome == "deferred"
    # 08:00 EST on the fall-back day is 13:00 UTC.
    assert sms(datetime(2026, 11, 1, 13, 0, tzinfo=UTC), NEW_YORK).outcome == "approved"
    assert sms(datetime(2026, 11, 1, 12, 59, tzinfo=UTC), NEW_YORK).outcome == "deferred"


def test_next_window_start_directly() -> None:
    zone = ZoneInfo("Europe/Berlin")
    # 2026-03-29: Berlin springs forward at 02:00; at 01:00 local the next 08:00 is 06:00 UTC.
    now = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert next_window_start(now, zone, ContactWindow()) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


# --- HOUSE-DUP and rule combination -----------------------------------------------------------------

def test_duplicate_blocks_when_already_approved() -> None:
    assert check_duplicate(True).verdict == "block"
    assert check_duplicate(False).verdict == "pass"
    now = local(SHANGHAI, 2026, 5, 12, 12, 0)
    decision = sms(now, already_approved=True)
    assert (decision.outcome, decision.rule_id, decision.retry_at) == ("blocked", "HOUSE-DUP", None)


def test_blocking_beats_deferring() -> None:
    now = local(SHANGHAI, 2026, 5, 12, 23, 0)
    decision = sms(now, already_approved=True)
    assert decision.outcome == "blocked"
    assert decision.rule_id == "HOUSE-DUP"
    assert decision.retry_at is None
    verdicts = {r.rule_id: r.verdict for r in decision.evaluated}
    assert verdicts == {"HOUSE-DUP": "block", "CN-HOURS": "defer"}


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("hh", [3, 12, 23])
@pytest.mark.parametrize("already_approved", [False, True])
def test_every_decision_lists_both_rules(channel: Channel, hh: int, already_approved: bool) -> None:
    now = local(SHANGHAI, 2026, 5, 12, hh, 0)
    decision = decide(channel=channel, time_zone=SHANGHAI, now_utc=now, already_approved=already_approved)
    assert sorted(r.rule_id for r in decision.evaluated) == ["CN-HOURS", "HOUSE-DUP"]
    assert all(r.reason for r in decision.evaluated)
    if decision.outcome != "approved":
        assert decision.rule_id in {r.rule_id for r in decision.evaluated}


# --- property: any instant, any zone ----------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31, 23, 59, 59),
                        timezones=st.just(UTC))


@PROPS
@given(now=instants, zone=st.sampled_from(ZONES))
def test_sms_is_approved_in_hours_or_deferred_to_next_eight_local(now: datetime, zone: str) -> None:
    decision = sms(now, zone)
    local_now = now.astimezone(ZoneInfo(zone))
    assert [r.rule_id for r in decision.evaluated] == ["HOUSE-DUP", "CN-HOURS"]
    if decision.outcome == "approved":
        assert 8 <= local_now.hour < 22
        assert decision.retry_at is None
        return
    assert decision.outcome == "deferred"
    assert not 8 <= local_now.hour < 22
    retry = decision.retry_at
    assert retry is not None
    assert retry > now
    assert retry.astimezone(ZoneInfo(zone)).time() == time(8, 0)
    assert retry - now <= timedelta(hours=11)  # 10 h of night, plus at most 1 h of DST fall-back
    # it is the earliest such instant: the customer is reachable exactly then, not a minute before
    assert sms(retry, zone).outcome == "approved"
    assert sms(retry - timedelta(minutes=1), zone).outcome == "deferred"
