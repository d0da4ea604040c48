"""Decision log and the synchronous check agents call before a contact they start themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.compliance import service
from services.compliance.domain.rules.base import Party
from services.compliance.service.context import ContactKeys, calendar_country
from shared.contracts.events import Channel, Ident, TimeZone
from shared.deps import CipherDep, Principal, Role, RuntimeDep, SessionDep, TenantDep, require

router = APIRouter(prefix="/v1", tags=["compliance"])


class RuleVerdict(BaseModel):
    rule_id: str
    pack: str
    verdict: Literal["allow", "defer", "block"]
    reason: str
    retry_at: datetime | None


class DecisionPublic(BaseModel):
    decision_id: str
    contact_id: str
    attempt: int
    account_id: str
    channel: str
    outcome: str
    rule_id: str
    reason: str
    retry_at: datetime | None
    policy_version: int
    rules_evaluated: list[RuleVerdict]
    decided_at: datetime


@router.get("/decisions", response_model=list[DecisionPublic],
            responses={400: {"description": "Filter required: give contact_id or account_id"}})
async def list_decisions(session: SessionDep, tenant: TenantDep, contact_id: str | None = None,
                         account_id: str | None = None,
                         limit: int = Query(100, ge=1, le=1000)) -> list[DecisionPublic]:
    """Decisions of your tenant, newest first; filter by contact or account."""
    rows = await service.decision_log(session, tenant=tenant, contact_id=contact_id, account_id=account_id,
                                      limit=limit)
    return [DecisionPublic(
        decision_id=r.decision_id, contact_id=r.contact_id, attempt=r.attempt, account_id=r.account_id,
        channel=r.channel, outcome=r.outcome, rule_id=r.rule_id, reason=r.reason, retry_at=r.retry_at,
        policy_version=r.policy_version, decided_at=r.decided_at,
        rules_evaluated=[RuleVerdict.model_validate(v) for v in service.expand_verdicts(r.rules_evaluated)])
        for r in rows]


class CheckIn(BaseModel):
    """Who would be contacted, how: the account and customer, the channel and the customer's IANA zone; the
    contact point (plaintext over TLS, sealed at once, never stored), whom it belongs to, and whether the
    contact is automated (default: an agent dials)."""

    account_id: Ident
    customer_id: Ident
    channel: Channel
    time_zone: TimeZone
    party: Party = Party.DEBTOR
    automated: bool = False
    destination: str | None = Field(default=None, min_length=1, max_length=320)
    debtor_reachable: bool = True
    days_past_due: int | None = Field(default=None, ge=0)
    overdue_minor: int | None = Field(default=None, ge=0)
    collectors: int | None = Field(default=None, ge=0, le=100)


class CheckOut(BaseModel):
    outcome: Literal["approved", "deferred", "blocked"]
    rule_id: str
    reason: str
    retry_at: datetime | None
    policy_version: int
    rules_evaluated: list[RuleVerdict]


@router.post("/checks", response_model=CheckOut)
async def check_contact(session: SessionDep, cipher: CipherDep, runtime: RuntimeDep, body: CheckIn,
                        principal: Annotated[Principal, require(Role.AGENT, Role.SUPERVISOR, Role.COMPLIANCE)]
                        ) -> CheckOut:
    """May an agent contact this customer now? The same rule engine and records as automated contacts, with
    every rule's verdict; nothing is stored. Needs the role agent, supervisor or compliance."""
    tenant = principal.tenant
    sealed = cipher.seal(body.destination, context=tenant) if body.destination is not None else None
    decision = await service.check_now(
        session, tenant=tenant, account_id=body.account_id, customer_id=body.customer_id, channel=body.channel,
        time_zone=body.time_zone, party=body.party, automated=body.automated, destination=sealed,
        days_past_due=body.days_past_due, overdue_minor=body.overdue_minor, collectors=body.collectors,
        debtor_reachable=body.debtor_reachable, keys=ContactKeys(runtime.cipher, runtime.identity),
        default_country=calendar_country(runtime.settings))
    return CheckOut(outcome=decision.outcome, rule_id=decision.rule_id, reason=decision.reason,
                    retry_at=decision.retry_at, policy_version=decision.policy_version,
                    rules_evaluated=[RuleVerdict(rule_id=r.rule_id, pack=r.pack, verdict=r.verdict, reason=r.reason,
                                                 retry_at=r.retry_at) for r in decision.evaluated])
