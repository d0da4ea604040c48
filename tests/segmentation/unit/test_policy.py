"""Unit tests of segmentation policies (services/segmentation/domain/policy.py): what a document may say, every
reason a bad one is refused, how rules classify, and the built-in policy against ``segments.classify``."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.segmentation.domain.accounts import PaymentFact, SnapshotFact, cures_before
from services.segmentation.domain.policy import (
    BUILTIN,
    BUILTIN_DOCUMENT,
    MAX_DOCUMENT_BYTES,
    MAX_RULES,
    Features,
    classify_with,
    label_of,
    parse_document,
)
from services.segmentation.domain.segments import classify, rating_of
from shared.contracts.events import Segment

PROPS = settings(max_examples=300, deadline=None, database=None)
AS_OF = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
STANDARD = {"segment": "standard"}


def policy_of(*rules: dict[str, Any], default: Any = None, version: int = 3) -> Any:
    policy, errors = parse_document({"rules": list(rules), "default": default or STANDARD}, version=version)
    assert errors == [] and policy is not None, errors
    return policy


def rule(name: str, segment: str = "prime", **when: Any) -> dict[str, Any]:
    return {"name": name, "segment": segment, "when": when}


def features(**changes: Any) -> Features:
    base: dict[str, Any] = {"rating": "B", "days_past_due": 12, "credit_score": 720, "overdue_minor": 50_000,
                            "outstanding_minor": 200_000, "product": "cash-loan", "as_of": AS_OF,
                            "payment_times": (), "previous_cures": 0, "tenure_days": 40}
    return Features(**(base | changes))


# --- validation ----------------------------------------------------------------------------------------------------


def refusals(document: Any) -> list[str]:
    policy, errors = parse_document(document, version=1)
    assert (policy is None) == bool(errors)
    return errors


@pytest.mark.parametrize(("document", "says"), [
    ([], "must be a JSON object"),
    ({"rules": []}, "default is required"),
    ({"rules": [], "default": {"segment": "gold"}}, "unknown segment \"gold\""),
    ({"rules": [], "default": "gold"}, "unknown segment"),
    ({"rules": [], "default": {"segment": "prime", "colour": "red"}}, "default: unknown key 'colour'"),
    ({"rules": {}, "default": STANDARD}, "rules must be a list"),
    ({"rules": [], "default": STANDARD, "extra": 1}, "unknown field 'extra'"),
    ({"rules": ["prime"], "default": STANDARD}, "rules[0] must be an object"),
    ({"rules": [{"segment": "prime", "when": {"dpd_max": 5}}], "default": STANDARD}, "name is required"),
    ({"rules": [{"name": " ", "segment": "prime", "when": {"dpd_max": 5}}], "default": STANDARD}, "must not be blank"),
    ({"rules": [{"name": "x" * 65, "segment": "prime"}], "default": STANDARD}, "over the limit of 64"),
    ({"rules": [{"name": "default", "segment": "prime"}], "default": STANDARD}, "reserved"),
    ({"rules": [{"name": "a", "when": {"dpd_max": 5}}], "default": STANDARD}, "segment is required"),
    ({"rules": [rule("a", "gold", dpd_max=5)], "default": STANDARD}, "unknown segment \"gold\""),
    ({"rules": [{**rule("a", dpd_max=5), "colour": 1}], "default": STANDARD}, "unknown key 'colour'"),
    ({"rules": [{**rule("a", dpd_max=5), "why": "x" * 201}], "default": STANDARD}, "over the limit of 200"),
    ({"rules": [rule("a", dpd_maximum=5)], "default": STANDARD}, "unknown condition 'dpd_maximum'"),
    ({"rules": [rule("a", rating_in=["A", "F"])], "default": STANDARD}, "unknown rating 'F'"),
    ({"rules": [rule("a", rating_in=[])], "default": STANDARD}, "rating_in is empty"),
    ({"rules": [rule("a", rating_in="A")], "default": STANDARD}, "rating_in must be a list"),
    ({"rules": [rule("a", product_in=[""])], "default": STANDARD}, "is not a product name"),
    ({"rules": [rule("a", product_in=[f"p{i}" for i in range(101)])], "default": STANDARD}, "101 products"),
    ({"rules": [rule("a", dpd_min=31, dpd_max=30)], "default": STANDARD}, "dpd_min 31 is greater than dpd_max 30"),
    ({"rules": [rule("a", score_min=700, score_max=650)], "default": STANDARD}, "score_min 700 is greater"),
    ({"rules": [rule("a", propensity_min=0.8, propensity_max=0.2)], "default": STANDARD}, "propensity_min 0.8"),
    ({"rules": [rule("a", overdue_min_minor=10, overdue_max_minor=5)], "default": STANDARD}, "overdue_min_minor 10"),
    ({"rules": [rule("a", outstanding_min_minor=9, outstanding_max_minor=1)], "default": STANDARD},
     "outstanding_min_minor 9"),
    ({"rules": [rule("a", previous_cures_min=3, previous_cures_max=1)], "default": STANDARD}, "previous_cures_min 3"),
    ({"rules": [rule("a", tenure_days_min=90, tenure_days_max=30)], "default": STANDARD}, "tenure_days_min 90"),
    ({"rules": [rule("a", dpd_min=-31)], "default": STANDARD}, "dpd_min must be at least -30"),
    ({"rules": [rule("a", score_min=-1)], "default": STANDARD}, "score_min must not be negative"),
    ({"rules": [rule("a", overdue_min_minor=-100)], "default": STANDARD}, "must not be negative"),
    ({"rules": [rule("a", overdue_min_minor=12.5)], "default": STANDARD}, "whole minor units"),
    ({"rules": [rule("a", overdue_min_minor="100")], "default": STANDARD}, "must be a number"),
    ({"rules": [rule("a", dpd_max=True)], "default": STANDARD}, "must be a number"),
    ({"rules": [rule("a", score_min=700.5)], "default": STANDARD}, "a whole number"),
    ({"rules": [rule("a", propensity_min=1.5)], "default": STANDARD}, "over the limit of 1"),
    ({"rules": [rule("a", dpd_max=40000)], "default": STANDARD}, "over the limit of 36500"),
    ({"rules": [rule("a", overdue_max_minor=10**16)], "default": STANDARD}, "over the limit"),
    ({"rules": [rule("a", payments_in_last_days={"min": 1})], "default": STANDARD}, "days is required"),
    ({"rules": [rule("a", payments_in_last_days={"days": 30})], "default": STANDARD}, "needs a min or a max"),
    ({"rules": [rule("a", payments_in_last_days={"days": 0, "min": 1})], "default": STANDARD}, "between 1 and 3660"),
    ({"rules": [rule("a", payments_in_last_days={"days": 30, "min": -1})], "default": STANDARD},
     "must not be negative"),
    ({"rules": [rule("a", payments_in_last_days={"days": 30, "min": 3, "max": 1})], "default": STANDARD},
     "min 3 is greater than max 1"),
    ({"rules": [rule("a", payments_in_last_days={"days": 30, "min": 1, "within": 2})], "default": STANDARD},
     "unknown key 'within'"),
    ({"rules": [rule("a", payments_in_last_days=30)], "default": STANDARD}, "must be an object"),
    ({"rules": [rule("a", dpd_max=5), rule("a", dpd_max=9)], "default": STANDARD}, "already the name of rules[0]"),
    ({"rules": [{"name": "all", "segment": "prime"}, rule("late", dpd_min=5)], "default": STANDARD},
     "rules[1] 'late' can never match: rules[0] 'all' before it has no conditions"),
    ({"rules": [{"name": "all", "segment": "prime", "when": {}}, rule("late", dpd_min=5)], "default": STANDARD},
     "can never match"),
    ({"rules": [{"name": "x", "segment": "prime", "when": []}], "default": STANDARD}, "when must be an object"),
])
def test_a_bad_document_is_refused_with_the_reason(document: Any, says: str) -> None:
    errors = refusals(document)
    assert any(says in e for e in errors), errors


def test_every_reason_is_listed_not_only_the_first() -> None:
    errors = refusals({"rules": [rule("a", "gold", dpd_min=9, dpd_max=1, rating_in=["Z"], colour=1),
                                 {"segment": "prime"}, rule("b", overdue_min_minor=1.5)],
                       "extra": True})
    expected = ["unknown field 'extra'", "unknown segment \"gold\"", "unknown condition 'colour'", "unknown rating 'Z'",
                "dpd_min 9 is greater than dpd_max 1", "rules[1]: name is required",
                "rules[2] 'b' can never match", "whole minor units", "default is required"]
    for says in expected:
        assert any(says in e for e in errors), (says, errors)
    assert len(errors) == len(expected), errors


def test_too_many_rules_are_refused() -> None:
    rules = [rule(f"r{i}", dpd_min=i) for i in range(MAX_RULES + 1)]
    assert any(f"{MAX_RULES + 1} rules, over the limit of {MAX_RULES}" in e
               for e in refusals({"rules": rules, "default": STANDARD}))
    assert refusals({"rules": rules[:MAX_RULES], "default": STANDARD}) == []


def test_a_document_over_64_kb_is_refused_unread() -> None:
    big = {"rules": [rule("a", product_in=["p" * 60] * 100) | {"why": "w"} for _ in range(20)], "default": STANDARD}
    assert len(json.dumps(big, separators=(",", ":")).encode()) > MAX_DOCUMENT_BYTES
    [error] = refusals(big)
    assert "over the limit of 65536 bytes" in error


@pytest.mark.parametrize("document", [
    {"rules": [], "default": {"segment": "standard"}},  # no rules: everyone gets the default
    {"default": "high_risk"},
    {"rules": [rule("cured-before", "prime", previous_cures_min=1, tenure_days_min=180)],
     "default": {"segment": "standard", "why": "no rule matched"}},
    {"rules": [rule("every", "prime", rating_in=["A"], product_in=["card"], score_min=0, score_max=1000,
                    propensity_min=0, propensity_max=1, dpd_min=0, dpd_max=36500, overdue_min_minor=0,
                    overdue_max_minor=10**15, outstanding_min_minor=0, outstanding_max_minor=10**15,
                    previous_cures_min=0, previous_cures_max=5, tenure_days_min=0, tenure_days_max=3650,
                    payments_in_last_days={"days": 3660, "min": 0, "max": 10})],
     "default": STANDARD},
    {"rules": [rule("a", dpd_min=5, dpd_max=5), {"name": "rest", "segment": "high_risk"}], "default": STANDARD},
])
def test_a_good_document_is_accepted(document: dict[str, Any]) -> None:
    assert refusals(document) == []


def test_the_builtin_document_is_valid_and_its_label_is_seg_v1() -> None:
    policy, errors = parse_document(copy.deepcopy(dict(BUILTIN_DOCUMENT)), version=0)
    assert errors == [] and policy == BUILTIN
    assert (BUILTIN.label, label_of(0), label_of(7)) == ("seg-v1", "seg-v1", "policy-v7")


# --- classification ------------------------------------------------------------------------------------------------

TIERED = policy_of(
    rule("no-score", "high_risk", score_max=599),
    rule("likely-payers", "prime", propensity_min=0.7),
    rule("cards", "prime", product_in=["card"], dpd_max=30),
    rule("big-overdue", "high_risk", overdue_min_minor=100_000),
    rule("small-balance", "prime", outstanding_max_minor=10_000),
    rule("paying", "prime", payments_in_last_days={"days": 30, "min": 2}),
    rule("repeat-curer", "standard", previous_cures_min=2),
    rule("new-and-late", "high_risk", tenure_days_max=30, dpd_min=20),
    rule("a-or-b", "prime", rating_in=["A", "B"], dpd_max=15),
    default={"segment": "standard", "why": "no rule matched"})


@pytest.mark.parametrize(("changes", "segment", "rule_name"), [
    ({}, Segment.PRIME, "a-or-b"),                                          # B, DPD 12
    ({"credit_score": 550}, Segment.HIGH_RISK, "no-score"),
    ({"credit_score": None, "rating": "B"}, Segment.PRIME, "a-or-b"),       # no score: score_max does not hold
    ({"propensity": 0.7}, Segment.PRIME, "likely-payers"),
    ({"propensity": 0.69, "rating": "C"}, Segment.STANDARD, None),
    ({"propensity": None, "rating": "C"}, Segment.STANDARD, None),          # missing: the condition does not hold
    ({"product": "card", "rating": "D", "days_past_due": 30}, Segment.PRIME, "cards"),
    ({"product": "card", "rating": "D", "days_past_due": 31}, Segment.STANDARD, None),
    ({"product": None, "rating": "D"}, Segment.STANDARD, None),
    ({"overdue_minor": 100_000}, Segment.HIGH_RISK, "big-overdue"),
    ({"overdue_minor": 99_999}, Segment.PRIME, "a-or-b"),
    ({"outstanding_minor": 10_000, "rating": "E"}, Segment.PRIME, "small-balance"),
    ({"payment_times": (AS_OF - timedelta(days=30), AS_OF), "rating": "E"}, Segment.PRIME, "paying"),
    # one payment a second too early for the window, one after the snapshot: neither counts
    ({"payment_times": (AS_OF - timedelta(days=30, seconds=1), AS_OF, AS_OF + timedelta(seconds=1)), "rating": "E"},
     Segment.STANDARD, None),
    ({"payment_times": None, "rating": "E"}, Segment.STANDARD, None),      # not loaded: unknown
    ({"previous_cures": 2, "rating": "E"}, Segment.STANDARD, "repeat-curer"),
    ({"previous_cures": 1, "rating": "E"}, Segment.STANDARD, None),
    ({"tenure_days": 30, "days_past_due": 20, "rating": "C"}, Segment.HIGH_RISK, "new-and-late"),
    ({"tenure_days": 31, "days_past_due": 20, "rating": "C"}, Segment.STANDARD, None),
    ({"tenure_days": None, "days_past_due": 20, "rating": "C"}, Segment.STANDARD, None),
    ({"days_past_due": 16}, Segment.STANDARD, None),
])
def test_the_first_rule_that_holds_decides_else_the_default(changes: dict[str, Any], segment: Segment,
                                                            rule_name: str | None) -> None:
    f = features(**changes)
    c = classify_with(TIERED, f)
    assert (c.segment, c.rule, c.policy_version, c.rating) == (segment, rule_name, 3, f.rating)
    if rule_name is None:
        assert c.reason == f"policy-v3: default: rating {f.rating}, DPD {f.days_past_due}: no rule matched"
    else:
        assert c.reason.startswith(f"policy-v3: rule {rule_name}: rating {f.rating}, DPD {f.days_past_due}")


@pytest.mark.parametrize(("policy_rule", "changes", "reason"), [
    (rule("r", score_min=700), {}, "policy-v3: rule r: rating B, DPD 12, score 720"),
    (rule("r", propensity_min=0.5), {"propensity": 0.75}, "policy-v3: rule r: rating B, DPD 12, propensity 0.75"),
    (rule("r", overdue_min_minor=1, outstanding_min_minor=1), {},
     "policy-v3: rule r: rating B, DPD 12, overdue 50000 minor, outstanding 200000 minor"),
    (rule("r", product_in=["cash-loan"]), {}, "policy-v3: rule r: rating B, DPD 12, product cash-loan"),
    (rule("r", payments_in_last_days={"days": 7, "max": 0}), {}, "policy-v3: rule r: rating B, DPD 12, "
                                                                 "0 payments in 7 days"),
    (rule("r", previous_cures_max=0, tenure_days_min=10), {},
     "policy-v3: rule r: rating B, DPD 12, previous cures 0, tenure 40 days"),
    (rule("r", dpd_min=10) | {"why": "late enough"}, {}, "policy-v3: rule r: rating B, DPD 12: late enough"),
])
def test_the_reason_names_the_version_the_rule_and_the_features_it_tested(
        policy_rule: dict[str, Any], changes: dict[str, Any], reason: str) -> None:
    assert classify_with(policy_of(policy_rule), features(**changes)).reason == reason


def test_the_builtin_reasons_name_seg_v1_and_the_rule() -> None:
    c = classify_with(BUILTIN, Features(rating="D", days_past_due=31))
    assert (c.segment, c.reason) == (Segment.HIGH_RISK,
                                     "seg-v1: rule rating-d-dpd-over-30: rating D, DPD 31: rating D with DPD over 30")
    c = classify_with(BUILTIN, Features(rating="C", days_past_due=9))
    assert c.reason == "seg-v1: default: rating C, DPD 9: neither prime nor high-risk"


def test_a_policy_names_the_features_it_reads() -> None:
    assert BUILTIN.features() == {"days_past_due"}
    assert TIERED.features() == {"credit_score", "propensity", "product", "days_past_due", "overdue_minor",
                                 "outstanding_minor", "payments", "previous_cures", "tenure_days"}


# the cut-offs of seg-v1 and its ratings, and either side of them
DPD_EDGES = [0, 1, 15, 16, 29, 30, 31, 32, 59, 60, 61, 89, 90, 91, 92, 365, 36500]
SCORE_EDGES = [300, 599, 600, 601, 649, 650, 651, 699, 700, 701, 749, 750, 751, 950]
dpds = st.sampled_from(DPD_EDGES) | st.integers(0, 120) | st.integers(0, 36500)
credit = st.one_of(
    st.tuples(st.sampled_from("ABCDE"), st.none()),
    st.tuples(st.none(), st.sampled_from(SCORE_EDGES) | st.integers(300, 950)),
    st.tuples(st.sampled_from("ABCDE"), st.sampled_from(SCORE_EDGES) | st.integers(300, 950)),
)


@PROPS
@given(credit=credit, dpd=dpds, product=st.sampled_from(["card", "loan"]),
       overdue=st.integers(1, 10**15), propensity=st.none() | st.floats(0, 1),
       cures=st.none() | st.integers(0, 9), tenure=st.none() | st.integers(0, 5000))
def test_the_builtin_policy_classifies_exactly_as_seg_v1(credit: tuple[str | None, int | None], dpd: int,
                                                         product: str, overdue: int, propensity: float | None,
                                                         cures: int | None, tenure: int | None) -> None:
    rating, score = credit
    expected = classify(credit_rating=rating, credit_score=score, days_past_due=dpd)
    got = classify_with(BUILTIN, Features(
        rating=rating_of(credit_rating=rating, credit_score=score), days_past_due=dpd, credit_score=score,
        propensity=propensity, overdue_minor=overdue, outstanding_minor=overdue, product=product, as_of=AS_OF,
        payment_times=(), previous_cures=cures, tenure_days=tenure))
    assert (got.segment, got.dpd_bucket, got.rating) == (expected.segment, expected.dpd_bucket, expected.rating)
    assert got.reason.startswith("seg-v1: ") and f"rating {expected.rating}, DPD {dpd}" in got.reason
    # the same explanation as seg-v1 gives, rule by rule
    assert expected.reason.rsplit(": ", 1)[1] in {
        "rating E, or DPD over 90, or rating D with DPD over 30", "rating A/B with DPD up to 30",
        "neither prime nor high-risk"}
    assert (got.rule is None) == (expected.segment is Segment.STANDARD)


def test_the_builtin_policy_classifies_as_seg_v1_at_every_cut_off() -> None:
    """Every rating (or none), every score cut-off and either side of it (or none), DPD 0-130 and beyond."""
    for rating in [None, *"ABCDE"]:
        for score in [None, *SCORE_EDGES]:
            if rating is None and score is None:
                continue
            for dpd in [*range(131), 365, 36500]:
                expected = classify(credit_rating=rating, credit_score=score, days_past_due=dpd)
                got = classify_with(BUILTIN, Features(rating=rating_of(credit_rating=rating, credit_score=score),
                                                      days_past_due=dpd, credit_score=score))
                assert (got.segment, got.dpd_bucket, got.rating) == (
                    expected.segment, expected.dpd_bucket, expected.rating), (rating, score, dpd, got.reason)


# --- previous cures ------------------------------------------------------------------------------------------------


def at(hours: float) -> datetime:
    return AS_OF + timedelta(hours=hours)


@pytest.mark.parametrize(("snapshots", "payments", "cures"), [
    ([], [], 0),
    ([(0, 1_000)], [(1, 1_000)], 1),                   # paid in full before the one now
    ([(0, 1_000)], [(1, 999)], 0),                     # not in full
    ([(0, 1_000)], [(1, 600), (2, 400)], 1),           # in two payments
    ([(0, 1_000)], [(0, 1_000)], 0),                   # at the snapshot's instant: already in it
    ([(0, 1_000)], [(10, 1_000)], 1),                  # at the instant of the snapshot now: counts
    ([(0, 1_000)], [(11, 1_000)], 0),                  # after the snapshot now: not yet
    ([(0, 1_000)], [(1, 1_000, "USD")], 0),            # another currency never counts
    ([(0, 1_000), (5, 2_000)], [(1, 1_000), (6, 2_000)], 2),
    ([(0, 1_000), (5, 2_000)], [(6, 1_000)], 0),       # paid after the next snapshot: that one's cure, not in full
    ([(0, 1_000), (10, 2_000)], [(1, 1_000)], 1),      # the one at the snapshot now's instant is not "before"
    ([(12, 1_000)], [(13, 1_000)], 0),                 # a later snapshot (arrived earlier) is not before
])
def test_previous_cures_count_the_earlier_snapshots_paid_in_full_before_the_next(
        snapshots: list[tuple[float, int]], payments: list[tuple[Any, ...]], cures: int) -> None:
    facts = [PaymentFact(p[1], p[2] if len(p) > 2 else "CNY", at(p[0])) for p in payments]
    assert cures_before([SnapshotFact(at(h), m) for h, m in snapshots], facts, currency="CNY", as_of=at(10)) == cures
