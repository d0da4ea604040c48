"""Plan policies (pure): what a tenant lets its agents offer an overdue customer, and who must approve what.

A policy document is JSON (docs/plans.md, "Negotiation")::

    {"rules": [{"name": "high-risk-cards",
                "when": {"segment_in": ["high_risk"], "product_in": ["card"]},
                "offers": {"instalments": {"max_months": 12, "min_instalment_minor": 10000},
                           "deferral": {"max_days": 30},
                           "waiver": {"max_percent": 20, "max_months": 3},
                           "settlement": {"min_percent": 70}},
                "authority": {"agent": {"max_months": 6, "max_deferral_days": 14, "max_write_off_percent": 5},
                              "co_lender_above_percent": 10},
                "first_due_days": 7,
                "affordability_percent": 50}]}

The rules are tried in order and the first whose conditions all hold decides (an absent condition matches any
account; a ``segment_in`` does not hold for an account not segmented yet). An offer kind left out is not offered.
Percentages are whole or decimal numbers (at most two decimals), kept as basis points. Everything beyond the
agent's authority needs a supervisor; a write-off above ``co_lender_above_percent`` of what is owed also needs
each co-lender of the account (``domain/approvals.py``). ``parse_policy`` returns every reason a document cannot
be used; ``DEFAULT`` is the policy of a tenant that has published none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.contracts.events import MAX_MINOR, Segment
from shared.documents import RuleOrder, compact_size
from shared.domain import Refused

SEGMENTS = tuple(s.value for s in Segment)
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_RULES = 100
MAX_NAME = 64
MAX_PRODUCTS = 100
MAX_PRODUCT = 64
MAX_MONTHS = 60  # as a plan's instalments (domain/schedule.py MAX_INSTALMENTS)
MAX_DAYS = 365
BASIS = 10_000

_RULE_KEYS = ("name", "when", "offers", "authority", "first_due_days", "affordability_percent")
_WHEN_KEYS = ("segment_in", "product_in")
_OFFER_KEYS = ("instalments", "deferral", "waiver", "settlement")
_AUTHORITY_KEYS = ("agent", "co_lender_above_percent")
_AGENT_KEYS = ("max_months", "max_deferral_days", "max_write_off_percent")


class PolicyRefused(Refused):
    """A plan policy that cannot be used: every reason, nothing stored."""

    title = "Plan policy refused"


@dataclass(frozen=True, slots=True)
class InstalmentTerms:
    max_months: int  # 2..max_months equal monthly instalments
    min_instalment_minor: int = 0


@dataclass(frozen=True, slots=True)
class DeferralTerms:
    max_days: int  # one payment of what is overdue, up to this many days from today


@dataclass(frozen=True, slots=True)
class WaiverTerms:
    max_bp: int  # of the overdue amount
    max_months: int = 1  # paid in one, or in up to this many monthly instalments


@dataclass(frozen=True, slots=True)
class SettlementTerms:
    min_bp: int  # of the outstanding balance, paid in one


@dataclass(frozen=True, slots=True)
class AgentAuthority:
    """What an agent (or a partner system, or the customer on the portal) may agree without a supervisor."""

    max_months: int = 0
    max_deferral_days: int = 0
    max_write_off_bp: int = 0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    segments: frozenset[str] | None = None
    products: frozenset[str] | None = None
    instalments: InstalmentTerms | None = None
    deferral: DeferralTerms | None = None
    waiver: WaiverTerms | None = None
    settlement: SettlementTerms | None = None
    agent: AgentAuthority = AgentAuthority()
    co_lender_above_bp: int | None = None  # None: co-lenders never approve
    first_due_days: int = 7
    affordability_bp: int = 5_000

    def matches(self, *, segment: str | None, product: str | None) -> bool:
        return ((self.segments is None or (segment is not None and segment in self.segments))
                and (self.products is None or (product is not None and product in self.products)))


@dataclass(frozen=True, slots=True)
class PlanPolicy:
    """A parsed, valid policy; ``version`` 0 is the built-in default."""

    version: int
    rules: tuple[Rule, ...]

    def rule_for(self, *, segment: str | None, product: str | None) -> Rule | None:
        """The first rule whose conditions hold, or None."""
        return next((r for r in self.rules if r.matches(segment=segment, product=product)), None)


# --- parsing -------------------------------------------------------------------------------------------------------


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _unknown(raw: Mapping[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}: unknown key {k!r} (one of: {', '.join(known)})" for k in sorted(map(str, raw))
            if k not in known]


def _whole(value: Any, where: str, *, low: int, high: int, required: bool = False) -> tuple[int | None, list[str]]:
    if value is None:
        return None, [f"{where} is required ({low} to {high})"] if required else []
    if isinstance(value, bool) or not isinstance(value, int):
        return None, [f"{where} must be a whole number, not {_json(value)}"]
    if not low <= value <= high:
        return None, [f"{where} must be between {low} and {high}, not {value}"]
    return value, []


def _percent(value: Any, where: str, *, required: bool = False, low: int = 0) -> tuple[int | None, list[str]]:
    """A percentage (0-100, at most two decimals) as basis points."""
    if value is None:
        return None, [f"{where} is required (a percentage, 0 to 100)"] if required else []
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, [f"{where} must be a percentage (a number 0 to 100), not {_json(value)}"]
    try:
        percent = Decimal(str(value).strip())
    except InvalidOperation:
        return None, [f"{where} must be a percentage (a number 0 to 100), not {_json(value)}"]
    if not percent.is_finite() or not Decimal(low) / 100 <= percent <= 100:
        return None, [f"{where} must be between {Decimal(low) / 100:g} and 100, not {_json(value)}"]
    # exactly, digit by digit: Decimal arithmetic rounds to 28 digits ("4.99999999999999999999999999999" would
    # become 500 bp) and underflows to 0 ("1e-999999999999999999")
    _, digits, exponent = percent.as_tuple()
    if not any(digits):
        return 0, []
    shift = int(exponent) + 2  # at most 4: the value is at most 100
    if shift >= 0:
        return int("".join(map(str, digits))) * 10**shift, []
    if -shift >= len(digits) or any(digits[shift:]):
        return None, [f"{where} has more than two decimals: {_json(value)}"]
    return int("".join(map(str, digits[:shift]))), []


def _names(value: Any, where: str, *, known: tuple[str, ...] | None) -> tuple[frozenset[str] | None, list[str]]:
    if value is None:
        return None, []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None, [f"{where} must be a list of names"]
    if not value:
        return None, [f"{where} is empty: no account could match (leave it out to match any)"]
    if known is not None:
        errors = [f"{where}: unknown segment {v!r} (one of: {', '.join(known)})" for v in value if v not in known]
    else:
        errors = [f"{where} names {len(value)} products, over the limit of {MAX_PRODUCTS}"] \
            if len(value) > MAX_PRODUCTS else []
        errors += [f"{where}: {_json(v)} is not a product name (1 to {MAX_PRODUCT} characters, no control "
                   "characters)" for v in value
                   if not 0 < len(v) <= MAX_PRODUCT or any(ord(c) < 32 or ord(c) == 127 for c in v)]
    return (None, errors) if errors else (frozenset(value), [])


def _object(raw: Any, where: str, known: tuple[str, ...]) -> tuple[Mapping[str, Any] | None, list[str]]:
    if raw is None:
        return None, []
    if not isinstance(raw, Mapping):
        return None, [f"{where} must be an object with some of: {', '.join(known)}"]
    return raw, _unknown(raw, known, where)


def _offers(raw: Any, where: str) -> tuple[dict[str, Any], list[str]]:
    offers, errors = _object(raw, where, _OFFER_KEYS)
    out: dict[str, Any] = {}
    if offers is None:
        return out, errors + ([] if raw is not None else [f"{where} is required: at least one of "
                                                            f"{', '.join(_OFFER_KEYS)}"])
    if not any(k in offers for k in _OFFER_KEYS):
        errors.append(f"{where} offers nothing: give at least one of {', '.join(_OFFER_KEYS)}")
    raw_i, wrong = _object(offers.get("instalments"), f"{where}.instalments",
                           ("max_months", "min_instalment_minor"))
    errors += wrong
    if raw_i is not None:
        months, e1 = _whole(raw_i.get("max_months"), f"{where}.instalments.max_months", low=2, high=MAX_MONTHS,
                            required=True)
        minimum, e2 = _whole(raw_i.get("min_instalment_minor"), f"{where}.instalments.min_instalment_minor",
                             low=0, high=MAX_MINOR)
        errors += e1 + e2
        if months is not None and not e2:
            out["instalments"] = InstalmentTerms(months, minimum or 0)
    raw_d, wrong = _object(offers.get("deferral"), f"{where}.deferral", ("max_days",))
    errors += wrong
    if raw_d is not None:
        days, e = _whole(raw_d.get("max_days"), f"{where}.deferral.max_days", low=1, high=MAX_DAYS, required=True)
        errors += e
        if days is not None:
            out["deferral"] = DeferralTerms(days)
    raw_w, wrong = _object(offers.get("waiver"), f"{where}.waiver", ("max_percent", "max_months"))
    errors += wrong
    if raw_w is not None:
        bp, e1 = _percent(raw_w.get("max_percent"), f"{where}.waiver.max_percent", required=True, low=1)
        months, e2 = _whole(raw_w.get("max_months"), f"{where}.waiver.max_months", low=1, high=MAX_MONTHS)
        errors += e1 + e2
        if bp is not None and not e2:
            out["waiver"] = WaiverTerms(bp, months or 1)
    raw_s, wrong = _object(offers.get("settlement"), f"{where}.settlement", ("min_percent",))
    errors += wrong
    if raw_s is not None:
        bp, e = _percent(raw_s.get("min_percent"), f"{where}.settlement.min_percent", required=True, low=1)
        errors += e
        if bp is not None:
            out["settlement"] = SettlementTerms(bp)
    return out, errors


def _authority(raw: Any, where: str) -> tuple[AgentAuthority, int | None, list[str]]:
    authority, errors = _object(raw, where, _AUTHORITY_KEYS)
    if authority is None:
        return AgentAuthority(), None, errors
    agent, wrong = _object(authority.get("agent"), f"{where}.agent", _AGENT_KEYS)
    errors += wrong
    limits = AgentAuthority()
    if agent is not None:
        months, e1 = _whole(agent.get("max_months"), f"{where}.agent.max_months", low=0, high=MAX_MONTHS)
        days, e2 = _whole(agent.get("max_deferral_days"), f"{where}.agent.max_deferral_days", low=0, high=MAX_DAYS)
        bp, e3 = _percent(agent.get("max_write_off_percent"), f"{where}.agent.max_write_off_percent")
        errors += e1 + e2 + e3
        limits = AgentAuthority(months or 0, days or 0, bp or 0)
    co_lender, wrong = _percent(authority.get("co_lender_above_percent"), f"{where}.co_lender_above_percent")
    return limits, co_lender, errors + wrong


def _rule(raw: Any, where: str) -> tuple[Rule | None, list[str]]:
    if not isinstance(raw, Mapping):
        return None, [f"{where} must be an object with name, when, offers and authority"]
    errors = _unknown(raw, _RULE_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME or any(
            ord(c) < 32 or ord(c) == 127 for c in name):
        errors.append(f"{where}.name is required: 1 to {MAX_NAME} characters, no control characters, not "
                      f"{_json(name)}")
        name = ""
    when, wrong = _object(raw.get("when", {}), f"{where}.when", _WHEN_KEYS)
    errors += wrong
    segments, products = None, None
    if when is not None:
        segments, wrong = _names(when.get("segment_in"), f"{where}.when.segment_in", known=SEGMENTS)
        errors += wrong
        products, wrong = _names(when.get("product_in"), f"{where}.when.product_in", known=None)
        errors += wrong
    offers, wrong = _offers(raw.get("offers"), f"{where}.offers")
    errors += wrong
    agent, co_lender, wrong = _authority(raw.get("authority"), f"{where}.authority")
    errors += wrong
    first_due, wrong = _whole(raw.get("first_due_days"), f"{where}.first_due_days", low=0, high=90)
    errors += wrong
    share, wrong = _percent(raw.get("affordability_percent"), f"{where}.affordability_percent", low=1)
    errors += wrong
    if errors:
        return None, errors
    return Rule(name, segments, products, offers.get("instalments"), offers.get("deferral"), offers.get("waiver"),
                offers.get("settlement"), agent, co_lender, 7 if first_due is None else first_due,
                5_000 if share is None else share), []


def _unconditional(when: Any) -> bool:
    """Whether a rule's ``when`` matches every account: absent, empty, or every condition null."""
    return not when or (isinstance(when, Mapping) and all(when.get(k) is None for k in _WHEN_KEYS))


def parse_policy(document: Any, *, version: int) -> tuple[PlanPolicy | None, list[str]]:
    """The policy a document describes and every reason it cannot be used (then the policy is None)."""
    if not isinstance(document, Mapping):
        return None, ["the document must be a JSON object with 'rules'"]
    try:
        size = compact_size(document)
    except (RecursionError, TypeError, ValueError):
        return None, ["the document is nested too deep or is not JSON"]
    if size > MAX_DOCUMENT_BYTES:
        return None, [f"the document is {size} bytes, over the limit of {MAX_DOCUMENT_BYTES} bytes (64 KB)"]
    errors = [f"unknown field {k!r} (one of: rules)" for k in sorted(map(str, document)) if k != "rules"]
    raw_rules = document.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        return None, [*errors, "rules must be a non-empty list of rules"]
    if len(raw_rules) > MAX_RULES:
        return None, [*errors, f"{len(raw_rules)} rules, over the limit of {MAX_RULES}"]
    rules: list[Rule] = []
    order = RuleOrder()
    for i, raw in enumerate(raw_rules):
        rule, wrong = _rule(raw, f"rules[{i}]")
        errors += wrong
        repeated, shadowed_by = order.see(i, raw, unconditional=isinstance(raw, Mapping)
                                          and _unconditional(raw.get("when")))
        errors += repeated
        if shadowed_by is not None:
            errors.append(f"rules[{i}] can never match: rules[{shadowed_by}] before it has no conditions")
        if rule is not None:
            rules.append(rule)
    if errors:
        return None, errors
    return PlanPolicy(version, tuple(rules)), []


def require_policy(document: Any, *, version: int) -> PlanPolicy:
    """``parse_policy``, raising :class:`PolicyRefused` with every reason."""
    policy, errors = parse_policy(document, version=version)
    if policy is None:
        raise PolicyRefused(errors)
    return policy


# --- the built-in default ------------------------------------------------------------------------------------------

# Until a tenant publishes a policy: up to 12 monthly instalments of at least 100.00 (minor units of two-decimal
# currencies), a 30-day deferral, a waiver of up to 10% of the overdue amount (in one or up to 3 instalments), a
# settlement of at least 80% of the balance. An agent agrees up to 6 instalments, 14 days' deferral and no
# write-off; beyond that a supervisor; a write-off above 5% of what is owed also needs each co-lender.
DEFAULT_DOCUMENT: Mapping[str, Any] = {
    "rules": [{
        "name": "default",
        "offers": {"instalments": {"max_months": 12, "min_instalment_minor": 10_000},
                   "deferral": {"max_days": 30},
                   "waiver": {"max_percent": 10, "max_months": 3},
                   "settlement": {"min_percent": 80}},
        "authority": {"agent": {"max_months": 6, "max_deferral_days": 14, "max_write_off_percent": 0},
                      "co_lender_above_percent": 5},
        "first_due_days": 7,
        "affordability_percent": 50,
    }],
}
DEFAULT = require_policy(DEFAULT_DOCUMENT, version=0)
