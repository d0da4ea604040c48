"""Co-lending's pure rules (services/plans/domain/lenders.py): the servicer holds what the co-lenders do not, and a
payment splits between the lenders so that the parts add up exactly and each is within one minor unit of its exact
share, for any amounts, currencies and shares; masking for co-lenders."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.lenders import LendersError, lenders_of, mask_name, mask_phone, split_payment
from shared.contracts.events import MAX_MINOR
from shared.money import from_minor

PROPS = settings(max_examples=400, deadline=None, database=None)
CURRENCIES = ["CNY", "USD", "JPY", "KWD", "BHD", "CLF", "XOF", "GBP"]


def test_the_servicer_holds_the_rest_and_a_zero_share_is_left_out() -> None:
    assert lenders_of("bank", [{"tenant": "fund", "share_bp": 3000}]) == {"bank": 7000, "fund": 3000}
    assert lenders_of("bank", []) == {"bank": 10_000}
    assert lenders_of("bank", [{"tenant": "a", "share_bp": 4000}, {"tenant": "b", "share_bp": 6000}]) == {
        "a": 4000, "b": 6000}


@pytest.mark.parametrize("co_lenders", [
    [{"tenant": "a", "share_bp": 6000}, {"tenant": "b", "share_bp": 5000}],  # over 10,000
    [{"tenant": "bank", "share_bp": 100}],                                   # the servicer itself
    [{"tenant": "a", "share_bp": 100}, {"tenant": "a", "share_bp": 100}],    # twice
    [{"tenant": "a", "share_bp": 0}],
    [{"tenant": "a", "share_bp": True}],
])
def test_impossible_lenders_are_refused(co_lenders: list[dict[str, object]]) -> None:
    with pytest.raises(LendersError):
        lenders_of("bank", co_lenders)


def test_the_remainder_goes_to_the_largest_remainders_then_the_first_name() -> None:
    # 1 fen between two equal shares: the first name gets it, whoever is the servicer
    assert split_payment(1, servicer="zeta", co_lenders=[{"tenant": "alpha", "share_bp": 5000}]) == {
        "alpha": 1, "zeta": 0}
    assert split_payment(1, servicer="alpha", co_lenders=[{"tenant": "zeta", "share_bp": 5000}]) == {
        "alpha": 1, "zeta": 0}
    # 100 in thirds (3334 / 3333 / 3333 bp): 33.34, 33.33, 33.33 -> the largest remainder first
    assert split_payment(100, servicer="s", co_lenders=[{"tenant": "a", "share_bp": 3333},
                                                        {"tenant": "b", "share_bp": 3333}]) == {
        "s": 34, "a": 33, "b": 33}
    assert split_payment(10_001, servicer="bank", co_lenders=[{"tenant": "fund", "share_bp": 3000}]) == {
        "bank": 7001, "fund": 3000}


@st.composite
def co_lenders(draw: st.DrawFn) -> list[dict[str, object]]:
    names = draw(st.lists(st.text("abcdefghij", min_size=1, max_size=4).filter(lambda n: n != "servicer"),
                          unique=True, max_size=20))
    left, lenders = 10_000, []
    for name in names:
        if left < 1:
            break
        share = draw(st.integers(1, left))
        lenders.append({"tenant": name, "share_bp": share})
        left -= share
    return lenders


@PROPS
@given(amount=st.integers(0, MAX_MINOR), currency=st.sampled_from(CURRENCIES), lenders=co_lenders())
def test_splits_add_up_exactly_and_each_part_is_within_one_minor_unit(
        amount: int, currency: str, lenders: list[dict[str, object]]) -> None:
    shares = lenders_of("servicer", lenders)
    assert sum(shares.values()) == 10_000
    parts = split_payment(amount, servicer="servicer", co_lenders=lenders)
    assert set(parts) == set(shares)
    assert sum(parts.values()) == amount
    for lender, part in parts.items():
        exact = Fraction(amount * shares[lender], 10_000)
        assert abs(part - exact) < 1, (lender, part, exact)
        assert part >= 0
    # shown in major units the parts add up too, at the currency's exponent
    assert sum(from_minor(p, currency) for p in parts.values()) == from_minor(amount, currency)


@PROPS
@given(amount=st.integers(0, 10**9), lenders=co_lenders(), order=st.randoms(use_true_random=False))
def test_a_split_does_not_depend_on_the_order_the_co_lenders_are_listed(
        amount: int, lenders: list[dict[str, object]], order: object) -> None:
    shuffled = list(lenders)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert split_payment(amount, servicer="servicer", co_lenders=lenders) == split_payment(
        amount, servicer="servicer", co_lenders=shuffled)


def test_masking_for_co_lenders() -> None:
    assert mask_phone("+8613900000001") == "+86 139****0001"
    assert mask_phone("+1 415 555 0100") == "+1 415***0100"
    assert mask_phone("13900000001") == "139****0001"
    assert mask_phone("12345") == "***45"
    assert mask_name("测试客户") == "测*"
    assert mask_name("  Li Wei ") == "L*"
    assert mask_name("") == ""
