"""The experiment report (``GET /v1/experiments/{name}/report``, docs/strategies.md "The experiment report"): each
account's facts in an experiment, read from what the scheduler keeps, and the per-arm figures of
``domain/strategies/report.py``.

An account belongs to the arm of its first step in the experiment, and starts then, with the amount overdue that
step carried. Its contacts are the experiment's steps that were made: channels reported an outcome other than
``revoked`` (sent, delivered, failed, a task created, a call result); each costs what ``costs`` says for its
channel. Its payments after the start count towards cure and recovery; its plans whose last word (agreed,
or how it ended) came after the start are counted; a complaint (compliance's complaint hold on the customer or
the account) after the start marks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scheduler.db import repository as repo
from services.scheduler.domain.strategies.experiments import CHAMPION, parse_assignment
from services.scheduler.domain.strategies.report import AccountFacts, ArmReport, report
from shared.contracts.events import HoldChangedV1
from shared.domain import NotFound
from shared.uow import UnitOfWork


async def record_holds(uow: UnitOfWork, *, holds: list[HoldChangedV1]) -> None:
    """Keep every complaint hold placed, once (the report's complaint rate); other holds are compliance's."""
    await repo.add_complaints(uow.session, [
        {"tenant": h.tenant, "hold_id": h.hold_id, "customer_id": h.customer_id, "account_id": h.account_id,
         "placed_at": h.starts_at} for h in holds if h.kind == "complaint" and h.action == "placed"])


async def experiments(session: AsyncSession, tenant: str) -> list[dict[str, Any]]:
    """The tenant's experiments, newest first: name, arms, the assignment versions that ran it, when it started."""
    found: dict[str, dict[str, Any]] = {}
    for row in await repo.assignment_versions(session, tenant, limit=10_000):
        a, _ = parse_assignment(row.document)
        if a is None or a.experiment is None:
            continue
        entry = found.setdefault(a.experiment, {"experiment": a.experiment, "arms": [CHAMPION], "versions": [],
                                                "started_at": row.created_at})
        entry["versions"].append(row.version)
        entry["started_at"] = min(entry["started_at"], row.created_at)
        entry["arms"] += [c.arm for c in a.challengers if c.arm not in entry["arms"]]
    return list(found.values())


async def experiment_report(session: AsyncSession, *, tenant: str, experiment: str, costs: Mapping[str, int],
                            now: datetime) -> tuple[list[ArmReport], int]:
    """The per-arm report of one of the tenant's experiments, and how many steps it read."""
    steps = await repo.experiment_steps(session, tenant, experiment)
    known = {e["experiment"]: e for e in await experiments(session, tenant)}
    if not steps and experiment not in known:
        raise NotFound(f"No experiment {experiment!r} in your tenant.")
    first: dict[str, Any] = {}
    contacts: dict[str, int] = {}
    cost: dict[str, int] = {}
    for s in steps:
        first.setdefault(s.account_id, s)
        made = s.outcome is not None and s.outcome != "revoked"
        contacts[s.account_id] = contacts.get(s.account_id, 0) + made
        cost[s.account_id] = cost.get(s.account_id, 0) + (costs.get(s.channel, 0) if made else 0)
    accounts = sorted(first)
    keys = [(tenant, a) for a in accounts]
    paid = {a: [(p.paid_at, p.amount_minor) for p in rows if p.paid_at is not None]
            for (_, a), rows in (await repo.payments_of(session, keys)).items()}
    plans = {a: [p.occurred_at for p in rows] for (_, a), rows in (await repo.plans_of(session, keys)).items()}
    complaints: dict[str, list[tuple[str | None, datetime]]] = {}
    for c in await repo.customer_complaints(session, tenant, sorted({s.customer_id for s in first.values()})):
        complaints.setdefault(c.customer_id, []).append((c.account_id, c.placed_at))
    facts = []
    for account in accounts:
        s = first[account]
        start: datetime = s.created_at
        facts.append(AccountFacts(
            arm=s.arm or CHAMPION, start=start, overdue_minor=s.overdue_minor, contacts=contacts[account],
            cost_minor=cost[account], paid=[(at, amount) for at, amount in paid.get(account, ()) if at >= start],
            plans=sum(1 for at in plans.get(account, ()) if at >= start),
            complained=any((acc is None or acc == account) and at >= start
                           for acc, at in complaints.get(s.customer_id, ()))))
    arms = known[experiment]["arms"] if experiment in known else [CHAMPION]
    return report(facts, arms=arms, now=now), len(steps)
