"""Strategies and experiments as the scheduler's use cases see them (docs/strategies.md): publish a strategy
version, publish the tenant's assignment (champion and challengers), promote a challenger, and resolve which
strategy an account follows.

Published versions are immutable, so each is parsed once per process (``_PARSED``); the tenant's current
assignment with the strategies it names is read through ``CACHE`` (``shared/cache.py``: one load per batch at
most; a change published through this process applies to its next batch, one published through another replica
within ``ttl`` seconds). A tenant that published no assignment follows the built-in strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db import repository as repo
from services.scheduler.domain.strategies import builtin
from services.scheduler.domain.strategies.document import Strategy, parse_strategy
from services.scheduler.domain.strategies.experiments import (
    NAME,
    Assignment,
    StrategyRef,
    arm_of,
    assignment_document,
    parse_assignment,
)
from shared.cache import TenantCache
from shared.documents import compact_size
from shared.domain import DomainError, NotFound, Refused

BUILTIN_REF = StrategyRef(builtin.NAME, builtin.VERSION)
MAX_DOCUMENT_BYTES = 64 * 1024


class StrategyRefused(Refused):
    """A strategy that cannot be used: every reason, nothing stored."""

    title = "Strategy refused"


class AssignmentRefused(Refused):
    title = "Assignment refused"


@dataclass(frozen=True, slots=True)
class Published:
    """A stored version (a strategy or an assignment) with who published it and why."""

    version: int
    document: Mapping[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TenantStrategies:
    """A tenant's current assignment (version 0: the built-in, nothing published) and the strategies it names."""

    version: int
    assignment: Assignment
    strategies: Mapping[StrategyRef, Strategy]

    def follow(self, *, borrower: str, segment: str) -> tuple[str, Strategy, str | None]:
        """The arm, strategy and experiment an account of this borrower in this segment follows: a segment no
        challenger takes a share of is not in the experiment (its accounts would only dilute the champion's arm)."""
        arm, ref = arm_of(self.assignment, borrower=borrower, segment=segment)
        tested = any(c.share_bp.get(segment, 0) > 0 for c in self.assignment.challengers)
        return arm, self.strategies.get(ref, builtin.BUILTIN), self.assignment.experiment if tested else None


DEFAULT = TenantStrategies(0, Assignment(BUILTIN_REF), {BUILTIN_REF: builtin.BUILTIN})
_PARSED: dict[tuple[str, str, int], Strategy] = {}


def _parse_row(row: Any) -> Strategy:
    key = (row.tenant, row.name, row.version)
    if key not in _PARSED:
        strategy, errors = parse_strategy(row.document, name=row.name, version=row.version)
        if strategy is None:  # stored only after validation: a document the code no longer accepts
            raise ValueError(f"stored strategy {row.name}@{row.version} of {row.tenant} is not valid: {errors}")
        _PARSED[key] = strategy
    return _PARSED[key]


async def _strategies(session: AsyncSession, tenant: str, refs: list[StrategyRef]) -> dict[StrategyRef, Strategy]:
    found = {BUILTIN_REF: builtin.BUILTIN} if BUILTIN_REF in refs else {}
    wanted = [(tenant, r.name, r.version) for r in refs if r != BUILTIN_REF]
    missing = [k for k in wanted if k not in _PARSED]
    for row in await repo.strategies_by_ref(session, missing):
        _parse_row(row)
    found |= {StrategyRef(n, v): _PARSED[(t, n, v)] for t, n, v in wanted if (t, n, v) in _PARSED}
    return found


async def _load(session: AsyncSession, tenants: list[str]) -> dict[str, TenantStrategies]:
    out = dict.fromkeys(tenants, DEFAULT)
    for row in await repo.current_assignments(session, tenants):
        assignment, _ = parse_assignment(row.document)
        if assignment is not None:
            out[row.tenant] = TenantStrategies(row.version, assignment,
                                               await _strategies(session, row.tenant, assignment.refs()))
    return out


CACHE: TenantCache[TenantStrategies] = TenantCache(_load)


async def current(session: AsyncSession, tenants: set[str]) -> dict[str, TenantStrategies]:
    return await CACHE.current(session, tenants)


def borrower_of(*, borrower_key: str | None, customer_id: str) -> str:
    """Who an experiment assigns: the debtor across accounts (their borrower key), else the tenant's customer."""
    return borrower_key or f"customer:{customer_id}"


def parse_ref(text: str) -> StrategyRef | None:
    name, _, version = text.rpartition("@")
    return StrategyRef(name, int(version)) if name and version.isdigit() else None


async def strategy_of(session: AsyncSession, tenant: str, ref: StrategyRef) -> Strategy | None:
    """A published version of the tenant's (or the built-in), or None."""
    return (await _strategies(session, tenant, [ref])).get(ref)


def _has_control(value: Any) -> bool:
    """Whether a control character (NUL, ...) hides in any key or text of a JSON document (walked without
    recursion: depth never costs the stack)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any(ord(c) < 32 for c in item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _size_and_text(document: Mapping[str, Any]) -> list[str]:
    """A document over ``MAX_DOCUMENT_BYTES`` as compact UTF-8 JSON, or holding a control character, is refused."""
    try:
        size = compact_size(document)
    except (RecursionError, ValueError):
        return ["the document is nested too deep"]
    if size > MAX_DOCUMENT_BYTES:
        return [f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KB (as compact UTF-8 JSON)"]
    if _has_control(document):
        return ["the document holds a control character (such as NUL)"]
    return []


def check_strategy(document: Mapping[str, Any]) -> list[str]:
    """Every reason ``publish_strategy`` would refuse this document for (its name aside)."""
    errors = _size_and_text(document)
    return errors or parse_strategy(document, name="check", version=1)[1]


async def publish_strategy(session: AsyncSession, *, tenant: str, name: str, document: Mapping[str, Any],
                           created_by: str, reason: str) -> Published:
    """Publish the next version of the tenant's strategy ``name``; refused, storing nothing, with every reason
    when it cannot be used."""
    errors = []
    if not NAME.fullmatch(name) or name == builtin.NAME:
        errors.append(f"the name must be 1-64 lower case letters, digits, '.', '_' or '-', and not "
                      f"{builtin.NAME!r} (the built-in strategy's), not {name!r}")
    if size_or_text := _size_and_text(document):
        raise StrategyRefused(errors + size_or_text)
    version = await repo.latest_strategy_version(session, tenant, name, lock=True) + 1
    _, parse_errors = parse_strategy(document, name=name, version=version)
    if errors or parse_errors:
        raise StrategyRefused(errors + parse_errors)
    row = await repo.add_strategy(session, {"tenant": tenant, "name": name, "version": version,
                                            "document": dict(document), "created_by": created_by, "reason": reason})
    return Published(row.version, row.document, row.created_by, row.reason, row.created_at, row.name)


async def strategy_versions(session: AsyncSession, tenant: str, name: str | None, *, limit: int) -> list[Published]:
    rows = await repo.strategy_versions(session, tenant, name, limit=limit)
    found = [Published(r.version, r.document, r.created_by, r.reason, r.created_at, r.name) for r in rows]
    if name in (None, builtin.NAME):
        found.append(Published(builtin.VERSION, builtin.DOCUMENT, None, "built in", None, builtin.NAME))
    return found


async def strategy_version(session: AsyncSession, tenant: str, name: str, version: int) -> Published:
    if (name, version) == (builtin.NAME, builtin.VERSION):
        return Published(builtin.VERSION, builtin.DOCUMENT, None, "built in", None, builtin.NAME)
    rows = await repo.strategies_by_ref(session, [(tenant, name, version)])
    if not rows:
        raise NotFound(f"No strategy {name}@{version} in your tenant.")
    r = rows[0]
    return Published(r.version, r.document, r.created_by, r.reason, r.created_at, r.name)


async def publish_assignment(session: AsyncSession, *, tenant: str, document: Mapping[str, Any], created_by: str,
                             reason: str) -> Published:
    """Publish the tenant's next assignment: refused, storing nothing, when it names a strategy version not
    published, or cannot be used."""
    assignment, errors = parse_assignment(document)
    if assignment is not None:
        found = await _strategies(session, tenant, assignment.refs())
        errors += [f"no strategy {ref} is published in your tenant" for ref in assignment.refs() if ref not in found]
    if errors or assignment is None:
        raise AssignmentRefused(errors)
    version = await repo.latest_assignment_version(session, tenant, lock=True) + 1
    row = await repo.add_assignment(session, {"tenant": tenant, "version": version,
                                              "document": assignment_document(assignment),
                                              "created_by": created_by, "reason": reason})
    CACHE.forget(tenant)
    return Published(row.version, row.document, row.created_by, row.reason, row.created_at)


async def current_assignment(session: AsyncSession, tenant: str) -> Published:
    rows = await repo.current_assignments(session, [tenant])
    if not rows:
        return Published(0, assignment_document(DEFAULT.assignment), None, "built in", None)
    r = rows[0]
    return Published(r.version, r.document, r.created_by, r.reason, r.created_at)


async def assignment_versions(session: AsyncSession, tenant: str, *, limit: int) -> list[Published]:
    return [Published(r.version, r.document, r.created_by, r.reason, r.created_at)
            for r in await repo.assignment_versions(session, tenant, limit=limit)]


class NotAnArm(DomainError):
    status = 409
    title = "No such challenger"


async def promote(session: AsyncSession, *, tenant: str, arm: str, created_by: str, reason: str) -> Published:
    """End the running experiment by making one challenger's strategy the champion (a new assignment version)."""
    await repo.latest_assignment_version(session, tenant, lock=True)
    now = await current_assignment(session, tenant)
    assignment, _ = parse_assignment(now.document)
    challenger = next((c for c in assignment.challengers if c.arm == arm), None) if assignment else None
    if challenger is None:
        arms = ", ".join(c.arm for c in assignment.challengers) if assignment and assignment.challengers else "none"
        raise NotAnArm(f"No challenger {arm!r} in your current experiment (its challengers: {arms}).")
    document = {"champion": {"strategy": challenger.strategy.name, "version": challenger.strategy.version}}
    return await publish_assignment(session, tenant=tenant, document=document, created_by=created_by,
                                    reason=reason)
