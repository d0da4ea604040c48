"""Helpers shared by integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import event, text

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


# Zones without daylight saving, one per UTC offset from -11 to +14: whatever the hour now, some are in
# the middle of the day and some in the middle of the night.
ZONES = ("Pacific/Pago_Pago", "Pacific/Honolulu", "Pacific/Gambier", "Pacific/Pitcairn", "America/Phoenix",
         "America/Regina", "America/Bogota", "America/La_Paz", "America/Argentina/Buenos_Aires",
         "America/Noronha", "Atlantic/Cape_Verde", "Africa/Abidjan", "Africa/Lagos", "Africa/Johannesburg",
         "Africa/Nairobi", "Asia/Dubai", "Asia/Karachi", "Asia/Dhaka", "Asia/Bangkok", "Asia/Shanghai",
         "Asia/Tokyo", "Australia/Brisbane", "Pacific/Noumea", "Pacific/Tarawa", "Pacific/Fakaofo",
         "Pacific/Kiritimati")


def zone_where_local_hour_is_in(first: int, last: int) -> tuple[str, datetime]:
    """A zone whose local hour now is in [first, last], and the local time there."""
    now = datetime.now(UTC)
    for name in ZONES:
        local = now.astimezone(ZoneInfo(name))
        if first <= local.hour <= last:
            return name, local
    raise AssertionError(f"no zone in the list is between {first}:00 and {last}:59 now")


@contextmanager
def statements_on(engine: Any) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` (a sync Engine, e.g. ``async_engine.sync_engine``) while the block
    runs: to check that a use case costs the same statements whatever its batch size."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)
