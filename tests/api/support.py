"""Helpers for the route tests: an app per service on a real runtime (no lifespan), tenants, outbox reads.

The app is built by the service's own ``create_app``; the lifespan (which would start consumers and
workers) never runs. Instead a ``shared.runtime.Runtime`` is built from the same settings and put on
``app.state.runtime``, which is what ``shared.deps.get_runtime`` reads, so every route goes through the
real dependencies (sessions, units of work, cipher) against the real PostgreSQL.

The outbox is the proof that a unit of work committed its state and its events together. Nothing
publishes it during these tests (the relay is never started), and while a service is open here this
module also holds the relay's per-schema advisory lock (the one ``shared/kafka/relay.py`` takes), so
that even a relay of another process on the same database (``make run``, the e2e stack) cannot
publish and delete the rows before the test reads them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from services.channels.app import create_app as channels_app
from services.channels.settings import Settings as ChannelsSettings
from services.compliance.app import create_app as compliance_app
from services.compliance.settings import Settings as ComplianceSettings
from services.plans.app import create_app as plans_app
from services.plans.settings import Settings as PlansSettings
from services.scheduler.app import create_app as scheduler_app
from services.scheduler.settings import Settings as SchedulerSettings
from services.segmentation.app import create_app as segmentation_app
from services.segmentation.settings import Settings as SegmentationSettings
from shared.contracts import CloudEvent
from shared.crypto import PiiCipher
from shared.http import PROBLEM
from shared.runtime import Runtime
from shared.settings import DEV_PII_KEYS, ServiceSettings

CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")

SERVICES: dict[str, tuple[Callable[[Any], FastAPI], type[ServiceSettings]]] = {
    "segmentation": (segmentation_app, SegmentationSettings),
    "scheduler": (scheduler_app, SchedulerSettings),
    "compliance": (compliance_app, ComplianceSettings),
    "channels": (channels_app, ChannelsSettings),
    "plans": (plans_app, PlansSettings),
}

# The lock OutboxRelay.publish_once takes before it claims rows (shared/kafka/relay.py RELAY_LOCK).
_HOLD_RELAY_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('outbox:' || current_schema()))")
_OUTBOX_OF_TENANT = text("SELECT id, topic, key, value FROM outbox "
                         "WHERE substring(key from 1 for :n) = :prefix ORDER BY id")
_OUTBOX_CONTAINING = text("SELECT id, topic, key, value FROM outbox WHERE position(:needle in value) > 0 "
                          "ORDER BY id")


def unique(prefix: str) -> str:
    """An id no other test (nor an earlier run on the same database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant of its own, with an API key that only this test's apps know."""

    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @classmethod
    def new(cls) -> Tenant:
        return cls(id=unique("t"), key=f"key-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class Outboxed:
    """An outbox row; ``event`` decodes its value as a consumer would (CloudEvent.from_bytes)."""

    id: int
    topic: str
    key: bytes
    value: bytes

    @cached_property
    def event(self) -> CloudEvent:
        return CloudEvent.from_bytes(self.value)


@dataclass
class ServiceApi:
    """One service's app, its runtime and an HTTP client on the ASGI app."""

    name: str
    app: FastAPI
    runtime: Runtime[Any]
    client: httpx.AsyncClient
    tenants: list[Tenant] = field(default_factory=list)

    async def outbox(self, tenant: Tenant | str) -> list[Outboxed]:
        """Outbox rows keyed ``<tenant>:...`` (every topic is keyed tenant:customer_id)."""
        prefix = f"{tenant.id if isinstance(tenant, Tenant) else tenant}:".encode()
        async with self.runtime.sessions() as session:
            rows = (await session.execute(_OUTBOX_OF_TENANT, {"n": len(prefix), "prefix": prefix})).all()
        return [Outboxed(r.id, r.topic, bytes(r.key), bytes(r.value)) for r in rows]

    async def outbox_containing(self, needle: str) -> list[Outboxed]:
        """Outbox rows whose value contains ``needle`` (for requests whose tenant is unknown)."""
        async with self.runtime.sessions() as session:
            rows = (await session.execute(_OUTBOX_CONTAINING, {"needle": needle.encode()})).all()
        return [Outboxed(r.id, r.topic, bytes(r.key), bytes(r.value)) for r in rows]

    async def all(self, statement: Any) -> list[Any]:
        """Run a select in a fresh session and return the scalars."""
        async with self.runtime.sessions() as session:
            return list((await session.execute(statement)).scalars().all())


@asynccontextmanager
async def open_service(name: str, database_url: str, kafka: str, tenants: list[Tenant],
                       **overrides: Any) -> AsyncIterator[ServiceApi]:
    """Build the app and a runtime (not started: no consumer, relay or worker), hold the relay lock,
    yield a client; then close the client, the producer and the engine."""
    create_app, settings_class = SERVICES[name]
    settings = settings_class(database_url=database_url, kafka_bootstrap_servers=kafka, app_env="test",
                              api_keys={t.key: t.id for t in tenants}, **overrides)
    app = create_app(settings)
    runtime: Runtime[Any] = Runtime(settings)
    app.state.runtime = runtime
    try:
        async with runtime.engine.connect() as lock_conn:
            await lock_conn.execute(_HOLD_RELAY_LOCK)  # held until this connection's transaction ends
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is a response here
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield ServiceApi(name, app, runtime, client, tenants)
            await lock_conn.rollback()
    finally:
        await runtime.producer.stop()  # never started unless a test started it; stop() is safe either way
        await runtime.engine.dispose()


OpenService = Callable[..., Awaitable[ServiceApi]]
"""The ``open_api`` fixture: ``await open_api("plans", **settings_overrides)``."""


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status (never a 500 in disguise)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM, response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and isinstance(body["detail"], str)
    assert body["type"] == "about:blank"
    return body
