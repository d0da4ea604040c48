"""Plan policies (services/plans/domain/policy.py): the default parses, a document is refused with every reason,
the first matching rule wins, percentages are exact basis points."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.plans.domain.policy import (
    DEFAULT,
    DEFAULT_DOCUMENT,
    PolicyRefused,
    parse_policy,
    require_policy,
)

CARDS_FIRST: dict[str, Any] = {"rules": [
    {"name": "risky-cards", "when": {"segment_in": ["high_risk"], "product_in": ["card"]},
     "offers": {"settlement": {"min_percent": "62.5"}},
     "authority": {"agent": {"max_write_off_percent": 2.25}, "co_lender_above_percent": 10}},
    {"name": "everyone", "offers": {"instalments": {"max_months": 3}}, "first_due_days": 0,
     "affordability_percent": 40},
]}


def test_the_default_policy_offers_everything_with_an_agent_authority() -> None:
    rule = DEFAULT.rule_for(segment=None, product=None)
    assert rule is not None and rule.name == "default" and DEFAULT.version == 0
    assert rule.instalments is not None and (rule.instalments.max_months, rule.instalments.min_instalment_minor) == (
        12, 10_000)
    assert rule.deferral is not None and rule.deferral.max_days == 30
    assert rule.waiver is not None and (rule.waiver.max_bp, rule.waiver.max_months) == (1_000, 3)
    assert rule.settlement is not None and rule.settlement.min_bp == 8_000
    assert (rule.agent.max_months, rule.agent.max_deferral_days, rule.agent.max_write_off_bp) == (6, 14, 0)
    assert (rule.co_lender_above_bp, rule.first_due_days, rule.affordability_bp) == (500, 7, 5_000)
    assert parse_policy(copy.deepcopy(DEFAULT_DOCUMENT), version=3)[1] == []


def test_the_first_matching_rule_wins_and_an_unsegmented_account_skips_segment_rules() -> None:
    policy = require_policy(CARDS_FIRST, version=4)
    assert policy.rule_for(segment="high_risk", product="card").name == "risky-cards"  # type: ignore[union-attr]
    assert policy.rule_for(segment="high_risk", product="loan").name == "everyone"  # type: ignore[union-attr]
    assert policy.rule_for(segment=None, product="card").name == "everyone"  # type: ignore[union-attr]
    risky = policy.rules[0]
    assert risky.settlement is not None and risky.settlement.min_bp == 6_250
    assert (risky.agent.max_write_off_bp, risky.co_lender_above_bp, risky.instalments) == (225, 1_000, None)
    everyone = policy.rules[1]
    assert (everyone.first_due_days, everyone.affordability_bp, everyone.agent.max_months) == (0, 4_000, 0)


def test_no_rule_matching_means_no_rule() -> None:
    policy = require_policy({"rules": [{"name": "prime-only", "when": {"segment_in": ["prime"]},
                                        "offers": {"deferral": {"max_days": 10}}}]}, version=1)
    assert policy.rule_for(segment="standard", product="card") is None


@pytest.mark.parametrize(("document", "reasons"), [
    (None, ["the document must be a JSON object with 'rules'"]),
    ([], ["the document must be a JSON object with 'rules'"]),
    ({}, ["rules must be a non-empty list of rules"]),
    ({"rules": [], "extra": 1}, ["unknown field 'extra' (one of: rules)", "rules must be a non-empty list of rules"]),
    ({"rules": [{"name": "x"}]}, ["rules[0].offers is required: at least one of instalments, deferral, waiver, "
                                  "settlement"]),
    ({"rules": [{"name": "x", "offers": {}}]}, [
        "rules[0].offers offers nothing: give at least one of instalments, deferral, waiver, settlement"]),
])
def test_refusals_name_every_reason(document: Any, reasons: list[str]) -> None:
    assert parse_policy(document, version=1) == (None, reasons)


def test_a_document_with_many_faults_lists_them_all() -> None:
    document = {"rules": [
        {"name": "", "when": {"segment_in": ["vip"], "product_in": []}, "surprise": True,
         "offers": {"instalments": {"max_months": 1, "min_instalment_minor": -5}, "deferral": {"max_days": "30"},
                    "waiver": {"max_percent": 150}, "settlement": {"min_percent": 12.345}, "holiday": {}},
         "authority": {"agent": {"max_months": 99, "max_write_off_percent": True}, "co_lender_above_percent": -1},
         "first_due_days": 1.5, "affordability_percent": 0},
        {"name": "all", "offers": {"deferral": {"max_days": 5}}},
        {"name": "all", "offers": {"deferral": {"max_days": 5}}},
    ]}
    policy, errors = parse_policy(document, version=1)
    assert policy is None
    expected = [
        "rules[0]: unknown key 'surprise'",
        "rules[0].name is required",
        "rules[0].when.segment_in: unknown segment 'vip'",
        "rules[0].when.product_in is empty",
        "rules[0].offers: unknown key 'holiday'",
        "rules[0].offers.instalments.max_months must be between 2 and 60, not 1",
        "rules[0].offers.instalments.min_instalment_minor must be between 0 and",
        "rules[0].offers.deferral.max_days must be a whole number, not \"30\"",
        "rules[0].offers.waiver.max_percent must be between 0.01 and 100, not 150",
        "rules[0].offers.settlement.min_percent has more than two decimals: 12.345",
        "rules[0].authority.agent.max_months must be between 0 and 60, not 99",
        "rules[0].authority.agent.max_write_off_percent must be a percentage",
        "rules[0].authority.co_lender_above_percent must be between 0 and 100, not -1",
        "rules[0].first_due_days must be a whole number, not 1.5",
        "rules[0].affordability_percent must be between 0.01 and 100, not 0",
        "rules[2]: the name 'all' is already the name of rules[1]",
        "rules[2] can never match: rules[1] before it has no conditions",
    ]
    for reason in expected:
        assert any(e.startswith(reason) for e in errors), (reason, errors)
    assert len(errors) == len(expected), errors
    with pytest.raises(PolicyRefused) as refused:
        require_policy(document, version=1)
    assert refused.value.errors == errors and refused.value.status == 422


@pytest.mark.parametrize("hostile", [
    {"rules": [{"name": "n\x00", "offers": {"deferral": {"max_days": 1}}}]},
    {"rules": [{"name": "n", "offers": {"waiver": {"max_percent": "NaN"}}}]},
    {"rules": [{"name": "n", "offers": {"waiver": {"max_percent": "1e999"}}}]},
    {"rules": [{"name": "n", "offers": {"waiver": {"max_percent": float("inf")}}}]},
    {"rules": [{"name": "n", "offers": {"waiver": {"max_percent": "ten"}}}]},
    {"rules": [{"name": "n", "offers": {"waiver": {"max_percent": [10]}}}]},
    {"rules": [{"name": "n", "offers": {"instalments": {"max_months": 10**30}}}]},
    {"rules": [{"name": "n", "when": {"product_in": ["x" * 65]}, "offers": {"deferral": {"max_days": 1}}}]},
    {"rules": ["not a rule"]},
    {"rules": [{"name": "n", "offers": "all"}]},
    {"rules": [{"name": "n", "offers": {"deferral": {"max_days": 1}}}] * 101},
    {"rules": [{"name": "n" * 70_000, "offers": {"deferral": {"max_days": 1}}}]},
])
def test_hostile_documents_are_refused_never_raised(hostile: Any) -> None:
    policy, errors = parse_policy(hostile, version=1)
    assert policy is None and errors and all(isinstance(e, str) for e in errors)
