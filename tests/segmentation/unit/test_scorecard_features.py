"""What segmentation feeds the scorecard (services/segmentation/domain/scorecard.py ``features_at``): the training
dataset's definitions (simulator/dataset.py ``features_at``), only the features worth points; and what the
registry refuses (``problems``: every reason)."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.segmentation.domain.scorecard import (
    FEATURES,
    Scorecard,
    ScorecardError,
    features_at,
    load_default,
    problems,
    rounded,
)
from simulator import dataset

T = datetime(2025, 3, 1, 16, 30, tzinfo=UTC)
SNAPSHOT = {"credit_rating": "C", "credit_score": 668, "days_past_due": 8, "overdue_minor": 125_000,
            "outstanding_minor": 1_500_000, "product": "credit_card", "currency": "CNY"}
RUNTIME_DEFINED = set(FEATURES) - {"tenure_days", "previous_cures"}  # cures: from segment history; tenure: none


def runtime(snapshot: dict[str, Any], payments: list[datetime], uses: Any = FEATURES) -> dict[str, object]:
    return features_at(uses=uses, as_of=T, credit_rating=snapshot["credit_rating"],
                       credit_score=snapshot["credit_score"], days_past_due=snapshot["days_past_due"],
                       overdue_minor=snapshot["overdue_minor"], outstanding_minor=snapshot["outstanding_minor"],
                       product=snapshot["product"], payment_times=payments)


@given(st.lists(st.integers(min_value=-200 * 86400, max_value=10 * 86400), max_size=12),
       st.sampled_from([None, "A", "E"]), st.integers(min_value=0, max_value=2_000_000))
def test_the_runtime_features_are_the_training_datasets(offsets: list[int], rating: str | None,
                                                        outstanding: int) -> None:
    payments = sorted(T + timedelta(seconds=s) for s in offsets)
    payments += [T - timedelta(days=30), T - timedelta(days=90), T]  # the windows' edges: (T - N days, T]
    payments.sort()
    snapshot = SNAPSHOT | {"credit_rating": rating, "outstanding_minor": outstanding,
                           "overdue_minor": min(125_000, outstanding)}
    trained = dataset.features_at(T, snapshot, payments, [], date(2020, 1, 1))
    ours = runtime(snapshot, payments)
    assert {k: ours[k] for k in RUNTIME_DEFINED} == {k: trained[k] for k in RUNTIME_DEFINED}
    assert "tenure_days" not in ours  # no opening date: its missing bin


def test_only_the_features_worth_points_are_computed() -> None:
    default = load_default()
    # the shipped card: previous_cures and overdue_ratio are worth 0 points in every bin
    assert default.uses == set(FEATURES) - {"previous_cures", "overdue_ratio"}
    ours = runtime(SNAPSHOT, [T - timedelta(days=1)], uses=default.uses)
    assert set(ours) == default.uses - {"tenure_days"}
    assert set(runtime(SNAPSHOT, [], uses={"days_past_due"})) == {"days_past_due"}
    # leaving out a feature worth no points changes nothing
    full = runtime(SNAPSHOT, [T - timedelta(days=1)]) | {"previous_cures": 3}
    assert default.score(full) == default.score(ours)


def test_a_probability_is_rounded_to_4_places_and_extreme_scores_do_not_overflow() -> None:
    assert rounded(0.21725) in (Decimal("0.2172"), Decimal("0.2173"))
    assert rounded(1.0) == Decimal("1.0000") and rounded(0.0) == Decimal("0.0000")
    doc = copy.deepcopy(load_default().document) | {"scaling": {"base_points": 600, "base_odds": 1, "pdo": 0.001}}
    card = Scorecard.from_document(doc)
    assert card.probability(-100_000) == 0.0 and card.probability(100_000) == 1.0


def test_every_reason_a_document_cannot_be_used_is_given() -> None:
    doc = copy.deepcopy(dict(load_default().document))
    doc["version"] = "has space"
    doc["intercept_points"] = "563"
    doc["features"][0]["bins"][0]["points"] = 2.5
    doc["features"][1]["edges"] = [1, "x", *doc["features"][1]["edges"][2:]]
    doc["features"][2]["missing"] = []
    doc["features"][3]["name"] = "bogus"
    doc["scaling"]["pdo"] = float("nan")
    card, errors = problems(doc)
    assert card is None
    for part in ("version must be", "intercept_points", "'rating': points must be integers", "an edge must be a number",
                 "'days_past_due': missing must be an object", "'bogus': unknown feature", "scaling.pdo",
                 "not finite"):
        assert any(part in e for e in errors), (part, errors)
    with pytest.raises(ScorecardError) as refused:
        Scorecard.from_document(doc)
    assert refused.value.errors == errors


@pytest.mark.parametrize("document", [None, "x", {"format": "gentle-collections/scorecard", "features": [1]},
                                      {"format": "gentle-collections/scorecard", "version": "v", "scaling": [],
                                       "intercept_points": 1, "features": [{"name": "rating", "kind": "categorical",
                                                                            "bins": [{"values": [[1]]}]}]},
                                      {"format": "gentle-collections/scorecard", "version": "v",
                                       "scaling": {"base_points": 10**400, "base_odds": 1, "pdo": 1},
                                       "intercept_points": 1,
                                       "features": [{"name": "days_past_due", "kind": "numeric",
                                                     "edges": [10**400], "bins": [{"points": 1}, {"points": 2}],
                                                     "reason": {"code": ""}}]}])
def test_malformed_documents_are_refused_never_raised(document: Any) -> None:
    card, errors = problems(document)
    assert card is None and errors
