"""Fixtures of the end-to-end tests on the session's stack (tests/conftest.py ``stack``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.stack import LocalStack


@pytest.fixture
async def producer(stack: LocalStack) -> AsyncIterator[AIOKafkaProducer]:
    """A producer on the stack's broker, as core banking would publish."""
    p = AIOKafkaProducer(bootstrap_servers=stack.kafka)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client
