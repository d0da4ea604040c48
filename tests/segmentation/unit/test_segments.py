"""Unit tests for the segmentation rule (services/segmentation/domain/segments.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.segmentation.domain.segments import POLICY_VERSION, classify, dpd_bucket, rating_from_score
from shared.contracts.events import Segment

PROPS = settings(max_examples=200, deadline=None, database=None)
SEVERITY = {Segment.PRIME: 0, Segment.STANDARD: 1, Segment.HIGH_RISK: 2}
RATINGS = ["A", "B", "C", "D", "E"]


@pytest.mark.parametrize(
    ("dpd", "bucket"),
    [
        (-5, "0"), (0, "0"), (1, "1-15"), (15, "1-15"), (16, "16-30"), (30, "16-30"),
        (31, "31-60"), (60, "31-60"), (61, "61-90"), (90, "61-90"), (91, "90+"), (36500, "90+"),
    ],
)
def test_dpd_bucket_boundaries(dpd: int, bucket: str) -> None:
    assert dpd_bucket(dpd) == bucket


@pytest.mark.parametrize(
    ("score", "rating"),
    [
        (950, "A"), (750, "A"), (749, "B"), (700, "B"), (699, "C"), (650, "C"),
        (649, "D"), (600, "D"), (599, "E"), (300, "E"),
    ],
)
def test_rating_from_score_boundaries(score: int, rating: str) -> None:
    assert rating_from_score(score) == rating


@pytest.mark.parametrize(
    ("rating", "dpd", "segment"),
    [
        # prime: A/B up to DPD 30
        ("A", 0, Segment.PRIME), ("A", 30, Segment.PRIME), ("B", 1, Segment.PRIME), ("B", 30, Segment.PRIME),
        ("A", 31, Segment.STANDARD), ("B", 90, Segment.STANDARD),
        ("A", 91, Segment.HIGH_RISK), ("B", 91, Segment.HIGH_RISK),
        # C is standard until DPD 90
        ("C", 0, Segment.STANDARD), ("C", 90, Segment.STANDARD), ("C", 91, Segment.HIGH_RISK),
        # D is standard up to DPD 30, then high-risk
        ("D", 0, Segment.STANDARD), ("D", 30, Segment.STANDARD), ("D", 31, Segment.HIGH_RISK),
        # E is always high-risk (early warning at the due date)
        ("E", 0, Segment.HIGH_RISK), ("E", 1, Segment.HIGH_RISK), ("E", 200, Segment.HIGH_RISK),
    ],
)
def test_classify_table(rating: str, dpd: int, segment: Segment) -> None:
    result = classify(credit_rating=rating, credit_score=None, days_past_due=dpd)
    assert result.segment is segment
    assert result.rating == rating
    assert result.dpd_bucket == dpd_bucket(dpd)
    assert result.reason.startswith(f"{POLICY_VERSION}: rating {rating}, DPD {dpd}")


def test_classify_by_score_only() -> None:
    result = classify(credit_rating=None, credit_score=780, days_past_due=10)
    assert (result.segment, result.rating, result.dpd_bucket) == (Segment.PRIME, "A", "1-15")
    result = classify(credit_rating=None, credit_score=550, days_past_due=10)
    assert (result.segment, result.rating) == (Segment.HIGH_RISK, "E")


@pytest.mark.parametrize(
    ("rating", "score", "expected_rating", "segment"),
    [
        ("A", 550, "E", Segment.HIGH_RISK),  # the score is worse
        ("E", 800, "E", Segment.HIGH_RISK),  # the rating is worse
        ("A", 620, "D", Segment.STANDARD),
        ("C", 760, "C", Segment.STANDARD),
        ("B", 750, "B", Segment.PRIME),
        ("A", 700, "B", Segment.PRIME),
    ],
)
def test_worse_of_rating_and_score_wins(rating: str, score: int, expected_rating: str,
                                        segment: Segment) -> None:
    result = classify(credit_rating=rating, credit_score=score, days_past_due=5)
    assert result.rating == expected_rating
    assert result.segment is segment


def test_missing_rating_and_score_raises() -> None:
    with pytest.raises(ValueError, match="credit rating or a credit score"):
        classify(credit_rating=None, credit_score=None, days_past_due=10)


def test_classification_is_frozen() -> None:
    result = classify(credit_rating="A", credit_score=None, days_past_due=1)
    with pytest.raises(AttributeError):
        result.segment = Segment.HIGH_RISK  # type: ignore[misc]


credit = st.one_of(
    st.tuples(st.sampled_from(RATINGS), st.none()),
    st.tuples(st.none(), st.integers(300, 950)),
    st.tuples(st.sampled_from(RATINGS), st.integers(300, 950)),
)


@PROPS
@given(credit=credit, dpd=st.integers(0, 400), more=st.integers(0, 400))
def test_more_days_past_due_never_milder(credit: tuple[str | None, int | None], dpd: int, more: int) -> None:
    rating, score = credit
    before = classify(credit_rating=rating, credit_score=score, days_past_due=dpd)
    after = classify(credit_rating=rating, credit_score=score, days_past_due=dpd + more)
    assert SEVERITY[after.segment] >= SEVERITY[before.segment]


@PROPS
@given(better=st.sampled_from(RATINGS), worse=st.sampled_from(RATINGS), dpd=st.integers(0, 400),
       score=st.none() | st.integers(300, 950))
def test_worse_rating_never_milder(better: str, worse: str, dpd: int, score: int | None) -> None:
    better, worse = sorted((better, worse))
    good = classify(credit_rating=better, credit_score=score, days_past_due=dpd)
    bad = classify(credit_rating=worse, credit_score=score, days_past_due=dpd)
    assert SEVERITY[bad.segment] >= SEVERITY[good.segment]
    assert bad.rating >= good.rating


@PROPS
@given(high=st.integers(300, 950), low=st.integers(300, 950), dpd=st.integers(0, 400))
def test_lower_score_never_milder(high: int, low: int, dpd: int) -> None:
    low, high = sorted((low, high))
    good = classify(credit_rating=None, credit_score=high, days_past_due=dpd)
    bad = classify(credit_rating=None, credit_score=low, days_past_due=dpd)
    assert SEVERITY[bad.segment] >= SEVERITY[good.segment]
