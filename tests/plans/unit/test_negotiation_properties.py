"""Properties of negotiation's pure parts under hostile input (services/plans/domain/policy.py, approvals.py): any
JSON document is parsed or refused with reasons, never raises; a rule that cannot match is refused whatever the
spelling of "no conditions"; approvals decided in any order by anyone end as maker-checker says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plans.domain import approvals
from services.plans.domain.approvals import MakerCannotApprove, NotAnApprover, NothingToDecide
from services.plans.domain.policy import parse_policy, require_policy
from shared.domain import DomainError

PROPS = settings(max_examples=300, deadline=None, database=None)

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["10", "1e3", "NaN", "-1", "0.001", "\x00", "\ud800"]))
keys = st.sampled_from(["rules", "name", "when", "offers", "authority", "segment_in", "product_in", "instalments",
                        "deferral", "waiver", "settlement", "max_months", "min_instalment_minor", "max_days",
                        "max_percent", "min_percent", "agent", "max_deferral_days", "max_write_off_percent",
                        "co_lender_above_percent", "first_due_days", "affordability_percent", "x"])
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(keys, inner, max_size=5)),
                           max_leaves=30)


@PROPS
@given(document=st.one_of(json_values, st.fixed_dictionaries({"rules": st.lists(json_values, max_size=4)})))
def test_any_document_is_parsed_or_refused_with_reasons_never_raised(document: Any) -> None:
    policy, errors = parse_policy(document, version=3)
    assert (policy is None) == bool(errors)
    assert all(isinstance(e, str) and e for e in errors)
    if policy is not None:  # what is accepted survives being stored as JSON and read back
        assert parse_policy(json.loads(json.dumps(document)), version=3) == (policy, [])


@pytest.mark.parametrize("when", [None, {}, {"segment_in": None}, {"product_in": None},
                                  {"segment_in": None, "product_in": None}])
def test_a_rule_after_one_without_conditions_is_refused_however_no_condition_is_spelled(when: Any) -> None:
    document = {"rules": [{"name": "all", "when": when, "offers": {"deferral": {"max_days": 5}}},
                          {"name": "cards", "when": {"product_in": ["card"]}, "offers": {"deferral": {"max_days": 9}}}]}
    policy, errors = parse_policy(document, version=1)
    assert policy is None
    assert errors == ["rules[1] can never match: rules[0] before it has no conditions"]


def authority(percent: Any) -> dict[str, Any]:
    return {"rules": [{"name": "all", "offers": {"deferral": {"max_days": 5}},
                       "authority": {"agent": {"max_write_off_percent": percent}}}]}


@pytest.mark.parametrize("percent", ["4.99999999999999999999999999999", "99.99999999999999999999999999999",
                                     "10.0000000000000000000000000001", "1e-999999999999999999", "0.001"])
def test_a_percentage_with_more_than_two_decimals_is_refused_however_long(percent: str) -> None:
    policy, errors = parse_policy(authority(percent), version=1)
    assert policy is None and len(errors) == 1 and "more than two decimals" in errors[0], errors


@PROPS
@given(bp=st.integers(0, 10_000), zeros=st.integers(0, 40), exponent_form=st.booleans())
def test_a_percentage_of_at_most_two_decimals_is_kept_exactly_as_basis_points(bp: int, zeros: int,
                                                                              exponent_form: bool) -> None:
    text = f"{bp}e-2" if exponent_form else f"{bp // 100}.{bp % 100:02d}{'0' * zeros}"
    rule = require_policy(authority(text), version=1).rules[0]
    assert rule.agent.max_write_off_bp == bp


steps_strategy = st.lists(st.sampled_from([approvals.SUPERVISOR, "co_lender:bank-b", "co_lender:bank-c"]),
                          unique=True, min_size=1)
attempt = st.tuples(st.sampled_from(["servicer", "bank-b", "bank-c", "bank-x"]),
                    st.sampled_from(["maker", "lead-1", "lead-2", "desk"]),
                    st.sampled_from([frozenset({"supervisor"}), frozenset({"agent"}), frozenset({"partner"})]),
                    st.booleans())


@PROPS
@given(steps=steps_strategy, attempts=st.lists(attempt, max_size=8))
def test_decisions_in_any_order_end_as_maker_checker_says(steps: list[str],
                                                           attempts: list[tuple[str, str, frozenset[str], bool]]
                                                           ) -> None:
    state: dict[str, approvals.StepStatus] = dict.fromkeys(steps, "pending")
    deciders: dict[str, tuple[str, str]] = {}
    for tenant, name, roles, approve in attempts:
        if approvals.outcome(state) != "pending_approval":
            break  # the use case refuses anything once the plan is no longer pending
        try:
            step = approvals.step_of(approver_tenant=tenant, approver_roles=roles, servicer="servicer")
            after = approvals.decide(state, step=step, approve=approve, approver=name, approver_tenant=tenant,
                                     maker="maker", servicer="servicer")
        except (MakerCannotApprove, NotAnApprover, NothingToDecide) as refused:
            assert isinstance(refused, DomainError)
            continue
        assert not (tenant == "servicer" and name == "maker")  # never the maker
        assert step == (approvals.SUPERVISOR if tenant == "servicer" else f"co_lender:{tenant}")
        assert state[step] == "pending" and step not in deciders  # each step decided once
        assert tenant != "servicer" or "supervisor" in roles
        deciders[step] = (tenant, name)
        state = after
    result = approvals.outcome(state)
    assert result == ("rejected" if "rejected" in state.values()
                      else "agreed" if set(state.values()) == {"approved"} else "pending_approval")
    assert set(deciders) == {s for s, status in state.items() if status != "pending"}
