"""The webhook dispatcher: claims due deliveries, POSTs each signed CloudEvent to its partner, records the answer.

One unit of work claims (``FOR UPDATE SKIP LOCKED``; the claim counts the attempt and leases the delivery, so
replicas never send the same one at once and a crash retries it after the lease); the POSTs run with no
transaction open; one more records the results. 2xx is delivered; anything else (another status, a timeout, a
refused connection, a redirect: never followed) is retried with backoff until ``PLANS_WEBHOOK_MAX_ATTEMPTS``,
then failed. Woken after every committed consumer batch (new deliveries), else polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from services.plans import webhooks
from services.plans.domain.signing import HEADER, is_public_address, sign
from services.plans.settings import Settings
from shared.runtime import Runtime

log = logging.getLogger(__name__)

USER_AGENT = "gentle-collections-webhooks/1"


class WebhookDispatcher:
    def __init__(self, runtime: Runtime[Settings], client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.client = client
        self.policy = webhooks.RetryPolicy(max_attempts=self.settings.webhook_max_attempts,
                                           backoff_base_s=self.settings.webhook_backoff_base_s,
                                           backoff_max_s=self.settings.webhook_backoff_max_s)
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        while not self.runtime.stopping.is_set():
            self._wakeup.clear()  # before the pass, so a wake during it is not lost
            try:
                while await self.deliver_once() > 0:
                    pass
            except Exception:
                log.exception("webhook pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.settings.webhook_poll_interval_s)

    async def deliver_once(self) -> int:
        """Claim, POST and record one batch of due deliveries; returns how many it attempted."""
        lease_s = self.settings.webhook_timeout_s * 4 + 30
        async with self.runtime.units() as uow:
            claimed = await webhooks.claim(uow, cipher=self.runtime.cipher, now=datetime.now(UTC), lease_s=lease_s,
                                           limit=self.settings.webhook_batch)
            await uow.commit()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self.post(a) for a in claimed))
        async with self.runtime.units() as uow:
            for attempt, (status_code, error) in zip(claimed, results, strict=True):
                status = await webhooks.record_result(uow, attempt=attempt, status_code=status_code, error=error,
                                                      policy=self.policy, now=datetime.now(UTC),
                                                      jitter=random.random())
                log.info("webhook attempt", extra={"delivery_id": attempt.delivery_id, "webhook_id": attempt.webhook_id,
                                                   "event_id": attempt.event_id, "attempt": attempt.attempts,
                                                   "status_code": status_code, "outcome": status})
            await uow.commit()
        return len(claimed)

    async def post(self, attempt: webhooks.Attempt) -> tuple[int | None, str | None]:
        """POST one delivery; (status code, error) — no status code when no answer came."""
        if attempt.secret is None:
            return None, "the subscription's secret cannot be opened (its PII key was removed): subscribe again"
        if not self.settings.webhook_allow_private and (refused := await private_host(attempt.url)):
            return None, refused
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   HEADER: sign(attempt.secret, attempt.body, timestamp=int(time.time())),
                   "Webhook-Id": attempt.delivery_id, "Webhook-Event-Id": attempt.event_id}
        try:
            response = await self.client.post(attempt.url, content=attempt.body, headers=headers,
                                              timeout=self.settings.webhook_timeout_s)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"


async def private_host(url: str) -> str | None:
    """Why a URL's host may not receive webhooks now (it resolves to a private or loopback address), or None."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the host {host!r} does not resolve: {exc}"
    for info in infos:
        address = str(info[4][0])
        if not is_public_address(address):
            return f"the host {host!r} resolves to {address}, a private or loopback address"
    return None


async def webhook_loop(runtime: Runtime[Settings]) -> None:
    """Runs the dispatcher for the service's lifetime; woken after every committed consumer batch."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        dispatcher = WebhookDispatcher(runtime, client)
        runtime.consumer_units.after_commit.append(dispatcher.wake)
        await dispatcher.run()
