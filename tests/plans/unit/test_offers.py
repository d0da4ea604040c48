"""Offers under a plan policy rule (services/plans/domain/offers.py): a worked example, affordability, and
properties: no offer exceeds the policy's limits, every schedule adds up exactly to its total for any amounts and
currencies (exponents 0, 2, 3), a total plus what it writes off is what was owed."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain.offers import affordable, offers_for
from services.plans.domain.policy import (
    DEFAULT,
    AgentAuthority,
    DeferralTerms,
    InstalmentTerms,
    Rule,
    SettlementTerms,
    WaiverTerms,
)
from shared.money import from_minor

PROPS = settings(max_examples=300, deadline=None, database=None)
TODAY = date(2026, 1, 31)
RULE = DEFAULT.rules[0]


def test_the_default_policy_offers_for_an_account() -> None:
    offers = offers_for(RULE, overdue_minor=250_000, outstanding_minor=1_000_000, today=TODAY, co_lenders=["bank-b"])
    by_id = {o.offer_id: o for o in offers}
    # 2..12 instalments of at least 100.00: 2,500.00 makes at most 12 (208.34)
    assert [o.offer_id for o in offers] == [f"instalments-{n}" for n in range(2, 13)] + [
        "deferral-30", "waiver-1", "waiver-3", "settlement"]
    three = by_id["instalments-3"]
    assert [(i.seq, i.due_date, i.amount_minor) for i in three.schedule] == [
        (1, date(2026, 2, 7), 83_334), (2, date(2026, 3, 7), 83_333), (3, date(2026, 4, 7), 83_333)]
    assert (three.total_minor, three.written_off_minor, three.approvals_required, three.affordable) == (
        250_000, 0, (), None)
    assert by_id["instalments-7"].approvals_required == ("supervisor",)  # beyond an agent's 6
    deferral = by_id["deferral-30"]
    assert [(i.due_date, i.amount_minor) for i in deferral.schedule] == [(date(2026, 3, 2), 250_000)]
    assert deferral.approvals_required == ("supervisor",)  # beyond an agent's 14 days
    waiver = by_id["waiver-3"]
    assert (waiver.total_minor, waiver.written_off_minor) == (225_000, 25_000)
    assert [i.amount_minor for i in waiver.schedule] == [75_000] * 3
    assert waiver.approvals_required == ("supervisor", "co_lender:bank-b")  # 10% > the co-lenders' 5%
    settlement = by_id["settlement"]
    assert (settlement.total_minor, settlement.written_off_minor, settlement.approvals_required) == (
        800_000, 200_000, ("supervisor", "co_lender:bank-b"))


def test_nothing_overdue_means_no_offers_and_a_tiny_amount_only_what_fits() -> None:
    assert offers_for(RULE, overdue_minor=0, outstanding_minor=10, today=TODAY, co_lenders=[]) == []
    tiny = offers_for(RULE, overdue_minor=15_000, outstanding_minor=15_000, today=TODAY, co_lenders=[])
    # 150.00 cannot make two instalments of 100.00; the waiver (15.00) is paid in one (the 3 would be 45.00)
    assert [o.offer_id for o in tiny] == ["deferral-30", "waiver-1", "settlement"]
    assert all(o.approvals_required in ((), ("supervisor",)) for o in tiny)  # no co-lenders


def test_affordability_is_a_share_of_the_disposable_income() -> None:
    assert affordable(150_000, income_minor=800_000, expenses_minor=500_000, share_bp=5_000) is True
    assert affordable(150_001, income_minor=800_000, expenses_minor=500_000, share_bp=5_000) is False
    assert affordable(1, income_minor=500_000, expenses_minor=500_000, share_bp=5_000) is False
    assert affordable(1, income_minor=None, expenses_minor=500_000, share_bp=5_000) is None
    assert affordable(1, income_minor=100, expenses_minor=None, share_bp=5_000) is None
    offers = offers_for(RULE, overdue_minor=300_002, outstanding_minor=300_002, today=TODAY, co_lenders=[],
                        income_minor=800_000, expenses_minor=500_000)
    by_id = {o.offer_id: o for o in offers}
    assert (by_id["instalments-2"].affordable, by_id["instalments-3"].affordable) == (False, True)


percent_bp = st.integers(1, 10_000)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    def maybe(strategy: st.SearchStrategy) -> object:  # type: ignore[type-arg]
        return draw(st.one_of(st.none(), strategy))

    return Rule(
        name="r",
        instalments=maybe(st.builds(InstalmentTerms, st.integers(2, 24), st.integers(0, 50_000))),  # type: ignore[arg-type]
        deferral=maybe(st.builds(DeferralTerms, st.integers(1, 365))),  # type: ignore[arg-type]
        waiver=maybe(st.builds(WaiverTerms, percent_bp, st.integers(1, 12))),  # type: ignore[arg-type]
        settlement=maybe(st.builds(SettlementTerms, percent_bp)),  # type: ignore[arg-type]
        agent=draw(st.builds(AgentAuthority, st.integers(0, 24), st.integers(0, 365), st.integers(0, 10_000))),
        co_lender_above_bp=draw(st.one_of(st.none(), st.integers(0, 10_000))),
        first_due_days=draw(st.integers(0, 90)), affordability_bp=draw(percent_bp))


@PROPS
@given(rule=rules(), overdue=st.integers(1, 10**12), extra=st.integers(0, 10**12),
       currency=st.sampled_from(["JPY", "CNY", "KWD"]), income=st.one_of(st.none(), st.integers(0, 10**9)),
       expenses=st.one_of(st.none(), st.integers(0, 10**9)),
       co_lenders=st.lists(st.sampled_from(["bank-b", "bank-c", "fund-d"]), max_size=3, unique=True))
def test_offers_never_exceed_the_policy_and_always_add_up(rule: Rule, overdue: int, extra: int, currency: str,
                                                           income: int | None, expenses: int | None,
                                                           co_lenders: list[str]) -> None:
    balance = overdue + extra
    offers = offers_for(rule, overdue_minor=overdue, outstanding_minor=balance, today=TODAY, co_lenders=co_lenders,
                        income_minor=income, expenses_minor=expenses)
    assert len({o.offer_id for o in offers}) == len(offers)
    for o in offers:
        amounts = [i.amount_minor for i in o.schedule]
        assert sum(amounts) == o.total_minor > 0 and min(amounts) > 0
        assert sum((from_minor(a, currency) for a in amounts), Decimal(0)) == from_minor(o.total_minor, currency)
        assert [i.seq for i in o.schedule] == list(range(1, len(amounts) + 1))
        assert all(a.due_date < b.due_date for a, b in zip(o.schedule, o.schedule[1:], strict=False))
        assert o.schedule[0].due_date >= TODAY
        assert (o.affordable is None) == (income is None or expenses is None)
        if o.affordable:
            assert max(amounts) * 10_000 <= rule.affordability_bp * (income - expenses)  # type: ignore[operator]
        if len(amounts) > 1 and rule.instalments is not None:
            assert min(amounts) >= rule.instalments.min_instalment_minor
        if o.kind == "instalments":
            assert rule.instalments is not None and 2 <= len(amounts) <= rule.instalments.max_months
            assert (o.total_minor, o.written_off_minor) == (overdue, 0)
        elif o.kind == "deferral":
            assert rule.deferral is not None and amounts == [overdue] and o.written_off_minor == 0
            assert o.schedule[0].due_date == TODAY + timedelta(days=rule.deferral.max_days)
        elif o.kind == "waiver":
            assert rule.waiver is not None and len(amounts) <= rule.waiver.max_months
            assert o.total_minor + o.written_off_minor == overdue
            assert 0 < o.written_off_minor * 10_000 <= rule.waiver.max_bp * overdue
        else:
            assert rule.settlement is not None and len(amounts) == 1
            assert o.total_minor + o.written_off_minor == balance and o.written_off_minor > 0
            assert o.total_minor * 10_000 >= rule.settlement.min_bp * balance
        if o.written_off_minor == 0:
            assert not any(s.startswith("co_lender:") for s in o.approvals_required)
        assert {s for s in o.approvals_required if s.startswith("co_lender:")} <= {
            f"co_lender:{c}" for c in co_lenders}
