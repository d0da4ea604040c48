"""Every rule of the CN, US, UK and HOUSE packs on its own (services/compliance/domain/rules/): allow, defer
(with the earliest instant the rule allows) and block, in the customer's own zone, across DST changes and in
half-hour zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.compliance.domain.rules import cn, house, uk, us
from services.compliance.domain.rules.base import (
    AgencyView,
    ConsentKind,
    HoldKind,
    HolidayCalendar,
    Party,
    SuppressionKind,
)
from services.compliance.domain.rules.common import next_local_midnight, next_wall_time
from shared.contracts.events import Channel
from tests.compliance.unit.support import (
    ADELAIDE,
    KOLKATA,
    LONDON,
    NEW_YORK,
    SHANGHAI,
    at,
    consent,
    ctx,
    hold,
    ledger,
    suppression,
)


def verdict(rule, c, when, params=None):  # type: ignore[no-untyped-def]
    result = rule.evaluate(c, when, params)
    assert result.rule_id == rule.id and result.pack == rule.pack and result.reason
    assert (result.retry_at is not None) == (result.verdict == "defer")
    return result


# --- CN-HOURS ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("hh", "mm", "expected"), [(8, 0, "allow"), (12, 0, "allow"), (21, 59, "allow"),
                                                   (22, 0, "defer"), (23, 30, "defer"), (0, 0, "defer"),
                                                   (7, 59, "defer")])
@pytest.mark.parametrize("channel", [Channel.SMS, Channel.CALL, Channel.FIELD])
def test_cn_hours_boundaries(hh: int, mm: int, expected: str, channel: Channel) -> None:
    result = verdict(cn.CnHours(), ctx(channel), at(SHANGHAI, 2026, 5, 12, hh, mm))
    assert result.verdict == expected
    if expected == "defer":
        day = 12 if hh < 8 else 13
        assert result.retry_at == at(SHANGHAI, 2026, 5, day, 8, 0)
        assert "outside the contact window 08:00-22:00" in result.reason


def test_cn_hours_does_not_bind_email() -> None:
    result = verdict(cn.CnHours(), ctx(Channel.EMAIL), at(SHANGHAI, 2026, 5, 12, 3, 0))
    assert result.verdict == "allow" and "not bound" in result.reason


def test_cn_hours_a_narrower_tenant_window() -> None:
    params = cn.HoursParams(start=time(9, 0), end=time(20, 0))
    assert verdict(cn.CnHours(), ctx(), at(SHANGHAI, 2026, 5, 12, 8, 30), params).retry_at == \
        at(SHANGHAI, 2026, 5, 12, 9, 0)
    assert verdict(cn.CnHours(), ctx(), at(SHANGHAI, 2026, 5, 12, 20, 0), params).retry_at == \
        at(SHANGHAI, 2026, 5, 13, 9, 0)


def test_cn_hours_a_window_the_debtor_agreed_replaces_it() -> None:
    agreed = ctx(consents=(consent(ConsentKind.WINDOW, Channel.SMS, start=time(22, 0), end=time(23, 0)),))
    assert verdict(cn.CnHours(), agreed, at(SHANGHAI, 2026, 5, 12, 22, 30)).verdict == "allow"
    noon = verdict(cn.CnHours(), agreed, at(SHANGHAI, 2026, 5, 12, 12, 0))
    assert (noon.verdict, noon.retry_at) == ("defer", at(SHANGHAI, 2026, 5, 12, 22, 0))
    assert "agreed" in noon.reason
    other_channel = ctx(consents=(consent(ConsentKind.WINDOW, Channel.CALL, start=time(22, 0), end=time(23, 0)),))
    assert verdict(cn.CnHours(), other_channel, at(SHANGHAI, 2026, 5, 12, 22, 30)).verdict == "defer"
    revoked = ctx(consents=(consent(ConsentKind.WINDOW, Channel.SMS, start=time(22, 0), end=time(23, 0),
                                    revoked=datetime(2021, 1, 1, tzinfo=UTC)),))
    assert verdict(cn.CnHours(), revoked, at(SHANGHAI, 2026, 5, 12, 22, 30)).verdict == "defer"


@pytest.mark.parametrize(("zone", "now", "retry"), [
    # spring forward, 2026-03-08 02:00 EST -> 03:00 EDT
    (NEW_YORK, at(NEW_YORK, 2026, 3, 8, 1, 30), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
    (NEW_YORK, at(NEW_YORK, 2026, 3, 7, 23, 0), datetime(2026, 3, 8, 12, 0, tzinfo=UTC)),
    # fall back, 2026-11-01: 01:30 happens twice
    (NEW_YORK, at(NEW_YORK, 2026, 11, 1, 1, 30, fold=1), datetime(2026, 11, 1, 13, 0, tzinfo=UTC)),
    # half-hour zones: India +05:30, Adelaide +09:30/+10:30 (DST from 2026-10-04)
    (KOLKATA, at(KOLKATA, 2026, 5, 12, 23, 0), datetime(2026, 5, 13, 2, 30, tzinfo=UTC)),
    (ADELAIDE, at(ADELAIDE, 2026, 10, 3, 23, 0), datetime(2026, 10, 3, 21, 30, tzinfo=UTC)),
    (ADELAIDE, at(ADELAIDE, 2026, 4, 4, 23, 0), datetime(2026, 4, 4, 22, 30, tzinfo=UTC)),
])
def test_cn_hours_retry_is_eight_local_across_dst_and_half_hours(zone: str, now: datetime, retry: datetime) -> None:
    result = verdict(cn.CnHours(), ctx(zone=zone), now)
    assert result.retry_at == retry
    assert verdict(cn.CnHours(), ctx(zone=zone), retry).verdict == "allow"
    assert verdict(cn.CnHours(), ctx(zone=zone), retry - timedelta(seconds=1)).verdict == "defer"


def test_next_wall_time_in_a_gap_and_a_fold() -> None:
    # 02:30 does not exist in New York on 2026-03-08: read with the offset before the change, 03:30 EDT
    assert next_wall_time(at(NEW_YORK, 2026, 3, 8, 0, 0), NEW_YORK, time(2, 30)) == at(NEW_YORK, 2026, 3, 8, 3, 30)
    # 01:30 happens twice on 2026-11-01: after the first, the second
    first, second = at(NEW_YORK, 2026, 11, 1, 1, 30), at(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)
    assert next_wall_time(first + timedelta(minutes=1), NEW_YORK, time(1, 30)) == second
    assert next_local_midnight(at(NEW_YORK, 2026, 11, 1, 23, 0), NEW_YORK) == at(NEW_YORK, 2026, 11, 2, 0, 0)


# --- CN-ATTEMPTS, CN-CONNECTS --------------------------------------------------------------------------------

def test_cn_attempts_six_unanswered_per_number_per_local_day() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 15, 0)
    today = tuple(at(SHANGHAI, 2026, 5, 12, 9, m) for m in range(6))
    yesterday = tuple(at(SHANGHAI, 2026, 5, 11, 9, m) for m in range(6))
    call = ctx(Channel.CALL)
    assert verdict(cn.CnAttempts(), call, now).verdict == "allow"
    five = verdict(cn.CnAttempts(), ctx(Channel.CALL, ledger=ledger(number_unanswered=yesterday + today[:5])), now)
    assert five.verdict == "allow"
    six = verdict(cn.CnAttempts(), ctx(Channel.CALL, ledger=ledger(number_unanswered=today)), now)
    assert (six.verdict, six.retry_at) == ("defer", at(SHANGHAI, 2026, 5, 13, 0, 0))
    tighter = verdict(cn.CnAttempts(), ctx(Channel.CALL, ledger=ledger(number_unanswered=today[:3])), now,
                      cn.AttemptsParams(max_unanswered=3))
    assert tighter.verdict == "defer"
    assert verdict(cn.CnAttempts(), ctx(Channel.SMS, ledger=ledger(number_unanswered=today)), now).verdict == "allow"


def test_cn_attempts_counts_the_customers_local_day_not_utc() -> None:
    # 23:30 Kolkata on the 11th is 18:00 UTC; the next local day starts 18:30 UTC
    attempts = tuple(at(KOLKATA, 2026, 5, 11, 20, m) for m in range(6))
    late = verdict(cn.CnAttempts(), ctx(Channel.CALL, KOLKATA, ledger=ledger(number_unanswered=attempts)),
                   at(KOLKATA, 2026, 5, 11, 23, 30))
    assert late.retry_at == datetime(2026, 5, 11, 18, 30, tzinfo=UTC)
    assert verdict(cn.CnAttempts(), ctx(Channel.CALL, KOLKATA, ledger=ledger(number_unanswered=attempts)),
                   at(KOLKATA, 2026, 5, 12, 0, 0)).verdict == "allow"


def test_cn_connects_three_conversations_per_borrower_per_day() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 15, 0)
    talks = tuple(at(SHANGHAI, 2026, 5, 12, 9 + i, 0) for i in range(3))
    assert verdict(cn.CnConnects(), ctx(Channel.CALL, ledger=ledger(borrower_connects=talks[:2])), now).verdict == \
        "allow"
    three = verdict(cn.CnConnects(), ctx(Channel.CALL, ledger=ledger(borrower_connects=talks)), now)
    assert (three.verdict, three.retry_at) == ("defer", at(SHANGHAI, 2026, 5, 13, 0, 0))
    # a conversation after the instant asked about does not count yet
    assert verdict(cn.CnConnects(), ctx(Channel.CALL, ledger=ledger(borrower_connects=talks)),
                   at(SHANGHAI, 2026, 5, 12, 10, 30)).verdict == "allow"


# --- CN-3P, CN-OUTSOURCE, CN-COMPLAINT, CN-FIELD, the ones enforced elsewhere -------------------------------

def test_cn_third_parties() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    assert verdict(cn.CnThirdParty(), ctx(), now).verdict == "allow"
    assert verdict(cn.CnThirdParty(), ctx(party=Party.GUARANTOR), now).verdict == "allow"
    reachable = verdict(cn.CnThirdParty(), ctx(party=Party.CONTACT_PERSON), now)
    assert reachable.verdict == "block" and "unreachable" in reachable.reason
    ok = verdict(cn.CnThirdParty(), ctx(party=Party.CONTACT_PERSON, debtor_reachable=False), now)
    assert ok.verdict == "allow" and "never with debt details" in ok.reason
    refused = ctx(party=Party.CONTACT_PERSON, debtor_reachable=False,
                  suppressions=(suppression(SuppressionKind.REFUSED, destination="cp1:x"),))
    result = verdict(cn.CnThirdParty(), refused, now)
    assert result.verdict == "block" and "never again" in result.reason
    other_number = ctx(party=Party.CONTACT_PERSON, debtor_reachable=False,
                       suppressions=(suppression(SuppressionKind.REFUSED, destination="cp1:other"),))
    assert verdict(cn.CnThirdParty(), other_number, now).verdict == "allow"


def test_cn_outsource() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    good = AgencyView("AG1", listed=True, evaluated_on=date(2025, 12, 1), debtor_notified_at=now - timedelta(days=3))
    assert verdict(cn.CnOutsource(), ctx(), now).verdict == "allow"
    assert verdict(cn.CnOutsource(), ctx(agency=good), now).verdict == "allow"
    for bad, words in [(AgencyView("AG1", False, date(2025, 12, 1), now), "published list"),
                       (AgencyView("AG1", True, None, now), "never evaluated"),
                       (AgencyView("AG1", True, date(2025, 5, 1), now), "days ago"),
                       (AgencyView("AG1", True, date(2025, 12, 1), None), "not notified")]:
        result = verdict(cn.CnOutsource(), ctx(agency=bad), now)
        assert result.verdict == "block" and words in result.reason
    later = AgencyView("AG1", True, date(2025, 12, 1), now + timedelta(hours=2))
    assert verdict(cn.CnOutsource(), ctx(agency=later), now).retry_at == now + timedelta(hours=2)
    assert verdict(cn.CnOutsource(), ctx(agency=good), now, cn.OutsourceParams(max_evaluation_age_days=90)).verdict \
        == "block"


def test_cn_complaint_puts_automated_contact_on_human_review() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    open_complaint = (hold(HoldKind.COMPLAINT),)
    result = verdict(cn.CnComplaint(), ctx(holds=open_complaint), now)
    assert result.verdict == "block" and "human review" in result.reason
    assert verdict(cn.CnComplaint(), ctx(holds=open_complaint, automated=False), now).verdict == "allow"
    ended = (hold(HoldKind.COMPLAINT, ends=now - timedelta(days=1)),)
    assert verdict(cn.CnComplaint(), ctx(holds=ended), now).verdict == "allow"
    answered = verdict(cn.CnComplaint(), ctx(holds=(hold(HoldKind.COMPLAINT, ends=now + timedelta(days=15)),)), now)
    assert (answered.verdict, answered.retry_at) == ("defer", now + timedelta(days=15))
    other_account = (hold(HoldKind.COMPLAINT, account_id="A2"),)
    assert verdict(cn.CnComplaint(), ctx(holds=other_account), now).verdict == "allow"


def test_cn_field_two_collectors_and_hours() -> None:
    day, night = at(SHANGHAI, 2026, 5, 12, 12, 0), at(SHANGHAI, 2026, 5, 12, 22, 0)
    assert verdict(cn.CnField(), ctx(Channel.FIELD, collectors=2), day).verdict == "allow"
    alone = verdict(cn.CnField(), ctx(Channel.FIELD, collectors=1), day)
    assert alone.verdict == "block" and "at least 2 collectors" in alone.reason
    unknown = verdict(cn.CnField(), ctx(Channel.FIELD), day)
    assert unknown.verdict == "allow" and "must send at least 2" in unknown.reason
    assert verdict(cn.CnField(), ctx(Channel.FIELD, collectors=2), night).retry_at == at(SHANGHAI, 2026, 5, 13, 8, 0)
    assert verdict(cn.CnField(), ctx(Channel.CALL, collectors=1), day).verdict == "allow"


@pytest.mark.parametrize("rule", [cn.CnContent(), cn.CnRecord(), cn.CnPipl(), us.UsLimitedContent(), us.UsRetain(),
                                  uk.UkDialer()], ids=lambda r: r.id)
def test_rules_enforced_elsewhere_allow_and_say_where(rule) -> None:  # type: ignore[no-untyped-def]
    for channel in Channel:
        result = verdict(rule, ctx(channel), at(SHANGHAI, 2026, 5, 12, 3, 0))
        assert result.verdict == "allow"
        if channel in rule.channels:
            assert "not" in result.reason and "per contact" in result.reason


# --- US ------------------------------------------------------------------------------------------------------

def us_ctx(channel: Channel = Channel.CALL, **kw):  # type: ignore[no-untyped-def]
    return ctx(channel, NEW_YORK, "US", **kw)


@pytest.mark.parametrize(("hh", "expected"), [(7, "defer"), (8, "allow"), (20, "allow"), (21, "defer")])
def test_us_hours(hh: int, expected: str) -> None:
    assert verdict(us.UsHours(), us_ctx(), at(NEW_YORK, 2026, 5, 12, hh, 0)).verdict == expected


def test_us_hours_on_the_dst_days() -> None:
    # 2026-03-08: 08:00 EDT is 12:00 UTC; 2026-11-01: 08:00 EST is 13:00 UTC
    assert verdict(us.UsHours(), us_ctx(), datetime(2026, 3, 8, 11, 59, tzinfo=UTC)).retry_at == \
        datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert verdict(us.UsHours(), us_ctx(), datetime(2026, 11, 1, 12, 59, tzinfo=UTC)).retry_at == \
        datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    # 21:00 EST on 2026-11-01 is 02:00 UTC the 2nd
    assert verdict(us.UsHours(), us_ctx(), datetime(2026, 11, 2, 1, 59, tzinfo=UTC)).verdict == "allow"
    assert verdict(us.UsHours(), us_ctx(), datetime(2026, 11, 2, 2, 0, tzinfo=UTC)).verdict == "defer"


def test_us_hours_honours_times_called_inconvenient() -> None:
    lunch = suppression(SuppressionKind.INCONVENIENT_TIME, start=time(12, 0), end=time(14, 0))
    evening = suppression(SuppressionKind.INCONVENIENT_TIME, start=time(18, 0), end=time(9, 30))
    c = us_ctx(suppressions=(lunch, evening))
    assert verdict(us.UsHours(), c, at(NEW_YORK, 2026, 5, 12, 11, 0)).verdict == "allow"
    noon = verdict(us.UsHours(), c, at(NEW_YORK, 2026, 5, 12, 12, 30))
    assert (noon.verdict, noon.retry_at) == ("defer", at(NEW_YORK, 2026, 5, 12, 14, 0))
    assert "inconvenient" in noon.reason
    # 19:00: inconvenient until 09:30, which is after 08:00 the next day
    assert verdict(us.UsHours(), c, at(NEW_YORK, 2026, 5, 12, 19, 0)).retry_at == at(NEW_YORK, 2026, 5, 13, 9, 30)
    whole = suppression(SuppressionKind.INCONVENIENT_TIME, start=time(7, 0), end=time(22, 0))
    assert verdict(us.UsHours(), us_ctx(suppressions=(whole,)), at(NEW_YORK, 2026, 5, 12, 11, 0)).verdict == "block"
    place = suppression(SuppressionKind.INCONVENIENT_TIME, destination="cp1:x")
    assert verdict(us.UsHours(), us_ctx(suppressions=(place,)), at(NEW_YORK, 2026, 5, 12, 11, 0)).verdict == "block"
    elsewhere = suppression(SuppressionKind.INCONVENIENT_TIME, destination="cp1:work")
    assert verdict(us.UsHours(), us_ctx(suppressions=(elsewhere,)), at(NEW_YORK, 2026, 5, 12, 11, 0)).verdict == \
        "allow"


def test_us_seven_in_seven_calls() -> None:
    now = at(NEW_YORK, 2026, 5, 12, 12, 0)
    calls = tuple(at(NEW_YORK, 2026, 5, d, 10, 0) for d in range(6, 13))  # 7 calls, 6th to 12th
    result = verdict(us.UsSevenInSeven(), us_ctx(ledger=ledger(debt_calls=calls)), now)
    # the 6 May call falls out of the seven days on 13 May (13 - 6 = 7)
    assert (result.verdict, result.retry_at) == ("defer", at(NEW_YORK, 2026, 5, 13, 0, 0))
    assert verdict(us.UsSevenInSeven(), us_ctx(ledger=ledger(debt_calls=calls[1:])), now).verdict == "allow"
    same_day = tuple(at(NEW_YORK, 2026, 5, 8, 9, m) for m in range(7))
    assert verdict(us.UsSevenInSeven(), us_ctx(ledger=ledger(debt_calls=same_day)), now).retry_at == \
        at(NEW_YORK, 2026, 5, 15, 0, 0)


def test_us_seven_in_seven_after_a_conversation() -> None:
    talk = at(NEW_YORK, 2026, 5, 10, 16, 0)
    c = us_ctx(ledger=ledger(debt_calls=(talk,), debt_conversations=(talk,)))
    result = verdict(us.UsSevenInSeven(), c, at(NEW_YORK, 2026, 5, 16, 23, 59))
    assert (result.verdict, result.retry_at) == ("defer", at(NEW_YORK, 2026, 5, 17, 0, 0))
    assert verdict(us.UsSevenInSeven(), c, at(NEW_YORK, 2026, 5, 17, 0, 0)).verdict == "allow"
    assert verdict(us.UsSevenInSeven(), us_ctx(Channel.SMS, ledger=c.ledger), at(NEW_YORK, 2026, 5, 12, 9, 0)).verdict \
        == "allow"


def test_us_cease_optout_validation_and_tcpa() -> None:
    now = at(NEW_YORK, 2026, 5, 12, 12, 0)
    assert verdict(us.UsCease(), us_ctx(holds=(hold(HoldKind.CEASE),)), now).verdict == "block"
    assert verdict(us.UsCease(), us_ctx(), now).verdict == "allow"
    opt_out = (suppression(SuppressionKind.OPT_OUT, Channel.SMS, "cp1:x"),)
    assert verdict(us.UsEmailOptOut(), us_ctx(Channel.SMS, suppressions=opt_out), now).verdict == "block"
    assert verdict(us.UsEmailOptOut(), us_ctx(Channel.EMAIL, suppressions=opt_out), now).verdict == "allow"
    dispute = hold(HoldKind.DISPUTE, ends=now + timedelta(days=3))
    result = verdict(us.UsValidation(), us_ctx(holds=(dispute,)), now)
    assert (result.verdict, result.retry_at) == ("defer", now + timedelta(days=3))
    assert verdict(us.UsValidation(), us_ctx(holds=(hold(HoldKind.VALIDATION),)), now).verdict == "block"
    # chained holds: the second starts before the first ends
    chained = (hold(HoldKind.DISPUTE, ends=now + timedelta(days=1)),
               hold(HoldKind.VALIDATION, starts=now + timedelta(hours=12), ends=now + timedelta(days=5)))
    assert verdict(us.UsValidation(), us_ctx(holds=chained), now).retry_at == now + timedelta(days=5)
    assert verdict(us.UsTcpa(), us_ctx(Channel.SMS), now).verdict == "block"
    consented = us_ctx(Channel.SMS, consents=(consent(ConsentKind.AUTOMATED, Channel.SMS, "cp1:x"),))
    assert verdict(us.UsTcpa(), consented, now).verdict == "allow"
    revoked = us_ctx(Channel.SMS, consents=(consent(ConsentKind.AUTOMATED, Channel.SMS, revoked=now),))
    assert verdict(us.UsTcpa(), revoked, now).verdict == "block"
    assert verdict(us.UsTcpa(), us_ctx(Channel.CALL, automated=False), now).verdict == "allow"
    assert verdict(us.UsTcpa(), us_ctx(Channel.EMAIL), now).verdict == "allow"


# --- UK ------------------------------------------------------------------------------------------------------

def uk_ctx(channel: Channel = Channel.SMS, **kw):  # type: ignore[no-untyped-def]
    return ctx(channel, LONDON, "UK", **kw)


def test_uk_rules() -> None:
    now = at(LONDON, 2026, 3, 29, 12, 0)  # the day the UK springs forward
    assert verdict(uk.UkHours(), uk_ctx(), at(LONDON, 2026, 3, 29, 0, 30)).retry_at == datetime(2026, 3, 29, 7, 0,
                                                                                               tzinfo=UTC)
    assert verdict(uk.UkHours(), uk_ctx(Channel.EMAIL), at(LONDON, 2026, 3, 29, 21, 0)).verdict == "defer"
    space = hold(HoldKind.BREATHING_SPACE, ends=now + timedelta(days=60))
    result = verdict(uk.UkBreathingSpace(), uk_ctx(holds=(space,)), now)
    assert (result.verdict, result.retry_at) == ("defer", now + timedelta(days=60))
    assert verdict(uk.UkBreathingSpace(), uk_ctx(holds=(hold(HoldKind.MENTAL_HEALTH),)), now).verdict == "block"
    assert verdict(uk.UkVulnerability(), uk_ctx(holds=(hold(HoldKind.VULNERABILITY),)), now).verdict == "block"
    assert verdict(uk.UkVulnerability(), uk_ctx(holds=(hold(HoldKind.VULNERABILITY),), automated=False),
                   now).verdict == "allow"
    assert verdict(uk.UkForbearance(), uk_ctx(holds=(hold(HoldKind.HARDSHIP),)), now).verdict == "block"
    assert verdict(uk.UkForbearance(), uk_ctx(), now).verdict == "allow"


# --- HOUSE ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(house.HouseHolds.KINDS))
def test_house_holds(kind: HoldKind) -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    assert verdict(house.HouseHolds(), ctx(holds=(hold(kind),)), now).verdict == "block"
    ending = verdict(house.HouseHolds(), ctx(holds=(hold(kind, ends=now + timedelta(days=2)),)), now)
    assert (ending.verdict, ending.retry_at) == ("defer", now + timedelta(days=2))
    assert verdict(house.HouseHolds(), ctx(holds=(hold(kind, starts=now + timedelta(days=1)),)), now).verdict == \
        "allow"
    # a declared hardship holds automated contact only (the case goes to a person): an agent's call is allowed
    assert verdict(house.HouseHolds(), ctx(holds=(hold(HoldKind.HARDSHIP),)), now).verdict == "block"
    assert verdict(house.HouseHolds(), ctx(Channel.CALL, holds=(hold(HoldKind.HARDSHIP),), automated=False),
                   now).verdict == "allow"
    assert verdict(house.HouseHolds(), ctx(holds=(hold(HoldKind.VULNERABILITY),)), now).verdict == "allow"


def test_house_dup() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    twice = verdict(house.HouseDuplicate(), ctx(ledger=ledger(already_approved=True)), now)
    assert twice.verdict == "block" and "already approved" in twice.reason
    this_morning = ledger(borrower_contacts={Channel.SMS: (at(SHANGHAI, 2026, 5, 12, 9, 0),)})
    one_a_day = verdict(house.HouseDuplicate(), ctx(ledger=this_morning), now)
    assert (one_a_day.verdict, one_a_day.retry_at) == ("defer", at(SHANGHAI, 2026, 5, 13, 0, 0))
    yesterday = ledger(borrower_contacts={Channel.SMS: (at(SHANGHAI, 2026, 5, 11, 21, 0),)})
    assert verdict(house.HouseDuplicate(), ctx(ledger=yesterday), now).verdict == "allow"
    assert verdict(house.HouseDuplicate(), ctx(Channel.EMAIL, ledger=this_morning), now).verdict == "allow"
    weekly = house.DupParams(interval_days={Channel.SMS: 7})
    assert verdict(house.HouseDuplicate(), ctx(ledger=yesterday), now, weekly).retry_at == \
        at(SHANGHAI, 2026, 5, 18, 0, 0)


def test_house_holiday() -> None:
    calendar = HolidayCalendar({date(2026, 2, 17): "Spring Festival", date(2026, 2, 18): "Spring Festival"})
    result = verdict(house.HouseHoliday(), ctx(calendar=calendar), at(SHANGHAI, 2026, 2, 17, 10, 0))
    assert (result.verdict, result.retry_at) == ("defer", at(SHANGHAI, 2026, 2, 19, 0, 0))
    assert "Spring Festival" in result.reason
    assert verdict(house.HouseHoliday(), ctx(calendar=calendar), at(SHANGHAI, 2026, 2, 16, 23, 59)).verdict == "allow"
    # the customer's local date decides: 2026-02-16 17:00 UTC is already the 17th in Shanghai, still the 16th in NY
    instant = datetime(2026, 2, 16, 17, 0, tzinfo=UTC)
    assert verdict(house.HouseHoliday(), ctx(calendar=calendar), instant).verdict == "defer"
    assert verdict(house.HouseHoliday(), ctx(zone=NEW_YORK, calendar=calendar), instant).verdict == "allow"


def test_house_field_thresholds() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    assert verdict(house.HouseField(), ctx(Channel.FIELD, days_past_due=40), now).verdict == "allow"
    assert verdict(house.HouseField(), ctx(Channel.FIELD, days_past_due=20), now).verdict == "block"
    assert verdict(house.HouseField(), ctx(Channel.FIELD, days_past_due=None), now).verdict == "block"
    params = house.FieldParams(min_days_past_due=60, min_overdue_minor=500_000)
    assert verdict(house.HouseField(), ctx(Channel.FIELD, days_past_due=90), now, params).verdict == "block"
    assert verdict(house.HouseField(), ctx(Channel.FIELD, days_past_due=90, overdue_minor=600_000), now,
                   params).verdict == "allow"
    assert verdict(house.HouseField(), ctx(Channel.SMS, days_past_due=1), now).verdict == "allow"


def test_house_opt_out_and_do_not_call() -> None:
    now = at(SHANGHAI, 2026, 5, 12, 12, 0)
    td = (suppression(SuppressionKind.OPT_OUT, Channel.SMS, "cp1:x"),)
    assert verdict(house.HouseOptOut(), ctx(suppressions=td), now).verdict == "block"
    assert verdict(house.HouseOptOut(), ctx(Channel.EMAIL, suppressions=td), now).verdict == "allow"
    dnc = (suppression(SuppressionKind.DO_NOT_CALL),)
    assert verdict(house.HouseOptOut(), ctx(Channel.CALL, suppressions=dnc), now).verdict == "block"
    assert verdict(house.HouseOptOut(), ctx(Channel.SMS, suppressions=dnc), now).verdict == "allow"


# --- loosening ------------------------------------------------------------------------------------------------

def test_loosens_names_every_wider_limit() -> None:
    assert cn.CnHours().loosens(cn.HoursParams(time(7, 0), time(23, 0))) == [
        "CN-HOURS: the window starts at 07:00, before the legal 08:00",
        "CN-HOURS: the window ends at 23:00, after the legal 22:00"]
    assert cn.CnHours().loosens(cn.HoursParams(time(9, 0), time(20, 0))) == []
    assert cn.CnAttempts().loosens(cn.AttemptsParams(7))
    assert not cn.CnAttempts().loosens(cn.AttemptsParams(5))
    assert cn.CnField().loosens(cn.FieldParams(min_collectors=1))
    assert us.UsSevenInSeven().loosens(us.SevenParams(quiet_days=3))
    assert house.HouseDuplicate().loosens(house.DupParams(interval_days={}))
    assert not house.HouseDuplicate().loosens(house.DupParams(interval_days={Channel.SMS: 2, Channel.EMAIL: 1}))
    assert house.HouseField().loosens(house.FieldParams(min_days_past_due=10))
