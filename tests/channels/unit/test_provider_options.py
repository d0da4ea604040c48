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


def _answering(seen: list[httpx.Request], *, fail_chunk: int | None = None) -> httpx.MockTransport:
    """A batch endpoint that records each request; answers 503 to the ``fail_chunk``-th (from 0)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if fail_chunk is not None and len(seen) - 1 == fail_chunk:
            return httpx.Response(503)
        body = json.loads(request.content)
        return httpx.Response(200, json={"results": [
            {"client_ref": m["client_ref"], "message_id": f"m-{m['client_ref']}"} for m in body["messages"]]})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(("count", "max_batch", "sizes"), [
    (1, 1000, [1]), (1000, 1000, [1000]), (1001, 1000, [1000, 1]), (2500, 1000, [1000, 1000, 500]), (5, 2, [2, 2, 1]),
])
async def test_sms_batches_above_the_provider_limit_are_sent_in_chunks(count: int, max_batch: int,
                                                                       sizes: list[int]) -> None:
    seen: list[httpx.Request] = []
    messages = [OutgoingSms(f"c-{i}", "+8613812345678", "hi") for i in range(count)]
    async with httpx.AsyncClient(transport=_answering(seen)) as client:
        results = await SmsProvider(client, "http://sms.example", "GENTLE", account="acct-9",
                                    max_batch=max_batch).send(messages)
    assert sorted(len(json.loads(r.content)["messages"]) for r in seen) == sorted(sizes)
    assert [r.contact_id for r in results] == [m.contact_id for m in messages]  # in order, one each
    assert all(r.ok and r.provider_ref == f"m-{r.contact_id}" and r.account == "acct-9" for r in results)
    assert {r.headers["X-Account"] for r in seen} == {"acct-9"}
    assert all("callback_url" not in m for r in seen for m in json.loads(r.content)["messages"])


async def test_one_failed_chunk_fails_only_its_messages_and_retryably() -> None:
    seen: list[httpx.Request] = []
    messages = [OutgoingSms(f"c-{i}", "+8613812345678", "hi") for i in range(5)]
    async with httpx.AsyncClient(transport=_answering(seen, fail_chunk=0)) as client:
        results = await SmsProvider(client, "http://sms.example", "G", max_batch=2).send(messages)
    failed = [r for r in results if not r.ok]
    assert len(failed) == len(json.loads(seen[0].content)["messages"])
    assert all(r.retryable and r.account is None for r in failed)
    assert sum(r.ok for r in results) == 5 - len(failed)


async def test_sms_names_the_receipt_callback_when_given() -> None:
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(transport=_answering(seen)) as client:
        await SmsProvider(client, "http://sms.example", "G", receipt_url="https://c.example/v1/webhooks/sms/receipts"
                          ).send([OutgoingSms("c-1", "+8613812345678", "hi")])
    [request] = seen
    assert json.loads(request.content)["messages"][0]["callback_url"] == "https://c.example/v1/webhooks/sms/receipts"


def test_a_batch_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        SmsProvider(httpx.AsyncClient(), "http://sms.example", "G", max_batch=0)


@pytest.mark.parametrize(("status", "body", "expected", "error"), [
    (200, {"status": "delivered"}, "delivered", None),
    (200, {"status": "undelivered"}, "undelivered", None),
    (200, {"status": "queued"}, "queued", None),
    (200, {"status": "sent"}, "sent", None),
    (404, {"title": "Not Found"}, "unknown", None),
    (200, {"status": "exploded"}, None, "unknown status"),
    (200, ["delivered"], None, "unknown status"),
    (500, {}, None, "answered 500"),
    (401, {}, None, "answered 401"),
])
async def test_status_answers(status: int, body: Any, expected: str | None, error: str | None) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        [report] = await SmsProvider(client, "http://sms.example/", "G").statuses([("c-1", "msg/1?x", "acct-2")])
    assert (report.contact_id, report.status) == ("c-1", expected)
    assert (report.error is None) if error is None else (error in (report.error or ""))
    [request] = seen
    assert request.url.raw_path == b"/v1/messages/msg%2F1%3Fx"  # the reference cannot escape the path
    assert request.headers["X-Account"] == "acct-2"


async def test_an_unreachable_provider_gives_no_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        reports = await SmsProvider(client, "http://sms.example", "G").statuses(
            [("c-1", "m-1", "a"), ("c-2", "m-2", "a")])
    assert [(r.contact_id, r.status) for r in reports] == [("c-1", None), ("c-2", None)]
    assert all("unreachable" in (r.error or "") for r in reports)
