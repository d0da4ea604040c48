"""Session fixtures: one real PostgreSQL and one real Kafka-API broker per test session, on free
ports, started only when a test asks for them (unit tests never do). Set TEST_DATABASE_URL and
TEST_KAFKA_BOOTSTRAP_SERVERS to run against existing servers instead."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from devstack.stack import LocalStack, Ports
from shared.db import asyncpg_url, create_engine, session_factory
from shared.registry import SERVICES
from shared.tools import migrate
from shared.tools.topics import ensure_topics


@dataclass(frozen=True)
class Infra:
    database_url: str
    kafka: str


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    database_url = os.environ.get("TEST_DATABASE_URL")
    kafka = os.environ.get("TEST_KAFKA_BOOTSTRAP_SERVERS")
    postgres = broker = None
    base = tmp_path_factory.mktemp("infra")
    try:
        if database_url is None:
            postgres = EmbeddedPostgres(base / "pg", free_port())
            postgres.start()
            database_url = postgres.url
        if kafka is None:
            broker = EmbeddedBroker(free_port())
            broker.start(base / "broker.log")
            kafka = broker.bootstrap
        asyncio.run(ensure_topics(kafka, partitions=3))
        migrate.upgrade(database_url)
        yield Infra(database_url, kafka)
    finally:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()


@pytest.fixture
async def sessions(infra: Infra, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Sessions on the real PostgreSQL in the schema of the service whose tests ask (tests/<service>/...)."""
    service = request.path.relative_to(Path(__file__).parent).parts[0]
    if service not in {s.name for s in SERVICES}:
        raise pytest.UsageError(f"the sessions fixture is for tests under tests/<service>/, not {request.path}")
    settings = importlib.import_module(f"services.{service}.settings").Settings
    engine = create_engine(settings(database_url=infra.database_url))
    yield session_factory(engine)
    await engine.dispose()


def _own_database(database_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``database_url`` (dropped first if a crashed run left it),
    migrated; its URL."""
    async def create() -> None:
        conn = await asyncpg.connect(asyncpg_url(database_url).replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The five services, the SMS sandbox and the SMTP sink as real processes, on a database of their own on the
    session's server: their workers (the scheduler's timer, plans' monitor and webhook dispatcher, channels'
    dispatcher) would otherwise claim the rows the integration tests that run after them create and check."""
    data_dir: Path = tmp_path_factory.mktemp("stack")
    ports = Ports.free()
    database_url = _own_database(infra.database_url, "stack")
    local = LocalStack(data_dir, ports, database_url=database_url, kafka=infra.kafka,
                       env={"APP_ENV": "test", "LOG_LEVEL": "INFO", "SCHEDULER_TIMER_INTERVAL_S": "0.5",
                            # the end-to-end tests run on any day: public holidays would defer their contacts
                            "COMPLIANCE_DEFAULT_CALENDAR_COUNTRY": "none",
                            "CHANNELS_DISPATCH_LEASE_S": "5"})
    try:
        local.start_apps()
        local.wait_ready(timeout_s=120)
        yield local
    finally:
        local.stop_apps()
