"""The rule engine: which rules bind a contact (the packs a tenant's :class:`~.base.Policy` picks for the
contact's jurisdiction, the HOUSE pack always), their verdicts, and the decision.

- Any rule blocks: **blocked**; the first blocking rule (in evaluation order) decides.
- Else any rule defers: **deferred** to the earliest instant at which *every* rule allows. Each deferring rule
  names the earliest instant it alone would allow; the engine moves to the latest of those, evaluates every
  rule again there, and repeats until all allow (that instant is ``retry_at``) or one blocks (blocked). A
  rule defers only to an instant before which it does not allow (its own next change), so no instant skipped
  is one where every rule allows: the first instant reached where all allow is the earliest. The search is
  bounded (:data:`MAX_STEPS`); past it the contact is blocked with a reason saying so: the engine never loops.
- Else **approved**.

``Decision.evaluated`` holds every rule's verdict at ``now``, whatever the outcome.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from services.compliance.domain.rules import cn, house, uk, us
from services.compliance.domain.rules.base import ContactContext, Decision, Policy, RuleResult
from services.compliance.domain.rules.common import BaseRule, fmt

MAX_STEPS = 50
ENGINE = "ENGINE"

PACKS: Mapping[str, tuple[BaseRule, ...]] = {"CN": cn.RULES, "US": us.RULES, "UK": uk.RULES, "HOUSE": house.RULES}
RULES: Mapping[str, BaseRule] = {r.id: r for rules in PACKS.values() for r in rules}


def rules_for(ctx: ContactContext, policy: Policy) -> list[BaseRule]:
    """The rules binding ``ctx``: its jurisdiction's packs as the policy picks them (the pack named like the
    jurisdiction when the policy names none), then HOUSE. An unknown pack contributes nothing (see
    :func:`validate_policy`)."""
    picked = policy.packs.get(ctx.jurisdiction)
    if picked is None:
        picked = (ctx.jurisdiction,) if ctx.jurisdiction in PACKS else ()
    return list(_rules_of(tuple(PACKS.get(name, ()) for name in (*picked, "HOUSE"))))


@functools.lru_cache(maxsize=64)
def _rules_of(packs: tuple[tuple[BaseRule, ...], ...]) -> tuple[BaseRule, ...]:
    """The rules of these packs in order, each once."""
    chosen: list[BaseRule] = []
    for rules in packs:
        for rule in rules:
            if rule not in chosen:
                chosen.append(rule)
    return tuple(chosen)


def params_of(rule: BaseRule, policy: Policy) -> Any:
    return policy.params.get(rule.id) or _defaults(rule.params_type)


@functools.cache
def _defaults(params_type: type) -> Any:
    """A rule's default parameters (frozen dataclasses), built once."""
    return params_type()


def evaluate_all(ctx: ContactContext, at: datetime, rules: Iterable[BaseRule], policy: Policy) -> list[RuleResult]:
    return [rule.evaluate(ctx, at, params_of(rule, policy)) for rule in rules]


def decide(ctx: ContactContext, now: datetime, policy: Policy | None = None) -> Decision:
    """The decision on ``ctx`` at ``now`` (aware, UTC) under ``policy`` (default: the legal defaults)."""
    policy = policy or Policy()
    version = policy.version
    rules = rules_for(ctx, policy)
    if not any(r.pack != "HOUSE" for r in rules):
        return Decision("blocked", ENGINE, f"no rule pack for jurisdiction {ctx.jurisdiction!r}", None, [],
                        version)
    evaluated = evaluate_all(ctx, now, rules, policy)
    results, t = evaluated, now
    chain: list[RuleResult] = []  # the deferral that moved the instant on, at each step
    for _ in range(MAX_STEPS):
        if blocked := [r for r in results if r.verdict == "block"]:
            first = blocked[0]
            reason = first.reason if t == now else (f"at {fmt(t, ctx.time_zone)}, the earliest the other rules "
                                                    f"allow: {first.reason}")
            return Decision("blocked", first.rule_id, reason, None, evaluated, version)
        deferred = [r for r in results if r.verdict == "defer"]
        if not deferred:
            if not chain:
                return Decision("approved", "-", "all rules allow", None, evaluated, version)
            reason = "; then ".join([chain[0].reason, *(f"{r.rule_id}: {r.reason}" for r in chain[1:])])
            if len(chain) > 1:
                reason += f"; every rule allows from {fmt(t, ctx.time_zone)}"
            return Decision("deferred", chain[0].rule_id, reason, t, evaluated, version)
        bad = [r for r in deferred if r.retry_at is None or r.retry_at <= t]
        if bad:
            return Decision("blocked", bad[0].rule_id, f"{bad[0].rule_id} deferred without a later instant to retry "
                            f"({bad[0].reason})", None, evaluated, version)
        latest = max(deferred, key=lambda r: r.retry_at or t)
        chain.append(latest)
        t = latest.retry_at or t
        results = evaluate_all(ctx, t, rules, policy)
    return Decision("blocked", ENGINE, f"no instant at which every rule allows within {MAX_STEPS} steps "
                    f"(last tried {fmt(t, ctx.time_zone)})", None, evaluated, version)


# --- policy -------------------------------------------------------------------------------------------------


def _type_errors(rule: BaseRule, params: Any) -> list[str]:
    """Fields whose values are not of the default's type (bool is not an int; a mapping stays a mapping)."""
    errors = []
    hints = typing.get_type_hints(rule.params_type)
    default = rule.params_type()
    for f in dataclasses.fields(default):
        value, expected = getattr(params, f.name), getattr(default, f.name)
        if isinstance(expected, bool) or isinstance(value, bool):
            ok = type(value) is type(expected)
        elif isinstance(expected, int):
            ok = isinstance(value, int) and value >= 0
        elif isinstance(expected, time):
            ok = isinstance(value, time) and value.tzinfo is None
        elif isinstance(expected, Mapping):
            key_t, value_t = typing.get_args(hints[f.name])
            ok = isinstance(value, Mapping) and all(isinstance(k, key_t) and isinstance(v, value_t)
                                                    and not isinstance(v, bool) and v >= 0 for k, v in value.items())
        else:
            ok = isinstance(value, type(expected))
        if not ok:
            errors.append(f"{rule.id}: {f.name} must be like {expected!r}, not {value!r}")
    return errors


def validate_policy(policy: Policy) -> list[str]:
    """Why ``policy`` cannot be used (empty: it can): unknown packs or rules, parameters of the wrong type,
    windows that do not start before they end or reach outside the legal window, and anything a rule's
    ``loosens`` finds."""
    errors = []
    for jurisdiction, packs in policy.packs.items():
        for pack in packs:
            if pack not in PACKS or pack == "HOUSE":
                errors.append(f"{jurisdiction}: unknown pack {pack!r}" if pack not in PACKS
                              else f"{jurisdiction}: HOUSE always applies, do not list it")
    for rule_id, params in policy.params.items():
        rule = RULES.get(rule_id)
        if rule is None:
            errors.append(f"unknown rule {rule_id!r}")
            continue
        if type(params) is not rule.params_type:
            errors.append(f"{rule_id}: parameters must be a {rule.params_type.__name__}, not "
                          f"{type(params).__name__}")
            continue
        if wrong := _type_errors(rule, params):
            errors += wrong
            continue
        errors += rule.loosens(params)
    return errors


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A rule as people and a future REST listing see it."""

    id: str
    pack: str
    channels: tuple[str, ...]
    source: str
    unverified: bool
    summary: str
    verify: str
    parameters: dict[str, str]


def rule_catalog() -> list[RuleInfo]:
    """Every rule of every pack, in evaluation order per pack, with its parameters' defaults."""
    return [RuleInfo(id=r.id, pack=r.pack, channels=tuple(sorted(c.value for c in r.channels)), source=r.source,
                     unverified=r.unverified, summary=r.summary, verify=r.verify,
                     parameters={f.name: _show(getattr(r.params_type(), f.name))
                                 for f in dataclasses.fields(r.params_type())})
            for rules in PACKS.values() for r in rules]


def _show(value: Any) -> str:
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, Mapping):
        return ", ".join(f"{getattr(k, 'value', k)}: {v}" for k, v in value.items())
    return str(value)
