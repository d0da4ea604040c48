"""MailProvider against real SMTP servers on free ports: the project's aiosmtpd sink, and aiosmtpd with
STARTTLS or implicit TLS (a throw-away self-signed certificate) and a required login."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import ssl
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack.embedded import free_port
from devstack.smtp_sink import SmtpSink, read_mailbox
from services.channels.adapters.mail import MailProvider, SmtpTls
from services.channels.domain.messages import OutgoingEmail


async def test_sends_each_message_once_with_its_contact_id(tmp_path: Path) -> None:
    port = free_port()
    sink = SmtpSink("127.0.0.1", port, tmp_path)
    sink.start()
    try:
        messages = [OutgoingEmail(f"c-{i}", f"user{i}@example.com", f"主题 {i}", f"正文 {i}") for i in range(3)]
        results = await MailProvider("127.0.0.1", port, "collections@gentle.example").send(messages)
    finally:
        sink.stop()
    assert [r.ok for r in results] == [True, True, True]
    mails = read_mailbox(tmp_path)
    assert sorted(m["X-Contact-Id"] for m in mails) == ["c-0", "c-1", "c-2"]
    assert {m["To"] for m in mails} == {"user0@example.com", "user1@example.com", "user2@example.com"}


async def test_unreachable_server_is_retryable_and_sends_nothing() -> None:
    results = await MailProvider("127.0.0.1", free_port(), "x@example.com").send(
        [OutgoingEmail("c-1", "a@example.com", "s", "b")])
    assert [(r.ok, r.retryable) for r in results] == [(False, True)]


# --- TLS and login, against aiosmtpd with a throw-away self-signed certificate -------------------------

USER, PASSWORD = "mailer", "s3cret-pass"


@dataclass
class _Received:
    tls: list[bool] = field(default_factory=list)
    authenticated: list[bool] = field(default_factory=list)
    contact_ids: list[str] = field(default_factory=list)


class _RecordingHandler:
    def __init__(self, received: _Received) -> None:
        self.received = received

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or b"", policy=email.policy.default)
        transport = server.transport
        self.received.tls.append(transport is not None and transport.get_extra_info("ssl_object") is not None)
        self.received.authenticated.append(bool(session.authenticated))
        self.received.contact_ids.append(str(message["X-Contact-Id"]))
        return "250 OK"


def _authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    base = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = base / "cert.pem", base / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


@contextmanager
def _tls_server(certificate: tuple[Path, Path], *, implicit: bool) -> Iterator[tuple[int, _Received]]:
    """An SMTP server that needs TLS (STARTTLS, or implicit) and a login before it takes mail."""
    received = _Received()
    port = free_port()
    options: dict[str, Any] = {"ssl_context": _server_context(certificate)} if implicit else {
        "tls_context": _server_context(certificate), "require_starttls": True}
    with warnings.catch_warnings():
        # aiosmtpd's auth_require_tls only knows STARTTLS (and warns when it is off); with implicit TLS
        # the whole connection is encrypted anyway. LOGIN is left out: PLAIN is enough to test a login.
        warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
        controller = Controller(_RecordingHandler(received), hostname="127.0.0.1", port=port, auth_required=True,
                                auth_require_tls=not implicit, authenticator=_authenticator,
                                auth_exclude_mechanism=["LOGIN"], **options)
        controller.start()
        try:
            yield port, received
        finally:
            controller.stop()


def _two_messages() -> list[OutgoingEmail]:
    return [OutgoingEmail(f"t-{i}", f"user{i}@example.com", "subject", "body") for i in range(2)]


@pytest.mark.parametrize(("tls", "implicit"), [("starttls", False), ("tls", True)])
async def test_tls_and_login(certificate: tuple[Path, Path], tls: SmtpTls, implicit: bool) -> None:
    with _tls_server(certificate, implicit=implicit) as (port, received):
        provider = MailProvider("127.0.0.1", port, "collections@gentle.example", tls=tls, username=USER,
                                password=PASSWORD, timeout_s=5, tls_context=_client_context(certificate))
        results = await provider.send(_two_messages())
    assert [r.ok for r in results] == [True, True], results
    assert received.contact_ids == ["t-0", "t-1"]
    assert received.tls == [True, True]
    assert received.authenticated == [True, True]


async def test_wrong_password_is_a_retryable_login_refusal_that_never_shows_the_password(
        certificate: tuple[Path, Path]) -> None:
    with _tls_server(certificate, implicit=False) as (port, received):
        provider = MailProvider("127.0.0.1", port, "x@example.com", tls="starttls", username=USER,
                                password="wrong-pass", timeout_s=5,  # noqa: S106 - a test credential
                                tls_context=_client_context(certificate))
        results = await provider.send(_two_messages())
    assert [(r.ok, r.retryable) for r in results] == [(False, True), (False, True)]
    assert all(r.error is not None and "login refused" in r.error for r in results), results
    assert not any("wrong-pass" in (r.error or "") for r in results)
    assert "wrong-pass" not in repr(provider)
    assert received.contact_ids == []


async def test_untrusted_certificate_is_refused_and_retryable(certificate: tuple[Path, Path]) -> None:
    with _tls_server(certificate, implicit=False) as (port, received):
        # no tls_context: the system CAs, which do not know the self-signed certificate
        provider = MailProvider("127.0.0.1", port, "x@example.com", tls="starttls", username=USER,
                                password=PASSWORD, timeout_s=5)
        results = await provider.send(_two_messages())
    assert [(r.ok, r.retryable) for r in results] == [(False, True), (False, True)]
    assert received.contact_ids == []


async def test_plain_smtp_never_upgrades_nor_logs_in(certificate: tuple[Path, Path]) -> None:
    with _tls_server(certificate, implicit=False) as (port, received):
        # the server offers STARTTLS and requires it: tls="none" must not take it up on its own
        results = await MailProvider("127.0.0.1", port, "x@example.com", timeout_s=5).send(_two_messages())
    assert not any(r.ok for r in results)
    assert received.contact_ids == []
