"""Inbox (idempotent consumers) and outbox (events committed with the state change).

Both tables live in every service's own schema; their DDL is in each service's first migration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.contracts import CloudEvent, Topic, message_key, new_event_id
from shared.db import table_of


class InboxEntry(SQLModel, table=True):
    """A consumed event id per consumer group: a second delivery of the same id is skipped."""

    __tablename__ = "inbox"

    consumer_group: str = Field(primary_key=True, max_length=100)
    event_id: str = Field(primary_key=True, max_length=200)
    received_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                   nullable=False))


class OutboxEntry(SQLModel, table=True):
    """An event committed with the state change that caused it, waiting for the relay to publish it."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True, autoincrement=True))
    topic: str = Field(max_length=200)
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    value: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(),
                                                  nullable=False))


async def claim_inbox(session: AsyncSession, group: str, event_ids: Sequence[str]) -> set[str]:
    """Record event ids for ``group``; return the ids that were new (the rest are redeliveries)."""
    if not event_ids:
        return set()
    table = table_of(InboxEntry)
    # executemany form: one cached statement whatever the batch size (multi-VALUES recompiles each time)
    stmt = insert(table).on_conflict_do_nothing().returning(table.c.event_id)  # type: ignore[attr-defined]
    rows = [{"consumer_group": group, "event_id": eid} for eid in dict.fromkeys(event_ids)]
    return set((await session.execute(stmt, rows)).scalars())


def build_event(topic: Topic, payload: object, *, tenant: str, customer_id: str, source: str,
                cause: CloudEvent | None = None, subject: str | None = None) -> CloudEvent:
    """Wrap a payload for ``topic`` in a CloudEvent, carrying correlation from its cause."""
    from datetime import UTC

    event_id = new_event_id()
    return CloudEvent(
        id=event_id, source=source, type=topic.event_type, subject=subject or customer_id,
        time=datetime.now(UTC), tenant=tenant,
        dataschema=f"urn:gentle-collections:{topic.name}",
        traceparent=cause.traceparent if cause else None,
        correlationid=(cause.correlationid or cause.id) if cause else event_id,
        causationid=cause.id if cause else None,
        data=payload.model_dump(mode="json"),  # type: ignore[attr-defined]
    )


async def add_to_outbox(session: AsyncSession, items: Iterable[tuple[Topic, CloudEvent, str]]) -> int:
    """Queue events (topic, event, customer_id) in the caller's transaction. Returns the count."""
    rows = [
        {"topic": topic.name, "key": message_key(event.tenant, customer_id), "value": event.to_bytes()}
        for topic, event, customer_id in items
    ]
    if rows:
        await session.execute(insert(table_of(OutboxEntry)), rows)  # Core executemany: no ORM bookkeeping
    return len(rows)
