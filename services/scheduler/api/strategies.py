"""Strategies and experiments over REST (docs/strategies.md): publish and read strategy versions, check one
without publishing, assign champion and challengers, promote a challenger, and dry-run an account's timeline.
Every change needs the ``strategist`` role and is audited with who and why."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from services.scheduler import service
from services.scheduler.service import experiments, strategies
from services.scheduler.service import timeline as dry_run
from services.scheduler.service.timeline import TimelineEntry
from services.scheduler.settings import Settings
from shared.access.keys import Principal
from shared.audit import record_change
from shared.deps import Role, SessionDep, SettingsDep, TenantDep, UowDep, require
from shared.domain import NotFound

router = APIRouter(prefix="/v1", tags=["strategies"])
Strategist = Annotated[Principal, require(Role.STRATEGIST)]
Reason = Annotated[str, Field(min_length=1, max_length=500, description="Why: kept with the version and audited")]
Name = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=500)]


class StrategyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] = Field(description="The strategy: {description, segments: {segment: {bucket: [steps]}}}")
    reason: Reason


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any]


class CheckOut(BaseModel):
    valid: bool
    errors: list[str] = Field(description="Every reason the document would be refused (empty: it would not)")


class StrategyOut(BaseModel):
    name: str
    version: int
    document: dict[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    champion: dict[str, Any] = Field(description='{"strategy": name, "version": number}')
    experiment: str | None = Field(None, max_length=64, description="The experiment's name: seeds the assignment")
    challengers: list[dict[str, Any]] = Field(default_factory=list, max_length=4,
                                              description="[{arm, strategy, version, share_bp: {segment: bp}}]")
    reason: Reason


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str = Field(min_length=1, max_length=64, description="The challenger arm whose strategy becomes champion")
    reason: Reason


class AssignmentOut(BaseModel):
    version: int = Field(description="0: the built-in strategy (nothing published)")
    document: dict[str, Any]
    created_by: str | None
    reason: str | None
    created_at: datetime | None


class TimelineOut(BaseModel):
    account_id: str
    strategy: str = Field(description="name@version the timeline follows")
    arm: str
    status: str = Field(description="The treatment's status now: only an active one takes steps")
    days_past_due: int
    due_date: date
    steps: list[TimelineEntry]


def _strategy(p: strategies.Published) -> StrategyOut:
    return StrategyOut(name=p.name or "", version=p.version, document=dict(p.document), created_by=p.created_by,
                       reason=p.reason, created_at=p.created_at)


def _assignment(p: strategies.Published) -> AssignmentOut:
    return AssignmentOut(version=p.version, document=dict(p.document), created_by=p.created_by, reason=p.reason,
                         created_at=p.created_at)


@router.get("/strategies", response_model=list[StrategyOut])
async def list_strategies(session: SessionDep, tenant: TenantDep, limit: Limit = 100) -> list[StrategyOut]:
    """Every strategy version you published, newest first, and the built-in one (``builtin@1``)."""
    return [_strategy(p) for p in await strategies.strategy_versions(session, tenant, None, limit=limit)]


@router.post("/strategy-checks", response_model=CheckOut)
async def check_strategy(body: CheckIn, tenant: TenantDep) -> CheckOut:
    """Check a strategy document without publishing it: every reason it would be refused."""
    errors = strategies.check_strategy(body.document)
    return CheckOut(valid=not errors, errors=errors)


@router.put("/strategies/{name}", response_model=StrategyOut, status_code=201,
            responses={422: {"description": "Strategy refused: `errors` names every reason; nothing was stored"}})
async def publish_strategy(uow: UowDep, principal: Strategist, name: Name, body: StrategyIn) -> StrategyOut:
    """Publish the next version of a strategy. Versions are immutable; a treatment follows one only once an
    assignment names it (``PUT /v1/strategy-assignment``). Refused with every reason, storing nothing, when it
    is incomplete (a segment or bucket without steps), has an unreachable step, or would breach a compliance
    limit by construction (docs/strategies.md)."""
    published = await strategies.publish_strategy(uow.session, tenant=principal.tenant, name=name,
                                                  document=body.document, created_by=principal.name,
                                                  reason=body.reason)
    await record_change(uow, principal, action="strategy.publish", subject=f"{name}@{published.version}",
                        reason=body.reason)
    await uow.commit()
    return _strategy(published)


@router.get("/strategies/{name}/versions", response_model=list[StrategyOut])
async def strategy_versions(session: SessionDep, tenant: TenantDep, name: Name, limit: Limit = 50) -> list[StrategyOut]:
    """The versions of one strategy, newest first (empty when you published none of that name)."""
    return [_strategy(p) for p in await strategies.strategy_versions(session, tenant, name, limit=limit)
            if p.name == name]


@router.get("/strategies/{name}/versions/{version}", response_model=StrategyOut)
async def strategy_version(session: SessionDep, tenant: TenantDep, name: Name, version: Version) -> StrategyOut:
    """One published version (``builtin``/1: the built-in strategy, to start yours from)."""
    return _strategy(await strategies.strategy_version(session, tenant, name, version))


@router.get("/strategy-assignment", response_model=AssignmentOut)
async def current_assignment(session: SessionDep, tenant: TenantDep) -> AssignmentOut:
    """Which strategy your treatments follow now: the champion, and the running experiment's challengers."""
    return _assignment(await strategies.current_assignment(session, tenant))


@router.get("/strategy-assignment/versions", response_model=list[AssignmentOut])
async def assignment_versions(session: SessionDep, tenant: TenantDep, limit: Limit = 50) -> list[AssignmentOut]:
    """Every assignment you published, newest first, with who and why."""
    return [_assignment(p) for p in await strategies.assignment_versions(session, tenant, limit=limit)]


@router.put("/strategy-assignment", response_model=AssignmentOut, status_code=201,
            responses={422: {"description": "Assignment refused: `errors` names every reason; nothing was stored"}})
async def publish_assignment(uow: UowDep, principal: Strategist, body: AssignmentIn) -> AssignmentOut:
    """Set the champion and start, change or stop an experiment (challengers with a share of each segment's
    borrowers, in basis points). Applies to the steps planned from now on, within seconds on every replica."""
    document = body.model_dump(exclude={"reason"}, exclude_none=True)
    if not document.get("challengers"):
        document.pop("challengers", None)
    published = await strategies.publish_assignment(uow.session, tenant=principal.tenant, document=document,
                                                    created_by=principal.name, reason=body.reason)
    await record_change(uow, principal, action="assignment.publish", subject=f"assignment:v{published.version}",
                        reason=body.reason)
    await uow.commit()
    return _assignment(published)


@router.post("/strategy-assignment/promote", response_model=AssignmentOut, status_code=201,
             responses={409: {"description": "No challenger of that arm in the running experiment"}})
async def promote(uow: UowDep, principal: Strategist, body: PromoteIn) -> AssignmentOut:
    """Promote a challenger: its strategy becomes the champion and the experiment ends (a new assignment
    version, audited)."""
    published = await strategies.promote(uow.session, tenant=principal.tenant, arm=body.arm,
                                         created_by=principal.name, reason=body.reason)
    await record_change(uow, principal, action="assignment.promote", subject=f"assignment:v{published.version}",
                        reason=f"promote {body.arm}: {body.reason}")
    await uow.commit()
    return _assignment(published)


@router.get("/accounts/{account_id}/timeline", response_model=TimelineOut)
async def timeline(session: SessionDep, tenant: TenantDep, account_id: str,
                   strategy: str | None = Query(None, max_length=80, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}@[0-9]{1,9}$",
                                                description="name@version; default: the one the account follows"),
                   days: int = Query(30, ge=1, le=180, description="How many days ahead")) -> TimelineOut:
    """Dry run: the steps the strategy would take for this account over the next ``days`` days if nothing
    changed (no payment, every contact delivered), beside the steps already made with the verdicts and outcomes
    they met. Nothing is stored or sent."""
    if any(ord(c) < 32 for c in account_id):  # no account id holds a control character (nor can the database)
        raise NotFound(f"No treatment for account {account_id!r} in your tenant.")
    treatment, steps = await service.get_treatment(session, tenant=tenant, account_id=account_id)
    ref, arm, followed = await dry_run.strategy_for(session, treatment, strategy)
    entries = dry_run.entries(followed, treatment, steps, days=days)
    return TimelineOut(account_id=account_id, strategy=ref, arm=arm, status=treatment.status,
                       days_past_due=treatment.days_past_due, due_date=treatment.due_date, steps=entries)


class RateOut(BaseModel):
    value: float | None = Field(description="The rate, 0-1 (null: no account has matured to this horizon yet)")
    low: float | None = Field(description="95% interval, low end")
    high: float | None
    numerator: int = Field(description="Accounts (a rate of accounts) or minor units recovered (recovery)")
    denominator: int = Field(description="Accounts matured, or minor units owed at the start")


class ComparisonOut(BaseModel):
    metric: str
    difference: float | None = Field(description="This arm's rate less the champion's")
    low: float | None
    high: float | None
    p_value: float | None
    significant: bool = Field(description="p < 0.05 (two-sided)")
    statement: str


class ArmOut(BaseModel):
    arm: str
    accounts: int
    contacts_per_account: float | None
    cost_minor: int = Field(description="Contacts made times each channel's cost (SCHEDULER_CONTACT_COSTS_MINOR)")
    cost_per_account_minor: int | None
    plans: int
    complaint_rate: RateOut
    cure_rate: dict[str, RateOut] = Field(description="By horizon in days (7, 30, 60): paid off within it")
    recovery_rate: dict[str, RateOut] = Field(description="By horizon: recovered within it over owed at the start")
    recovered_minor: dict[str, int]
    compared: list[ComparisonOut] = Field(description="Against the champion (challengers only)")


class ReportOut(BaseModel):
    experiment: str
    as_of: datetime
    steps_read: int
    costs_minor: dict[str, int]
    arms: list[ArmOut]


class ExperimentOut(BaseModel):
    experiment: str
    arms: list[str]
    versions: list[int] = Field(description="The assignment versions that ran it")
    started_at: datetime


def _rate(r: Any) -> RateOut:
    return RateOut(value=r.value, low=r.low, high=r.high, numerator=r.numerator, denominator=r.denominator)


@router.get("/experiments", response_model=list[ExperimentOut])
async def list_experiments(session: SessionDep, tenant: TenantDep) -> list[ExperimentOut]:
    """Your experiments, from the assignments that ran them."""
    return [ExperimentOut(**e) for e in await experiments.experiments(session, tenant)]


@router.get("/experiments/{experiment}/report", response_model=ReportOut)
async def experiment_report(session: SessionDep, tenant: TenantDep, settings: SettingsDep,
                            experiment: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
                            ) -> ReportOut:
    """Per arm: accounts, contacts per account, contact cost, plans, cure and recovery rates at 7, 30 and 60 days
    and the complaint rate, with 95% intervals, and each challenger compared with the champion in plain words
    (docs/strategies.md, "The experiment report")."""
    now = datetime.now(UTC)
    costs = dict((settings if isinstance(settings, Settings) else Settings()).contact_costs_minor)
    arms, read = await experiments.experiment_report(session, tenant=tenant, experiment=experiment, costs=costs,
                                                     now=now)
    return ReportOut(experiment=experiment, as_of=now, steps_read=read, costs_minor=costs, arms=[ArmOut(
        arm=a.arm, accounts=a.accounts, contacts_per_account=a.contacts_per_account, cost_minor=a.cost_minor,
        cost_per_account_minor=a.cost_per_account_minor, plans=a.plans, complaint_rate=_rate(a.complaint_rate),
        cure_rate={str(h): _rate(r) for h, r in a.cure_rate.items()},
        recovery_rate={str(h): _rate(r) for h, r in a.recovery_rate.items()},
        recovered_minor={str(h): v for h, v in a.recovered_minor.items()},
        compared=[ComparisonOut(metric=c.metric, difference=c.difference, low=c.low, high=c.high,
                                p_value=c.p_value, significant=c.significant, statement=c.statement)
                  for c in a.compared]) for a in arms])
