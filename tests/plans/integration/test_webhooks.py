"""Signed webhooks end to end on real PostgreSQL and a real HTTP receiver on a loopback port: plans' own events
become deliveries (once per subscription and event), the dispatcher POSTs them signed, the receiver verifies the
signature; a failing receiver is retried with backoff, then delivered or failed after the last attempt; a replay
sends again; a co-lender receives the account's plan events (not its promises); a third tenant receives nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text, update

from devstack.embedded import free_port
from services.plans import webhooks
from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from services.plans.domain.signing import HEADER, verify
from services.plans.settings import Settings
from services.plans.workers.webhooks import WebhookDispatcher, private_host
from shared.access.keys import Principal
from shared.contracts import topics
from shared.contracts.events import Instalment, PlanEventV1, PromiseEventV1
from shared.runtime import Runtime
from tests.plans.support import _delivery, consume, overdue_notice

pytestmark = pytest.mark.integration
TOPICS = list(webhooks.WEBHOOK_TOPICS)


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Receiver:
    """A partner's endpoint: answers each POST with the next status of ``answers`` (then 200), keeps what came."""

    port: int
    answers: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.received.append(({k.decode().lower(): v.decode() for k, v in scope["headers"]}, body))
        self.at.append(asyncio.get_running_loop().time())
        status = self.answers.pop(0) if self.answers else 200
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status < 300 else b"try later"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(free_port())
    server = uvicorn.Server(uvicorn.Config(found, host="127.0.0.1", port=found.port, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.02)
    yield found
    server.should_exit = True
    await task


@pytest.fixture
async def runtime(infra: Any) -> AsyncIterator[Runtime[Settings]]:
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka, app_env="test",
                        webhook_backoff_base_s=0.2, webhook_backoff_max_s=1.0, webhook_max_attempts=3,
                        webhook_timeout_s=2.0)
    built: Runtime[Settings] = Runtime(settings)
    yield built
    await built.engine.dispose()


@pytest.fixture
async def dispatcher(runtime: Runtime[Settings]) -> AsyncIterator[WebhookDispatcher]:
    # deliveries other tests left pending (their receivers are gone) would be claimed too and skew the counts
    # these tests assert: put them off for a day; a test's own deliveries are queued after this
    async with runtime.sessions() as session:
        await session.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now() + interval '1 day' "
                                   "WHERE status = 'pending'"))
        await session.commit()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        yield WebhookDispatcher(runtime, client)


async def subscribe(runtime: Runtime[Settings], tenant: str, url: str, wanted: list[str] = TOPICS,
                    webhook_id: str = "main") -> str:
    async with runtime.units() as uow:
        done = await webhooks.subscribe(uow, principal=Principal(tenant, "partner-x", frozenset({"partner"})),
                                        cipher=runtime.cipher, webhook_id=webhook_id, url=url, wanted=wanted,
                                        reason="test", allow_private=True)
        await uow.commit()
    assert done.secret is not None
    return done.secret


def plan_event(tenant: str, account_id: str = "A1", kind: str = "agreed") -> Any:
    payload = PlanEventV1(tenant=tenant, plan_id=fresh("plan"), account_id=account_id, customer_id="C1", kind=kind,
                          currency="CNY", total_minor=20_000,
                          instalments=[Instalment(seq=1, due_date=date.today() + timedelta(days=7),
                                                  amount_minor=20_000)],
                          occurred_at=datetime.now(UTC))
    return _delivery(topics.PLAN_EVENT, payload, None)


def promise_event(tenant: str, account_id: str = "A1") -> Any:
    now = datetime.now(UTC)
    payload = PromiseEventV1(tenant=tenant, promise_id=fresh("pr"), account_id=account_id, customer_id="C1",
                             status="open", source="agent", currency="CNY", amount_minor=5000, paid_minor=0,
                             due_on=now.date(), deadline=now + timedelta(days=1), made_at=now, occurred_at=now)
    return _delivery(topics.PROMISE_EVENT, payload, None)


async def log_of(runtime: Runtime[Settings], tenant: str, webhook_id: str = "main") -> list[WebhookDelivery]:
    async with runtime.sessions() as session:
        return list((await session.execute(select(WebhookDelivery).where(
            WebhookDelivery.tenant == tenant, WebhookDelivery.webhook_id == webhook_id)  # type: ignore[arg-type]
            .order_by(WebhookDelivery.created_at))).scalars().all())  # type: ignore[arg-type]


async def deliver_until_settled(dispatcher: WebhookDispatcher, runtime: Runtime[Settings], tenant: str,
                                timeout_s: float = 15) -> list[WebhookDelivery]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        await dispatcher.deliver_once()
        found = await log_of(runtime, tenant)
        if found and all(d.status != "pending" for d in found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries still pending: {[(d.status, d.attempts) for d in await log_of(runtime, tenant)]}")


async def test_a_signed_delivery_is_verified_by_the_receiver(runtime, dispatcher, receiver, sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = fresh()
    secret = await subscribe(runtime, tenant, receiver.url)
    event = plan_event(tenant)
    await consume(sessions, event, event)  # a duplicate in the batch
    await consume(sessions, event)         # and redelivered
    [delivery] = await deliver_until_settled(dispatcher, runtime, tenant)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.event_id) == (
        "delivered", 1, 200, event.event.id)
    [(headers, body)] = receiver.received
    assert body == event.event.to_bytes()
    assert headers["content-type"] == "application/json" and headers["webhook-event-id"] == event.event.id
    assert verify(secret, body, headers[HEADER.lower()], now=int(datetime.now(UTC).timestamp())) > 0
    with pytest.raises(ValueError):
        verify("whsec_wrong", body, headers[HEADER.lower()], now=int(datetime.now(UTC).timestamp()))


async def test_a_failing_receiver_is_retried_with_backoff_then_delivered(runtime, dispatcher, receiver,  # type: ignore[no-untyped-def]
                                                                         sessions) -> None:
    tenant = fresh()
    receiver.answers = [500, 503]
    await subscribe(runtime, tenant, receiver.url)
    await consume(sessions, plan_event(tenant))
    assert await dispatcher.deliver_once() == 1
    [pending] = await log_of(runtime, tenant)
    assert (pending.status, pending.attempts, pending.last_status_code) == ("pending", 1, 500)
    assert "HTTP 500" in (pending.last_error or "")
    assert await dispatcher.deliver_once() == 0  # not due yet: the backoff holds it
    [delivered] = await deliver_until_settled(dispatcher, runtime, tenant)
    assert (delivered.status, delivered.attempts, delivered.last_status_code) == ("delivered", 3, 200)
    gaps = [b - a for a, b in zip(receiver.at, receiver.at[1:], strict=False)]
    assert gaps[0] >= 0.2 * 0.8 and gaps[1] >= 0.4 * 0.8, gaps  # 0.2 s doubling, ±20 % jitter


async def test_a_delivery_fails_after_the_last_attempt_and_a_replay_sends_it_again(  # type: ignore[no-untyped-def]
        runtime, dispatcher, receiver, sessions) -> None:
    tenant = fresh()
    receiver.answers = [500, 500, 500]
    await subscribe(runtime, tenant, receiver.url)
    await consume(sessions, plan_event(tenant))
    [failed] = await deliver_until_settled(dispatcher, runtime, tenant)
    assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 3, 500)
    assert len(receiver.received) == 3
    assert await dispatcher.deliver_once() == 0
    async with runtime.units() as uow:
        await webhooks.replay(uow, principal=Principal(tenant, "partner-x", frozenset({"partner"})),
                              delivery_id=failed.delivery_id, reason="receiver fixed")
        await uow.commit()
    [replayed] = await deliver_until_settled(dispatcher, runtime, tenant)
    assert (replayed.status, replayed.attempts, replayed.last_status_code) == ("delivered", 1, 200)
    assert len(receiver.received) == 4 and receiver.received[3][1] == receiver.received[0][1]


async def test_an_unreachable_receiver_is_an_attempt_with_no_status(runtime, dispatcher, sessions) -> None:  # type: ignore[no-untyped-def]
    tenant = fresh()
    await subscribe(runtime, tenant, f"http://127.0.0.1:{free_port()}/nobody")
    await consume(sessions, plan_event(tenant))
    await dispatcher.deliver_once()
    [pending] = await log_of(runtime, tenant)
    assert (pending.status, pending.attempts, pending.last_status_code) == ("pending", 1, None)
    assert pending.last_error


async def test_a_co_lender_receives_plan_events_but_not_promises_and_a_third_tenant_nothing(  # type: ignore[no-untyped-def]
        runtime, dispatcher, receiver, sessions) -> None:
    servicer, co_lender, third = fresh(), fresh("fund"), fresh("other")
    await consume(sessions, overdue_notice(servicer, "A1", co_lenders=[(co_lender, 3000)]))
    for tenant in (servicer, co_lender, third):
        await subscribe(runtime, tenant, receiver.url)
    plan, promise = plan_event(servicer), promise_event(servicer)
    await consume(sessions, plan, promise)
    own = plan_event(third, "A1")  # the third tenant's own account A1: it receives only its own event
    await consume(sessions, own)
    servicer_log = await deliver_until_settled(dispatcher, runtime, servicer)
    assert sorted(d.topic for d in servicer_log) == [topics.PLAN_EVENT.name, topics.PROMISE_EVENT.name]
    [co_lent] = await deliver_until_settled(dispatcher, runtime, co_lender)
    assert (co_lent.topic, co_lent.event_id, co_lent.status) == (topics.PLAN_EVENT.name, plan.event.id, "delivered")
    third_log = await deliver_until_settled(dispatcher, runtime, third)
    assert [d.event_id for d in third_log] == [own.event.id]


async def test_topics_filter_and_a_deleted_subscription_cancels_its_pending_deliveries(  # type: ignore[no-untyped-def]
        runtime, sessions) -> None:
    tenant = fresh()
    await subscribe(runtime, tenant, "http://127.0.0.1:9/never", wanted=[topics.PROMISE_EVENT.name])
    await consume(sessions, plan_event(tenant), promise_event(tenant))
    [only] = await log_of(runtime, tenant)
    assert only.topic == topics.PROMISE_EVENT.name and only.status == "pending"
    async with runtime.units() as uow:
        await webhooks.unsubscribe(uow, principal=Principal(tenant, "partner-x", frozenset({"admin"})),
                                   webhook_id="main", reason="endpoint retired")
        await uow.commit()
    [cancelled] = await log_of(runtime, tenant)
    assert cancelled.status == "cancelled"
    await consume(sessions, promise_event(tenant))
    assert len(await log_of(runtime, tenant)) == 1  # a deleted subscription receives nothing new


async def test_a_host_resolving_to_a_private_address_is_refused_at_delivery() -> None:
    assert "private or loopback" in (await private_host("http://localhost:8080/x") or "")
    assert await private_host("http://8.8.8.8/x") is None


async def test_a_secret_that_cannot_be_opened_fails_its_attempt_and_blocks_nothing(  # type: ignore[no-untyped-def]
        runtime, dispatcher, receiver, sessions) -> None:
    broken, fine = fresh(), fresh()
    await subscribe(runtime, broken, receiver.url)
    await subscribe(runtime, fine, receiver.url)
    async with runtime.units() as uow:  # sealed for another tenant: it fails authentication here
        await uow.session.execute(update(WebhookSubscription).where(
            WebhookSubscription.tenant == broken).values(  # type: ignore[arg-type]
            secret_sealed=runtime.cipher.seal("whsec_x", context="someone-else")))
        await uow.commit()
    await consume(sessions, plan_event(broken), plan_event(fine))
    await dispatcher.deliver_once()
    [stuck] = await log_of(runtime, broken)
    assert stuck.status == "pending" and stuck.attempts == 1 and "cannot be opened" in (stuck.last_error or "")
    [delivered] = await deliver_until_settled(dispatcher, runtime, fine)
    assert delivered.status == "delivered"
