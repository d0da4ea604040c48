"""Fixtures of the end-to-end tests on the session's stack (tests/conftest.py ``stack``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.stack import LocalStack

# The stacks copy this process's environment when they start their services (LocalStack.service_env), after
# this module is imported: compliance reads its complaint clocks for /metrics every second instead of every 30 s,
# so a test sees a complaint there at once (tests/e2e/test_compliance_flows.py).
os.environ.setdefault("COMPLIANCE_COMPLAINT_CLOCKS_INTERVAL_S", "1")


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
