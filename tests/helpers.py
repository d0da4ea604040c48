"""Helpers shared by integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

from sqlalchemy import text

from shared.contracts import CloudEvent
from shared.uow import UnitOfWork


@asynccontextmanager
async def committed(sessions: Any, source: str = "urn:test") -> AsyncIterator[UnitOfWork]:
    """A unit of work that commits when the block ends (as the consumer runner does per batch)."""
    async with UnitOfWork(sessions(), source=source) as uow:
        yield uow
        await uow.commit()


class Outboxed(NamedTuple):
    """An outbox row as written: topic, key and the decoded event."""

    topic: str
    key: bytes
    event: CloudEvent


_WRITTEN_HERE = text("SELECT topic, key, value FROM outbox WHERE xmin = pg_current_xact_id()::xid ORDER BY id")


@asynccontextmanager
async def committed_reading_outbox(sessions: Any) -> AsyncIterator[tuple[UnitOfWork, list[Outboxed]]]:
    """``committed``, plus the outbox rows its transaction wrote, read inside that transaction just before
    it commits (once committed, any running relay may publish and delete them)."""
    written: list[Outboxed] = []
    async with committed(sessions) as uow:
        commit = uow.session.commit

        async def read_outbox_then_commit() -> None:
            rows = (await uow.session.execute(_WRITTEN_HERE)).all()
            written.extend(Outboxed(r.topic, r.key, CloudEvent.from_bytes(r.value)) for r in rows)
            await commit()

        uow.session.commit = read_outbox_then_commit  # type: ignore[method-assign]
        yield uow, written
