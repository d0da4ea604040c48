"""Compliance's use cases: decide every contact request (and every agent's check) with the rules in
``domain/rules.py``, log each decision with every rule's verdict, announce it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from services.compliance.db import repository as repo
from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import Decision, decide
from shared import metrics
from shared.contracts import CloudEvent, topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactRejectedV1, ContactRequestV1
from shared.domain import DomainError
from shared.uow import UnitOfWork


class FilterRequired(DomainError):
    status = 400
    title = "Filter required"


async def decide_requests(uow: UnitOfWork, *, requests: Sequence[tuple[ContactRequestV1, CloudEvent]]) -> None:
    """Decide each request now, log the decision, and emit ContactApproved or ContactRejected. An attempt
    already decided (a request sent again because its verdict seemed lost) gets the same decision again,
    announced anew and not logged twice."""
    earlier = await repo.decisions_of(uow.session, (r.contact_id for r, _ in requests))
    approved = {d.contact_id for d in earlier if d.outcome == "approved"}
    decided: dict[tuple[str, int], Any] = {}
    for d in earlier:
        decided.setdefault((d.contact_id, d.attempt), d)
    now = datetime.now(UTC)
    rows = []
    for r, cause in requests:
        if (known := decided.get((r.contact_id, r.attempt))) is not None:
            _announce(uow, r, cause, decision_id=known.decision_id, outcome=known.outcome, rule_id=known.rule_id,
                      reason=known.reason, retry_at=known.retry_at)
            continue
        decision = decide(channel=r.channel, time_zone=r.time_zone, now_utc=now,
                          already_approved=r.contact_id in approved)
        decision_id = str(uuid.uuid4())
        if decision.outcome == "approved":
            approved.add(r.contact_id)
        row = {
            "decision_id": decision_id, "tenant": r.tenant, "contact_id": r.contact_id, "attempt": r.attempt,
            "account_id": r.account_id, "customer_id": r.customer_id, "channel": r.channel.value,
            "outcome": decision.outcome, "rule_id": decision.rule_id, "reason": decision.reason,
            "retry_at": decision.retry_at,
            "rules_evaluated": [asdict(x) | {"retry_at": x.retry_at.isoformat() if x.retry_at else None}
                                for x in decision.evaluated],
        }
        rows.append(row)
        decided[(r.contact_id, r.attempt)] = SimpleNamespace(**row)
        metrics.CONTACT_DECISIONS.labels(decision.outcome, decision.rule_id).inc()
        _announce(uow, r, cause, decision_id=decision_id, outcome=decision.outcome, rule_id=decision.rule_id,
                  reason=decision.reason, retry_at=decision.retry_at)
    await repo.add_decisions(uow.session, rows)


def _announce(uow: UnitOfWork, r: ContactRequestV1, cause: CloudEvent, *, decision_id: str, outcome: str,
              rule_id: str, reason: str, retry_at: datetime | None) -> None:
    if outcome == "approved":
        uow.emit(topics.CONTACT_APPROVED, ContactApprovedV1(decision_id=decision_id, request=r), cause=cause,
                 subject=r.contact_id)
    else:
        uow.emit(topics.CONTACT_REJECTED, ContactRejectedV1(
            tenant=r.tenant, decision_id=decision_id, contact_id=r.contact_id, attempt=r.attempt,
            account_id=r.account_id, customer_id=r.customer_id, channel=r.channel, rule_id=rule_id,
            reason=reason, retry_at=retry_at), cause=cause, subject=r.contact_id)


def check_now(*, channel: Channel, time_zone: str) -> Decision:
    """May an agent contact this customer now? The same rules as automated contacts; nothing stored."""
    return decide(channel=channel, time_zone=time_zone, now_utc=datetime.now(UTC), already_approved=False)


async def decision_log(session: Any, *, tenant: str, contact_id: str | None, account_id: str | None,
                       limit: int) -> list[ContactDecision]:
    """The tenant's decisions, newest first, for one contact or one account."""
    if contact_id is None and account_id is None:
        raise FilterRequired("Give contact_id or account_id.")
    return await repo.list_decisions(session, tenant=tenant, contact_id=contact_id, account_id=account_id,
                                     limit=limit)
