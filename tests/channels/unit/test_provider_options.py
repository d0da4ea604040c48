"""Unit tests: the options MailProvider and SmsProvider hand to aiosmtplib and httpx (no servers)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx
import pytest

from services.channels.adapters import mail as mail_module
from services.channels.adapters.mail import MailProvider
from services.channels.adapters.sms import SmsProvider
from services.channels.domain.messages import OutgoingEmail, OutgoingSms


class FakeSmtp:
    """Stands in for aiosmtplib.SMTP and records what the provider asked of it."""

    instances: ClassVar[list[FakeSmtp]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.is_connected = False
        FakeSmtp.instances.append(self)

    async def connect(self) -> None:
        self.calls.append(("connect", ()))
        self.is_connected = True

    async def login(self, username: str, password: str) -> None:
        self.calls.append(("login", (username, password)))

    async def send_message(self, message: Any) -> None:
        self.calls.append(("send_message", (message["X-Contact-Id"],)))

    async def quit(self) -> None:
        self.calls.append(("quit", ()))

    def close(self) -> None:
        self.calls.append(("close", ()))


@pytest.fixture
def fake_smtp(monkeypatch: pytest.MonkeyPatch) -> type[FakeSmtp]:
    FakeSmtp.instances = []
    monkeypatch.setattr(mail_module.aiosmtplib, "SMTP", FakeSmtp)
    return FakeSmtp


def _one() -> list[OutgoingEmail]:
    return [OutgoingEmail("c-1", "a@example.com", "s", "b")]


@pytest.mark.parametrize(("tls", "use_tls", "start_tls"),
                         [("none", False, False), ("starttls", False, True), ("tls", True, False)])
async def test_tls_mode_maps_to_aiosmtplib(fake_smtp: type[FakeSmtp], tls: Any, use_tls: bool,
                                           start_tls: bool) -> None:
    results = await MailProvider("smtp.example", 587, "from@example.com", tls=tls, timeout_s=7.5).send(_one())
    assert [r.ok for r in results] == [True]
    (smtp,) = fake_smtp.instances
    assert smtp.kwargs["hostname"] == "smtp.example" and smtp.kwargs["port"] == 587
    assert (smtp.kwargs["use_tls"], smtp.kwargs["start_tls"]) == (use_tls, start_tls)
    assert smtp.kwargs["timeout"] == 7.5
    assert "password" not in smtp.kwargs  # logged in explicitly, after connect (and STARTTLS)
    assert [name for name, _ in smtp.calls] == ["connect", "send_message", "quit"]


async def test_defaults_are_plain_smtp_without_login_and_15s(fake_smtp: type[FakeSmtp]) -> None:
    await MailProvider("h", 25, "from@example.com").send(_one())
    (smtp,) = fake_smtp.instances
    assert (smtp.kwargs["use_tls"], smtp.kwargs["start_tls"], smtp.kwargs["timeout"]) == (False, False, 15.0)
    assert "login" not in [name for name, _ in smtp.calls]


async def test_logs_in_after_connecting_when_credentials_are_set(fake_smtp: type[FakeSmtp]) -> None:
    provider = MailProvider("h", 465, "from@example.com", tls="tls", username="u",
                            password="top-secret")  # noqa: S106 - a test credential
    await provider.send(_one())
    (smtp,) = fake_smtp.instances
    assert smtp.calls[:2] == [("connect", ()), ("login", ("u", "top-secret"))]
    assert "top-secret" not in repr(provider)


def test_refuses_half_credentials_and_unknown_modes() -> None:
    with pytest.raises(ValueError, match="username and password"):
        MailProvider("h", 25, "f@example.com", username="u")
    with pytest.raises(ValueError, match="unknown SMTP TLS mode"):
        MailProvider("h", 25, "f@example.com", tls="ssl")  # type: ignore[arg-type]


async def test_sms_timeout_is_passed_to_the_request() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        body = json.loads(request.content)
        return httpx.Response(200, json={"results": [{"client_ref": m["client_ref"], "message_id": "m-1"}
                                                     for m in body["messages"]]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        results = await SmsProvider(client, "http://sms.example/", "GENTLE", timeout_s=3.5).send(
            [OutgoingSms("c-1", "+8613812345678", "hi")])
        await SmsProvider(client, "http://sms.example", "GENTLE").send([OutgoingSms("c-2", "+8613812345678", "hi")])
    assert [r.ok for r in results] == [True]
    assert seen[0] == {"connect": 3.5, "read": 3.5, "write": 3.5, "pool": 3.5}
    assert seen[1]["read"] == 15.0
