"""Faults, end to end, on real servers: the five services as processes on their own embedded PostgreSQL
and broker (this module stops PostgreSQL and halts consumers, so it never shares the session's servers).

* PostgreSQL stopped for longer than the consumers' quiet retries while events flow, then started again:
  every consumer recovers by itself, nothing is lost and nothing is done twice.
* A consumer halted by its dead-letter limits is brought back by the operator path of docs/operations.md
  ("Getting past a halt on the dead-letter limits"): stop it, `python -m shared.tools.dlq skip`, start it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from devstack.stack import LocalStack, Ports
from shared.contracts import message_key, topics
from shared.contracts.events import AccountOverdueV1, PaymentReceivedV1
from shared.crypto import PiiCipher
from shared.messaging import build_event
from shared.registry import NAMES
from shared.settings import DEV_PII_KEYS
from tests.helpers import zone_where_local_hour_is_in

pytestmark = pytest.mark.e2e
CIPHER = PiiCipher(DEV_PII_KEYS, "dev1")
TENANT = "tenant-a"
OUTAGE_S = 15.0
"""Longer than the retries a consumer takes quietly (5, 0.2 s doubling: about 6 s) and than 10 s."""
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: embedded PostgreSQL and broker, topics (3 partitions), migrations, services."""
    stack = LocalStack(tmp_path_factory.mktemp("faults"), Ports.free(), partitions=3, env={
        "APP_ENV": "test", "LOG_LEVEL": "INFO", "SCHEDULER_TIMER_INTERVAL_S": "0.5", "CHANNELS_DISPATCH_LEASE_S": "5",
        "COMPLIANCE_DEFAULT_CALENDAR_COUNTRY": "none",  # runs on any day, public holidays included
        # retries back off to 2 s at most, so a consumer notices quickly that PostgreSQL is back
        "KAFKA_CONSUMER_BACKOFF_MAX_S": "2",
        # segmentation halts on the third poison message in a row of a partition
        "SEGMENTATION_DLQ_MAX_CONSECUTIVE": "2",
    })
    try:
        stack.start_infra()
        stack.start_apps()
        stack.wait_ready(timeout_s=120)
        yield stack
    finally:
        stack.stop()


@pytest.fixture
async def producer(faulty: LocalStack) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=faulty.kafka)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def phone() -> str:
    return "+86138" + str(uuid.uuid4().int)[:8]


def overdue(account_id: str, tel: str, zone: str) -> AccountOverdueV1:
    return AccountOverdueV1(
        tenant=TENANT, account_id=account_id, customer_id=f"CUS-{account_id}", product="credit-card", currency="CNY",
        outstanding_minor=500_000, overdue_minor=120_000, days_past_due=5, due_date=date.today() - timedelta(days=5),
        credit_rating="C", contact={"name": CIPHER.seal("故障测试", context=TENANT),
                                    "phone": CIPHER.seal(tel, context=TENANT), "time_zone": zone, "locale": "zh-CN"})


async def publish_overdue(producer: AIOKafkaProducer, account_id: str, tel: str, zone: str,
                          partition: int | None = None) -> None:
    payload = overdue(account_id, tel, zone)
    event = build_event(topics.ACCOUNT_OVERDUE, payload, tenant=TENANT, customer_id=payload.customer_id,
                        source="urn:test:core-banking", subject=account_id)
    await producer.send_and_wait(topics.ACCOUNT_OVERDUE.name, event.to_bytes(),
                                 key=message_key(TENANT, payload.customer_id), partition=partition)


async def publish_payment(producer: AIOKafkaProducer, account_id: str, payment_id: str) -> None:
    payload = PaymentReceivedV1(tenant=TENANT, account_id=account_id, customer_id=f"CUS-{account_id}",
                                payment_id=payment_id, amount_minor=1_000, currency="CNY", paid_at=datetime.now(UTC))
    event = build_event(topics.PAYMENT_RECEIVED, payload, tenant=TENANT, customer_id=payload.customer_id,
                        source="urn:test:core-banking", subject=account_id)
    await producer.send_and_wait(topics.PAYMENT_RECEIVED.name, event.to_bytes(),
                                 key=message_key(TENANT, payload.customer_id))


async def eventually(probe: Callable[[], Awaitable[Any]], timeout_s: float = 60.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not met within {timeout_s:.0f} s"
        await asyncio.sleep(0.5)


async def sms_by_number(http: httpx.AsyncClient, stack: LocalStack) -> dict[str, int]:
    messages = (await http.get(f"{stack.url('sms')}/messages", params={"limit": 1000})).json()["messages"]
    counts: dict[str, int] = {}
    for m in messages:
        counts[m["to"]] = counts.get(m["to"], 0) + 1
    return counts


async def states(http: httpx.AsyncClient, stack: LocalStack, path: str) -> dict[str, tuple[int, str]]:
    """Each service's answer on ``path`` (/healthz or /readyz): status and its consumer check."""
    found: dict[str, tuple[int, str]] = {}
    for name in NAMES:
        try:
            r = await http.get(f"{stack.url(name)}{path}")
        except httpx.HTTPError as exc:
            found[name] = (0, type(exc).__name__)
            continue
        body = r.json()
        found[name] = (r.status_code, str(body.get("consumer") or body.get("checks", {}).get("consumer", "")))
    return found


def metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


async def rows(stack: LocalStack, sql: str, *args: Any) -> list[asyncpg.Record]:
    assert stack.database_url is not None
    conn = await asyncpg.connect(stack.database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_postgresql_down_longer_than_the_retries_every_consumer_recovers_without_loss_or_duplicates(
        faulty: LocalStack, producer: AIOKafkaProducer, http: httpx.AsyncClient) -> None:
    assert faulty.postgres is not None
    zone, _ = zone_where_local_hour_is_in(9, 19)  # contacts are allowed there for the next couple of hours
    run = uuid.uuid4().hex[:6].upper()
    accounts: dict[str, str] = {}  # account id -> phone
    payments: list[str] = []

    async def send(phase: str, count: int, pause_s: float = 0.0) -> None:
        for n in range(count):
            account_id = f"F{run}-{phase}{n}"
            accounts[account_id] = phone()
            await publish_overdue(producer, account_id, accounts[account_id], zone)
            payments.append(f"PAY-{run}-{phase}{n}")  # on accounts never overdue: kept, contacts nobody
            await publish_payment(producer, f"P{run}-{phase}{n}", payments[-1])
            await asyncio.sleep(pause_s)

    await send("a", 10)  # before the outage
    await asyncio.sleep(0.5)
    await asyncio.to_thread(faulty.postgres.stop)
    stopped = time.monotonic()
    await send("b", 10, pause_s=0.3)  # during it
    retrying: set[str] = set()
    while time.monotonic() - stopped < OUTAGE_S:
        alive = await states(http, faulty, "/healthz")
        assert all(status == 200 for status, _ in alive.values()), f"an outage must not fail liveness: {alive}"
        ready = await states(http, faulty, "/readyz")
        retrying |= {name for name, (status, consumer) in ready.items() if consumer.startswith("retrying")}
        await asyncio.sleep(1)
    # segmentation and plans had events in hand for the whole outage: past their quiet retries, they say so
    assert {"segmentation", "plans"} <= retrying, retrying
    text = (await http.get(f"{faulty.url('segmentation')}/metrics")).text
    assert metric(text, "consumer_retrying") == 1
    await asyncio.to_thread(faulty.postgres.start)
    await send("c", 10)  # after it

    async def everyone_contacted() -> bool:
        sent = await sms_by_number(http, faulty)
        return all(tel in sent for tel in accounts.values())

    await eventually(everyone_contacted, 90, "an SMS for every account")

    async def all_ready() -> bool:
        return all(status == 200 for status, _ in (await states(http, faulty, "/readyz")).values())

    await eventually(all_ready, 30, "every service ready again")
    await asyncio.sleep(3)  # time for anything done twice to show

    sent = await sms_by_number(http, faulty)
    assert {tel: sent[tel] for tel in accounts.values()} == dict.fromkeys(accounts.values(), 1)
    ids = list(accounts)
    decisions = await rows(faulty, "SELECT account_id, outcome FROM compliance.contact_decisions "
                                   "WHERE tenant = $1 AND account_id = ANY($2)", TENANT, ids)
    assert sorted(r["account_id"] for r in decisions) == sorted(ids)  # one decision each: no duplicate request
    assert {r["outcome"] for r in decisions} == {"approved"}
    for table in ("segmentation.accounts", "scheduler.treatments", "plans.plan_accounts",
                  "channels.contact_attempts"):
        found = await rows(faulty, f"SELECT account_id FROM {table} WHERE tenant = $1 "  # noqa: S608 - our constant
                                   "AND account_id = ANY($2)", TENANT, ids)
        assert sorted(r["account_id"] for r in found) == sorted(ids), table
    attempts = await rows(faulty, "SELECT status FROM channels.contact_attempts WHERE account_id = ANY($1)", ids)
    assert {r["status"] for r in attempts} <= {"sent", "delivered"}
    for table in ("segmentation.payments", "scheduler.treatment_payments", "plans.account_payments"):
        found = await rows(faulty, f"SELECT payment_id FROM {table} WHERE tenant = $1 "  # noqa: S608 - our constant
                                   "AND payment_id = ANY($2)", TENANT, payments)
        assert sorted(r["payment_id"] for r in found) == sorted(payments), table
    for name in NAMES:
        text = (await http.get(f"{faulty.url(name)}/metrics")).text
        assert (metric(text, "consumer_retrying"), metric(text, "consumer_halted")) == (0, 0), name


async def halt_segmentation(producer: AIOKafkaProducer, http: httpx.AsyncClient, stack: LocalStack,
                            partition: int) -> int:
    """Three poison messages in a row on ``partition`` of the overdue topic halt segmentation
    (SEGMENTATION_DLQ_MAX_CONSECUTIVE=2); returns the offset it halted on, read from the halt reason."""
    topic = topics.ACCOUNT_OVERDUE.name
    for n in range(3):
        await producer.send_and_wait(topic, b'{"specversion": "1.0", "broken": ' + str(n).encode(),
                                     key=b"tenant-a:POISON", partition=partition)

    async def halted() -> str | None:
        r = await http.get(f"{stack.url('segmentation')}/healthz")
        return str(r.json()["consumer"]) if r.status_code == 503 else None

    reason = await eventually(halted, 60, "segmentation halted")
    assert f"3 consecutive poison messages on {topic}/{partition} (limit 2)" in reason, reason
    found = re.search(r"halted before dead-lettering offset (\d+)", reason)
    assert found is not None, reason
    return int(found.group(1))


async def publish_good_events(producer: AIOKafkaProducer, partition: int) -> dict[str, str]:
    """Six overdue events behind the poison ones: three on the halted partition, three anywhere."""
    zone, _ = zone_where_local_hour_is_in(9, 19)
    run = uuid.uuid4().hex[:6].upper()
    accounts = {f"H{run}-{n}": phone() for n in range(6)}
    for n, (account_id, tel) in enumerate(accounts.items()):
        await publish_overdue(producer, account_id, tel, zone, partition=partition if n < 3 else None)
    return accounts


async def ready(http: httpx.AsyncClient, stack: LocalStack, name: str) -> bool:
    try:
        return (await http.get(f"{stack.url(name)}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def each_contacted_once(http: httpx.AsyncClient, stack: LocalStack, accounts: dict[str, str]) -> None:
    async def everyone_contacted() -> bool:
        sent = await sms_by_number(http, stack)
        return all(tel in sent for tel in accounts.values())

    await eventually(everyone_contacted, 60, "an SMS for every good event behind the poison")
    await asyncio.sleep(2)
    sent = await sms_by_number(http, stack)
    assert {tel: sent[tel] for tel in accounts.values()} == dict.fromkeys(accounts.values(), 1)


RAISED_LIMITS = {"SEGMENTATION_DLQ_MAX_CONSECUTIVE": "100000", "SEGMENTATION_DLQ_MAX_INVALID_RATIO": "0"}


async def restart_segmentation(stack: LocalStack, http: httpx.AsyncClient, env: dict[str, str] | None = None) -> None:
    """Stop segmentation and start it again (with ``env`` added for this run), until it is ready."""
    await asyncio.to_thread(stack.stop_child, "segmentation")
    await asyncio.to_thread(stack.respawn, "segmentation", env)
    await eventually(lambda: ready(http, stack, "segmentation"), 60, f"segmentation ready again ({env or 'as set'})")


async def test_a_consumer_halted_by_the_dead_letter_limit_runs_again_after_the_documented_skip(
        faulty: LocalStack, producer: AIOKafkaProducer, http: httpx.AsyncClient) -> None:
    """docs/operations.md: the messages must not be consumed at all: stop the service, move the group past
    them with `python -m shared.tools.dlq skip`, start it again. (Runs before any restart of segmentation in
    this module: its group has had one member, the case the embedded broker gets wrong.)"""
    assert faulty.kafka is not None
    topic, partition = topics.ACCOUNT_OVERDUE.name, 2
    stopped_at = await halt_segmentation(producer, http, faulty, partition)
    accounts = await publish_good_events(producer, partition)
    try:
        await asyncio.to_thread(faulty.stop_child, "segmentation")
        letters = await _dlq("list", "--group", "segmentation", bootstrap=faulty.kafka)
        assert f"from {topic}/{partition}@{stopped_at - 1} " in letters
        assert f"from {topic}/{partition}@{stopped_at} " not in letters  # halted instead of dead-lettering it
        skipped = await _dlq("skip", "--group", "segmentation", "--topic", topic, "--partition", str(partition),
                             "--offset", str(stopped_at + 1), bootstrap=faulty.kafka)
        assert f"-> {stopped_at + 1}; restart the service" in skipped
        await asyncio.to_thread(faulty.respawn, "segmentation")
        await eventually(lambda: ready(http, faulty, "segmentation"), 60, "segmentation ready after the skip")
        await each_contacted_once(http, faulty, accounts)
        letters = await _dlq("list", "--group", "segmentation", bootstrap=faulty.kafka)
        assert f"from {topic}/{partition}@{stopped_at} " not in letters  # skipped: in no dead-letter topic either
    finally:
        if not await ready(http, faulty, "segmentation"):
            # Not past the poison: get past it the other documented way, for the tests that follow.
            await restart_segmentation(faulty, http, RAISED_LIMITS)
            await each_contacted_once(http, faulty, accounts)
            await restart_segmentation(faulty, http)


async def test_a_consumer_halted_by_the_dead_letter_limit_runs_again_with_the_limits_raised_for_one_run(
        faulty: LocalStack, producer: AIOKafkaProducer, http: httpx.AsyncClient) -> None:
    """docs/operations.md: the messages are bad and should be dead-lettered: raise the limit for one run,
    restart, let it dead-letter them, then restore the limits and restart again."""
    assert faulty.kafka is not None
    topic, partition = topics.ACCOUNT_OVERDUE.name, 1
    stopped_at = await halt_segmentation(producer, http, faulty, partition)
    accounts = await publish_good_events(producer, partition)
    await asyncio.sleep(2)
    assert not set(accounts.values()) & set(await sms_by_number(http, faulty))  # nothing consumes them yet

    await restart_segmentation(faulty, http, RAISED_LIMITS)
    await each_contacted_once(http, faulty, accounts)
    letters = await _dlq("list", "--group", "segmentation", bootstrap=faulty.kafka)
    for offset in (stopped_at - 2, stopped_at - 1, stopped_at):
        assert f"from {topic}/{partition}@{offset} " in letters, letters

    # the limits restored: it runs on from where it is, past the poison
    await restart_segmentation(faulty, http)
    await asyncio.sleep(2)
    assert (await http.get(f"{faulty.url('segmentation')}/healthz")).status_code == 200


async def _dlq(*args: str, bootstrap: str) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "shared.tools.dlq", *args, "--bootstrap", bootstrap],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
