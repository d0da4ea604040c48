"""Tests for the local SMS provider sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from devstack.sms_sandbox import DEFAULT_ACCOUNT, DEFAULT_SECRET, create_app

OK_NUMBER = "+8613812345678"
FAILING_NUMBER = "+8613800000000"  # ends in 0000: the sandbox always fails it
SILENT_NUMBER = "+8613800009999"  # ends in 9999: never a final status, never a receipt
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def sandbox(**kwargs: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Run the sandbox app (with its lifespan, hence its receipt worker) behind an in-process client."""
    kwargs.setdefault("receipt_url", None)
    kwargs.setdefault("store_path", None)
    app = create_app(**kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
            yield app, client


class Receiver:
    """A real HTTP receipt endpoint served by uvicorn; answers 503 to the first ``fail_first`` POSTs."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.receipts: list[dict[str, Any]] = []
        self.batch_sizes: list[int] = []
        self.posts: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, raw body) of each POST
        self.app = FastAPI()
        self.app.post("/receipts")(self.handle)
        self.app.post("/elsewhere")(self.handle)

    async def handle(self, request: Request) -> Response:
        self.attempts += 1
        raw = await request.body()
        self.posts.append((request.url.path, dict(request.headers), raw))
        if self.attempts <= self.fail_first:
            return Response(status_code=503)
        receipts = orjson.loads(raw)["receipts"]
        self.batch_sizes.append(len(receipts))
        self.receipts.extend(receipts)
        return Response(status_code=204)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free port and yield its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "receiver did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Poll ``check`` until it is true or fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_same_idempotency_key_is_stored_once() -> None:
    async with sandbox() as (_, client):
        msg = {"to": OK_NUMBER, "body": "您好, a gentle reminder", "sender": "BANK", "client_ref": "c-1"}
        first = await client.post("/v1/messages", json=msg, headers={"Idempotency-Key": "k-1"})
        again = await client.post("/v1/messages", json=msg, headers={"Idempotency-Key": "k-1"})
        other = await client.post("/v1/messages", json=msg, headers={"Idempotency-Key": "k-2"})

        assert first.status_code == again.status_code == 202
        assert first.json() == {
            "message_id": first.json()["message_id"],
            "status": "accepted",
            "duplicate": False,
        }
        assert again.json()["message_id"] == first.json()["message_id"]
        assert again.json()["duplicate"] is True
        assert other.json()["duplicate"] is False
        assert (await client.get("/messages/count")).json() == {"count": 2}

        [stored] = (await client.get("/messages", params={"client_ref": "c-1", "limit": 1})).json()[
            "messages"
        ]
        assert stored["message_id"] == other.json()["message_id"]  # newest last
        assert (stored["to"], stored["body"], stored["sender"]) == (OK_NUMBER, msg["body"], "BANK")
        assert stored["received_at"].endswith("+00:00")


async def test_client_ref_is_the_fallback_idempotency_key() -> None:
    async with sandbox() as (_, client):
        msg = {"to": OK_NUMBER, "body": "hi", "client_ref": "contact-9"}
        a = (await client.post("/v1/messages", json=msg)).json()
        b = (await client.post("/v1/messages", json=msg)).json()
        c = (await client.post("/v1/messages", json={"to": OK_NUMBER, "body": "hi"})).json()
        d = (await client.post("/v1/messages", json={"to": OK_NUMBER, "body": "hi"})).json()
        assert a["message_id"] == b["message_id"] and b["duplicate"] is True
        assert c["message_id"] != d["message_id"]  # no key at all: nothing to deduplicate on
        assert (await client.get("/messages/count")).json() == {"count": 3}


async def test_batch_keeps_order_and_deduplicates() -> None:
    async with sandbox() as (_, client):
        single = (
            await client.post("/v1/messages", json={"to": OK_NUMBER, "body": "x", "client_ref": "r0"})
        ).json()
        refs = ["r1", "r0", "r2", "r1", "r3"]
        batch = {"messages": [{"to": OK_NUMBER, "body": f"m {ref}", "client_ref": ref} for ref in refs]}
        resp = await client.post("/v1/messages/batch", json=batch)

        assert resp.status_code == 200
        results = resp.json()["results"]
        assert [r["client_ref"] for r in results] == refs
        assert [r["duplicate"] for r in results] == [False, True, False, True, False]
        assert results[1]["message_id"] == single["message_id"]
        assert results[3]["message_id"] == results[0]["message_id"]
        assert len({r["message_id"] for r in results}) == 4
        assert (await client.get("/messages/count")).json() == {"count": 4}
        listed = (await client.get("/messages")).json()["messages"]
        assert [m["client_ref"] for m in listed] == ["r0", "r1", "r2", "r3"]


async def test_full_batches_are_all_stored() -> None:
    async with sandbox() as (_, client):
        for n in range(3):
            batch = [
                {"to": OK_NUMBER, "body": "reminder " * 10, "client_ref": f"{n}-{i}"} for i in range(1000)
            ]
            resp = await client.post("/v1/messages/batch", json={"messages": batch})
            assert resp.status_code == 200
        assert (await client.get("/messages/count")).json() == {"count": 3000}


def assert_problem(resp: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    """Check that ``resp`` is an RFC 9457 problem document mentioning every needle in its detail."""
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert problem["status"] == status
    for needle in needles:
        assert needle in problem["detail"]
    return problem


async def test_invalid_input_gets_problem_details_and_stores_nothing() -> None:
    async with sandbox() as (_, client):
        for bad_number in ("13800000000", "+8613800000000\n", "+86138000000\uff10\uff10", 8613800000000):
            assert_problem(await client.post("/v1/messages", json={"to": bad_number, "body": "x"}), 422, "to")
        assert_problem(await client.post("/v1/messages", json={"to": OK_NUMBER, "body": ""}), 422, "body")
        too_long = {"to": OK_NUMBER, "body": "x" * 1001}
        assert_problem(await client.post("/v1/messages", json=too_long), 422, "body", "1000")
        assert_problem(await client.post("/v1/messages", content=b"{not json"), 400, "JSON")

        items = [{"to": OK_NUMBER, "body": "ok", "client_ref": f"r{i}"} for i in range(3)]
        items[2]["to"] = "+0123"
        items[1].pop("client_ref")
        problem = assert_problem(
            await client.post("/v1/messages/batch", json={"messages": items}), 422, "messages[1].client_ref"
        )
        assert [e["pointer"] for e in problem["errors"]] == ["/messages/1/client_ref", "/messages/2/to"]
        oversized = {"messages": [{"to": OK_NUMBER, "body": "x", "client_ref": str(i)} for i in range(1001)]}
        assert_problem(await client.post("/v1/messages/batch", json=oversized), 422, "1000")
        assert_problem(await client.get("/messages", params={"limit": 0}), 422, "limit")

        assert (await client.get("/messages/count")).json() == {"count": 0}


async def test_receipts_are_posted_and_numbers_ending_0000_fail() -> None:
    receiver = Receiver()
    async with (
        serve(receiver.app) as base,
        sandbox(receipt_url=f"{base}/receipts", receipt_delay_s=0.05) as (_, c),
    ):
        ok = (await c.post("/v1/messages", json={"to": OK_NUMBER, "body": "a", "client_ref": "ok"})).json()
        bad = (
            await c.post("/v1/messages", json={"to": FAILING_NUMBER, "body": "b", "client_ref": "bad"})
        ).json()

        async def both_received() -> bool:
            return len(receiver.receipts) == 2

        await eventually(both_received)
        by_ref = {r["client_ref"]: r for r in receiver.receipts}
        assert by_ref["ok"]["message_id"] == ok["message_id"]
        assert by_ref["ok"]["status"] == "delivered"
        assert by_ref["bad"]["message_id"] == bad["message_id"]
        assert (by_ref["bad"]["status"], by_ref["bad"]["to"]) == ("failed", FAILING_NUMBER)
        assert by_ref["bad"]["delivered_at"]
        stored = {m["client_ref"]: m["status"] for m in (await c.get("/messages")).json()["messages"]}
        assert stored == {"ok": "delivered", "bad": "failed"}


async def test_receipts_are_retried_while_the_receiver_fails() -> None:
    receiver = Receiver(fail_first=2)
    url_kw = {"receipt_delay_s": 0.01, "receipt_backoff_s": 0.01}
    async with serve(receiver.app) as base, sandbox(receipt_url=f"{base}/receipts", **url_kw) as (_, client):
        batch = [{"to": OK_NUMBER, "body": "x", "client_ref": f"r{i}"} for i in range(700)]
        assert (await client.post("/v1/messages/batch", json={"messages": batch})).status_code == 200

        async def all_received() -> bool:
            return len(receiver.receipts) == 700

        await eventually(all_received)
        assert receiver.attempts >= 4  # two 503s, then at least two successful POSTs
        assert max(receiver.batch_sizes) <= 500
        assert sorted(r["client_ref"] for r in receiver.receipts) == sorted(m["client_ref"] for m in batch)


async def test_unreachable_receiver_does_not_stop_delivery(caplog: pytest.LogCaptureFixture) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/receipts"  # bound but not listening: refused
    caplog.set_level(logging.DEBUG, logger="devstack.sms_sandbox")
    try:
        opts = {
            "receipt_url": dead_url,
            "receipt_delay_s": 0.01,
            "receipt_attempts": 2,
            "receipt_backoff_s": 0.01,
        }
        async with sandbox(**opts) as (_, client):
            resp = await client.post(
                "/v1/messages", json={"to": FAILING_NUMBER, "body": "x", "client_ref": "a"}
            )
            assert resp.status_code == 202

            async def settled() -> bool:
                return "dropped 1 receipts" in caplog.text

            await eventually(settled)
            [msg] = (await client.get("/messages")).json()["messages"]
            assert msg["status"] == "failed"
    finally:
        sock.close()
    assert FAILING_NUMBER not in caplog.text  # numbers are masked in logs
    assert "***0000" in caplog.text


async def test_store_survives_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "nested" / "sms.jsonl"
    msg = {"to": OK_NUMBER, "body": "persist me", "client_ref": "p-1"}
    async with sandbox(store_path=store, receipt_delay_s=0.01) as (_, client):
        first = (await client.post("/v1/messages", json=msg)).json()
        await client.post("/v1/messages/batch", json={"messages": [{**msg, "client_ref": "p-2"}]})

        async def delivered() -> bool:
            return all(m["status"] == "delivered" for m in (await client.get("/messages")).json()["messages"])

        await eventually(delivered)
    assert len(store.read_text().splitlines()) >= 2

    async with sandbox(store_path=store) as (_, client):
        assert (await client.get("/messages/count")).json() == {"count": 2}
        again = (await client.post("/v1/messages", json=msg)).json()
        assert again == {"message_id": first["message_id"], "status": "delivered", "duplicate": True}
        [stored] = (await client.get("/messages", params={"to": OK_NUMBER, "client_ref": "p-1"})).json()[
            "messages"
        ]
        assert (stored["body"], stored["status"]) == ("persist me", "delivered")


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_command_line_entry_point(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "devstack.sms_sandbox",
        "--port",
        str(port),
        "--store",
        str(tmp_path / "s"),
        "--account",
        "acct-x=secret-x",
    ]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=15)
            msg = {"to": OK_NUMBER, "body": "cli", "client_ref": "x"}
            assert (await client.post("/v1/messages", json=msg)).status_code == 401  # only acct-x is known
            resp = await client.post("/v1/messages", json=msg, headers={"X-Account": "acct-x"})
            assert resp.status_code == 202
            assert (await client.get("/messages/count")).json() == {"count": 1}
            status = await client.get(f"/v1/messages/{resp.json()['message_id']}", headers={"X-Account": "acct-x"})
            assert status.json()["status"] in ("queued", "delivered")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 10)
    # uvicorn re-raises the signal after a graceful shutdown, so dying "by SIGTERM" is the clean exit
    assert proc.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert OK_NUMBER not in stderr.decode()
    assert (tmp_path / "s").read_text().count('"client_ref":"x"') >= 1


def verify(headers: dict[str, str], raw: bytes, secrets: dict[str, str]) -> str:
    """Check a receipt POST as a receiver would: the account's HMAC-SHA256 over timestamp + "." + raw body."""
    account, timestamp = headers["x-account"], headers["x-timestamp"]
    expected = hmac.new(secrets[account].encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    assert headers["x-signature"] == f"sha256={expected}"
    assert abs(time.time() - int(timestamp)) < 60
    return account


async def test_receipts_are_signed_per_account_and_go_to_each_messages_callback() -> None:
    receiver = Receiver()
    accounts = {DEFAULT_ACCOUNT: DEFAULT_SECRET, "acct-b": "secret-b"}
    async with (
        serve(receiver.app) as base,
        sandbox(receipt_url=f"{base}/receipts", receipt_delay_s=0.05, accounts=accounts) as (_, c),
    ):
        plain = {"to": OK_NUMBER, "body": "a", "client_ref": "r-1"}
        await c.post("/v1/messages/batch", json={"messages": [plain]})  # no X-Account: the default account
        await c.post("/v1/messages/batch", json={"messages": [{**plain, "client_ref": "r-2"}]},
                     headers={"X-Account": "acct-b"})
        await c.post("/v1/messages", json={**plain, "client_ref": "r-3", "callback_url": f"{base}/elsewhere"},
                     headers={"X-Account": "acct-b"})

        async def all_received() -> bool:
            return len(receiver.receipts) == 3

        await eventually(all_received)
        seen = {}
        for path, headers, raw in receiver.posts:
            account = verify(headers, raw, accounts)
            for r in orjson.loads(raw)["receipts"]:
                seen[r["client_ref"]] = (path, account)
        assert seen == {"r-1": ("/receipts", DEFAULT_ACCOUNT), "r-2": ("/receipts", "acct-b"),
                        "r-3": ("/elsewhere", "acct-b")}
        # a tampered body no longer matches the signature
        path, headers, raw = receiver.posts[0]
        with pytest.raises(AssertionError):
            verify(headers, raw.replace(b"delivered", b"failed"), accounts)


async def test_receipts_retried_after_a_failure_are_signed_afresh() -> None:
    receiver = Receiver(fail_first=1)
    async with (
        serve(receiver.app) as base,
        sandbox(receipt_url=f"{base}/receipts", receipt_delay_s=0.01, receipt_backoff_s=1.1) as (_, c),
    ):
        await c.post("/v1/messages", json={"to": OK_NUMBER, "body": "a", "client_ref": "r"})

        async def received() -> bool:
            return len(receiver.receipts) == 1

        await eventually(received)
        first, second = receiver.posts
        assert first[2] == second[2]  # the same body ...
        assert int(second[1]["x-timestamp"]) > int(first[1]["x-timestamp"])  # ... signed again, later
        for _, headers, raw in receiver.posts:
            verify(headers, raw, {DEFAULT_ACCOUNT: DEFAULT_SECRET})


async def test_accounts_are_separate_and_unknown_ones_refused() -> None:
    async with sandbox(accounts={"acct-a": "sa", "acct-b": "sb"}) as (_, c):
        msg = {"to": OK_NUMBER, "body": "hi", "client_ref": "same-ref"}
        a = (await c.post("/v1/messages", json=msg, headers={"X-Account": "acct-a"})).json()
        b = (await c.post("/v1/messages", json=msg, headers={"X-Account": "acct-b"})).json()
        again = (await c.post("/v1/messages", json=msg, headers={"X-Account": "acct-a"})).json()
        assert a["message_id"] != b["message_id"]  # idempotency keys are per account
        assert (again["message_id"], again["duplicate"]) == (a["message_id"], True)
        assert_problem(await c.post("/v1/messages", json=msg, headers={"X-Account": "nobody"}), 401, "account")
        assert_problem(await c.post("/v1/messages", json=msg), 401, "account")  # no default account here
        assert_problem(
            await c.post("/v1/messages/batch", json={"messages": [msg]}, headers={"X-Account": "账户".encode()}),
            401,
            "account",
        )
        bad_callback = {**msg, "client_ref": "x", "callback_url": "file:///etc/passwd"}
        assert_problem(
            await c.post("/v1/messages", json=bad_callback, headers={"X-Account": "acct-a"}), 422, "callback_url"
        )
        assert (await c.get("/messages/count")).json() == {"count": 2}


async def test_the_status_endpoint_answers_the_sending_account_only() -> None:
    accounts = {DEFAULT_ACCOUNT: DEFAULT_SECRET, "acct-b": "sb"}
    async with sandbox(receipt_delay_s=3600, accounts=accounts) as (app, c):
        sent = {}
        for ref, number in (("ok", OK_NUMBER), ("bad", FAILING_NUMBER), ("silent", SILENT_NUMBER)):
            r = await c.post("/v1/messages", json={"to": number, "body": "x", "client_ref": ref})
            sent[ref] = r.json()["message_id"]

        async def status(ref: str, account: str | None = None) -> tuple[int, str | None]:
            headers = {"X-Account": account} if account else {}
            r = await c.get(f"/v1/messages/{sent.get(ref, ref)}", headers=headers)
            return r.status_code, r.json()["status"] if r.status_code == 200 else None

        assert [await status(ref) for ref in sent] == [(200, "queued")] * 3  # not settled yet
        box = app.state.sandbox
        box.settle([m for m in box.messages])
        assert [await status(ref) for ref in sent] == [(200, "delivered"), (200, "undelivered"), (200, "sent")]
        assert await status("msg_nope") == (404, None)
        assert await status("ok", "acct-b") == (404, None)  # not a message of that account
        r = await c.get(f"/v1/messages/{sent['ok']}")
        assert r.json()["client_ref"] == "ok" and r.json()["delivered_at"]
        assert (await c.get(f"/v1/messages/{sent['ok']}", headers={"X-Account": "nobody"})).status_code == 401


async def test_a_number_ending_9999_never_gets_a_final_status_nor_a_receipt() -> None:
    receiver = Receiver()
    async with (
        serve(receiver.app) as base,
        sandbox(receipt_url=f"{base}/receipts", receipt_delay_s=0.01) as (_, c),
    ):
        silent = (await c.post("/v1/messages", json={"to": SILENT_NUMBER, "body": "x", "client_ref": "s"})).json()
        await c.post("/v1/messages", json={"to": OK_NUMBER, "body": "x", "client_ref": "o"})

        async def one_received() -> bool:
            return len(receiver.receipts) == 1

        await eventually(one_received)
        await asyncio.sleep(0.1)
        assert [r["client_ref"] for r in receiver.receipts] == ["o"]
        assert (await c.get(f"/v1/messages/{silent['message_id']}")).json()["status"] == "sent"


async def test_a_store_written_before_accounts_existed_still_loads(tmp_path: Path) -> None:
    store = tmp_path / "old.jsonl"
    old = {"message_id": "msg_old", "to": OK_NUMBER, "body": "b", "sender": None, "client_ref": "k",
           "idempotency_key": "k", "received_at": "2026-01-01T00:00:00.000+00:00", "status": "delivered",
           "delivered_at": "2026-01-01T00:00:01.000+00:00"}
    store.write_bytes(orjson.dumps(old) + b"\n" + b"[1, 2]\n")
    async with sandbox(store_path=store) as (_, c):
        assert (await c.get("/v1/messages/msg_old")).json()["status"] == "delivered"
        again = (await c.post("/v1/messages", json={"to": OK_NUMBER, "body": "b", "client_ref": "k"})).json()
        assert (again["message_id"], again["duplicate"]) == ("msg_old", True)


@pytest.mark.parametrize("spec", ["acct", "=secret", "acct="])
def test_a_malformed_account_option_is_refused(spec: str) -> None:
    from devstack.sms_sandbox import main

    with pytest.raises(SystemExit) as info:
        main(["--account", spec])
    assert info.value.code == 2
