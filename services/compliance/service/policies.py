"""Tenant policies (issue 7): which rule packs bind a tenant's customers and the parameters it tightens, as a
document the tenant publishes over REST, versioned and immutable once published.

A document is JSON::

    {"jurisdiction": "CN",                        # the tenant's customers' jurisdiction (default CN)
     "packs": {"CN": ["CN"]},                     # packs per jurisdiction (default: the one named like it)
     "params": {"CN-HOURS": {"start": "09:00", "end": "21:00"},
                "HOUSE-DUP": {"interval_days": {"sms": 2}}}}

Every parameter a document names is checked against the rule's parameter type and must not loosen the legal
default (:func:`~services.compliance.domain.rules.engine.validate_policy`): a refused document names each rule it
breaks and nothing is stored. Tenants without a published policy get the defaults, version 0.

The decision use case reads the current policy of a batch's tenants through ``CACHE`` (``shared/cache.py``: one
statement per batch at most; a policy published through this process applies to its next batch, one published
through another replica within ``ttl`` seconds).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db import repository as repo
from services.compliance.domain.rules import engine
from services.compliance.domain.rules.base import Policy
from shared.cache import TenantCache
from shared.contracts.events import Channel
from shared.domain import Refused

DEFAULT_JURISDICTION = "CN"
JURISDICTIONS = ("CN", "US", "UK")


class PolicyRefused(Refused):
    title = "Policy refused"


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    """A tenant's policy as the engine uses it, with the document it came from and who published it why."""

    tenant: str
    version: int
    jurisdiction: str
    policy: Policy
    document: Mapping[str, Any] = field(default_factory=dict)
    created_by: str | None = None
    reason: str | None = None
    created_at: datetime | None = None


def default_policy(tenant: str) -> TenantPolicy:
    return TenantPolicy(tenant=tenant, version=0, jurisdiction=DEFAULT_JURISDICTION, policy=Policy(),
                        document={"jurisdiction": DEFAULT_JURISDICTION, "packs": {}, "params": {}})


def parse_document(document: Mapping[str, Any], *, version: int) -> tuple[str, Policy, list[str]]:
    """The jurisdiction and :class:`Policy` a document describes, and every reason it cannot be used (empty: it
    can)."""
    errors: list[str] = []
    unknown = set(document) - {"jurisdiction", "packs", "params"}
    errors += [f"unknown field {name!r} (jurisdiction, packs, params)" for name in sorted(unknown)]
    jurisdiction = document.get("jurisdiction", DEFAULT_JURISDICTION)
    if jurisdiction not in JURISDICTIONS:
        errors.append(f"jurisdiction must be one of {', '.join(JURISDICTIONS)}, not {jurisdiction!r}")
    packs: dict[str, tuple[str, ...]] = dict(Policy().packs)
    given_packs = document.get("packs", {})
    if not isinstance(given_packs, Mapping):
        errors.append("packs must map a jurisdiction to a list of pack names")
    else:
        for where, names in given_packs.items():
            if where not in JURISDICTIONS:
                errors.append(f"packs: unknown jurisdiction {where!r}")
            elif not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                errors.append(f"packs: {where} must be a list of pack names")
            elif where not in names:
                errors.append(f"packs: {where} must include the {where} pack (the law of {where} customers cannot be "
                              f"dropped; other packs may be added to it)")
            else:
                packs[where] = tuple(names)
    params: dict[str, Any] = {}
    given_params = document.get("params", {})
    if not isinstance(given_params, Mapping):
        errors.append("params must map a rule id to its parameters")
    else:
        for rule_id, values in given_params.items():
            parsed, wrong = _params_of(rule_id, values)
            errors += wrong
            if parsed is not None:
                params[rule_id] = parsed
    policy = Policy(version=version, packs=packs, params=params)
    if not errors:
        errors += engine.validate_policy(policy) + _day_errors(policy)
    return str(jurisdiction), policy, errors


def _params_of(rule_id: str, values: Any) -> tuple[Any | None, list[str]]:
    rule = engine.RULES.get(rule_id)
    if rule is None:
        return None, [f"unknown rule {rule_id!r}"]
    if not isinstance(values, Mapping):
        return None, [f"{rule_id}: parameters must be an object"]
    default = rule.params_type()
    names = {f.name for f in dataclasses.fields(default)}
    errors = [f"{rule_id}: unknown parameter {n!r}" + (f" (one of {', '.join(sorted(names))})" if names else
                                                        " (it has none)") for n in sorted(set(values) - names)]
    hints = typing.get_type_hints(rule.params_type)
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name not in names:
            continue
        try:
            changes[name] = _convert(getattr(default, name), hints[name], value)
        except (TypeError, ValueError) as exc:
            errors.append(f"{rule_id}: {name}: {exc}")
    if errors:
        return None, errors
    return dataclasses.replace(default, **changes), []


def _convert(default: Any, hint: Any, value: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, not {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be a whole number, not {value!r}")
        return value
    if isinstance(default, time):
        if not isinstance(value, str):
            raise TypeError(f"must be a local time HH:MM, not {value!r}")
        try:
            parsed = time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a local time HH:MM, not {value!r}") from None
        if parsed.tzinfo is not None:
            raise ValueError("a local time has no offset")
        return parsed
    if isinstance(default, Mapping):
        key_type, _ = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise TypeError(f"must be an object like {_plain(default)}")
        out = {}
        for k, v in value.items():
            if key_type is Channel:
                try:
                    key: Any = Channel(k)
                except ValueError:
                    raise ValueError(f"unknown channel {k!r}") from None
            else:
                key = k
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{k} must be a whole number, not {v!r}")
            out[key] = v
        return out
    raise TypeError(f"cannot be set in a policy (like {default!r})")


def _plain(value: Any) -> Any:
    """A parameter value as JSON shows it."""
    if isinstance(value, time):
        return f"{value:%H:%M}"
    if isinstance(value, Mapping):
        return {getattr(k, "value", k): _plain(v) for k, v in value.items()}
    return value


MAX_DAYS = 90  # the longest period a policy may count over: the ledger is read that far back at most


PERIODS = ("interval_days", "period_days", "quiet_days")  # parameters that count over a number of days


def _periods(policy: Policy) -> Iterator[tuple[str, str, int]]:
    """(rule id, parameter, days) of every period the policy sets (each channel's, for a per-channel map)."""
    for rule_id, params in policy.params.items():
        for name in PERIODS:
            value = getattr(params, name, None)
            for days in (value.values() if isinstance(value, Mapping) else [value]):
                if isinstance(days, int):
                    yield rule_id, name, days


def ledger_days(policy: Policy) -> int:
    """How many days of the ledger a decision under ``policy`` must read: the longest period a rule counts
    over (HOUSE-DUP's intervals, US-7IN7's period and quiet days, a week by default) and one day more for
    local-day boundaries in any time zone."""
    return max([7, *(days for _, _, days in _periods(policy))]) + 1


def _day_errors(policy: Policy) -> list[str]:
    return [f"{rule_id}: {name} {days} is over {MAX_DAYS} days (the longest period a rule counts over)"
            for rule_id, name, days in _periods(policy) if days > MAX_DAYS]


def effective_parameters(tp: TenantPolicy) -> dict[str, dict[str, Any]]:
    """Every rule's parameters under the policy (its own where it tightens, the defaults elsewhere)."""
    out = {}
    for rule_id, rule in engine.RULES.items():
        params = tp.policy.params.get(rule_id) or rule.params_type()
        out[rule_id] = {f.name: _plain(getattr(params, f.name)) for f in dataclasses.fields(params)}
    return out


def from_row(row: Any) -> TenantPolicy:
    jurisdiction, policy, _ = parse_document(row.document, version=row.version)
    return TenantPolicy(tenant=row.tenant, version=row.version, jurisdiction=jurisdiction, policy=policy,
                        document=row.document, created_by=row.created_by, reason=row.reason,
                        created_at=row.created_at)


async def _load(session: AsyncSession, tenants: list[str]) -> dict[str, TenantPolicy]:
    rows = {r.tenant: r for r in await repo.current_policies(session, tenants)}
    return {t: from_row(rows[t]) if t in rows else default_policy(t) for t in tenants}


CACHE: TenantCache[TenantPolicy] = TenantCache(_load)  # one statement per batch at most


async def current_policy(session: AsyncSession, tenant: str) -> TenantPolicy:
    return (await CACHE.current(session, [tenant]))[tenant]


async def publish(session: AsyncSession, *, tenant: str, document: Mapping[str, Any], created_by: str,
                  reason: str) -> TenantPolicy:
    """Publish a new version of the tenant's policy (the next number); refused, storing nothing, when the
    document cannot be used."""
    latest = await repo.latest_policy_version(session, tenant, lock=True)
    version = latest + 1
    *_, errors = parse_document(document, version=version)
    if errors:
        raise PolicyRefused(errors)
    row = await repo.add_policy(session, {"tenant": tenant, "version": version, "document": dict(document),
                                          "created_by": created_by, "reason": reason})
    CACHE.forget(tenant)
    return from_row(row)


async def history(session: AsyncSession, tenant: str, *, limit: int) -> list[TenantPolicy]:
    return [from_row(r) for r in await repo.policy_versions(session, tenant, limit=limit)]
