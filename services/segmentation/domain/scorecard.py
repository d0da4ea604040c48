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
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cached_property
from importlib import resources
from typing import Any

from shared.documents import compact_size

FORMAT = "gentle-collections/scorecard"
FEATURES = ("rating", "credit_score", "days_past_due", "overdue_ratio", "overdue_minor", "product",
            "payments_last_30d", "payments_last_90d", "previous_cures", "tenure_days")


class ScorecardError(ValueError):
    """A scorecard document that cannot be used (``errors``: every reason), or a value it cannot score."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or [message]


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


MAX_DOCUMENT_BYTES = 512 * 1024  # a scorecard as compact UTF-8 JSON (the shipped one is about 14 KB)
MAX_POINTS = 10_000  # |points| of the intercept or of one bin, so that a score fits the event contract (±100,000)
MAX_BINS = 64
MAX_VALUES = 1_000  # categories of one categorical feature
MAX_TEXT = 200  # a reason's text
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RESERVED_VERSIONS = frozenset({"live"})  # GET /v1/scorecards/live


def _where(name: object) -> str:
    return f"feature {name!r}" if isinstance(name, str) else "a feature"


def _points(value: Any, where: str, errors: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{where}: points must be integers, not {_show(value)}")
        return 0
    if abs(value) > MAX_POINTS:
        errors.append(f"{where}: points {value} are beyond ±{MAX_POINTS}")
        return 0
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: Any, where: str, errors: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        errors.append(f"{where} must be a number, not {_show(value)}")
        return None
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        errors.append(f"{where} must be a finite number")
        return None
    return number


def _texts(doc: Mapping[str, Any], name: str, where: str, errors: list[str]) -> tuple[str, str, str]:
    reason = doc.get("reason", {})
    if not isinstance(reason, Mapping):
        errors.append(f"{where}: reason must be an object with code, text and missing_text")
        return name.upper(), name, name
    values = []
    for key, default in (("code", name.upper()), ("text", name), ("missing_text", reason.get("text", name))):
        value = reason.get(key, default)
        if not isinstance(value, str) or not value.strip() or len(value) > (32 if key == "code" else MAX_TEXT):
            errors.append(f"{where}: reason.{key} must be text of 1 to {32 if key == 'code' else MAX_TEXT} "
                          f"characters")
            value = str(default)
        elif any(ord(c) < 32 or ord(c) == 127 for c in value):
            errors.append(f"{where}: reason.{key} must not contain control characters")
        values.append(value)
    return values[0], values[1], values[2]


def _feature(doc: Any, errors: list[str]) -> _Feature | None:
    """One feature of a document, or None with the reasons it cannot be used appended to ``errors``."""
    if not isinstance(doc, Mapping):
        errors.append("every feature must be an object with name, kind and bins")
        return None
    before = len(errors)
    name, kind = doc.get("name"), doc.get("kind")
    where = _where(name)
    if not isinstance(name, str) or kind not in ("numeric", "categorical"):
        errors.append(f"{where}: a name and a kind (numeric or categorical) are required")
        return None
    if name not in FEATURES:
        errors.append(f"{where}: unknown feature (segmentation computes: {', '.join(FEATURES)})")
    bins = doc.get("bins")
    if not isinstance(bins, list) or not bins:
        errors.append(f"{where}: no bins")
        return None
    if len(bins) > MAX_BINS:
        errors.append(f"{where}: {len(bins)} bins, over the limit of {MAX_BINS}")
    if not all(isinstance(b, Mapping) for b in bins):
        errors.append(f"{where}: every bin must be an object with points")
        return None
    points = tuple(_points(b.get("points"), where, errors) for b in bins)
    edges: tuple[float, ...] = ()
    categories: dict[str, int] = {}
    if kind == "numeric":
        raw_edges = doc.get("edges", [])
        if not isinstance(raw_edges, list):
            errors.append(f"{where}: edges must be a list of numbers")
            raw_edges = []
        found = [_finite(e, f"{where}: an edge", errors) for e in raw_edges]
        edges = tuple(e for e in found if e is not None)
        if len(edges) == len(found) and (
                len(edges) != len(bins) - 1 or any(a >= b for a, b in itertools.pairwise(edges))):
            errors.append(f"{where}: needs len(bins) - 1 strictly increasing edges")
    else:
        for i, b in enumerate(bins):
            values = b.get("values", [])
            if not isinstance(values, list) or not all(isinstance(v, str | int) and not isinstance(v, bool)
                                                       for v in values):
                errors.append(f"{where}: a bin's values must be a list of categories")
                continue
            for value in values:
                if str(value) in categories:
                    errors.append(f"{where}: {value!r} is in two bins")
                categories[str(value)] = i
        if len(categories) > MAX_VALUES:
            errors.append(f"{where}: {len(categories)} categories, over the limit of {MAX_VALUES}")
    extra = {}
    for key in ("missing", "other"):
        part = doc.get(key, {})
        if not isinstance(part, Mapping):
            errors.append(f"{where}: {key} must be an object with points")
            part = {}
        extra[key] = _points(part.get("points", 0), f"{where} {key}", errors)
    code, text, missing_text = _texts(doc, name, where, errors)
    if len(errors) > before:
        return None
    candidates = [*points, extra["missing"]] + ([extra["other"]] if kind == "categorical" else [])
    return _Feature(name, kind, edges, categories, points, extra["missing"], extra["other"], code, text,
                    missing_text, max(candidates))


MAX_DEPTH = 32  # a scorecard document is a few levels deep: anything deeper is refused, never walked recursively


def _non_finite(value: Any) -> bool:
    """Whether a non-finite number (NaN, infinity) hides anywhere in the document; a document nested deeper than
    ``MAX_DEPTH`` counts as such (walked without recursion, so depth never costs the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                return True
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def problems(doc: Any) -> tuple[Scorecard | None, list[str]]:
    """The scorecard a document describes and every reason it cannot be used (then the scorecard is None)."""
    if not isinstance(doc, Mapping):
        return None, ["a scorecard document must be a JSON object"]
    size = compact_size(doc)
    if size > MAX_DOCUMENT_BYTES:
        return None, [f"the document is {size} bytes, over the limit of {MAX_DOCUMENT_BYTES} bytes"]
    if doc.get("format") != FORMAT:
        return None, [f"not a scorecard document (format must be {FORMAT!r})"]
    errors: list[str] = []
    if _non_finite(doc):
        errors.append("the document holds a number that is not finite (NaN or infinity)")
    version = doc.get("version")
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        errors.append(f"version must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a "
                      f"digit, not {_show(version)}")
    elif version in RESERVED_VERSIONS:
        errors.append(f"version {version!r} is reserved")
    scaling = doc.get("scaling", {})
    base_points = base_odds = pdo = 0.0
    if not isinstance(scaling, Mapping) or any(k not in scaling for k in ("base_points", "base_odds", "pdo")):
        errors.append("scaling needs base_points, base_odds and pdo")
    else:
        found = [_finite(scaling[k], f"scaling.{k}", errors) for k in ("base_points", "base_odds", "pdo")]
        if all(f is not None for f in found):
            base_points, base_odds, pdo = (float(f) for f in found)  # type: ignore[arg-type]
            if base_odds <= 0 or pdo <= 0:
                errors.append("base_odds and pdo must be positive")
    intercept = _points(doc.get("intercept_points"), "intercept_points", errors)
    raw = doc.get("features", [])
    if not isinstance(raw, list) or not raw:
        errors.append("features must be a non-empty list of distinct names")
        raw = []
    features = [_feature(f, errors) for f in raw]
    names = [f.get("name") for f in raw if isinstance(f, Mapping)]
    if len(set(map(str, names))) != len(names):
        errors.append("features must be a non-empty list of distinct names")
    metrics = doc.get("metrics", {})
    if not isinstance(metrics, Mapping):
        errors.append("metrics must be an object")
    if errors:
        return None, errors
    loaded = tuple(f for f in features if f is not None)
    return Scorecard(str(version), intercept, base_points, base_odds, pdo, loaded, metrics, doc), []


@dataclass(frozen=True)
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
        """Validate and load a scorecard document (ScorecardError, with every reason, when it cannot be used)."""
        card, errors = problems(doc)
        if card is None:
            raise ScorecardError("; ".join(errors), errors)
        return card

    @cached_property
    def uses(self) -> frozenset[str]:
        """The features worth points (a bin, the missing or the other bin not 0): only these need computing."""
        return frozenset(f.name for f in self.features
                         if any(f.points) or f.missing_points or (f.kind == "categorical" and f.other_points))

    @classmethod
    def from_json(cls, text: str | bytes) -> Scorecard:
        return cls.from_document(json.loads(text))

    def probability(self, points: int) -> float:
        """The probability of curing that ``points`` stand for on this scorecard's scaling."""
        factor = self.pdo / math.log(2)
        log_odds = (points - self.base_points) / factor + math.log(self.base_odds)
        if log_odds < -700:  # math.exp would overflow: the probability is 0 to any precision kept
            return 0.0
        return 1.0 / (1.0 + math.exp(-log_odds)) if log_odds < 700 else 1.0

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


PROBABILITY_PLACES = Decimal("0.0001")  # what is stored (NUMERIC(5,4)), published and compared by policies


def rounded(probability: float) -> Decimal:
    """A probability to the 4 decimal places it is stored, published and compared with (half to even)."""
    return Decimal(probability).quantize(PROBABILITY_PLACES, rounding=ROUND_HALF_EVEN)


def features_at(*, uses: Collection[str], as_of: datetime, credit_rating: str | None, credit_score: int | None,
                days_past_due: int, overdue_minor: int, outstanding_minor: int, product: str,
                payment_times: Iterable[datetime] = (), previous_cures: int | None = None) -> dict[str, object]:
    """The scorecard's features of an overdue snapshot at ``as_of``, defined as the training dataset defines them
    (``simulator/dataset.py`` ``features_at``; docs/scoring.md, "Where the score goes"), only those in ``uses``
    (the others are left out: they are worth no points). ``payment_times``: when the payments kept for the
    account in its currency were booked (any time: those after ``as_of`` never count). ``tenure_days`` is never
    given: segmentation does not know the opening date the training counted from, so it falls in its missing
    bin."""
    out: dict[str, object] = {}
    if "rating" in uses:
        out["rating"] = credit_rating  # as reported, as the dataset: not the worse of it and the score's rating
    if "credit_score" in uses:
        out["credit_score"] = credit_score
    if "days_past_due" in uses:
        out["days_past_due"] = days_past_due
    if "overdue_ratio" in uses:  # the dataset's 0 when nothing is outstanding
        out["overdue_ratio"] = float(overdue_ratio(overdue_minor, outstanding_minor) or 0)
    if "overdue_minor" in uses:
        out["overdue_minor"] = overdue_minor
    if "product" in uses:
        out["product"] = product
    if "payments_last_30d" in uses or "payments_last_90d" in uses:
        times = [t for t in payment_times if t <= as_of]
        for days in (30, 90):  # as_of - N days < paid_at <= as_of
            if f"payments_last_{days}d" in uses:
                start = as_of - timedelta(days=days)
                out[f"payments_last_{days}d"] = sum(1 for t in times if t > start)
    if "previous_cures" in uses:
        out["previous_cures"] = previous_cures
    return out
