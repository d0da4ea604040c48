"""Contact attempts agents and dialers report (issue 7: "agent call results feed" the contact ledger), over REST.

``POST /v1/contact-attempts`` records one attempt and its outcome in the ledger the contact rules count (CN-ATTEMPTS,
CN-CONNECTS, US-7IN7, HOUSE-DUP), so the next ``POST /v1/checks`` sees it. The client's ``attempt_id`` is the
idempotency key: the same report again answers 200 with the row unchanged; a later outcome of the same attempt (a
later ``ended_at``) replaces the earlier one. The destination arrives in plaintext over TLS and is kept only as its
contact-point key; it is never returned. The principal of the API key is the ``agent_id``; the change is audited
(``shared/audit.py``). ``GET /v1/contact-attempts`` lists the tenant's ledger rows of a customer or an account.
docs/compliance.md, "Agent and dialer results"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.compliance.api.records import Instant, commit_change
from services.compliance.service import records
from shared.contracts.events import Channel, Ident
from shared.deps import Principal, Role, RuntimeDep, SessionDep, TenantDep, UowDep, require

router = APIRouter(prefix="/v1", tags=["contact attempts"])

# Who may report an attempt (docs/access.md): the agent who made it, a team lead, a compliance officer.
Reporter = Annotated[Principal, require(Role.AGENT, Role.SUPERVISOR, Role.COMPLIANCE)]
AGENT_PREFIX = "agent:"

AttemptOutcome = Literal["no_answer", "busy", "voicemail", "connected", "right_party_contact", "failed", "sent",
                         "delivered"]


class AttemptIn(BaseModel):
    """One contact attempt an agent or a dialer made, and how it ended."""

    model_config = ConfigDict(extra="forbid")  # an unknown field (an ``agent_id`` of one's choosing) is refused

    attempt_id: Ident = Field(description="Your id of this attempt (the idempotency key): the same id again records "
                                          "nothing new; a later outcome of it replaces the earlier one")
    account_id: Ident
    customer_id: Ident
    channel: Channel
    direction: Literal["outbound", "inbound"] = "outbound"
    destination: str | None = Field(None, min_length=3, max_length=320,
                                    description="The number dialled (sms, call) or the address; plaintext over TLS, "
                                                "kept only as its keyed hash, never returned")
    national_id: str | None = Field(None, min_length=1, max_length=64,
                                    description="The debtor's national ID, when the agent has it: used only to "
                                                "derive the borrower key (one debtor across lenders), never stored")
    outcome: AttemptOutcome = Field(description="call: no_answer, busy, voicemail (not reached), connected, "
                                                "right_party_contact (a conversation), failed; field: no_answer, "
                                                "connected, right_party_contact, failed; sms and email: sent, "
                                                "delivered, failed")
    started_at: Instant = Field(description="When the attempt began (with an offset); at most 30 days ago")
    ended_at: Instant | None = Field(None, description="When the outcome was known; default started_at. Report a "
                                                       "later outcome of the same attempt with a later ended_at")
    agency_id: Ident | None = Field(None, description="The external agency that made it, if one did")


class AttemptPublic(BaseModel):
    """One ledger row (an attempt and its newest outcome), without its contact point or borrower key."""

    attempt_id: str = Field(description="The reporter's attempt id; for contacts the platform made, the contact id")
    contact_id: str = Field(description="The ledger's id: agent:<attempt_id> for reported attempts")
    source: Literal["agent", "automated"]
    account_id: str
    customer_id: str
    channel: str
    direction: str
    outcome: str = Field(description="The newest outcome; approved: compliance approved it, no outcome yet")
    started_at: datetime = Field(description="The attempt's first instant, the one the caps count")
    outcome_at: datetime | None
    approved_at: datetime | None
    agent_id: str | None
    agency_id: str | None
    destination_recorded: bool = Field(description="A contact point is on record (as a keyed hash only)")
    recorded_at: datetime


def _public(row: Any) -> AttemptPublic:
    agent = row.contact_id.startswith(AGENT_PREFIX)
    return AttemptPublic(
        attempt_id=row.contact_id.removeprefix(AGENT_PREFIX), contact_id=row.contact_id,
        source="agent" if agent else "automated", account_id=row.account_id, customer_id=row.customer_id,
        channel=row.channel, direction=row.direction, outcome=row.outcome, started_at=row.occurred_at,
        outcome_at=row.outcome_at, approved_at=row.approved_at, agent_id=row.agent_id, agency_id=row.agency_id,
        destination_recorded=row.destination_key is not None, recorded_at=row.recorded_at)


@router.post("/contact-attempts", status_code=201, response_model=AttemptPublic,
             responses={200: {"model": AttemptPublic, "description": "Already recorded: the row as it stands"},
                        409: {"description": "The attempt_id already records another contact"}})
async def record_attempt(uow: UowDep, runtime: RuntimeDep, principal: Reporter, body: AttemptIn,
                         response: Response) -> AttemptPublic:
    """Record an attempt you made and its outcome (201), counted at once by the contact caps; the same attempt again
    answers 200 (a later outcome updates it). Needs the role agent, supervisor or compliance."""
    row, what = await records.record_agent_attempt(
        uow, tenant=principal.tenant, actor=principal.name, identity=runtime.identity, attempt_id=body.attempt_id,
        account_id=body.account_id, customer_id=body.customer_id, channel=body.channel, direction=body.direction,
        destination=body.destination, national_id=body.national_id, outcome=body.outcome,
        started_at=body.started_at, ended_at=body.ended_at, agency_id=body.agency_id, now=records.utcnow())
    if what == "unchanged":
        await uow.rollback()  # nothing changed: nothing to audit
    else:
        await commit_change(uow, principal, action=f"contact-attempt.{what}", subject=row.contact_id,
                            reason=f"{body.channel.value} {body.direction} attempt: {body.outcome}")
    if what != "created":
        response.status_code = 200
    return _public(row)


@router.get("/contact-attempts", response_model=list[AttemptPublic])
async def list_attempts(session: SessionDep, tenant: TenantDep,
                        customer_id: str | None = Query(None, min_length=1, max_length=128),
                        account_id: str | None = Query(None, min_length=1, max_length=128),
                        limit: int = Query(100, ge=1, le=1000)) -> list[AttemptPublic]:
    """Your contact attempts of a customer or an account (give one), newest first: the ones agents and dialers
    reported and the ones the platform made (approved by compliance, with the channels' outcomes)."""
    rows = await records.list_attempts(session, tenant=tenant, customer_id=customer_id, account_id=account_id,
                                       limit=limit)
    return [_public(r) for r in rows]
