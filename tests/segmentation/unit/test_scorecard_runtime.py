"""The runtime scorer (services/segmentation/domain/scorecard.py): points, probability, reasons, loading."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from services.segmentation.domain.scorecard import (
    FEATURES,
    FORMAT,
    Scorecard,
    ScorecardError,
    load_default,
    overdue_ratio,
)

DOC: dict[str, Any] = {
    "format": FORMAT, "version": "t1",
    "scaling": {"base_points": 600, "base_odds": 1, "pdo": 20},
    "intercept_points": 500,
    "features": [
        {"name": "days_past_due", "kind": "numeric", "edges": [8, 31],
         "bins": [{"points": 40}, {"points": 10}, {"points": -20}], "missing": {"points": 0},
         "reason": {"code": "DPD", "text": "Many days past due"}},
        {"name": "credit_score", "kind": "numeric", "edges": [600],
         "bins": [{"points": -5}, {"points": 15}], "missing": {"points": 0},
         "reason": {"code": "SCORE", "text": "Credit score is low", "missing_text": "No credit score on file"}},
        {"name": "rating", "kind": "categorical",
         "bins": [{"values": ["A", "B"], "points": 20}, {"values": ["C"], "points": 5},
                  {"values": ["D", "E"], "points": 0}],
         "missing": {"points": 2}, "other": {"points": 1},
         "reason": {"code": "RATING", "text": "Credit rating is weak"}},
    ],
}
CARD = Scorecard.from_document(DOC)


@pytest.mark.parametrize(
    ("features", "points", "reasons"),
    [
        ({"days_past_due": 1, "credit_score": 700, "rating": "A"}, 575, ()),
        ({"days_past_due": 8, "credit_score": 700, "rating": "A"}, 545, ("DPD",)),  # 8 is in [8, 31)
        ({"days_past_due": 31, "credit_score": 599, "rating": "D"}, 475, ("DPD", "SCORE", "RATING")),
        ({"days_past_due": 30, "credit_score": None, "rating": "C"}, 515, ("DPD", "SCORE", "RATING")),
        ({"days_past_due": 2, "rating": "Z"}, 541, ("RATING", "SCORE")),  # unknown category: other; score missing
        ({}, 502, ("DPD", "RATING", "SCORE")),  # everything missing
        ({"days_past_due": Decimal("7.5"), "credit_score": 600.0, "rating": "B", "extra": 1}, 575, ()),
    ],
)
def test_points_and_reason_codes(features: dict[str, object], points: int, reasons: tuple[str, ...]) -> None:
    scored = CARD.score(features)
    assert scored.points == points
    assert tuple(r.code for r in scored.reasons) == reasons


def test_reasons_are_ordered_by_points_lost_ties_in_document_order() -> None:
    scored = CARD.score({"days_past_due": 31, "credit_score": 599, "rating": "D"})
    assert [(r.feature, r.points_lost) for r in scored.reasons] == [
        ("days_past_due", 60), ("credit_score", 20), ("rating", 20)]
    missing = CARD.score({"days_past_due": 1, "rating": "A"})
    assert [(r.code, r.text, r.points_lost) for r in missing.reasons] == [("SCORE", "No credit score on file", 15)]


def test_probability_follows_the_scaling() -> None:
    assert CARD.probability(600) == pytest.approx(0.5)
    odds = [CARD.probability(p) / (1 - CARD.probability(p)) for p in (600, 620, 640, 580)]
    assert odds == pytest.approx([1, 2, 4, 0.5])
    assert CARD.score({"days_past_due": 1, "credit_score": 700, "rating": "A"}).probability == pytest.approx(
        1 / (1 + math.exp(25 * math.log(2) / 20)))


@pytest.mark.parametrize("value", [True, "7", object()])
def test_a_numeric_feature_refuses_non_numbers(value: object) -> None:
    with pytest.raises(ScorecardError):
        CARD.score({"days_past_due": value})


def _broken(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    change(doc)
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        _broken(lambda d: d.update(format="other")),
        _broken(lambda d: d["scaling"].pop("pdo")),
        _broken(lambda d: d["scaling"].update(base_odds=0)),
        _broken(lambda d: d.update(intercept_points=1.5)),
        _broken(lambda d: d["features"][0].update(edges=[31, 8])),
        _broken(lambda d: d["features"][0].update(edges=[8])),
        _broken(lambda d: d["features"][0]["bins"][0].update(points="40")),
        _broken(lambda d: d["features"][2]["bins"][1].update(values=["A"])),
        _broken(lambda d: d["features"].append(d["features"][0])),
        _broken(lambda d: d.update(features=[])),
    ],
)
def test_unusable_documents_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(ScorecardError):
        Scorecard.from_document(doc)


@pytest.mark.parametrize(("overdue", "outstanding", "ratio"),
                         [(5_000, 100_000, Decimal("0.05")), (1, 3, Decimal("0.3333")), (2, 3, Decimal("0.6667")),
                          (100, 100, Decimal("1")), (0, 0, None)])
def test_overdue_ratio_from_minor_units(overdue: int, outstanding: int, ratio: Decimal | None) -> None:
    assert overdue_ratio(overdue, outstanding) == ratio


def test_the_shipped_default_scorecard_loads_and_scores() -> None:
    card = load_default()
    assert {f.name for f in card.features} == set(FEATURES)
    assert card.metrics["held_out"]["auc"] > 0.7
    good = card.score({"rating": "A", "credit_score": 780, "days_past_due": 1, "overdue_ratio": Decimal("0.02"),
                       "overdue_minor": 10_000, "product": "auto_loan", "payments_last_30d": 2,
                       "payments_last_90d": 4, "previous_cures": 2, "tenure_days": 3000})
    bad = card.score({"rating": "E", "credit_score": 420, "days_past_due": 120, "overdue_ratio": Decimal("0.9"),
                      "overdue_minor": 5_000_000, "product": "consumer_loan", "payments_last_30d": 0,
                      "payments_last_90d": 0, "previous_cures": 0, "tenure_days": 30})
    assert good.points > bad.points and good.probability > 0.5 > bad.probability
    assert good.reasons == () or all(r.points_lost > 0 for r in good.reasons)
    assert [r.code for r in bad.reasons][:1] == ["DPD"] and len(bad.reasons) == 3
    assert card.score({}).points  # nothing known: every feature in its missing bin


def test_the_runtime_scorer_imports_no_numpy_or_sklearn() -> None:
    code = ("import sys; import services.segmentation.domain.scorecard as s; s.load_default().score({}); "
            "bad = [m for m in ('numpy', 'sklearn', 'scipy') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
