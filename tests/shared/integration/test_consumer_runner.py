"""The consumer runner against the real broker and PostgreSQL: inbox dedupe, DLQ, halting, retries,
and the outbox relay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.segmentation.settings import Settings
from shared.contracts import dlq_topic, message_key, topics
from shared.contracts.events import PaymentReceivedV1
from shared.db import create_engine, session_factory
from shared.kafka.consumer import ConsumerConfig, ConsumerRunner, Delivery, idempotent
from shared.kafka.relay import OutboxRelay
from shared.messaging import InboxEntry, OutboxEntry, add_to_outbox, build_event
from shared.uow import UnitOfWork, UnitOfWorkFactory

pytestmark = pytest.mark.integration
TOPIC = topics.PAYMENT_RECEIVED


def payment_event(tenant: str, n: int) -> tuple[bytes, bytes, str]:
    payload = PaymentReceivedV1(tenant=tenant, account_id=f"A{n}", customer_id=f"C{n}", payment_id=f"P{n}",
                                amount_minor=100 + n, currency="CNY", paid_at=datetime.now(UTC))
    event = build_event(TOPIC, payload, tenant=tenant, customer_id=f"C{n}", source="urn:test")
    return message_key(tenant, f"C{n}"), event.to_bytes(), event.id


@pytest.fixture
async def env(infra) -> AsyncIterator[dict]:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka)
    engine = create_engine(settings)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka)
    await producer.start()
    try:
        sessions = session_factory(engine)
        yield {"settings": settings, "engine": engine, "sessions": sessions, "producer": producer,
               "units": UnitOfWorkFactory(sessions, source="urn:test"),
               "tenant": f"t-{uuid.uuid4().hex[:10]}", "group": f"it-{uuid.uuid4().hex[:10]}"}
    finally:
        await producer.stop()
        await engine.dispose()


async def create_dlq(bootstrap: str, group: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(dlq_topic(group), 1, 1)])
    finally:
        await admin.close()


def make_runner(env: dict, handler, **kw) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    """A runner for this test's group; ``kw`` overrides ConsumerConfig fields."""
    config = ConsumerConfig(group=env["group"], bootstrap_servers=env["settings"].kafka_bootstrap_servers,
                            backoff_base_s=0.05, **kw)
    return ConsumerRunner(config=config, handlers={TOPIC.name: handler}, units=env["units"],
                          producer=env["producer"])


async def wait_until(predicate, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_redelivered_event_is_handled_once(env: dict) -> None:
    seen: list[str] = []

    async def handler(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        assert isinstance(uow, UnitOfWork) and isinstance(uow.session, AsyncSession)
        assert uow.session.in_transaction()  # the batch's transaction, with its inbox rows
        seen.extend(d.event.id for d in deliveries if d.event.tenant == env["tenant"])

    key, value, event_id = payment_event(env["tenant"], 1)
    for _ in range(3):  # the same event, published three times
        await env["producer"].send_and_wait(TOPIC.name, value, key=key)
    key2, value2, event_id2 = payment_event(env["tenant"], 2)
    await env["producer"].send_and_wait(TOPIC.name, value2, key=key2)
    runner = make_runner(env, handler)
    await runner.start()
    try:
        await wait_until(lambda: event_id2 in seen)
        await asyncio.sleep(0.5)
    finally:
        await runner.stop()
    assert sorted(seen) == sorted([event_id, event_id2])
    async with env["sessions"]() as session:
        count = (await session.execute(select(func.count()).select_from(InboxEntry).where(
            InboxEntry.consumer_group == env["group"],  # type: ignore[arg-type]
            InboxEntry.event_id.in_([event_id, event_id2])))).scalar_one()  # type: ignore[attr-defined]
    assert count == 2


async def test_an_idempotent_handlers_events_skip_the_inbox(env: dict) -> None:
    seen: list[str] = []

    @idempotent
    async def upsert(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        seen.extend(d.event.id for d in deliveries if d.event.tenant == env["tenant"])

    key, value, event_id = payment_event(env["tenant"], 7)
    for _ in range(2):
        await env["producer"].send_and_wait(TOPIC.name, value, key=key)
    runner = make_runner(env, upsert)
    await runner.start()
    try:
        await wait_until(lambda: event_id in seen)
        await asyncio.sleep(0.5)
    finally:
        await runner.stop()
    assert set(seen) == {event_id}  # applied (maybe twice: the handler is idempotent), never stored in the inbox
    async with env["sessions"]() as session:
        count = (await session.execute(select(func.count()).select_from(InboxEntry).where(
            InboxEntry.consumer_group == env["group"]))).scalar_one()  # type: ignore[arg-type]
    assert count == 0


async def test_failed_transaction_rolls_back_inbox_so_event_is_retried(env: dict) -> None:
    calls: list[str] = []

    async def flaky(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        mine = [d for d in deliveries if d.event.tenant == env["tenant"]]
        calls.extend(d.event.id for d in mine)
        if mine and len(calls) <= 2:
            # a transient database failure inside the transaction
            raise OperationalError("SELECT 1", {}, ConnectionResetError("simulated"))

    key, value, event_id = payment_event(env["tenant"], 3)
    await env["producer"].send_and_wait(TOPIC.name, value, key=key)
    runner = make_runner(env, flaky)
    await runner.start()
    try:
        await wait_until(lambda: len(calls) >= 3)
        await asyncio.sleep(0.3)
    finally:
        await runner.stop()
    assert calls == [event_id] * 3
    assert runner.halted_reason is None


async def _dlq_records(env: dict, expected: int, timeout_s: float = 20.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(dlq_topic(env["group"]), bootstrap_servers=env["settings"].kafka_bootstrap_servers,
                                group_id=f"{env['group']}-reader", auto_offset_reset="earliest")
    await consumer.start()
    records: list = []  # type: ignore[type-arg]
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_poison_message_goes_to_dlq_with_origin_and_error(env: dict, infra) -> None:  # type: ignore[no-untyped-def]
    handled: list[str] = []

    async def handler(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if d.event.tenant == env["tenant"]:
                if d.payload.payment_id == "P5":
                    raise ValueError("cannot apply payment P5")
                handled.append(d.payload.payment_id)

    await create_dlq(infra.kafka, env["group"])

    bad_json = b"{not json"
    await env["producer"].send_and_wait(TOPIC.name, bad_json, key=message_key(env["tenant"], "C4"))
    ids = {}
    for n in (5, 6):
        key, value, ids[n] = payment_event(env["tenant"], n)
        await env["producer"].send_and_wait(TOPIC.name, value, key=key)
    p5_id, p6_id = ids[5], ids[6]
    runner = make_runner(env, handler)
    await runner.start()
    try:
        await wait_until(lambda: "P6" in handled)
    finally:
        await runner.stop()
    records = await _dlq_records(env, 2)
    mine = [r for r in records if dict(r.headers).get("dlq.origin.topic") == TOPIC.name.encode()]
    assert len(mine) == 2
    errors = sorted(dict(r.headers)["dlq.error"].decode() for r in mine)
    assert any("cannot apply payment P5" in e for e in errors)
    assert any("Invalid JSON" in e or "json" in e.lower() for e in errors)
    assert all(dict(r.headers)["dlq.group"] == env["group"].encode() for r in mine)
    assert any(r.value == bad_json for r in mine)
    # P6 may have been seen in the failed batch too (rolled back); what counts is what committed
    assert set(handled) == {"P6"}
    async with env["sessions"]() as session:
        committed = set((await session.execute(select(InboxEntry.event_id).where(
            InboxEntry.consumer_group == env["group"]))).scalars())  # type: ignore[arg-type]
    assert p6_id in committed and p5_id not in committed


async def test_too_many_consecutive_poison_messages_halt_the_consumer(env: dict, infra) -> None:  # type: ignore[no-untyped-def]
    await create_dlq(infra.kafka, env["group"])
    tenant = env["tenant"]
    for n in range(4):
        await env["producer"].send_and_wait(TOPIC.name, b"garbage-" + tenant.encode() + bytes([48 + n]),
                                            key=message_key(tenant, "X"))

    async def handler(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        return None

    # A fresh group reads the topic from the start, earlier tests' events included; the four garbage
    # messages share a key, so they are in a row on one partition: limit 2 < 4.
    runner = make_runner(env, handler, dlq_max_consecutive=2)
    await runner.start()
    try:
        await wait_until(lambda: not runner.running)
    finally:
        await runner.stop()
    assert runner.halted_reason is not None
    assert "3 consecutive poison messages on " + TOPIC.name + "/" in runner.halted_reason
    assert "limit 2" in runner.halted_reason


async def test_outbox_relay_publishes_then_deletes(env: dict) -> None:
    tenant = env["tenant"]
    async with env["sessions"]() as session, session.begin():
        ids = []
        items = []
        for n in range(5):
            payload = PaymentReceivedV1(tenant=tenant, account_id="A", customer_id="C", payment_id=f"R{n}",
                                        amount_minor=1, currency="CNY", paid_at=datetime.now(UTC))
            event = build_event(TOPIC, payload, tenant=tenant, customer_id="C", source="urn:test")
            ids.append(event.id)
            items.append((TOPIC, event, "C"))
        assert await add_to_outbox(session, items) == 5
    consumer = AIOKafkaConsumer(TOPIC.name, bootstrap_servers=env["settings"].kafka_bootstrap_servers,
                                group_id=f"{env['group']}-relay", auto_offset_reset="earliest")
    await consumer.start()
    relay = OutboxRelay(env["sessions"], env["producer"], poll_interval_s=0.05)
    relay.start()
    found: list[str] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while set(ids) - set(found) and asyncio.get_running_loop().time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for r in batch:
                    if r.key == message_key(tenant, "C"):
                        found.append(__import__("json").loads(r.value)["id"])
    finally:
        await relay.stop()
        await consumer.stop()
    assert set(found) >= set(ids)
    async with env["sessions"]() as session:
        left = (await session.execute(text("SELECT count(*) FROM outbox WHERE value LIKE :t"),
                                      {"t": f"%{tenant}%".encode()})).scalar_one()
    assert left == 0
    assert OutboxEntry.__tablename__ == "outbox"


async def test_dlq_replay_republishes_to_origin_once(env: dict, infra) -> None:  # type: ignore[no-untyped-def]
    from shared.tools.dlq import replay

    group = env["group"]  # its own DLQ: the running services dead-letter into the real groups' DLQs
    await create_dlq(infra.kafka, group)
    tenant = env["tenant"]
    key, value, _ = payment_event(tenant, 9)
    headers = [("dlq.group", group.encode()), ("dlq.origin.topic", TOPIC.name.encode()),
               ("dlq.origin.partition", b"0"), ("dlq.origin.offset", b"1"), ("dlq.error", b"boom")]
    await env["producer"].send_and_wait(dlq_topic(group), value, key=key, headers=headers)
    watcher = AIOKafkaConsumer(TOPIC.name, bootstrap_servers=infra.kafka, group_id=f"{env['group']}-watch",
                               auto_offset_reset="latest")
    await watcher.start()
    while not watcher.assignment():
        await watcher.getmany(timeout_ms=200)
    await watcher.seek_to_end()
    try:
        assert await replay(infra.kafka, group, limit=100, dry_run=False) >= 1
        assert await replay(infra.kafka, group, limit=100, dry_run=True) == 0  # progress was committed
        found = []
        deadline = asyncio.get_running_loop().time() + 20
        while not found and asyncio.get_running_loop().time() < deadline:
            for records in (await watcher.getmany(timeout_ms=500)).values():
                found += [r for r in records if r.value == value]
    finally:
        await watcher.stop()
    assert len(found) == 1
    assert dict(found[0].headers)["dlq.replayed-from"].startswith(f"{group}@".encode())


async def test_a_lone_failing_event_is_dead_lettered_not_fatal(env: dict, infra) -> None:  # type: ignore[no-untyped-def]
    await create_dlq(infra.kafka, env["group"])
    handled: list[str] = []

    async def handler(uow: UnitOfWork, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            if d.event.tenant == env["tenant"]:
                if d.payload.payment_id == "P7":
                    raise ValueError("cannot apply payment P7")
                handled.append(d.payload.payment_id)

    runner = make_runner(env, handler)
    await runner.start()
    try:
        await asyncio.sleep(4)  # joined and idle: the next events arrive one per batch
        for n in (7, 8):
            key, value, _ = payment_event(env["tenant"], n)
            await env["producer"].send_and_wait(TOPIC.name, value, key=key)
            await asyncio.sleep(1)
        await wait_until(lambda: "P8" in handled)
    finally:
        await runner.stop()
    assert runner.halted_reason is None
    letters = [r for r in await _dlq_records(env, 1) if b"cannot apply payment P7" in dict(r.headers)["dlq.error"]]
    assert len(letters) == 1


async def test_dlq_skip_moves_a_stopped_group_past_messages(env: dict, infra) -> None:  # type: ignore[no-untyped-def]
    from shared.tools.dlq import committed_offset, skip_to

    group = f"{env['group']}-halted"
    assert await committed_offset(infra.kafka, group, TOPIC.name, 1) is None
    assert await skip_to(infra.kafka, group, TOPIC.name, 1, 7) is None
    assert await committed_offset(infra.kafka, group, TOPIC.name, 1) == 7
    assert await skip_to(infra.kafka, group, TOPIC.name, 1, 9) == 7  # reports where it was
    assert await committed_offset(infra.kafka, group, TOPIC.name, 1) == 9
    assert await committed_offset(infra.kafka, group, TOPIC.name, 0) is None  # other partitions untouched
