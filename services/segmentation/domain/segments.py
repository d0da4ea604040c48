"""Segmentation rule v1 (documented in docs/domain.md, "Segmentation").

A customer's tier follows credit quality and how long the account is overdue:
prime accounts get mild, flexible treatment; high-risk ones the strongest lawful measures.

``classify`` is the reference statement of ``seg-v1``. Accounts are classified by a tenant's segmentation policy
(``domain/policy.py``); a tenant that has published none gets the built-in policy, ``seg-v1`` written as a policy
document, which a property test holds to classify exactly as ``classify`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.contracts.events import Segment

POLICY_VERSION = "seg-v1"
_SCORE_TO_RATING = ((750, "A"), (700, "B"), (650, "C"), (600, "D"))


@dataclass(frozen=True, slots=True)
class Classification:
    """A segment and DPD bucket, with the reason (stored and published)."""

    segment: Segment
    dpd_bucket: str
    rating: str
    reason: str
    policy_version: int = 0  # the tenant's policy version it was decided under (0: the built-in seg-v1)
    rule: str | None = None  # the name of the policy rule that matched (None: the policy's default)


def rating_from_score(score: int) -> str:
    """Map a credit score (300-950) to a rating A-E."""
    for floor, rating in _SCORE_TO_RATING:
        if score >= floor:
            return rating
    return "E"


def dpd_bucket(days_past_due: int) -> str:
    """The contact timeline's DPD buckets (docs/domain.md); 0 means at the due date (early-warning stage)."""
    if days_past_due <= 0:
        return "0"
    if days_past_due <= 15:
        return "1-15"
    if days_past_due <= 30:
        return "16-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "90+"


def rating_of(*, credit_rating: str | None, credit_score: int | None) -> str:
    """The rating that counts: the worse of the credit rating and the rating of the credit score."""
    ratings = [r for r in (credit_rating, rating_from_score(credit_score) if credit_score else None) if r]
    if not ratings:
        raise ValueError("a credit rating or a credit score is required")
    return max(ratings)  # "E" sorts after "A": the worse rating wins


def classify(*, credit_rating: str | None, credit_score: int | None, days_past_due: int) -> Classification:
    """Assign a segment. When both rating and score are given, the worse of the two counts."""
    rating = rating_of(credit_rating=credit_rating, credit_score=credit_score)
    bucket = dpd_bucket(days_past_due)
    if rating == "E" or days_past_due > 90 or (rating == "D" and days_past_due > 30):
        segment, why = Segment.HIGH_RISK, "rating E, or DPD over 90, or rating D with DPD over 30"
    elif rating in ("A", "B") and days_past_due <= 30:
        segment, why = Segment.PRIME, "rating A/B with DPD up to 30"
    else:
        segment, why = Segment.STANDARD, "neither prime nor high-risk"
    return Classification(segment, bucket, rating, f"{POLICY_VERSION}: rating {rating}, DPD {days_past_due}: {why}")
