"""The tenant's repayment-propensity scorecards over REST (docs/scoring.md, "The registry"): register a version
(the ``strategist`` role; a document the scorer cannot load is refused with every reason and nothing stored; a
version registered already is a conflict), list them with their held-out metrics, read one, promote one to live
(``strategist``), read the live one. Registering and promoting are audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from services.segmentation import service
from services.segmentation.domain.scorecard import VERSION
from shared.audit import record_change
from shared.deps import Principal, Role, SessionDep, TenantDep, UowDep, require

router = APIRouter(prefix="/v1", tags=["scorecards"])

Strategist = Annotated[Principal, require(Role.STRATEGIST)]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
Version = Annotated[str, Path(pattern=f"^{VERSION.pattern}$", description="The scorecard's version")]
DOCUMENT = ("A scorecard document as `python -m services.segmentation.training` writes it: format, version, scaling, "
            "intercept_points, features (bins and points), metrics (docs/scoring.md)")
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid request, or the scorecard document refused: `detail` and `errors` give every "
                         "reason; nothing was stored"},
    409: {"description": "You registered this version already (a version is immutable)"}}
UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "You registered no scorecard of this version"}}


class ScorecardIn(BaseModel):
    """A scorecard document and why it is registered."""

    document: dict[str, Any] = Field(description=DOCUMENT)
    reason: Reason


class PromoteIn(BaseModel):
    reason: Reason


class ScorecardOut(BaseModel):
    """A registered version (or the shipped default, `source` "default") with its held-out metrics."""

    version: str
    source: Literal["registered", "default"] = Field(description="registered: yours; default: the shipped one")
    live: bool = Field(description="Whether it scores your accounts now")
    features: list[str] = Field(description="The features worth points")
    auc: float | None = Field(description="Held-out AUC, from the document's metrics")
    ks: float | None
    gini: float | None
    calibration: list[dict[str, Any]] | None = Field(description="Held-out predicted vs observed cure rate by "
                                                                 "score decile, from the document's metrics")
    registered_by: str | None
    reason: str | None
    registered_at: datetime | None


class ScorecardDocumentOut(ScorecardOut):
    document: dict[str, Any]


class LiveOut(BaseModel):
    """The scorecard that scores your accounts now: the version you promoted last, or the shipped default."""

    version: str
    source: Literal["registered", "default"] = Field(description="default: you promoted none, the shipped "
                                                                 "default scores your accounts")
    features: list[str] = Field(description="The features worth points")
    auc: float | None
    ks: float | None
    gini: float | None
    promoted_by: str | None
    reason: str | None
    promoted_at: datetime | None


class ScorecardsOut(BaseModel):
    live: LiveOut
    scorecards: list[ScorecardOut] = Field(description="The versions you registered, the newest first")


def _features(card: Any) -> list[str]:
    return [f.name for f in card.features if f.name in card.uses]


def _summary(row: Any, live: service.LiveScorecard) -> ScorecardOut:
    return ScorecardOut(version=row.version, source="registered",
                        live=live.source == "registered" and live.version == row.version, features=row.features,
                        auc=row.auc, ks=row.ks, gini=row.gini, calibration=row.calibration,
                        registered_by=row.registered_by, reason=row.reason, registered_at=row.registered_at)


def _live(live: service.LiveScorecard) -> LiveOut:
    held = service.held_out_metrics(live.card.document)
    return LiveOut(version=live.version, source=live.source, features=_features(live.card), auc=held["auc"],
                   ks=held["ks"], gini=held["gini"], promoted_by=live.promoted_by, reason=live.reason,
                   promoted_at=live.promoted_at)


@router.post("/scorecards", response_model=ScorecardOut, status_code=201, responses=REFUSED)
async def register_scorecard(uow: UowDep, principal: Strategist, body: ScorecardIn) -> ScorecardOut:
    """Register a version of your scorecard (not live until promoted). A document the scorer cannot load (wrong
    format, a feature segmentation does not compute, bins without points, edges out of order, points beyond
    ±10,000, a version not of letters, digits, '.', '_' and '-') is refused with every reason, and nothing is
    stored; a version you registered already is 409."""
    row = await service.register_scorecard(uow.session, tenant=principal.tenant, document=body.document,
                                           registered_by=principal.name, reason=body.reason)
    live = await service.live_scorecard(uow.session, principal.tenant, fresh=True)
    await record_change(uow, principal, action="scorecard.register", subject=f"scorecard:{row.version}",
                        reason=body.reason)
    await uow.commit()
    return _summary(row, live)


@router.get("/scorecards", response_model=ScorecardsOut)
async def list_scorecards(session: SessionDep, tenant: TenantDep,
                          limit: int = Query(100, ge=1, le=500)) -> ScorecardsOut:
    """The versions you registered, the newest first, with their held-out metrics, and which one is live."""
    live = await service.live_scorecard(session, tenant, fresh=True)
    rows = await service.registered_scorecards(session, tenant, limit=limit)
    return ScorecardsOut(live=_live(live), scorecards=[_summary(r, live) for r in rows])


@router.get("/scorecards/live", response_model=LiveOut)
async def live_scorecard(session: SessionDep, tenant: TenantDep) -> LiveOut:
    """The scorecard that scores your accounts now (the shipped default, `source` "default", until you promote
    one of yours)."""
    return _live(await service.live_scorecard(session, tenant, fresh=True))


@router.get("/scorecards/{version}", response_model=ScorecardDocumentOut, responses=UNKNOWN)
async def get_scorecard(session: SessionDep, tenant: TenantDep, version: Version) -> ScorecardDocumentOut:
    """A version you registered, with its document; the shipped default's version when you registered none by
    that name."""
    row, card = await service.scorecard_document(session, tenant=tenant, version=version)
    live = await service.live_scorecard(session, tenant, fresh=True)
    if row is not None:
        return ScorecardDocumentOut(**_summary(row, live).model_dump(), document=row.document)
    held = service.held_out_metrics(card.document)
    return ScorecardDocumentOut(
        version=card.version, source="default", live=live.source == "default", features=_features(card),
        auc=held["auc"], ks=held["ks"], gini=held["gini"], calibration=held["calibration"], registered_by=None,
        reason=None, registered_at=None, document=dict(card.document))


@router.post("/scorecards/{version}/promote", response_model=LiveOut, responses=UNKNOWN)
async def promote_scorecard(uow: UowDep, principal: Strategist, version: Version, body: PromoteIn) -> LiveOut:
    """Make a version you registered your live scorecard: it scores the next overdue snapshots (within seconds
    on every replica); scores already stored stay as they were until the account's next snapshot."""
    live = await service.promote_scorecard(uow.session, tenant=principal.tenant, version=version,
                                           promoted_by=principal.name, reason=body.reason)
    await record_change(uow, principal, action="scorecard.promote", subject=f"scorecard:{version}",
                        reason=body.reason)
    await uow.commit()
    service.SCORECARDS.forget(principal.tenant)
    return _live(live)

