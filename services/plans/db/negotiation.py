"""Negotiation's tables and repository functions: tenants' plan policies (versioned, immutable), quotes (the offers
made to an account, used at most once, until they expire) and the approval steps of an agreement. Adds and
flushes, never commits. Migration 0007."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.db import Versions, table_of


class PlanPolicyRow(SQLModel, table=True):
    """One published version of a tenant's plan policy (services/plans/domain/policy.py): immutable; the newest
    applies."""

    __tablename__ = "plan_policies"

    tenant: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    document: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_by: str = Field(max_length=128)
    reason: str = Field(max_length=500)
    created_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True),
                                                                       server_default=func.now(), nullable=False))


class PlanQuote(SQLModel, table=True):
    """The offers a policy allowed an account at a moment: each (offer_id, kind, schedule, totals, verdict,
    approvals) as JSON. The customer's income and expenses are not kept (only each offer's verdict)."""

    __tablename__ = "plan_quotes"
    __table_args__ = (Index("ix_plan_quotes_account", "tenant", "account_id"),)

    quote_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    account_id: str = Field(max_length=128)
    customer_id: str = Field(max_length=128)
    currency: str = Field(max_length=3)
    policy_version: int
    rule: str = Field(max_length=64)
    overdue_minor: int
    outstanding_minor: int
    offers: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    requested_by: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    plan_id: str | None = Field(default=None, max_length=64)  # the agreement made from it: used once


class PlanApproval(SQLModel, table=True):
    """One approval an agreement waits for or got: ``supervisor`` or ``co_lender:<tenant>``; pending until a
    principal decides it (approved or rejected), with who, of which tenant, and why."""

    __tablename__ = "plan_approvals"

    plan_id: str = Field(primary_key=True, max_length=64)
    step: str = Field(primary_key=True, max_length=80)
    tenant: str = Field(max_length=64)  # the servicer's
    status: str = Field(default="pending", max_length=16)
    decided_by: str | None = Field(default=None, max_length=128)
    decided_tenant: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


POLICIES = table_of(PlanPolicyRow)
POLICY_VERSIONS = Versions(POLICIES, "plan-policy")


async def current_policy(session: AsyncSession, tenant: str) -> Any | None:
    rows = await POLICY_VERSIONS.newest(session, [tenant])
    return rows[0] if rows else None


async def latest_policy_version(session: AsyncSession, tenant: str, *, lock: bool = False) -> int:
    return await POLICY_VERSIONS.latest(session, tenant, lock=lock)


async def add_policy(session: AsyncSession, values: Mapping[str, Any]) -> Any:
    return await POLICY_VERSIONS.add(session, dict(values))


async def policy_versions(session: AsyncSession, tenant: str, *, limit: int) -> list[Any]:
    return await POLICY_VERSIONS.history(session, tenant, limit=limit)


async def add_quote(session: AsyncSession, quote: PlanQuote) -> None:
    session.add(quote)
    await session.flush()


async def quote(session: AsyncSession, *, tenant: str, quote_id: str, lock: bool = False) -> PlanQuote | None:
    query = select(PlanQuote).where(PlanQuote.tenant == tenant, PlanQuote.quote_id == quote_id)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def add_approvals(session: AsyncSession, *, tenant: str, plan_id: str, steps: Sequence[str]) -> None:
    session.add_all([PlanApproval(plan_id=plan_id, step=s, tenant=tenant) for s in steps])
    await session.flush()


async def approvals(session: AsyncSession, plan_id: str) -> list[PlanApproval]:
    return list((await session.execute(select(PlanApproval).where(PlanApproval.plan_id == plan_id)  # type: ignore[arg-type]
                                       .execution_options(populate_existing=True)
                                       .order_by(PlanApproval.step))).scalars().all())  # type: ignore[arg-type]


async def decide(session: AsyncSession, *, plan_id: str, step: str, status: str, decided_by: str,
                 decided_tenant: str, reason: str, at: datetime) -> None:
    await session.execute(update(PlanApproval).where(
        PlanApproval.plan_id == plan_id, PlanApproval.step == step)  # type: ignore[arg-type]
        .values(status=status, decided_by=decided_by, decided_tenant=decided_tenant, reason=reason, decided_at=at))
