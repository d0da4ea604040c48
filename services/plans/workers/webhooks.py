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
import ipaddress
import logging
import random
import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.plans import webhooks
from services.plans.domain.signing import HEADER, is_public_address, sign
from services.plans.settings import Settings
from shared.errors import is_transient
from shared.runtime import Runtime

log = logging.getLogger(__name__)

USER_AGENT = "gentle-collections-webhooks/1"
ERROR_BYTES = 200  # of a failed answer's body kept as its error
OUTAGE_PAUSE_MAX_S = 30.0  # the longest wait between passes while the database is away


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
        pause = self.settings.webhook_poll_interval_s
        while not self.runtime.stopping.is_set():
            self._wakeup.clear()  # before the pass, so a wake during it is not lost
            try:
                while await self.deliver_once() > 0:
                    pass
                pause = self.settings.webhook_poll_interval_s
            except Exception as exc:
                # the database away: one line, and wait longer each time (up to OUTAGE_PAUSE_MAX_S), not a
                # traceback every poll; anything else is a bug worth its traceback
                pause = min(max(pause * 2, 1.0), OUTAGE_PAUSE_MAX_S)
                if is_transient(exc):
                    log.warning("webhook pass failed: a dependency is unavailable; trying again",
                                extra={"error": type(exc).__name__, "retry_in_s": pause})
                else:
                    log.exception("webhook pass failed", extra={"retry_in_s": pause})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), pause)

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
        timeout_s = self.settings.webhook_timeout_s
        try:
            # the whole attempt (resolving, connecting, sending, the answer) within the timeout: a receiver that
            # trickles its answer must not hold the batch past the lease (another replica would send it again)
            async with asyncio.timeout(timeout_s):
                return await self._post(attempt)
        except TimeoutError:
            return None, f"no answer within {timeout_s:g} s"
        except Exception as exc:  # one delivery that cannot be sent must not fail its batch's other results
            log.warning("webhook attempt failed", extra={"delivery_id": attempt.delivery_id, "error": repr(exc)})
            return None, f"{type(exc).__name__}: {exc}"[:500]

    async def _post(self, attempt: webhooks.Attempt) -> tuple[int | None, str | None]:
        assert attempt.secret is not None
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   HEADER: sign(attempt.secret, attempt.body, timestamp=int(time.time())),
                   "Webhook-Id": attempt.delivery_id, "Webhook-Event-Id": attempt.event_id}
        try:
            target = httpx.URL(attempt.url)
        except (httpx.InvalidURL, ValueError) as exc:
            return None, f"the URL cannot be used: {exc}"[:500]
        extensions: dict[str, Any] = {}
        if not self.settings.webhook_allow_private:
            refused, address = await resolve_public(attempt.url)
            if refused is not None:
                return None, refused
            if address is not None:
                # connect to the address just checked, not to whatever the name resolves to a moment later (DNS
                # rebinding): the name stays in the Host header and, for TLS, in SNI and the certificate check
                headers["Host"] = target.netloc.decode("ascii")
                headers["Connection"] = "close"  # a connection pooled by address is never reused for another name
                extensions["sni_hostname"] = target.raw_host.decode("ascii")
                target = target.copy_with(host=address)
        try:
            async with self.client.stream("POST", target, content=attempt.body, headers=headers,
                                          timeout=self.settings.webhook_timeout_s,
                                          extensions=extensions) as response:
                if 200 <= response.status_code < 300:
                    return response.status_code, None  # the body is never read
                # at most ERROR_BYTES of the answer, as sent (no decompression): a huge one is never read whole
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= ERROR_BYTES:
                        break
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        text = head[:ERROR_BYTES].decode("utf-8", errors="replace")
        return response.status_code, f"HTTP {response.status_code}: {text}"


async def private_host(url: str) -> str | None:
    """Why a URL's host may not receive webhooks now (it resolves to a private or loopback address), or None."""
    return (await resolve_public(url))[0]


async def resolve_public(url: str) -> tuple[str | None, str | None]:
    """Resolve a URL's host now: (why it may not receive webhooks, None), or (None, the public address to connect
    to; None when the host is an address as written)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        literal = True
    except ValueError:
        literal = False
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"the host {host!r} does not resolve: {exc}", None
    for info in infos:
        address = str(info[4][0])
        if not is_public_address(address):
            return f"the host {host!r} resolves to {address}, a private or loopback address", None
    if not infos:
        return f"the host {host!r} does not resolve", None
    return None, None if literal else str(infos[0][4][0])


async def webhook_loop(runtime: Runtime[Settings]) -> None:
    """Runs the dispatcher for the service's lifetime; woken after every committed consumer batch."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        dispatcher = WebhookDispatcher(runtime, client)
        runtime.consumer_units.after_commit.append(dispatcher.wake)
        await dispatcher.run()
