"""The SMS provider's HTTP API: a batch endpoint, idempotent by contact id."""

from __future__ import annotations

import httpx

from services.channels.domain.messages import OutgoingSms, SendResult


class SmsProvider:
    """An SMS API with a batch endpoint; each message's idempotency key is its contact id."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, sender: str, *, timeout_s: float = 15.0) -> None:
        self._client, self._base_url, self._sender = client, base_url.rstrip("/"), sender
        self._timeout_s = timeout_s

    async def send(self, messages: list[OutgoingSms]) -> list[SendResult]:
        payload = {"messages": [{"to": m.to, "body": m.body, "sender": self._sender, "client_ref": m.contact_id}
                                for m in messages]}
        try:
            response = await self._client.post(f"{self._base_url}/v1/messages/batch", json=payload,
                                               timeout=self._timeout_s)
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
        return [SendResult(m.contact_id, True, provider_ref=by_ref[m.contact_id]["message_id"])
                if m.contact_id in by_ref else SendResult(m.contact_id, False, error="missing from provider reply")
                for m in messages]
