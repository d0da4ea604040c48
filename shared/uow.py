"""Unit of work: one transaction, the events a use case emits, and the outbox written with them.

A use case receives a :class:`UnitOfWork`, reads and writes through ``uow.session`` (repositories add
and flush, never commit) and announces what happened with :meth:`UnitOfWork.emit`. The entry point
that opened the unit of work commits it: :meth:`UnitOfWork.commit` writes the emitted events to the
outbox in the same transaction, commits, and only then wakes the relay (when it emitted events) and
any other listener, so an event is published if and only if the state change that caused it is durable.

Who opens one: the consumer runner per batch (its inbox rows are in the same transaction), a route
per request (``shared.deps.UowDep``), a worker per claim. Nothing else writes the outbox.

After cosmicpython's ``unit_of_work.py`` and pyeventsourcing's ``policy(event, processing_event)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.contracts import CloudEvent, Topic
from shared.contracts.events import payload_owner
from shared.messaging import add_to_outbox, build_event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event waiting for its transaction to commit."""

    topic: Topic
    event: CloudEvent
    customer_id: str


class UnitOfWork:
    """One database transaction plus the events it will publish. Use as ``async with``.

    Leaving the block without :meth:`commit` rolls everything back, events included.
    """

    def __init__(self, session: AsyncSession, *, source: str,
                 after_commit: Sequence[Callable[[], None]] = (),
                 on_events: Sequence[Callable[[], None]] = ()) -> None:
        self.session = session
        self.source = source
        self._after_commit = after_commit
        self._on_events = on_events
        self._emitted: list[Emitted] = []
        self._committed = False

    async def __aenter__(self) -> Self:
        await self.session.begin()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                if exc is None and self._emitted:
                    log.error("unit of work left without commit: its events are discarded",
                              extra={"events": [e.topic.name for e in self._emitted]})
                await self.rollback()
        finally:
            await self.session.close()

    def emit(self, topic: Topic, payload: BaseModel, *, cause: CloudEvent | None = None,
             subject: str | None = None, event_id: str | None = None, source: str | None = None) -> CloudEvent:
        """Queue an event for ``topic``; it reaches the outbox only if this unit of work commits.

        ``cause`` carries correlation and causation ids from the event being handled; ``event_id``
        replaces the generated id (a partner's own id, so a resent batch dedupes downstream).
        """
        if self._committed:
            raise RuntimeError("this unit of work is committed: an event emitted now would be lost")
        if not isinstance(payload, topic.payload):
            raise TypeError(f"{topic.name} carries {topic.payload.__name__}, not {type(payload).__name__}")
        owner = payload_owner(payload)
        if owner is None:
            raise TypeError(f"{type(payload).__name__} names no tenant and customer_id: it cannot be keyed")
        tenant, customer_id = owner
        event = build_event(topic, payload, tenant=tenant, customer_id=customer_id, source=source or self.source,
                            cause=cause, subject=subject)
        if event_id is not None:
            # validated: an id the envelope refuses would be published and then dead-lettered by every consumer
            # the first event of a chain is its own correlation
            correlation = event.correlationid if cause is not None else event_id
            event = CloudEvent.model_validate(event.model_dump() | {"id": event_id, "correlationid": correlation})
        self._emitted.append(Emitted(topic, event, customer_id))
        return event

    @property
    def emitted(self) -> list[Emitted]:
        """Events emitted so far and not yet committed (for tests and logs)."""
        return list(self._emitted)

    async def commit(self) -> None:
        """Write the emitted events to the outbox, commit, then wake the listeners: ``on_events`` (the
        relay) when there are events to publish, ``after_commit`` after every commit."""
        emitted = await add_to_outbox(self.session, [(e.topic, e.event, e.customer_id) for e in self._emitted])
        await self.session.commit()
        self._committed = True
        self._emitted.clear()
        for listener in (*self._on_events, *self._after_commit) if emitted else self._after_commit:
            try:
                listener()
            except Exception:  # the commit stands: a listener must not turn it into a failure
                log.exception("after-commit listener failed", extra={"listener": repr(listener)})

    async def rollback(self) -> None:
        """Discard the transaction and the events it emitted."""
        self._emitted.clear()
        await self.session.rollback()


class UnitOfWorkFactory:
    """Makes units of work for one service: its sessions, its event source, its commit listeners
    (``on_events``: woken when a commit wrote events, the relay; ``after_commit``: after every commit)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, source: str,
                 on_events: Sequence[Callable[[], None]] = ()) -> None:
        self.sessions = sessions
        self.source = source
        self.on_events: list[Callable[[], None]] = list(on_events)
        self.after_commit: list[Callable[[], None]] = []

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.sessions(), source=self.source, after_commit=self.after_commit,
                          on_events=self.on_events)
