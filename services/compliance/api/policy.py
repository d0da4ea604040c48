"""The tenant's policy over REST: read the current one (with every rule's effective parameters), its history, and
publish a new version (the ``compliance`` role; refused with every reason when it would loosen a legal limit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.compliance.api.records import Officer, Reason, commit_change
from services.compliance.service import policies
from shared.deps import SessionDep, TenantDep, UowDep

router = APIRouter(prefix="/v1", tags=["compliance policy"])


class PolicyIn(BaseModel):
    """A policy document (see docs/compliance.md, "Tenant policy") and why it is published."""

    jurisdiction: str = Field(policies.DEFAULT_JURISDICTION, description="CN, US or UK: your customers' jurisdiction")
    packs: dict[str, list[str]] = Field(default_factory=dict,
                                        description="rule packs per jurisdiction (HOUSE always applies)")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                              description="tightened parameters per rule id")
    reason: Reason


class PolicyOut(BaseModel):
    version: int = Field(description="0: the legal defaults (nothing published)")
    jurisdiction: str
    packs: dict[str, list[str]]
    params: dict[str, dict[str, Any]] = Field(description="the parameters the document sets")
    effective: dict[str, dict[str, Any]] = Field(description="every rule's parameters under this policy")
    created_by: str | None
    reason: str | None
    created_at: datetime | None


def _out(tp: policies.TenantPolicy, *, effective: bool = True) -> PolicyOut:
    return PolicyOut(version=tp.version, jurisdiction=tp.jurisdiction,
                     packs={k: list(v) for k, v in tp.policy.packs.items()},
                     params=dict(tp.document.get("params", {})),
                     effective=policies.effective_parameters(tp) if effective else {},
                     created_by=tp.created_by, reason=tp.reason, created_at=tp.created_at)


@router.get("/policy", response_model=PolicyOut)
async def current_policy(session: SessionDep, tenant: TenantDep) -> PolicyOut:
    """Your current policy (version 0 and the legal defaults when you have published none)."""
    policies.CACHE.forget(tenant)  # a read shows what is stored, not this replica's cached copy
    return _out(await policies.current_policy(session, tenant))


@router.get("/policy/versions", response_model=list[PolicyOut])
async def policy_versions(session: SessionDep, tenant: TenantDep,
                          limit: int = Query(50, ge=1, le=500)) -> list[PolicyOut]:
    """Every version you published, newest first, with who published it and why."""
    return [_out(tp, effective=False) for tp in await policies.history(session, tenant, limit=limit)]


@router.put("/policy", response_model=PolicyOut, status_code=201,
            responses={422: {"description": "Policy refused: each reason names the rule it breaks"}})
async def publish_policy(uow: UowDep, principal: Officer, body: PolicyIn) -> PolicyOut:
    """Publish a new version of your policy. It may only tighten the legal defaults: a document that loosens one
    (a wider window, a higher cap), names an unknown rule, pack or parameter, or has a window that does not
    start before it ends is refused with every reason, and nothing is stored. Applies to the next decisions
    (within seconds on every replica)."""
    document = body.model_dump(exclude={"reason"})
    published = await policies.publish(uow.session, tenant=principal.tenant, document=document,
                                       created_by=principal.name, reason=body.reason)
    await commit_change(uow, principal, action="policy.publish", subject=f"policy:v{published.version}",
                        reason=body.reason)
    return _out(published)
