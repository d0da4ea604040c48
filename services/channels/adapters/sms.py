"""The SMS provider's HTTP API: a batch endpoint, idempotent by contact id, and a status endpoint."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import httpx

from services.channels.domain.messages import OutgoingSms, ProviderStatus, SendResult, StatusReport
from services.channels.domain.signatures import ACCOUNT_HEADER

STATUSES: frozenset[str] = frozenset({"queued", "sent", "delivered", "undelivered", "unknown"})
# status requests in flight at once (the reconciler asks about one message per request)
STATUS_CONCURRENCY = 8


class SmsProvider:
    """An SMS API with a batch endpoint; each message's idempotency key is its contact id.

    ``account`` is the provider account we send through (the ``X-Account`` header; a real provider
    would authenticate it); each result carries it, so receipts are accepted only from that account.
    ``max_batch`` is the provider's limit per batch request: larger sends go as several requests at
    once. ``receipt_url``, when given, is the callback for each message's delivery receipt.
    """

    def __init__(self, client: httpx.AsyncClient, base_url: str, sender: str, *, timeout_s: float = 15.0,
                 account: str = "sandbox", max_batch: int = 1000, receipt_url: str | None = None) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._client, self._base_url, self._sender = client, base_url.rstrip("/"), sender
        self._timeout_s = timeout_s
        self.account = account
        self._max_batch = max_batch
        self._receipt_url = receipt_url

    async def send(self, messages: list[OutgoingSms]) -> list[SendResult]:
        chunks = [messages[i:i + self._max_batch] for i in range(0, len(messages), self._max_batch)]
        answers = await asyncio.gather(*(self._send_batch(chunk) for chunk in chunks))
        return [result for answer in answers for result in answer]

    async def _send_batch(self, messages: list[OutgoingSms]) -> list[SendResult]:
        def item(m: OutgoingSms) -> dict[str, Any]:
            out = {"to": m.to, "body": m.body, "sender": self._sender, "client_ref": m.contact_id}
            if self._receipt_url:
                out["callback_url"] = self._receipt_url
            return out

        try:
            response = await self._client.post(f"{self._base_url}/v1/messages/batch",
                                               json={"messages": [item(m) for m in messages]},
                                               headers={ACCOUNT_HEADER: self.account}, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            # Idempotency keys make a retry safe even if the provider got the request.
            return [SendResult(m.contact_id, False, error=f"provider unreachable: {exc!r}", retryable=True)
                    for m in messages]
        if response.status_code >= 500 or response.status_code == 429:
            return [SendResult(m.contact_id, False, error=f"provider answered {response.status_code}",
                               retryable=True) for m in messages]
        if response.status_code >= 400:
            detail = response.text[:500]
            return [SendResult(m.contact_id, False, error=f"provider refused: {detail}") for m in messages]
        by_ref = {r["client_ref"]: r for r in response.json()["results"]}
        return [SendResult(m.contact_id, True, provider_ref=by_ref[m.contact_id]["message_id"], account=self.account)
                if m.contact_id in by_ref else SendResult(m.contact_id, False, error="missing from provider reply")
                for m in messages]

    async def statuses(self, asked: list[tuple[str, str, str]]) -> list[StatusReport]:
        """What became of each (contact id, provider ref, account) message, a few requests at a time."""
        gate = asyncio.Semaphore(STATUS_CONCURRENCY)

        async def one(contact_id: str, provider_ref: str, account: str) -> StatusReport:
            async with gate:
                return await self.status(contact_id, provider_ref, account)

        return list(await asyncio.gather(*(one(*a) for a in asked)))

    async def status(self, contact_id: str, provider_ref: str, account: str) -> StatusReport:
        """``GET /v1/messages/{provider_ref}`` as ``account``: a 404 means the provider knows no such message."""
        try:
            response = await self._client.get(f"{self._base_url}/v1/messages/{quote(provider_ref, safe='')}",
                                              headers={ACCOUNT_HEADER: account}, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            return StatusReport(contact_id, None, error=f"provider unreachable: {exc!r}")
        if response.status_code == 404:
            return StatusReport(contact_id, "unknown")
        if response.status_code != 200:
            return StatusReport(contact_id, None, error=f"provider answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            data = None
        status = data.get("status") if isinstance(data, dict) else None
        if status not in STATUSES:
            return StatusReport(contact_id, None, error=f"provider gave an unknown status: {str(status)[:40]!r}")
        value: ProviderStatus = status
        return StatusReport(contact_id, value)
