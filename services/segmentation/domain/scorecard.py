"""The repayment-propensity scorecard at runtime (docs/scoring.md): pure Python, no numpy or scikit-learn.

A scorecard is a JSON document (``services/segmentation/scorecards/default.json`` ships with the
package; ``python -m services.segmentation.training`` writes new ones): per feature a list of bins, each
worth an integer number of points; the score is the intercept's points plus one bin's points per
feature. Higher means more likely to cure (pay off the overdue amount) within the target's horizon; the
probability is the logistic of the score on the document's scaling (``base_points`` at odds
``base_odds``, ``pdo`` points to double the odds).

Numeric bins are half-open intervals between ``edges``: bin i holds edges[i-1] <= x < edges[i]
(``bisect_right``, the same rule the training uses). A missing value (the key absent or None) falls in
the feature's ``missing`` bin; a category the training never saw in its ``other`` bin.

Reason codes follow the usual adverse-action method: for each feature, the points lost against the best
bin of that feature (its maximum); the features that lost the most, largest first (ties in document
order), are the reasons, at most three, only those that lost points.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

FORMAT = "gentle-collections/scorecard"
FEATURES = ("rating", "credit_score", "days_past_due", "overdue_ratio", "overdue_minor", "product",
            "payments_last_30d", "payments_last_90d", "previous_cures", "tenure_days")


class ScorecardError(ValueError):
    """A scorecard document that cannot be used."""


def overdue_ratio(overdue_minor: int, outstanding_minor: int) -> Decimal | None:
    """Overdue over outstanding, from integer minor units, to 4 decimal places (None when nothing is
    outstanding). The same function computes the training rows and the runtime feature."""
    if outstanding_minor <= 0:
        return None
    return (Decimal(overdue_minor) / Decimal(outstanding_minor)).quantize(Decimal("0.0001"))


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a score is low: a feature that cost points against its best bin."""

    code: str
    feature: str
    text: str
    points_lost: int


@dataclass(frozen=True, slots=True)
class Scored:
    """A score: integer points, the probability of curing they stand for, up to three reasons."""

    points: int
    probability: float
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    kind: str  # "numeric" or "categorical"
    edges: tuple[float, ...]  # numeric
    categories: Mapping[str, int]  # categorical: value -> bin index
    points: tuple[int, ...]  # per bin
    missing_points: int
    other_points: int  # categorical: a value not seen in training
    code: str
    text: str
    missing_text: str
    best: int

    def bin_points(self, value: object) -> tuple[int, bool]:
        """The points of ``value``'s bin, and whether it was missing."""
        if value is None:
            return self.missing_points, True
        if self.kind == "categorical":
            index = self.categories.get(str(value))
            return (self.other_points if index is None else self.points[index]), False
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ScorecardError(f"{self.name} must be a number, not {value!r}")
        number = float(value)
        if math.isnan(number):
            return self.missing_points, True
        return self.points[bisect.bisect_right(self.edges, number)], False


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScorecardError(f"{where}: points must be integers")
    return value


def _feature(doc: Mapping[str, Any]) -> _Feature:
    name, kind = doc.get("name"), doc.get("kind")
    if not isinstance(name, str) or kind not in ("numeric", "categorical"):
        raise ScorecardError(f"feature {name!r}: a name and a kind (numeric or categorical) are required")
    bins = doc.get("bins")
    if not isinstance(bins, list) or not bins:
        raise ScorecardError(f"feature {name}: no bins")
    points = tuple(_int(b.get("points"), f"feature {name}") for b in bins)
    edges: tuple[float, ...] = ()
    categories: dict[str, int] = {}
    if kind == "numeric":
        edges = tuple(float(e) for e in doc.get("edges", []))
        if len(edges) != len(bins) - 1 or any(a >= b for a, b in itertools.pairwise(edges)):
            raise ScorecardError(f"feature {name}: needs len(bins) - 1 strictly increasing edges")
    else:
        for i, b in enumerate(bins):
            for value in b.get("values", []):
                if str(value) in categories:
                    raise ScorecardError(f"feature {name}: {value!r} is in two bins")
                categories[str(value)] = i
    missing = _int(doc.get("missing", {}).get("points", 0), f"feature {name} missing")
    other = _int(doc.get("other", {}).get("points", 0), f"feature {name} other")
    reason = doc.get("reason", {})
    candidates = [*points, missing] + ([other] if kind == "categorical" else [])
    return _Feature(name, kind, edges, categories, points, missing, other, str(reason.get("code", name.upper())),
                    str(reason.get("text", name)), str(reason.get("missing_text", reason.get("text", name))),
                    max(candidates))


@dataclass(frozen=True, slots=True)
class Scorecard:
    """A loaded scorecard: ``score`` features into points, a probability and reasons."""

    version: str
    intercept_points: int
    base_points: float
    base_odds: float
    pdo: float
    features: tuple[_Feature, ...]
    metrics: Mapping[str, Any]
    document: Mapping[str, Any]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Scorecard:
        """Validate and load a scorecard document (ScorecardError when it cannot be used)."""
        if doc.get("format") != FORMAT:
            raise ScorecardError(f"not a scorecard document (format must be {FORMAT!r})")
        scaling = doc.get("scaling", {})
        try:
            base_points, base_odds, pdo = (float(scaling["base_points"]), float(scaling["base_odds"]),
                                           float(scaling["pdo"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ScorecardError("scaling needs base_points, base_odds and pdo") from exc
        if base_odds <= 0 or pdo <= 0:
            raise ScorecardError("base_odds and pdo must be positive")
        features = tuple(_feature(f) for f in doc.get("features", []))
        if not features or len({f.name for f in features}) != len(features):
            raise ScorecardError("features must be a non-empty list of distinct names")
        return cls(str(doc.get("version", "")), _int(doc.get("intercept_points"), "intercept_points"), base_points,
                   base_odds, pdo, features, doc.get("metrics", {}), doc)

    @classmethod
    def from_json(cls, text: str | bytes) -> Scorecard:
        return cls.from_document(json.loads(text))

    def probability(self, points: int) -> float:
        """The probability of curing that ``points`` stand for on this scorecard's scaling."""
        factor = self.pdo / math.log(2)
        log_odds = (points - self.base_points) / factor + math.log(self.base_odds)
        return 1.0 / (1.0 + math.exp(-log_odds))

    def score(self, features: Mapping[str, object]) -> Scored:
        """Score one account. Absent or None features fall in their missing bin; unknown keys are ignored."""
        total = self.intercept_points
        lost: list[tuple[int, int, Reason]] = []
        for order, f in enumerate(self.features):
            points, missing = f.bin_points(features.get(f.name))
            total += points
            if points < f.best:
                reason = Reason(f.code, f.name, f.missing_text if missing else f.text, f.best - points)
                lost.append((-(f.best - points), order, reason))
        lost.sort(key=lambda item: (item[0], item[1]))
        return Scored(total, self.probability(total), tuple(r for _, _, r in lost[:3]))


def load_default() -> Scorecard:
    """The scorecard shipped with the package (services/segmentation/scorecards/default.json)."""
    text = resources.files("services.segmentation").joinpath("scorecards", "default.json").read_text("utf-8")
    return Scorecard.from_json(text)
