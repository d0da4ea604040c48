"""Compliance's use cases: decide every contact request (and every agent's check) with the rule engine
(``domain/rules/engine.py``) under the tenant's policy (``service/policies.py``), log each decision with every
rule's verdict and the policy version, announce it. The records the rules read (ledger, holds, suppressions,
consents, calendar, agencies) are assembled once per batch by
:func:`~services.compliance.service.context.build_contexts`; their own use cases are in ``service/records.py``."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from services.compliance.db import repository as repo
from services.compliance.db.models import ContactDecision
from services.compliance.domain.rules import engine
from services.compliance.domain.rules.base import ContactContext, Decision, Party
from services.compliance.service import policies, records
from services.compliance.service.context import ContactKeys, build_contexts
from shared import metrics
from shared.contracts import CloudEvent, topics
from shared.contracts.events import Channel, ContactApprovedV1, ContactRejectedV1, ContactRequestV1, Segment
from shared.domain import DomainError
from shared.uow import UnitOfWork


class FilterRequired(DomainError):
    status = 400
    title = "Filter required"


def verdicts(decision: Decision) -> list[list[Any]]:
    """Every rule's verdict as stored in ``rules_evaluated`` (JSON, compact: ``[rule_id, verdict, reason,
    retry_at]`` each, about half the size of named fields, which keeps a decision row under PostgreSQL's
    compression threshold); :func:`expand_verdicts` reads it back."""
    return [[r.rule_id, r.verdict, r.reason, r.retry_at.isoformat() if r.retry_at else None]
            for r in decision.evaluated]


_PACK_OF = {rule.id: rule.pack for rules in engine.PACKS.values() for rule in rules}


def expand_verdicts(stored: Sequence[Any]) -> list[dict[str, Any]]:
    """Stored verdicts as named fields (rule_id, pack, verdict, reason, retry_at); rows logged before the
    compact form are already named."""
    return [dict(v) if isinstance(v, dict) else
            {"rule_id": v[0], "pack": _PACK_OF.get(v[0], v[0].split("-")[0]), "verdict": v[1], "reason": v[2],
             "retry_at": v[3]} for v in stored]


class _BatchLedger:
    """Approvals made earlier in the same batch, which the ledger read before the batch cannot hold: the
    borrower's contacts per channel (HOUSE-DUP) and calls per debt (US-7IN7)."""

    def __init__(self) -> None:
        self.contacts: dict[tuple[str, ...], dict[Channel, list[datetime]]] = defaultdict(lambda: defaultdict(list))
        self.calls: dict[tuple[str, str], list[datetime]] = defaultdict(list)

    @staticmethod
    def _people(ctx: ContactContext) -> list[tuple[str, ...]]:
        keys: list[tuple[str, ...]] = [("customer", ctx.tenant, ctx.customer_id)]
        if ctx.borrower_key:
            keys.append(("borrower", ctx.borrower_key))
        return keys

    def add(self, ctx: ContactContext, at: datetime) -> None:
        for key in self._people(ctx):
            self.contacts[key][ctx.channel].append(at)
        if ctx.channel is Channel.CALL:
            self.calls[(ctx.tenant, ctx.account_id)].append(at)

    def merged(self, ctx: ContactContext, already_approved: bool) -> ContactContext:
        ledger = ctx.ledger
        people = [self.contacts[key] for key in self._people(ctx) if key in self.contacts]
        if not people and (ctx.tenant, ctx.account_id) not in self.calls:
            # nothing approved earlier in this batch for this person or debt (the usual case)
            if already_approved and not ledger.already_approved:
                return replace(ctx, ledger=replace(ledger, already_approved=True))
            return ctx
        contacts = {channel: list(instants) for channel, instants in ledger.borrower_contacts.items()}
        for key in self._people(ctx):
            for channel, instants in self.contacts.get(key, {}).items():
                contacts.setdefault(channel, []).extend(instants)
        calls = (*ledger.debt_calls, *self.calls.get((ctx.tenant, ctx.account_id), ()))
        return replace(ctx, ledger=replace(
            ledger, already_approved=ledger.already_approved or already_approved, debt_calls=tuple(sorted(calls)),
            borrower_contacts={c: tuple(sorted(set(i))) for c, i in contacts.items()}))


async def decide_requests(uow: UnitOfWork, *, requests: Sequence[tuple[ContactRequestV1, CloudEvent]],
                          keys: ContactKeys | None = None, default_country: str = "CN") -> None:
    """Decide each request now with the rule engine, log the decision (every rule's verdict), record the
    approvals in the contact ledger and emit ContactApproved or ContactRejected. An attempt already decided (a
    request sent again because its verdict seemed lost) gets the same decision again, announced anew and not
    logged twice. Requests of one batch see each other's approvals (HOUSE-DUP, US-7IN7)."""
    earlier = await repo.decisions_of(uow.session, (r.contact_id for r, _ in requests))
    approved = {d.contact_id for d in earlier if d.outcome == "approved"}
    decided: dict[tuple[str, int], Any] = {}
    for d in earlier:
        decided.setdefault((d.contact_id, d.attempt), d)
    now = datetime.now(UTC)
    fresh: dict[tuple[str, int], ContactRequestV1] = {}
    for r, _ in requests:
        if (r.contact_id, r.attempt) not in decided:
            fresh.setdefault((r.contact_id, r.attempt), r)
    tenant_policies = await policies.CACHE.current(uow.session, {r.tenant for r in fresh.values()})
    days = max((policies.ledger_days(tp.policy) for tp in tenant_policies.values()), default=8)
    contexts = dict(zip(fresh, await build_contexts(uow.session, list(fresh.values()), now=now, keys=keys,
                                                    default_country=default_country, lookback=timedelta(days=days)),
                        strict=True))
    batch = _BatchLedger()
    rows, approvals = [], []
    for r, cause in requests:
        if (known := decided.get((r.contact_id, r.attempt))) is not None:
            _announce(uow, r, cause, decision_id=known.decision_id, outcome=known.outcome, rule_id=known.rule_id,
                      reason=known.reason, retry_at=known.retry_at)
            continue
        tp = tenant_policies[r.tenant]
        ctx = batch.merged(replace(contexts[(r.contact_id, r.attempt)], jurisdiction=tp.jurisdiction),
                           r.contact_id in approved)
        decision = engine.decide(ctx, now, tp.policy)
        decision_id = str(uuid.uuid4())
        if decision.outcome == "approved":
            approved.add(r.contact_id)
            approvals.append(ctx)
            batch.add(ctx, now)
        row = {
            "decision_id": decision_id, "tenant": r.tenant, "contact_id": r.contact_id, "attempt": r.attempt,
            "account_id": r.account_id, "customer_id": r.customer_id, "channel": r.channel.value,
            "outcome": decision.outcome, "rule_id": decision.rule_id, "reason": decision.reason,
            "retry_at": decision.retry_at, "rules_evaluated": verdicts(decision),
            "policy_version": decision.policy_version,
        }
        rows.append(row)
        decided[(r.contact_id, r.attempt)] = SimpleNamespace(**row)
        metrics.CONTACT_DECISIONS.labels(decision.outcome, decision.rule_id).inc()
        _announce(uow, r, cause, decision_id=decision_id, outcome=decision.outcome, rule_id=decision.rule_id,
                  reason=decision.reason, retry_at=decision.retry_at)
    await repo.add_decisions(uow.session, rows)
    await records.record_approvals(uow, approved=approvals, at=now)


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


async def check_now(session: Any, *, tenant: str, account_id: str, customer_id: str, channel: Channel,
                    time_zone: str, party: Party = Party.DEBTOR, automated: bool = False,
                    destination: str | None = None, days_past_due: int | None = None,
                    overdue_minor: int | None = None, collectors: int | None = None,
                    debtor_reachable: bool = True, now: datetime | None = None,
                    keys: ContactKeys | None = None, default_country: str = "CN") -> Decision:
    """May an agent contact this customer now? The same engine and records as automated contacts (the
    customer's ledger, holds, suppressions, consents, calendar, the account's agency); nothing stored.
    ``destination`` is the sealed contact point, if the agent names one."""
    now = now or datetime.now(UTC)
    borrowers = await repo.borrower_keys_of(session, tenant=tenant, customer_id=customer_id)
    # the shape build_contexts reads; what a check does not know is a placeholder, replaced below
    request = ContactRequestV1.model_construct(
        tenant=tenant, contact_id=f"check-{uuid.uuid4().hex}", attempt=1, account_id=account_id,
        customer_id=customer_id, channel=channel, treatment_step="agent-check", segment=Segment.STANDARD,
        days_past_due=days_past_due or 0, destination=destination, time_zone=time_zone, locale="en",
        template_id="agent-check", currency="XXX", overdue_minor=overdue_minor or 0, due_date=now.date(),
        requested_at=now, borrower_key=borrowers[0] if borrowers else None)
    tp = await policies.current_policy(session, tenant)
    [ctx] = await build_contexts(session, [request], now=now, keys=keys, default_country=default_country,
                                 lookback=timedelta(days=policies.ledger_days(tp.policy)))
    ctx = replace(ctx, party=party, automated=automated, collectors=collectors, debtor_reachable=debtor_reachable,
                  days_past_due=days_past_due, overdue_minor=overdue_minor, jurisdiction=tp.jurisdiction)
    return engine.decide(ctx, now, tp.policy)


async def decision_log(session: Any, *, tenant: str, contact_id: str | None, account_id: str | None,
                       limit: int) -> list[ContactDecision]:
    """The tenant's decisions, newest first, for one contact or one account."""
    if contact_id is None and account_id is None:
        raise FilterRequired("Give contact_id or account_id.")
    return await repo.list_decisions(session, tenant=tenant, contact_id=contact_id, account_id=account_id,
                                     limit=limit)
