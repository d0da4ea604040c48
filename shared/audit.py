"""Who changed what, and why: one ``audit_log`` row per change made over REST, written in the same unit of work
as the change (so there is never a change without its row, nor a row without its change).

The table lives in the schema of each service that keeps it (compliance today; a service adopting it creates
the table with ``shared.alembic_env.create_audit_table()`` in a migration and imports ``AuditEntry`` into its
``db/models.py``).
``principal`` is the authenticated principal of the API key (``shared.access.keys.Principal``), never a name the
caller typed; ``reason`` is required by every route that changes something (docs/access.md).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import BigInteger, Column, DateTime, Identity, func
from sqlmodel import Field, SQLModel

from shared.access.keys import Principal
from shared.db import table_of
from shared.logging import request_id_var
from shared.uow import UnitOfWork


class AuditEntry(SQLModel, table=True):
    """One change: who (tenant, principal, the key it used), what (action, subject), why (reason), when."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index("ix_audit_log_subject", "tenant", "subject", "at"),
                      sa.Index("ix_audit_log_principal", "tenant", "principal", "at"))

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    tenant: str
    principal: str
    key_id: str | None = None
    action: str
    subject: str
    reason: str
    request_id: str | None = None
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False))


async def record_change(uow: UnitOfWork, principal: Principal, *, action: str, subject: str, reason: str) -> None:
    """Add the audit row of one change to the unit of work (it commits with the change)."""
    await uow.session.execute(sa.insert(table_of(AuditEntry)).values(
        tenant=principal.tenant, principal=principal.name, key_id=principal.key_id, action=action,
        subject=subject, reason=reason, request_id=request_id_var.get()))

