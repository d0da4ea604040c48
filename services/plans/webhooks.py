"""Signed webhooks' use cases (docs/partners.md, "Webhooks"): a partner subscribes an endpoint to plans' topics;
each event of those topics becomes one delivery per matching subscription (once per subscription and event id),
attempted by ``workers/webhooks.py`` with retries and backoff; the delivery log can be read and a delivery replayed.

Who receives what: the event's tenant (the servicer) for every topic; for plan events and write-offs also each
co-lender of the account (they carry no PII and co-lenders may read plans); promise events only the servicer.
Every change over REST is audited with its reason (``audit_log``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.plans.db import co_lending as repo
from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from services.plans.domain.signing import endpoint_problems, new_secret, retry_delay_s
from shared.access.keys import Principal
from shared.audit import record_change
from shared.contracts import CloudEvent, topics
from shared.crypto import PiiCipher, PiiCryptoError
from shared.db import lock_key
from shared.domain import DomainError, NotFound, Refused
from shared.uow import UnitOfWork

# What a webhook may subscribe to: plans' topics without PII (a customer request carries the customer's words).
WEBHOOK_TOPICS = (topics.PLAN_EVENT.name, topics.PROMISE_EVENT.name, topics.WRITE_OFF.name)
# Topics a co-lender of the account receives too (the servicer alone receives the others).
CO_LENDER_TOPICS = frozenset({topics.PLAN_EVENT.name, topics.WRITE_OFF.name})


class WebhookRefused(Refused):
    title = "Webhook refused"


class WebhookDeleted(DomainError):
    status = 409
    title = "Webhook deleted"


@dataclass(frozen=True, slots=True)
class Subscribed:
    subscription: WebhookSubscription
    secret: str | None  # shown once, when the subscription is created
    created: bool


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_base_s: float = 60.0
    backoff_max_s: float = 3600.0


async def subscribe(uow: UnitOfWork, *, principal: Principal, cipher: PiiCipher, webhook_id: str, url: str,
                    wanted: Sequence[str], reason: str, allow_private: bool) -> Subscribed:
    """Create the subscription (with a new secret, returned once) or change its URL and topics (the secret is
    kept); a deleted one is created anew. Refused with every reason, storing nothing."""
    problems = endpoint_problems(url, allow_private=allow_private)
    if not problems:
        try:  # what the dispatcher will send to (an invalid international name, for one, it cannot)
            httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            problems.append(f"the URL cannot be used: {exc}")
    unknown = sorted(set(wanted) - set(WEBHOOK_TOPICS))
    if unknown:
        problems.append(f"unknown topics {', '.join(unknown)}: choose from {', '.join(WEBHOOK_TOPICS)}")
    if not wanted:
        problems.append("subscribe to at least one topic")
    if problems:
        raise WebhookRefused(problems)
    chosen = sorted(set(wanted))
    now = datetime.now(UTC)
    tenant = principal.tenant
    await lock_key(uow.session, "webhook", tenant, webhook_id)  # two PUTs of a new id: the second waits, then updates
    current = await repo.subscription(uow.session, tenant=tenant, webhook_id=webhook_id, lock=True)
    secret: str | None = None
    if current is not None and current.deleted_at is None:
        current.url, current.topics, current.updated_at = url, chosen, now
        action = "webhook.update"
    else:
        secret = new_secret()
        sealed = cipher.seal(secret, context=tenant)
        if current is None:
            current = WebhookSubscription(tenant=tenant, webhook_id=webhook_id, url=url, topics=chosen,
                                          secret_sealed=sealed, created_by=principal.name)
            uow.session.add(current)
        else:
            current.url, current.topics, current.secret_sealed, current.deleted_at = url, chosen, sealed, None
            current.created_by, current.created_at, current.updated_at = principal.name, now, now
        action = "webhook.create"
    await uow.session.flush()
    await uow.session.refresh(current)
    await record_change(uow, principal, action=action, subject=webhook_id, reason=reason)
    return Subscribed(current, secret, secret is not None)


async def subscriptions(session: AsyncSession, *, tenant: str) -> list[WebhookSubscription]:
    return await repo.subscriptions(session, tenant=tenant)


async def unsubscribe(uow: UnitOfWork, *, principal: Principal, webhook_id: str, reason: str) -> None:
    """Delete a subscription (kept, marked deleted, for its log); its pending deliveries are cancelled."""
    current = await repo.subscription(uow.session, tenant=principal.tenant, webhook_id=webhook_id, lock=True)
    if current is None or current.deleted_at is not None:
        raise NotFound(f"No webhook {webhook_id!r} in your tenant.")
    current.deleted_at = datetime.now(UTC)
    await repo.cancel_pending(uow.session, tenant=principal.tenant, webhook_id=webhook_id)
    await record_change(uow, principal, action="webhook.delete", subject=webhook_id, reason=reason)


async def delivery_log(session: AsyncSession, *, tenant: str, webhook_id: str, limit: int = 100
                       ) -> list[WebhookDelivery]:
    """The subscription's deliveries, newest first (404 for a webhook the tenant never had)."""
    if await repo.subscription(session, tenant=tenant, webhook_id=webhook_id) is None:
        raise NotFound(f"No webhook {webhook_id!r} in your tenant.")
    return await repo.deliveries_of(session, tenant=tenant, webhook_id=webhook_id, limit=limit)


async def replay(uow: UnitOfWork, *, principal: Principal, delivery_id: str, reason: str) -> WebhookDelivery:
    """Attempt a delivery again from scratch (attempts reset, due now), whatever its status; not for a deleted
    subscription."""
    found = await repo.delivery(uow.session, tenant=principal.tenant, delivery_id=delivery_id, lock=True)
    if found is None:
        raise NotFound(f"No webhook delivery {delivery_id!r} in your tenant.")
    subscription = await repo.subscription(uow.session, tenant=principal.tenant, webhook_id=found.webhook_id)
    if subscription is None or subscription.deleted_at is not None:
        raise WebhookDeleted(f"Webhook {found.webhook_id!r} was deleted: subscribe again, then replay.")
    found.status, found.attempts, found.next_attempt_at = "pending", 0, datetime.now(UTC)
    found.last_status_code, found.last_error, found.delivered_at = None, None, None
    await uow.session.flush()
    await record_change(uow, principal, action="webhook.replay", subject=delivery_id, reason=reason)
    return found


async def enqueue(uow: UnitOfWork, *, events: Sequence[tuple[str, CloudEvent, Any]]) -> int:
    """One delivery per (matching subscription, event) for these (topic, event, payload): the servicer's
    subscriptions, and its co-lenders' for plan events and write-offs. A repeated event adds nothing."""
    rows: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    co_lenders = await repo.accounts_lenders(uow.session, {
        (p.tenant, p.account_id) for topic, _, p in events if topic in CO_LENDER_TOPICS})
    recipients_of: list[set[str]] = []
    for topic, _, payload in events:
        recipients = {payload.tenant}
        if topic in CO_LENDER_TOPICS:
            known = co_lenders.get((payload.tenant, payload.account_id))
            recipients |= {str(c["tenant"]) for c in (known.co_lenders if known is not None else [])}
            recipients |= {s.lender for s in getattr(payload, "shares", [])}
        recipients_of.append(recipients)
    subscribed: dict[str, dict[str, list[str]]] = {}  # topic -> tenant -> webhook ids: one query per topic
    for topic in sorted({t for t, _, _ in events}):
        tenants = set().union(*(r for (t, _, _), r in zip(events, recipients_of, strict=True) if t == topic))
        for sub in await repo.subscribers(uow.session, tenants=tenants, topic=topic):
            subscribed.setdefault(topic, {}).setdefault(sub.tenant, []).append(sub.webhook_id)
    for (topic, event, _), recipients in zip(events, recipients_of, strict=True):
        body = event.to_bytes().decode()
        for tenant in sorted(recipients):
            for webhook_id in subscribed.get(topic, {}).get(tenant, []):
                rows.append({"delivery_id": str(uuid.uuid4()), "tenant": tenant, "webhook_id": webhook_id,
                             "event_id": event.id, "topic": topic, "body": body, "status": "pending",
                             "attempts": 0, "next_attempt_at": now})
    rows.sort(key=lambda r: (r["tenant"], r["webhook_id"], r["event_id"]))  # one lock order for every batch
    await repo.add_deliveries(uow.session, rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A claimed delivery to attempt now: where, with which secret, what."""

    delivery_id: str
    tenant: str
    webhook_id: str
    event_id: str
    attempts: int
    url: str
    secret: str | None  # None: it cannot be opened (its PII key is gone); the attempt fails, saying so
    body: bytes


async def claim(uow: UnitOfWork, *, cipher: PiiCipher, now: datetime, lease_s: float, limit: int) -> list[Attempt]:
    """Claim due deliveries (the attempt counted, the next one pushed past a lease); the caller commits, POSTs,
    then records each result with :func:`record_result`."""
    rows = await repo.claim_due(uow.session, now=now, lease_until=now + timedelta(seconds=lease_s), limit=limit)
    return [Attempt(r.delivery_id, r.tenant, r.webhook_id, r.event_id, r.attempts, r.url,
                    _opened(cipher, r.secret_sealed, r.tenant), r.body.encode()) for r in rows]


def _opened(cipher: PiiCipher, sealed: str, tenant: str) -> str | None:
    try:
        return cipher.open(sealed, context=tenant)
    except PiiCryptoError:
        return None


async def record_result(uow: UnitOfWork, *, attempt: Attempt, status_code: int | None, error: str | None,
                        policy: RetryPolicy, now: datetime, jitter: float) -> str:
    """Record an attempt: a 2xx is delivered; otherwise retried after the backoff, or failed after the last
    attempt. Returns the new status. A delivery replayed or cancelled meanwhile is left as it is."""
    ok = status_code is not None and 200 <= status_code < 300
    if ok:
        values: dict[str, Any] = {"status": "delivered", "delivered_at": now, "last_error": None}
    elif attempt.attempts >= policy.max_attempts:
        values = {"status": "failed", "last_error": error}
    else:
        delay = retry_delay_s(attempt.attempts, base_s=policy.backoff_base_s, max_s=policy.backoff_max_s,
                              jitter=jitter)
        values = {"next_attempt_at": now + timedelta(seconds=delay), "last_error": error}
    values["last_status_code"] = status_code
    await repo.record_attempt(uow.session, delivery_id=attempt.delivery_id, attempts=attempt.attempts,
                              values=values)
    return str(values.get("status", "pending"))
