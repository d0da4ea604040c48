"""Segmentation policies (pure): a tenant's ordered rules, how a document is validated, and the classifier.

A policy document is JSON (docs/domain.md, "Segmentation policies")::

    {"rules": [{"name": "early-payers", "segment": "prime",
                "when": {"rating_in": ["A", "B", "C"], "dpd_max": 15,
                         "payments_in_last_days": {"days": 30, "min": 1}},
                "why": "paid recently and barely late"},
               {"name": "deep-arrears", "segment": "high_risk", "when": {"dpd_min": 61}}],
     "default": {"segment": "standard", "why": "no rule matched"}}

The rules are tried in order and the first whose conditions all hold decides; an absent condition matches any
account; when no rule matches, the mandatory ``default`` decides. A condition on a feature the account does not
have (no credit score, no propensity yet) does not hold. ``parse_document`` returns every reason a document cannot
be used, never only the first. ``BUILTIN`` is ``seg-v1`` (``segments.classify``) written as such a document: the
policy of every tenant that has published none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.segmentation.domain.segments import Classification, dpd_bucket
from shared.contracts.events import MAX_MINOR, Segment
from shared.documents import RuleOrder, compact_size

RATINGS = ("A", "B", "C", "D", "E")
SEGMENTS = tuple(s.value for s in Segment)
BUILTIN_LABEL = "seg-v1"

# Limits of a document (docs/domain.md, "Segmentation policies"): a policy is read on every batch, so it is small.
MAX_DOCUMENT_BYTES = 64 * 1024  # the document as compact UTF-8 JSON
MAX_RULES = 200
MAX_NAME = 64
MAX_WHY = 200
MAX_PRODUCTS = 100  # names in one product_in
MAX_PRODUCT = 64  # characters of a product name (as in the overdue contract)
MAX_WINDOW_DAYS = 3660  # payments_in_last_days: ten years at most
MAX_COUNT = 100_000  # payments_in_last_days min/max


@dataclass(frozen=True, slots=True)
class _RangeSpec:
    """A pair of ``<name>_min``/``<name>_max`` keys (``<name>_min_minor``... for money) on one feature."""

    name: str
    feature: str  # the attribute of ``Features``
    whole: bool  # whole numbers only (a probability may be a fraction)
    high: float  # the largest value a bound may take
    label: str  # how the feature reads in a reason
    unit: str = ""  # how a value reads in a reason
    low: float = 0  # the smallest value a bound may take (DPD: the days before a due date are negative)

    def keys(self) -> tuple[str, str]:
        if self.unit == " minor":
            return f"{self.name}_min_minor", f"{self.name}_max_minor"
        return f"{self.name}_min", f"{self.name}_max"


PRE_DUE_DAYS = 30  # an instalment announced up to this many days before its due date (negative DPD)
_RANGES = (
    _RangeSpec("score", "credit_score", True, 1000, "score"),
    _RangeSpec("propensity", "propensity", False, 1, "propensity"),
    _RangeSpec("dpd", "days_past_due", True, 36500, "DPD", low=-PRE_DUE_DAYS),
    _RangeSpec("overdue", "overdue_minor", True, MAX_MINOR, "overdue", " minor"),
    _RangeSpec("outstanding", "outstanding_minor", True, MAX_MINOR, "outstanding", " minor"),
    _RangeSpec("previous_cures", "previous_cures", True, 10_000, "previous cures"),
    _RangeSpec("tenure_days", "tenure_days", True, 36500, "tenure", " days"),
)
_RANGE_OF_KEY = {key: spec for spec in _RANGES for key in spec.keys()}
CONDITIONS = ("rating_in", "product_in", *(k for spec in _RANGES for k in spec.keys()), "payments_in_last_days")
_RULE_KEYS = ("name", "segment", "when", "why")
_DEFAULT_KEYS = ("segment", "why")
_WINDOW_KEYS = ("days", "min", "max")


@dataclass(frozen=True, slots=True)
class Features:
    """What the classifier reads about an account, at its snapshot's time ``as_of``. ``None``: not known (a
    condition on it does not hold): no credit score, no propensity (the scorecard is not built yet), or a feature
    the service did not load because the policy names no condition on it."""

    rating: str  # the worse of the credit rating and the rating of the credit score (``segments.rating_of``)
    days_past_due: int
    credit_score: int | None = None
    propensity: float | None = None  # repayment propensity, 0..1
    overdue_minor: int | None = None  # the snapshot's amounts as reported (at ``as_of``)
    outstanding_minor: int | None = None
    product: str | None = None
    as_of: datetime | None = None
    payment_times: tuple[datetime, ...] | None = None  # paid_at of the payments kept in the account's currency
    previous_cures: int | None = None
    tenure_days: int | None = None  # days since the account's first snapshot (by event time)

    def payments_within(self, days: int) -> int | None:
        """Payments booked within ``days`` days before ``as_of``: paid_at in [as_of - days, as_of]. A payment
        after ``as_of`` never counts (strictly by event time)."""
        if self.as_of is None or self.payment_times is None:
            return None
        start = self.as_of - timedelta(days=days)
        return sum(1 for t in self.payment_times if start <= t <= self.as_of)


@dataclass(frozen=True, slots=True)
class Bound:
    """``low <= feature <= high`` (either side may be open)."""

    spec: _RangeSpec
    low: float | None
    high: float | None

    def holds(self, value: float | None) -> bool:
        return value is not None and (self.low is None or value >= self.low) and (
            self.high is None or value <= self.high)


@dataclass(frozen=True, slots=True)
class PaymentWindow:
    """``payments_in_last_days``: between ``low`` and ``high`` payments within ``days`` days before ``as_of``."""

    days: int
    low: int | None
    high: int | None

    def holds(self, features: Features) -> bool:
        n = features.payments_within(self.days)
        return n is not None and (self.low is None or n >= self.low) and (self.high is None or n <= self.high)


@dataclass(frozen=True, slots=True)
class Conditions:
    """A rule's conditions; every one must hold. None of them: the rule matches every account."""

    rating_in: frozenset[str] | None = None
    product_in: frozenset[str] | None = None
    bounds: tuple[Bound, ...] = ()
    payments: PaymentWindow | None = None

    @property
    def unconditional(self) -> bool:
        return self.rating_in is None and self.product_in is None and not self.bounds and self.payments is None

    def holds(self, f: Features) -> bool:
        return ((self.rating_in is None or f.rating in self.rating_in)
                and (self.product_in is None or (f.product is not None and f.product in self.product_in))
                and all(b.holds(getattr(f, b.spec.feature)) for b in self.bounds)
                and (self.payments is None or self.payments.holds(f)))

    def features(self) -> frozenset[str]:
        """The features these conditions read (names of ``Features`` attributes; ``payments`` for the window)."""
        used = {b.spec.feature for b in self.bounds}
        if self.product_in is not None:
            used.add("product")
        if self.payments is not None:
            used.add("payments")
        return frozenset(used)

    def facts(self, f: Features) -> list[str]:
        """What the account has of the features these conditions test beyond rating and DPD, for a reason."""
        out = []
        for b in self.bounds:
            if b.spec.feature == "days_past_due":
                continue
            value = getattr(f, b.spec.feature)
            shown = "unknown" if value is None else f"{_show(value)}{b.spec.unit}"
            out.append(f"{b.spec.label} {shown}")
        if self.product_in is not None:
            out.append(f"product {f.product or 'unknown'}")
        if self.payments is not None:
            n = f.payments_within(self.payments.days)
            out.append(f"{'unknown' if n is None else n} payments in {self.payments.days} days")
        return out


def _show(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    segment: Segment
    when: Conditions
    why: str = ""


@dataclass(frozen=True, slots=True)
class SegmentationPolicy:
    """A parsed, valid policy. ``version`` 0 is the built-in ``seg-v1``."""

    version: int
    rules: tuple[Rule, ...]
    default: Segment
    default_why: str = ""

    @property
    def label(self) -> str:
        """How reasons name the policy: ``seg-v1`` (built in) or ``policy-v<version>`` (the tenant's)."""
        return label_of(self.version)

    def features(self) -> frozenset[str]:
        """Every feature some rule reads (the service loads only these beyond rating, DPD and the snapshot)."""
        return frozenset().union(*(r.when.features() for r in self.rules))


def label_of(version: int) -> str:
    return BUILTIN_LABEL if version == 0 else f"policy-v{version}"


def classify_with(policy: SegmentationPolicy, features: Features) -> Classification:
    """The first rule whose conditions hold decides, else the default; the reason names the policy version, the
    rule, the account's rating and DPD, the other features the rule tested, and why."""
    head = f"rating {features.rating}, DPD {features.days_past_due}"
    for rule in policy.rules:
        if rule.when.holds(features):
            facts = ", ".join([head, *rule.when.facts(features)])
            reason = f"{policy.label}: rule {rule.name}: {facts}" + (f": {rule.why}" if rule.why else "")
            return Classification(rule.segment, dpd_bucket(features.days_past_due), features.rating, reason,
                                  policy.version, rule.name)
    reason = f"{policy.label}: default: {head}" + (f": {policy.default_why}" if policy.default_why else "")
    return Classification(policy.default, dpd_bucket(features.days_past_due), features.rating, reason,
                          policy.version, None)


# --- parsing and validation ----------------------------------------------------------------------------------------


def parse_document(document: Any, *, version: int) -> tuple[SegmentationPolicy | None, list[str]]:
    """The policy a document describes and every reason it cannot be used (then the policy is None).

    Refused: a document over ``MAX_DOCUMENT_BYTES`` (not read further), an unknown field, rule key or condition,
    an unknown segment or rating, a missing default, a rule without a name or segment, two rules of one name,
    more than ``MAX_RULES`` rules, a bound of the wrong type, negative or over its limit, a minimum over its
    maximum, an empty ``rating_in``/``product_in``, and a rule that can never match because an earlier rule has
    no conditions."""
    if not isinstance(document, Mapping):
        return None, ["the document must be a JSON object with 'rules' and 'default'"]
    size = compact_size(document)
    if size > MAX_DOCUMENT_BYTES:
        return None, [f"the document is {size} bytes, over the limit of {MAX_DOCUMENT_BYTES} bytes (64 KB)"]
    errors = [f"unknown field {k!r} (one of: default, rules)" for k in sorted(map(str, document))
              if k not in ("rules", "default")]
    rules: list[Rule] = []
    raw_rules = document.get("rules", [])
    if not isinstance(raw_rules, list):
        errors.append("rules must be a list of rules (it may be empty)")
        raw_rules = []
    if len(raw_rules) > MAX_RULES:
        errors.append(f"{len(raw_rules)} rules, over the limit of {MAX_RULES}")
    order = RuleOrder()
    for i, raw in enumerate(raw_rules):
        rule, wrong = _rule(raw, f"rules[{i}]")
        errors += wrong
        repeated, shadowed_by = order.see(i, raw, unconditional=isinstance(raw, Mapping)
                                          and raw.get("when", {}) == {})
        errors += repeated
        if shadowed_by is not None:
            errors.append(f"{_named(raw_rules, i)} can never match: {_named(raw_rules, shadowed_by)} before it has "
                          f"no conditions and matches every account")
        if rule is not None:
            rules.append(rule)
    default, default_why, wrong = _default(document.get("default"))
    errors += wrong
    if errors or default is None:
        return None, errors
    return SegmentationPolicy(version, tuple(rules), default, default_why), []


def _named(rules: list[Any], i: int) -> str:
    name = rules[i].get("name") if isinstance(rules[i], Mapping) else None
    return f"rules[{i}] {name!r}" if isinstance(name, str) and name else f"rules[{i}]"


def _text(value: Any, where: str, *, limit: int, required: bool) -> tuple[str, list[str]]:
    if value is None:
        return "", [f"{where} is required"] if required else []
    if not isinstance(value, str):
        return "", [f"{where} must be text, not {_json(value)}"]
    if required and not value.strip():
        return "", [f"{where} must not be blank"]
    if len(value) > limit:
        return "", [f"{where} is {len(value)} characters, over the limit of {limit}"]
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "", [f"{where} must not contain control characters"]
    return value, []


def _segment(value: Any, where: str) -> tuple[Segment | None, list[str]]:
    if value is None:
        return None, [f"{where} is required (one of: {', '.join(SEGMENTS)})"]
    if not isinstance(value, str) or value not in SEGMENTS:
        return None, [f"{where}: unknown segment {_json(value)} (one of: {', '.join(SEGMENTS)})"]
    return Segment(value), []


def _rule(raw: Any, where: str) -> tuple[Rule | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"{where} must be an object with name, segment, when and why"]
    name, errors = _text(raw.get("name"), "name", limit=MAX_NAME, required=True)
    if name == "default":
        errors.append("the name 'default' is reserved for the policy's default")
    errors += [f"unknown key {k!r} (one of: {', '.join(_RULE_KEYS)})" for k in sorted(map(str, raw))
               if k not in _RULE_KEYS]
    segment, wrong = _segment(raw.get("segment"), "segment")
    errors += wrong
    why, wrong = _text(raw.get("why"), "why", limit=MAX_WHY, required=False)
    errors += wrong
    when, wrong = _conditions(raw.get("when", {}), "when")
    errors += wrong
    if errors or segment is None or when is None:
        where = f"{where} {name!r}" if name else where
        return None, [f"{where}: {e}" for e in errors]
    return Rule(name, segment, when, why), []


def _default(raw: Any) -> tuple[Segment | None, str, list[str]]:
    if raw is None:
        return None, "", ["default is required: the segment of an account no rule matches, e.g. "
                          '{"segment": "standard", "why": "no rule matched"}']
    if isinstance(raw, str):
        segment, errors = _segment(raw, "default")
        return segment, "", errors
    if not isinstance(raw, Mapping):
        return None, "", ["default must be an object {\"segment\": ..., \"why\": ...} or a segment"]
    errors = [f"default: unknown key {k!r} (one of: segment, why)" for k in sorted(map(str, raw))
              if k not in _DEFAULT_KEYS]
    segment, wrong = _segment(raw.get("segment"), "default.segment")
    why, more = _text(raw.get("why"), "default.why", limit=MAX_WHY, required=False)
    return segment, why, errors + wrong + more


def _conditions(raw: Any, where: str) -> tuple[Conditions | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"{where} must be an object of conditions"]
    errors = [f"{where}: unknown condition {k!r} (one of: {', '.join(CONDITIONS)})" for k in sorted(map(str, raw))
              if k not in CONDITIONS]
    ratings, wrong = _names(raw.get("rating_in"), f"{where}.rating_in", known=RATINGS)
    errors += wrong
    products, wrong = _names(raw.get("product_in"), f"{where}.product_in", known=None)
    errors += wrong
    bounds = []
    for spec in _RANGES:
        low_key, high_key = spec.keys()
        low, wrong = _number(raw.get(low_key), f"{where}.{low_key}", spec)
        high, more = _number(raw.get(high_key), f"{where}.{high_key}", spec)
        errors += wrong + more
        if low is not None and high is not None and low > high:
            errors.append(f"{where}: {low_key} {_show(low)} is greater than {high_key} {_show(high)} "
                          f"(no account could match)")
        elif low is not None or high is not None:
            bounds.append(Bound(spec, low, high))
    window, wrong = _window(raw.get("payments_in_last_days"), f"{where}.payments_in_last_days")
    errors += wrong
    if errors:
        return None, errors
    return Conditions(ratings, products, tuple(bounds), window), []


def _names(value: Any, where: str, *, known: Sequence[str] | None) -> tuple[frozenset[str] | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None, [f"{where} must be a list of names"]
    if not value:
        return None, [f"{where} is empty: no account could match (leave it out to match any)"]
    errors = []
    if known is not None:
        errors += [f"{where}: unknown rating {v!r} (one of: {', '.join(known)})" for v in value if v not in known]
    else:
        if len(value) > MAX_PRODUCTS:
            errors.append(f"{where} names {len(value)} products, over the limit of {MAX_PRODUCTS}")
        errors += [f"{where}: {v!r} is not a product name (1 to {MAX_PRODUCT} characters, no control characters)"
                   for v in value if not 0 < len(v) <= MAX_PRODUCT or any(ord(c) < 32 or ord(c) == 127 for c in v)]
    return (None, errors) if errors else (frozenset(value), [])


def _number(value: Any, where: str, spec: _RangeSpec) -> tuple[float | None, list[str]]:
    if value is None:
        return None, []
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, [f"{where} must be a number, not {_json(value)}"]
    if spec.whole and not isinstance(value, int):
        what = "whole minor units (never a decimal amount)" if spec.unit == " minor" else "a whole number"
        return None, [f"{where} must be {what}, not {_json(value)}"]
    if isinstance(value, float) and not math.isfinite(value):
        return None, [f"{where} must be a finite number"]
    if value < spec.low:
        if spec.low == 0:
            return None, [f"{where} must not be negative, not {_show(value)}"]
        return None, [f"{where} must be at least {_show(spec.low)} (the days before a due date), not {_show(value)}"]
    if value > spec.high:
        limit = "1 (a probability)" if spec.name == "propensity" else _show(spec.high)
        return None, [f"{where} is {_show(value)}, over the limit of {limit}"]
    return value, []


def _count(value: Any, where: str, *, low: int, high: int) -> tuple[int | None, list[str]]:
    if value is None:
        return None, []
    if isinstance(value, bool) or not isinstance(value, int):
        return None, [f"{where} must be a whole number, not {_json(value)}"]
    if value < 0:
        return None, [f"{where} must not be negative, not {value}"]
    if not low <= value <= high:
        return None, [f"{where} must be between {low} and {high}, not {value}"]
    return value, []


def _window(raw: Any, where: str) -> tuple[PaymentWindow | None, list[str]]:
    if raw is None:
        return None, []
    if not isinstance(raw, Mapping):
        return None, [f'{where} must be an object like {{"days": 30, "min": 1}}']
    errors = [f"{where}: unknown key {k!r} (one of: days, min, max)" for k in sorted(map(str, raw))
              if k not in _WINDOW_KEYS]
    days, wrong = _count(raw.get("days"), f"{where}.days", low=1, high=MAX_WINDOW_DAYS)
    errors += wrong
    if raw.get("days") is None:
        errors.append(f"{where}.days is required (1 to {MAX_WINDOW_DAYS})")
    low, wrong = _count(raw.get("min"), f"{where}.min", low=0, high=MAX_COUNT)
    errors += wrong
    high, more = _count(raw.get("max"), f"{where}.max", low=0, high=MAX_COUNT)
    errors += more
    if raw.get("min") is None and raw.get("max") is None:
        errors.append(f"{where} needs a min or a max (a number of payments)")
    if low is not None and high is not None and low > high:
        errors.append(f"{where}: min {low} is greater than max {high} (no account could match)")
    if errors or days is None:
        return None, errors
    return PaymentWindow(days, low, high), []


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the built-in policy -------------------------------------------------------------------------------------------

# seg-v1 (``segments.classify``, docs/domain.md "Segmentation") as a policy document: high-risk first (rating E,
# DPD over 90, rating D with DPD over 30), then prime (rating A/B with DPD up to 30), everything else standard.
BUILTIN_DOCUMENT: Mapping[str, Any] = {
    "rules": [
        {"name": "rating-e", "segment": "high_risk", "when": {"rating_in": ["E"]}, "why": "rating E"},
        {"name": "dpd-over-90", "segment": "high_risk", "when": {"dpd_min": 91}, "why": "DPD over 90"},
        {"name": "rating-d-dpd-over-30", "segment": "high_risk", "when": {"rating_in": ["D"], "dpd_min": 31},
         "why": "rating D with DPD over 30"},
        {"name": "prime", "segment": "prime", "when": {"rating_in": ["A", "B"], "dpd_max": 30},
         "why": "rating A/B with DPD up to 30"},
    ],
    "default": {"segment": "standard", "why": "neither prime nor high-risk"},
}


def _builtin() -> SegmentationPolicy:
    policy, errors = parse_document(BUILTIN_DOCUMENT, version=0)
    if policy is None:  # pragma: no cover - a unit test parses it too
        raise AssertionError(f"the built-in policy is invalid: {errors}")
    return policy


BUILTIN = _builtin()
