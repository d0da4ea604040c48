"""The tenant's segmentation policy over REST (docs/domain.md, "Segmentation policies"): read the current one and
its history, try a document out on a sample of the tenant's accounts (dry run, nothing stored), and publish a new
version (the ``strategist`` role; refused with every reason when the document cannot be used; audited)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from services.segmentation import service
from shared.audit import record_change
from shared.contracts.events import Segment
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require

router = APIRouter(prefix="/v1", tags=["segmentation policy"])

Strategist = Annotated[Principal, require(Role.STRATEGIST)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
DOCUMENT = ("A segmentation policy document: {\"rules\": [{\"name\", \"segment\", \"when\": {conditions}, \"why\"}, "
            "...], \"default\": {\"segment\", \"why\"}} (docs/domain.md, \"Segmentation policies\")")
REFUSED: dict[int | str, dict[str, Any]] = {422: {
    "description": "Invalid request, or the policy document refused: `detail` and `errors` give every reason; "
                   "nothing was stored"}}


class PolicyIn(BaseModel):
    """A policy document and why it is published."""

    document: dict[str, Any] = Field(description=DOCUMENT)
    reason: Reason


class PolicyOut(BaseModel):
    version: int = Field(description="0: the built-in seg-v1 (nothing published)")
    label: str = Field(description="How segment reasons name this version: seg-v1, or policy-v<version>")
    document: dict[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None


class DryRunIn(BaseModel):
    """A proposed policy document, and how many of your accounts to try it on."""

    document: dict[str, Any] = Field(description=DOCUMENT)
    sample: int = Field(1000, ge=1, le=service.MAX_DRY_RUN_SAMPLE, strict=True,
                        description="How many of your accounts to classify, the newest snapshots first")


class MoveOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: Segment = Field(alias="from", description="The segment under the current policy")
    to: Segment = Field(description="The segment under the proposed policy")
    accounts: int


class ClassificationOut(BaseModel):
    segment: Segment
    rule: str | None = Field(description="The rule that matched; null: the policy's default")
    reason: str


class ExampleOut(BaseModel):
    account_id: str
    current: ClassificationOut
    proposed: ClassificationOut


class DryRunOut(BaseModel):
    current_version: int
    current_label: str
    proposed_label: str = Field(description="The label the document would have if published now")
    sampled: int = Field(description="Accounts classified (at most `sample`; fewer when you have fewer)")
    changed: int = Field(description="Accounts the proposed policy puts in another segment")
    moves: list[MoveOut] = Field(description="Accounts per (current, proposed) segment pair, unchanged ones "
                                             "included (from = to)")
    examples: list[ExampleOut] = Field(description=f"Up to {service.MAX_DRY_RUN_EXAMPLES} accounts that change, "
                                                   "the newest first")


def _out(tp: service.TenantPolicy) -> PolicyOut:
    return PolicyOut(version=tp.version, label=tp.label, document=dict(tp.document), created_by=tp.created_by,
                     reason=tp.reason, created_at=tp.created_at)


def _classification(c: Any) -> ClassificationOut:
    return ClassificationOut(segment=c.segment, rule=c.rule, reason=c.reason)


@router.get("/segmentation-policy", response_model=PolicyOut)
async def current_policy(session: SessionDep, tenant: TenantDep) -> PolicyOut:
    """Your current segmentation policy (version 0, the built-in seg-v1, when you have published none)."""
    return _out(await service.current_policy(session, tenant, fresh=True))


@router.get("/segmentation-policy/versions", response_model=list[PolicyOut])
async def policy_versions(session: SessionDep, tenant: TenantDep,
                          limit: int = Query(50, ge=1, le=500)) -> list[PolicyOut]:
    """Every version you published, newest first, with who published it and why."""
    return [_out(tp) for tp in await service.policy_history(session, tenant, limit=limit)]


@router.put("/segmentation-policy", response_model=PolicyOut, status_code=201, responses=REFUSED)
async def publish_policy(uow: UowDep, principal: Strategist, body: PolicyIn) -> PolicyOut:
    """Publish a new version of your segmentation policy. A document with an unknown field, condition, segment or
    rating, a minimum over its maximum, a negative bound, a rule that can never match, more than 200 rules or over
    64 KB is refused with every reason, and nothing is stored. Applies to the next overdue accounts classified
    (within seconds on every replica); accounts already classified keep their segment until their next snapshot."""
    published = await service.publish_policy(uow.session, tenant=principal.tenant, document=body.document,
                                             created_by=principal.name, reason=body.reason)
    await record_change(uow, principal, action="segmentation_policy.publish",
                        subject=f"segmentation-policy:v{published.version}", reason=body.reason)
    await uow.commit()
    return _out(published)


@router.post("/segmentation-policy/dry-run", response_model=DryRunOut, responses=REFUSED)
async def dry_run(session: SessionDep, principal: Strategist, body: DryRunIn) -> DryRunOut:
    """Try a document out: classify up to `sample` of your accounts (the newest snapshots first) by it and by your
    current policy, and see how many would move between segments, with examples. Nothing is stored or announced.
    A document that could not be published is refused the same way (422, every reason)."""
    result = await service.dry_run(session, tenant=principal.tenant, document=body.document, sample=body.sample)
    return DryRunOut(
        current_version=result.current.version, current_label=result.current.label,
        proposed_label=result.proposed.label, sampled=result.sampled, changed=result.changed,
        moves=[MoveOut(from_=m.from_segment, to=m.to_segment, accounts=m.accounts) for m in result.moves],
        examples=[ExampleOut(account_id=e.account_id, current=_classification(e.current),
                             proposed=_classification(e.proposed)) for e in result.examples])
