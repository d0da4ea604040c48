"""The experiment report's arithmetic (services/scheduler/domain/strategies/report.py) against values computed by
hand or published: Wilson intervals, the ratio estimator's interval, the two-proportion test, maturity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduler.domain.strategies.report import (
    AccountFacts,
    compare_proportions,
    ratio,
    report,
    wilson,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (8, 10, 0.4902, 0.9433),     # the textbook example (Newcombe 1998, method 3)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),   # Newcombe 1998, table I
])
def test_wilson_intervals_match_published_values(k: int, n: int, low: float, high: float) -> None:
    r = wilson(k, n)
    assert r.value == pytest.approx(k / n)
    assert (round(r.low, 4), round(r.high, 4)) == (pytest.approx(low, abs=1e-4), pytest.approx(high, abs=1e-4))


def test_no_accounts_gives_no_rate_rather_than_zero() -> None:
    assert wilson(0, 0).value is None and ratio([])[0].value is None


@settings(deadline=None, database=None, max_examples=200)
@given(k=st.integers(0, 500), extra=st.integers(0, 500))
def test_a_wilson_interval_holds_its_rate_and_stays_in_zero_one(k: int, extra: int) -> None:
    n = k + extra
    if n == 0:
        return
    r = wilson(k, n)
    assert 0.0 <= r.low <= r.value <= r.high <= 1.0  # type: ignore[operator]


def test_the_recovery_rate_is_a_ratio_of_sums_with_a_narrowing_interval() -> None:
    pairs = [(50, 100), (100, 100), (0, 100), (25, 50)]
    r, variance = ratio(pairs)
    assert r.value == pytest.approx(175 / 350) and variance is not None and variance > 0
    wide = r.high - r.low  # type: ignore[operator]
    many, _ = ratio(pairs * 100)
    assert many.value == pytest.approx(r.value)
    assert many.high - many.low < wide / 5  # type: ignore[operator]


def test_a_clear_difference_is_significant_and_a_small_one_is_not() -> None:
    big = compare_proportions("cure rate", "mail", wilson(600, 1000), wilson(500, 1000))
    assert big.significant and big.p_value is not None and big.p_value < 1e-5
    assert big.difference == pytest.approx(0.1) and big.low < 0.1 < big.high  # type: ignore[operator]
    assert "significant at 95%" in big.statement and "not significant" not in big.statement
    small = compare_proportions("cure rate", "mail", wilson(51, 100), wilson(50, 100))
    assert not small.significant and "not significant at 95%" in small.statement
    # the classic two-proportion z: 0.6 vs 0.5 with 1000 each gives z = 4.49
    assert big.p_value == pytest.approx(7.1e-6, rel=0.1)


def facts(arm: str, *, age_days: int, cured_after: int | None, owed: int = 1000, complained: bool = False
          ) -> AccountFacts:
    start = NOW - timedelta(days=age_days)
    paid = [(start + timedelta(days=cured_after), owed)] if cured_after is not None else []
    return AccountFacts(arm=arm, start=start, overdue_minor=owed, contacts=2, cost_minor=10, paid=paid,
                        complained=complained)


def test_an_account_counts_at_a_horizon_only_once_it_matured_and_is_cured_by_its_payments() -> None:
    accounts = [facts("champion", age_days=40, cured_after=5), facts("champion", age_days=40, cured_after=20),
                facts("champion", age_days=40, cured_after=None), facts("champion", age_days=3, cured_after=1)]
    [arm] = report(accounts, arms=["champion"], now=NOW)
    assert arm.accounts == 4 and arm.contacts_per_account == 2 and arm.cost_minor == 40
    assert (arm.cure_rate[7].numerator, arm.cure_rate[7].denominator) == (1, 3)  # the 3-day-old one is young
    assert (arm.cure_rate[30].numerator, arm.cure_rate[30].denominator) == (2, 3)
    assert arm.cure_rate[60].denominator == 0 and arm.cure_rate[60].value is None
    assert arm.recovery_rate[30].value == pytest.approx(2000 / 3000)
    assert arm.recovered_minor[7] == 1000


def test_a_partial_payment_recovers_without_curing_and_overpayment_counts_once() -> None:
    start = NOW - timedelta(days=10)
    partial = AccountFacts("champion", start, 1000, 1, 5, paid=[(start + timedelta(days=1), 400)])
    over = AccountFacts("champion", start, 1000, 1, 5, paid=[(start + timedelta(days=1), 5000)])
    assert (partial.paid_within(7), partial.cured_within(7)) == (400, False)
    assert (over.paid_within(7), over.cured_within(7)) == (1000, True)


def test_challengers_are_compared_with_the_champion_on_every_horizon_and_complaints() -> None:
    accounts = ([facts("champion", age_days=70, cured_after=10 if i % 2 else None) for i in range(200)]
                + [facts("mail", age_days=70, cured_after=5 if i % 4 else None, complained=i < 3) for i in range(200)])
    champion, mail = report(accounts, arms=["champion", "mail"], now=NOW)
    assert (champion.arm, mail.arm) == ("champion", "mail") and champion.compared == []
    metrics = [c.metric for c in mail.compared]
    assert metrics == ["cure rate at 7 days", "recovery rate at 7 days", "cure rate at 30 days",
                       "recovery rate at 30 days", "cure rate at 60 days", "recovery rate at 60 days",
                       "complaint rate"]
    at30 = mail.compared[2]
    assert at30.difference == pytest.approx(0.25) and at30.significant
    assert not mail.compared[-1].significant  # 3 complaints in 200 against none: not enough to say
