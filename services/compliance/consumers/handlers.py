"""Compliance's consumer: decide every contact request, log the decision, announce it."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import decide
from shared import metrics
from shared.contracts import topics
from shared.contracts.events import ContactApprovedV1, ContactRejectedV1, ContactRequestV1
from shared.db import table_of
from shared.kafka.consumer import Delivery, Handler
from shared.messaging import add_to_outbox, build_event
from shared.service import Runtime

SOURCE = "urn:gentle-collections:compliance"


async def on_contact_requested(session: AsyncSession, deliveries: list[Delivery]) -> None:
    contact_ids = [d.payload.contact_id for d in deliveries]
    approved = set((await session.execute(
        select(ContactDecision.contact_id).where(ContactDecision.contact_id.in_(contact_ids),  # type: ignore[attr-defined]
                                                 ContactDecision.outcome == "approved"))).scalars())  # type: ignore[arg-type]
    now = datetime.now(UTC)
    rows, outgoing = [], []
    for d in deliveries:
        r: ContactRequestV1 = d.payload
        decision = decide(channel=r.channel, time_zone=r.time_zone, now_utc=now,
                          already_approved=r.contact_id in approved)
        decision_id = str(uuid.uuid4())
        if decision.outcome == "approved":
            approved.add(r.contact_id)
        rows.append({
            "decision_id": decision_id, "tenant": r.tenant, "contact_id": r.contact_id, "attempt": r.attempt,
            "account_id": r.account_id, "customer_id": r.customer_id, "channel": r.channel.value,
            "outcome": decision.outcome, "rule_id": decision.rule_id, "reason": decision.reason,
            "retry_at": decision.retry_at,
            "rules_evaluated": [asdict(x) | {"retry_at": x.retry_at.isoformat() if x.retry_at else None}
                                for x in decision.evaluated],
        })
        metrics.CONTACT_DECISIONS.labels(decision.outcome, decision.rule_id).inc()
        if decision.outcome == "approved":
            payload: ContactApprovedV1 | ContactRejectedV1 = ContactApprovedV1(decision_id=decision_id, request=r)
            topic = topics.CONTACT_APPROVED
        else:
            payload = ContactRejectedV1(
                tenant=r.tenant, decision_id=decision_id, contact_id=r.contact_id, attempt=r.attempt,
                account_id=r.account_id, customer_id=r.customer_id, channel=r.channel, rule_id=decision.rule_id,
                reason=decision.reason, retry_at=decision.retry_at)
            topic = topics.CONTACT_REJECTED
        outgoing.append((topic, build_event(topic, payload, tenant=r.tenant, customer_id=r.customer_id,
                                            source=SOURCE, cause=d.event, subject=r.contact_id), r.customer_id))
    await session.execute(insert(table_of(ContactDecision)), rows)
    await add_to_outbox(session, outgoing)


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    return {topics.CONTACT_REQUESTED.name: on_contact_requested}
