"""Maker-checker (services/plans/domain/approvals.py): which approvals an offer needs (only more as more is written
off), what the maker's authority covers, the decisions (the maker never decides its own agreement), the outcome."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain import approvals
from services.plans.domain.approvals import MakerCannotApprove, NotAnApprover, NothingToDecide, Terms
from services.plans.domain.policy import AgentAuthority, Rule

PROPS = settings(max_examples=400, deadline=None, database=None)
RULE = Rule(name="r", agent=AgentAuthority(max_months=6, max_deferral_days=14, max_write_off_bp=500),
            co_lender_above_bp=1_000)


@pytest.mark.parametrize(("terms", "expected"), [
    (Terms(6, 0, 0, 100_000), []),
    (Terms(7, 0, 0, 100_000), ["supervisor"]),
    (Terms(1, 14, 0, 100_000), []),
    (Terms(1, 15, 0, 100_000), ["supervisor"]),
    (Terms(1, 0, 5_000, 100_000), []),  # 5%: the agent's limit
    (Terms(1, 0, 5_001, 100_000), ["supervisor"]),
    (Terms(1, 0, 10_000, 100_000), ["supervisor"]),  # 10%: not above the co-lenders' threshold
    (Terms(1, 0, 10_001, 100_000), ["supervisor", "co_lender:a-bank", "co_lender:z-fund"]),
])
def test_the_approvals_an_offer_needs(terms: Terms, expected: list[str]) -> None:
    assert approvals.required(terms, RULE, co_lenders=["z-fund", "a-bank", "z-fund"]) == expected


def test_no_co_lender_threshold_or_no_co_lenders_means_no_co_lender_step() -> None:
    terms = Terms(1, 0, 90_000, 100_000)
    assert approvals.required(terms, RULE, co_lenders=[]) == ["supervisor"]
    no_threshold = Rule(name="r", agent=RULE.agent)
    assert approvals.required(terms, no_threshold, co_lenders=["b"]) == ["supervisor"]


@PROPS
@given(payments=st.integers(1, 60), days=st.integers(0, 365), owed=st.integers(1, 10**12),
       written=st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)),
       agent=st.builds(AgentAuthority, st.integers(0, 60), st.integers(0, 365), st.integers(0, 10_000)),
       above=st.one_of(st.none(), st.integers(0, 10_000)),
       co_lenders=st.lists(st.sampled_from(["b", "c", "d"]), max_size=3))
def test_the_approvals_needed_only_grow_with_the_amount_written_off(
        payments: int, days: int, owed: int, written: tuple[int, int], agent: AgentAuthority, above: int | None,
        co_lenders: list[str]) -> None:
    low, high = sorted(min(w, owed) for w in written)
    rule = Rule(name="r", agent=agent, co_lender_above_bp=above)
    fewer = approvals.required(Terms(payments, days, low, owed), rule, co_lenders=co_lenders)
    more = approvals.required(Terms(payments, days, high, owed), rule, co_lenders=co_lenders)
    assert set(fewer) <= set(more)


def test_a_supervisor_maker_covers_the_supervisor_step_never_a_co_lender_one() -> None:
    steps = ["supervisor", "co_lender:b"]
    assert approvals.waiting_after_maker(steps, frozenset({"supervisor"})) == ["co_lender:b"]
    assert approvals.waiting_after_maker(steps, frozenset({"agent", "partner"})) == steps
    assert approvals.waiting_after_maker(steps, frozenset()) == steps  # the customer on the portal


def test_who_decides_which_step() -> None:
    assert approvals.step_of(approver_tenant="t", approver_roles=frozenset({"supervisor"}), servicer="t") == (
        "supervisor")
    with pytest.raises(NotAnApprover):
        approvals.step_of(approver_tenant="t", approver_roles=frozenset({"agent"}), servicer="t")
    assert approvals.step_of(approver_tenant="b", approver_roles=frozenset({"partner"}), servicer="t") == (
        "co_lender:b")


def test_decisions_and_the_outcome() -> None:
    steps: dict[str, approvals.StepStatus] = {"supervisor": "pending", "co_lender:b": "pending"}
    assert approvals.outcome(steps) == "pending_approval"
    with pytest.raises(MakerCannotApprove):
        approvals.decide(steps, step="supervisor", approve=True, approver="agent-7", approver_tenant="t",
                         maker="agent-7", servicer="t")
    after = approvals.decide(steps, step="supervisor", approve=True, approver="lead-wang", approver_tenant="t",
                             maker="agent-7", servicer="t")
    assert after == {"supervisor": "approved", "co_lender:b": "pending"} and approvals.outcome(after) == (
        "pending_approval")
    with pytest.raises(NothingToDecide, match="waits for co_lender:b"):
        approvals.decide(after, step="supervisor", approve=True, approver="lead-li", approver_tenant="t",
                         maker="agent-7", servicer="t")
    # a co-lender's principal may share the maker's name: it is another tenant's
    done = approvals.decide(after, step="co_lender:b", approve=True, approver="agent-7", approver_tenant="b",
                            maker="agent-7", servicer="t")
    assert approvals.outcome(done) == "agreed"
    rejected = approvals.decide(after, step="co_lender:b", approve=False, approver="x", approver_tenant="b",
                                maker="agent-7", servicer="t")
    assert approvals.outcome(rejected) == "rejected"
    with pytest.raises(NothingToDecide):
        approvals.decide(after, step="co_lender:zz", approve=True, approver="x", approver_tenant="zz",
                         maker="agent-7", servicer="t")
    assert approvals.outcome({}) == "agreed"
