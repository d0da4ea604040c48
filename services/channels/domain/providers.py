"""Provider adapters: the SMS HTTP API (batch, idempotent by contact id) and SMTP."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import httpx


@dataclass(frozen=True, slots=True)
class SendResult:
    contact_id: str
    ok: bool
    provider_ref: str | None = None
    error: str | None = None
    # True when the provider never accepted the message, so trying again cannot send it twice.
    retryable: bool = False


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    contact_id: str
    to: str
    body: str


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    contact_id: str
    to: str
    subject: str
    body: str


class SmsProvider:
    """An SMS API with a batch endpoint; each message's idempotency key is its contact id."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, sender: str) -> None:
        self._client, self._base_url, self._sender = client, base_url.rstrip("/"), sender

    async def send(self, messages: list[OutgoingSms]) -> list[SendResult]:
        payload = {"messages": [{"to": m.to, "body": m.body, "sender": self._sender, "client_ref": m.contact_id}
                                for m in messages]}
        try:
            response = await self._client.post(f"{self._base_url}/v1/messages/batch", json=payload, timeout=15)
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


class MailProvider:
    """SMTP with one connection per batch. SMTP has no idempotency key: see dispatch.py."""

    def __init__(self, host: str, port: int, sender: str) -> None:
        self._host, self._port, self._sender = host, port, sender

    async def send(self, messages: list[OutgoingEmail]) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            smtp = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=15, start_tls=False)
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            return [SendResult(m.contact_id, False, error=f"SMTP unreachable: {exc!r}", retryable=True)
                    for m in messages]
        try:
            for index, m in enumerate(messages):
                if not smtp.is_connected:
                    # The connection died on an earlier message: these were never attempted.
                    results += [SendResult(rest.contact_id, False, error="SMTP connection lost before sending",
                                           retryable=True) for rest in messages[index:]]
                    break
                msg = EmailMessage()
                msg["From"], msg["To"], msg["Subject"] = self._sender, m.to, m.subject
                msg["Message-ID"] = make_msgid(idstring=m.contact_id)
                msg["X-Contact-Id"] = m.contact_id
                msg.set_content(m.body)
                try:
                    await smtp.send_message(msg)
                    results.append(SendResult(m.contact_id, True, provider_ref=msg["Message-ID"]))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    results.append(SendResult(m.contact_id, False, error=f"recipient refused: {exc}"))
                except (aiosmtplib.SMTPException, OSError) as exc:
                    # The server may or may not have taken it: never resend (no double contact).
                    results.append(SendResult(m.contact_id, False, error=f"SMTP error: {exc!r}"))
        finally:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
        return results
