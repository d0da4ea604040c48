"""Review attacks on signed webhooks: receivers that trickle or flood their answer, URLs that name a loopback or
private address in another spelling, and docs/partners.md's verification examples run exactly as written."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from services.plans import webhooks
from services.plans.db.co_lending import WebhookDelivery, WebhookSubscription
from services.plans.domain.signing import endpoint_problems, new_secret, sign
from services.plans.settings import Settings
from services.plans.workers.webhooks import WebhookDispatcher
from shared.access.keys import Principal
from shared.runtime import Runtime
from tests.plans.integration.test_webhooks import plan_event
from tests.plans.support import consume

DOCS = Path(__file__).resolve().parents[3] / "docs" / "partners.md"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Server:
    url: str
    sent: list[int]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Serve], Awaitable[Server]]]:
    servers: list[asyncio.base_events.Server] = []

    async def start(handler: Serve) -> Server:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Server(f"http://127.0.0.1:{port}/hooks", [0])

    yield start
    for server in servers:
        server.close()


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)


def dispatcher(client: httpx.AsyncClient, timeout_s: float = 1.0) -> WebhookDispatcher:
    settings = Settings(app_env="test", webhook_timeout_s=timeout_s, webhook_allow_private=True)
    return WebhookDispatcher(SimpleNamespace(settings=settings), client)  # type: ignore[arg-type]


def attempt(url: str) -> webhooks.Attempt:
    return webhooks.Attempt("d-1", "bank-a", "main", "e-1", 1, url, new_secret(), b'{"id": "e-1"}')


async def test_a_receiver_trickling_its_answer_fails_the_attempt_within_the_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(100):  # a byte every 0.3 s: never a read timeout, never an end
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.3)
        except (ConnectionError, OSError):
            pass
        writer.close()

    server = await serve(trickle)
    async with httpx.AsyncClient(follow_redirects=False) as client:
        started = time.monotonic()
        status, error = await asyncio.wait_for(dispatcher(client, timeout_s=1.0).post(attempt(server.url)), 20)
        elapsed = time.monotonic() - started
    # whichever outcome, the attempt ends within the timeout (plus slack), not 30 s later past the lease
    assert elapsed < 5, elapsed
    assert (status, error) in ((200, None), (None, "no answer within 1 s"))


async def test_a_huge_error_answer_is_not_read_whole(serve) -> None:  # type: ignore[no-untyped-def]
    total = 64 * 1024 * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(f"HTTP/1.1 500 Internal Server Error\r\nContent-Length: {total}\r\n\r\n".encode())
        chunk = b"e" * 65536
        try:
            while server.sent[0] < total:
                writer.write(chunk)
                await writer.drain()
                server.sent[0] += len(chunk)
        except (ConnectionError, OSError):
            pass
        writer.close()

    server = await serve(flood)
    async with httpx.AsyncClient(follow_redirects=False) as client:
        status, error = await asyncio.wait_for(dispatcher(client, timeout_s=5.0).post(attempt(server.url)), 30)
    await asyncio.sleep(0.2)
    assert status == 500
    assert error is not None and error.startswith("HTTP 500: eee") and len(error) < 300
    assert server.sent[0] < 16 * 1024 * 1024, f"the dispatcher read {server.sent[0]} bytes of an error answer"


@pytest.mark.parametrize("url", [
    "http://2130706433/hooks",          # 127.0.0.1 as one decimal number
    "http://0x7f000001/hooks",          # ... in hex
    "http://0177.0.0.1/hooks",          # ... in octal
    "http://127.1/hooks",               # ... shortened
    "http://0/hooks",                   # 0.0.0.0
    "http://2852039166/latest",         # 169.254.169.254, the metadata service
    "http://localhost./hooks",          # localhost with the root's dot
    "http://[::127.0.0.1]/hooks",       # IPv4-compatible IPv6
    "http://[64:ff9b::a9fe:a9fe]/",     # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/hooks",     # 6to4 of 127.0.0.1
])
def test_a_private_address_in_another_spelling_is_refused_as_written(url: str) -> None:
    assert endpoint_problems(url, allow_private=False), url
    assert endpoint_problems(url, allow_private=True) == []


@pytest.mark.parametrize("url", ["https://partner.example/hooks", "http://8.8.8.8/x", "http://1.2.3.4.5/",
                                 "https://[2001:4860:4860::8888]/x", "https://123.example/x"])
def test_public_endpoints_stay_accepted(url: str) -> None:
    assert endpoint_problems(url, allow_private=False) == []


def _docs_block(language: str, containing: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.S)
    return next(b for b in blocks if containing in b)


def test_the_docs_python_verification_example_accepts_ours_and_refuses_tampering() -> None:
    namespace: dict[str, Any] = {}
    exec(_docs_block("python", "def verify_webhook"), namespace)  # noqa: S102 - the docs' own example
    verify_webhook = namespace["verify_webhook"]
    secret, body = new_secret(), json.dumps({"id": "e-1", "data": {"x": "测试"}}, ensure_ascii=False).encode()
    header = sign(secret, body, timestamp=int(time.time()))
    assert verify_webhook(secret, body, header)
    assert verify_webhook(secret, body, f"{header},v1={'0' * 64}")
    assert not verify_webhook(secret, body + b" ", header)
    assert not verify_webhook("whsec_other", body, header)
    assert not verify_webhook(secret, body, sign(secret, body, timestamp=int(time.time()) - 301))
    assert not verify_webhook(secret, body, "t=abc,v1=00")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_the_docs_shell_examples_verify_and_sign_as_we_do(tmp_path: Path) -> None:
    block = _docs_block("bash", "openssl dgst")
    verify_part, sign_part = block.split("# sign a test delivery", 1)
    secret = new_secret()
    body = b'{"id":"e-1","data":{"name":"\xe6\xb5\x8b"}}\n'
    (tmp_path / "body.json").write_bytes(body)
    script = "\n".join(line for line in verify_part.splitlines() if not line.startswith("SECRET="))
    ok = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False,
                        env={"PATH": "/usr/bin:/bin", "SECRET": secret,
                             "HEADER": sign(secret, body, timestamp=int(time.time()))})
    assert ok.stdout.strip() == "valid", ok.stderr
    bad = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False,
                         env={"PATH": "/usr/bin:/bin", "SECRET": secret,
                              "HEADER": sign(secret, body + b"x", timestamp=int(time.time()))})
    assert bad.stdout.strip() == "INVALID"
    # the signing half computes the same HMAC as the platform (run up to the curl, which needs a receiver)
    signing = sign_part.split("curl", 1)[0] + '\nprintf "%s %s" "$t" "$sig"'
    signed = subprocess.run(["bash", "-c", signing], cwd=tmp_path, capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "SECRET": secret})
    t, sig = signed.stdout.split()
    assert sign(secret, body, timestamp=int(t)) == f"t={t},v1={sig}"


async def test_a_url_the_client_cannot_send_to_is_a_failed_attempt_not_an_exception() -> None:
    async with httpx.AsyncClient(follow_redirects=False) as client:
        status, error = await dispatcher(client).post(attempt("http://\u2603.example/hooks"))
    assert status is None and error is not None


@pytest.fixture
async def runtime(infra: Any) -> AsyncIterator[Runtime[Settings]]:
    settings = Settings(database_url=infra.database_url, kafka_bootstrap_servers=infra.kafka, app_env="test",
                        webhook_backoff_base_s=0.2, webhook_backoff_max_s=1.0, webhook_max_attempts=3,
                        webhook_timeout_s=2.0)
    built: Runtime[Settings] = Runtime(settings)
    yield built
    await built.engine.dispose()


async def test_a_url_the_client_cannot_send_to_is_refused_when_subscribing(runtime) -> None:  # type: ignore[no-untyped-def]
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    with pytest.raises(webhooks.WebhookRefused):
        async with runtime.units() as uow:
            await webhooks.subscribe(uow, principal=Principal(tenant, "p", frozenset({"partner"})),
                                     cipher=runtime.cipher, webhook_id="main", url="http://\u2603.example/hooks",
                                     wanted=list(webhooks.WEBHOOK_TOPICS), reason="test", allow_private=False)
    async with runtime.sessions() as session:
        assert await webhooks.subscriptions(session, tenant=tenant) == []


async def test_one_unsendable_delivery_does_not_leave_its_batch_unrecorded(runtime, sessions, serve) -> None:  # type: ignore[no-untyped-def]
    got: list[bytes] = []

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        got.append(b"1")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await serve(ok)
    bad, fine = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    for tenant in (bad, fine):
        async with runtime.units() as uow:
            await webhooks.subscribe(uow, principal=Principal(tenant, "p", frozenset({"partner"})),
                                     cipher=runtime.cipher, webhook_id="main", url=server.url,
                                     wanted=list(webhooks.WEBHOOK_TOPICS), reason="test", allow_private=True)
            await uow.commit()
    async with runtime.units() as uow:  # stored before the check above existed
        await uow.session.execute(update(WebhookSubscription).where(
            WebhookSubscription.tenant == bad).values(url="http://\u2603.example/hooks"))  # type: ignore[arg-type]
        await uow.commit()
    await consume(sessions, plan_event(bad), plan_event(fine))
    async with httpx.AsyncClient(follow_redirects=False) as client:
        await WebhookDispatcher(runtime, client).deliver_once()
    async with runtime.sessions() as session:
        rows = {d.tenant: d for d in (await session.execute(select(WebhookDelivery).where(
            WebhookDelivery.tenant.in_([bad, fine])))).scalars()}  # type: ignore[attr-defined]
    assert rows[fine].status == "delivered" and len(got) == 1
    assert rows[bad].status == "pending" and rows[bad].last_error  # recorded: retried with backoff, then failed
    async with runtime.units() as uow:  # leave nothing due for the other tests' dispatchers
        await uow.session.execute(update(WebhookDelivery).where(
            WebhookDelivery.tenant == bad).values(status="cancelled"))  # type: ignore[arg-type]
        await uow.commit()


async def test_the_delivery_connects_to_the_address_it_checked(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]])

    async def rebinding(self: Any, host: str, *args: Any, **kwargs: Any) -> Any:
        return next(answers)  # public when checked, loopback a moment later

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", rebinding)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    settings = Settings(app_env="test", webhook_timeout_s=2.0, webhook_allow_private=False)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False) as client:
        found = WebhookDispatcher(SimpleNamespace(settings=settings), client)  # type: ignore[arg-type]
        assert await found.post(attempt("https://rebind.example/hooks")) == (204, None)
    (request,) = seen
    assert request.url.host == "93.184.216.34"  # never resolved again by the client
    assert request.headers["host"] == "rebind.example"
    assert request.extensions.get("sni_hostname") == "rebind.example"
    assert request.headers["connection"] == "close"
