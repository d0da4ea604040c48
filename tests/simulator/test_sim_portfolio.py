"""The simulated portfolio (simulator/portfolio.py): deterministic by seed, every figure sourced, valid shapes."""

from __future__ import annotations

from dataclasses import fields
from datetime import date

import pytest

from simulator.behaviour import DEFAULT_BEHAVIOUR, Behaviour, source_of
from simulator.portfolio import DEFAULT_ASSUMPTIONS, Assumptions, draw_account, generate

START = date(2025, 1, 1)


def test_same_seed_same_portfolio_and_prefix_stable() -> None:
    a = generate(300, seed=11, start=START)
    assert a == generate(300, seed=11, start=START)
    assert generate(50, seed=11, start=START) == a[:50]  # adding accounts never changes the others
    assert a != generate(300, seed=12, start=START)


def test_every_figure_has_a_source() -> None:
    for f in fields(Assumptions):
        assert DEFAULT_ASSUMPTIONS.source_of(f.name).strip(), f.name
    for f in fields(Behaviour):
        assert source_of(DEFAULT_BEHAVIOUR, f.name).strip(), f.name


def test_accounts_are_in_range() -> None:
    accounts = generate(2000, seed=3, start=START)
    for acc in accounts:
        assert isinstance(acc.outstanding_minor, int) and acc.outstanding_minor >= 10_000
        assert isinstance(acc.instalment_minor, int) and 0 < acc.instalment_minor <= acc.outstanding_minor
        assert acc.rating in "ABCDE"
        assert acc.credit_score is None or 300 <= acc.credit_score <= 950
        assert acc.opened_on < acc.first_due
        assert 0 <= (acc.first_due - START).days < 28
    share = {c: sum(a.currency == c for a in accounts) / len(accounts) for c in ("CNY", "USD", "GBP")}
    assert share["CNY"] > 0.85 and share["USD"] > 0.02 and share["GBP"] > 0.01
    assert sum(a.time_zone == "Asia/Shanghai" for a in accounts) / len(accounts) > 0.8
    assert {a.product for a in accounts} == {"consumer_loan", "credit_card", "auto_loan"}
    assert 0.1 < sum(a.credit_score is None for a in accounts) / len(accounts) < 0.2
    ratings = {r: sum(a.rating == r for a in accounts) for r in "ABCDE"}
    assert all(n > 0 for n in ratings.values())


@pytest.mark.parametrize("index", [0, 1, 999])
def test_one_account_is_the_same_whatever_the_portfolio(index: int) -> None:
    assert draw_account(index, seed=5, start=START) == generate(1000, seed=5, start=START)[index]
