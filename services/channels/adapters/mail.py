"""SMTP: one connection per batch. SMTP has no idempotency key: see services/channels/service.py.

An e-mail with an unsubscribe link carries it as ``List-Unsubscribe: <url>`` with
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058): mail clients then offer one-click
unsubscribing, a POST to that URL. RFC 8058 asks for a DKIM signature covering both headers: that is the
outgoing mail server's job (sign List-Unsubscribe and List-Unsubscribe-Post there)."""

from __future__ import annotations

import contextlib
import email.policy
import ssl
from email.headerregistry import BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Literal, cast

import aiosmtplib

from services.channels.domain.messages import OutgoingEmail, SendResult

SmtpTls = Literal["none", "starttls", "tls"]
# RFC 5322's limit of a header line; a longer link goes in the body only
MAX_HEADER_LINE = 998


class _UrlHeader(UnstructuredHeader):
    """``List-Unsubscribe``: written on one line as given. The default folding would turn a URL longer than a
    line into RFC 2047 encoded words, which mail clients do not decode in this header. (The registry mixes
    BaseHeader in, which gives it ``name``.)"""

    name: str

    def fold(self, *, policy: Any) -> str:
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", cast("type[BaseHeader]", _UrlHeader))
POLICY = email.policy.default.clone(header_factory=_HEADERS)


def unsubscribe_headers(url: str | None) -> dict[str, str]:
    """The RFC 8058 one-click headers for an unsubscribe link (none without one, or for one too long)."""
    if not url or len("List-Unsubscribe: <>") + len(url) > MAX_HEADER_LINE or not url.isascii():
        return {}
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


class MailProvider:
    """SMTP with one connection per batch (no idempotency key: an interrupted send is never repeated).

    ``tls``: ``"none"`` (plain SMTP, no opportunistic upgrade), ``"starttls"`` (upgrade after
    connecting; fails if the server does not offer it) or ``"tls"`` (implicit TLS, SMTPS). The server's
    certificate is verified against the system CAs, or ``tls_context`` when given. With ``username`` and
    ``password`` the provider logs in after the TLS upgrade. The password is never logged nor put in a
    result's error.
    """

    def __init__(self, host: str, port: int, sender: str, *, tls: SmtpTls = "none", username: str | None = None,
                 password: str | None = None, timeout_s: float = 15.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"unknown SMTP TLS mode {tls!r}: none, starttls or tls")
        if (username is None) != (password is None):
            raise ValueError("SMTP username and password go together")
        self._host, self._port, self._sender = host, port, sender
        self._tls: SmtpTls = tls
        self._username, self._password = username, password
        self._timeout_s = timeout_s
        self._tls_context = tls_context

    def __repr__(self) -> str:
        user = f", username={self._username!r}" if self._username is not None else ""
        return f"MailProvider({self._host!r}, {self._port}, tls={self._tls!r}{user})"

    def _client(self) -> aiosmtplib.SMTP:
        # Credentials are not given here (connect() would log in by itself): send() logs in explicitly,
        # so a refused login is reported as such rather than as an unreachable server.
        return aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=self._timeout_s,
                               use_tls=self._tls == "tls", start_tls=self._tls == "starttls",
                               tls_context=self._tls_context)

    async def send(self, messages: list[OutgoingEmail]) -> list[SendResult]:
        results: list[SendResult] = []
        smtp = self._client()
        try:
            await smtp.connect()  # and STARTTLS, when tls="starttls"
            if self._username is not None and self._password is not None:
                await smtp.login(self._username, self._password)
        except aiosmtplib.SMTPAuthenticationError as exc:
            self._close(smtp)
            # Nothing was sent: retrying is safe (and succeeds once the credentials are fixed).
            return [SendResult(m.contact_id, False, error=f"SMTP login refused: {exc.code} {exc.message}",
                               retryable=True) for m in messages]
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._close(smtp)
            return [SendResult(m.contact_id, False, error=f"SMTP unreachable: {exc!r}", retryable=True)
                    for m in messages]
        try:
            for index, m in enumerate(messages):
                if not smtp.is_connected:
                    # The connection died on an earlier message: these were never attempted.
                    results += [SendResult(rest.contact_id, False, error="SMTP connection lost before sending",
                                           retryable=True) for rest in messages[index:]]
                    break
                msg = EmailMessage(policy=POLICY)
                msg["From"], msg["To"], msg["Subject"] = self._sender, m.to, m.subject
                msg["Message-ID"] = make_msgid(idstring=m.contact_id)
                msg["X-Contact-Id"] = m.contact_id
                for name, value in unsubscribe_headers(m.unsubscribe_url).items():  # RFC 2369, RFC 8058
                    msg[name] = value
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

    @staticmethod
    def _close(smtp: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            smtp.close()
