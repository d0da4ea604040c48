"""Helpers shared by integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.uow import UnitOfWork


@asynccontextmanager
async def committed(sessions: Any, source: str = "urn:test") -> AsyncIterator[UnitOfWork]:
    """A unit of work that commits when the block ends (as the consumer runner does per batch)."""
    async with UnitOfWork(sessions(), source=source) as uow:
        yield uow
        await uow.commit()
