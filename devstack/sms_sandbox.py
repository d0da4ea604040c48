"""Local SMS provider sandbox: an HTTP API shaped like a real SMS gateway, with signed delivery receipts.

Run it with ``python -m devstack.sms_sandbox --port 8090 --receipt-url URL --store PATH
[--account ID=SECRET ...]``.

- Accounts: every request names its provider account in ``X-Account`` (default ``sandbox``, whose
  secret is ``dev-sms-webhook-secret``, the channels service's development default); an unknown
  account is refused with 401.
- Receipts are POSTed to the message's ``callback_url``, else to ``--receipt-url``, in batches per
  account, signed as real providers do: ``X-Account``, ``X-Timestamp`` (Unix seconds) and
  ``X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the account's secret>``.
- ``GET /v1/messages/{message_id}`` answers a message's status (queued, sent, delivered, undelivered)
  to the account that sent it; 404 otherwise.
- Numbers ending in ``0000`` always fail delivery; numbers ending in ``9999`` never get a final status
  (no receipt, status ``sent`` for ever), so failure and reconciliation paths can be exercised.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# fullmatch + [0-9]: `$` would accept a trailing newline and `\d` non-ASCII digits
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MAX_BODY_CHARS = 1000
MAX_BATCH = 1000
MAX_REF_CHARS = 255
RECEIPTS_PER_POST = 500
MAX_URL_CHARS = 2048
PROBLEM_BASE = "https://devstack.invalid/problems/"
DEFAULT_ACCOUNT = "sandbox"
DEFAULT_SECRET = "dev-sms-webhook-secret"  # noqa: S105 - the channels service's development default
# internal status -> what GET /v1/messages/{id} says
PUBLIC_STATUS = {"accepted": "queued", "sent": "sent", "delivered": "delivered", "failed": "undelivered"}

Message = dict[str, Any]


def mask_phone(number: str) -> str:
    """Return a log-safe form of a phone number that keeps only its last 4 digits."""
    return "***" + number[-4:]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _problem(status: int, type_: str, detail: str, errors: list[dict[str, str]] | None = None) -> Response:
    """Build an RFC 9457 problem-details response."""
    body: dict[str, Any] = {
        "type": type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


def _invalid(errors: list[dict[str, str]]) -> Response:
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    first = errors[0]
    return _problem(
        422, PROBLEM_BASE + "validation-error", f"{first['field']}: {first['detail']}{more}", errors
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Signature`` of ``body`` signed at ``timestamp``: HMAC-SHA256 over ``timestamp + "." + body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def _check_item(item: Any, field: str, pointer: str, *, ref_required: bool) -> list[dict[str, str]]:
    """Validate one message; ``field``/``pointer`` locate it in the request for error reports."""
    errors: list[dict[str, str]] = []

    def bad(name: str, detail: str) -> None:
        sep = "." if field else ""
        errors.append({"field": f"{field}{sep}{name}", "pointer": f"{pointer}/{name}", "detail": detail})

    if not isinstance(item, dict):
        return [
            {"field": field or "request body", "pointer": pointer or "/", "detail": "must be a JSON object"}
        ]
    to, body, sender, ref = item.get("to"), item.get("body"), item.get("sender"), item.get("client_ref")
    if not isinstance(to, str) or not E164.fullmatch(to):
        bad("to", "must be an E.164 number such as +8613800000000")
    if not isinstance(body, str) or not body.strip():
        bad("body", "must be a non-empty string")
    elif len(body) > MAX_BODY_CHARS:
        bad("body", f"must be at most {MAX_BODY_CHARS} characters (got {len(body)})")
    if sender is not None and (not isinstance(sender, str) or not 0 < len(sender) <= 20):
        bad("sender", "must be a string of 1 to 20 characters")
    if ref is None:
        if ref_required:
            bad("client_ref", "is required in a batch (it is the idempotency key)")
    elif not isinstance(ref, str) or not 0 < len(ref) <= MAX_REF_CHARS:
        bad("client_ref", f"must be a string of 1 to {MAX_REF_CHARS} characters")
    callback = item.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str)
        or not callback.startswith(("http://", "https://"))
        or len(callback) > MAX_URL_CHARS
    ):
        bad("callback_url", f"must be an http(s) URL of at most {MAX_URL_CHARS} characters")
    return errors


class Sandbox:
    """In-memory message store with optional JSON-lines persistence and a receipt queue."""

    def __init__(
        self,
        receipt_url: str | None,
        store_path: Path | None,
        receipt_delay_s: float,
        receipt_attempts: int,
        receipt_backoff_s: float,
        accounts: dict[str, str] | None = None,
    ) -> None:
        self.accounts = dict(accounts) if accounts else {DEFAULT_ACCOUNT: DEFAULT_SECRET}
        self.receipt_url = receipt_url
        self.store_path = store_path
        self.receipt_delay_s = receipt_delay_s
        self.receipt_attempts = receipt_attempts
        self.receipt_backoff_s = receipt_backoff_s
        self.messages: list[Message] = []
        self.by_key: dict[str, Message] = {}
        self.by_id: dict[str, Message] = {}
        self.pending: deque[tuple[float, Message]] = deque()
        self.wake = asyncio.Event()
        if store_path is not None:
            self._load(store_path)

    def _load(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            return
        by_id: dict[str, Message] = {}
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                try:
                    rec = orjson.loads(line)
                    rec.setdefault("account", DEFAULT_ACCOUNT)  # stores written before accounts existed
                    # status updates are appended as full records: the last one wins
                    by_id[rec["message_id"]] = rec
                except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                    logger.warning("skipping unreadable line %d in %s", lineno, path)
        self.messages = list(by_id.values())
        self.by_id = dict(by_id)
        for msg in self.messages:
            if msg.get("idempotency_key"):
                self.by_key[self._key(msg["account"], msg["idempotency_key"])] = msg
            if msg["status"] == "accepted":
                self.pending.append((0.0, msg))  # receipts lost by the previous run go out at startup
        logger.info("loaded %d messages from %s", len(self.messages), path)

    def _persist(self, msgs: list[Message]) -> None:
        if self.store_path is not None:
            data = b"".join(orjson.dumps(m, option=orjson.OPT_APPEND_NEWLINE) for m in msgs)
            with self.store_path.open("ab") as f:
                f.write(data)

    def accept(
        self, items: list[tuple[dict[str, Any], str | None]], account: str = DEFAULT_ACCOUNT
    ) -> list[tuple[Message, bool]]:
        """Store new messages (deduplicated per account by idempotency key); return (message, duplicate) pairs."""
        received_at = _now()
        due = asyncio.get_running_loop().time() + self.receipt_delay_s
        out: list[tuple[Message, bool]] = []
        new: list[Message] = []
        for item, key in items:
            if key is not None and (old := self.by_key.get(self._key(account, key))) is not None:
                out.append((old, True))
                continue
            msg: Message = {
                "message_id": "msg_" + uuid.uuid4().hex,
                "account": account,
                "to": item["to"],
                "body": item["body"],
                "sender": item.get("sender"),
                "client_ref": item.get("client_ref"),
                "callback_url": item.get("callback_url"),
                "idempotency_key": key,
                "received_at": received_at,
                "status": "accepted",
                "delivered_at": None,
            }
            if key is not None:
                self.by_key[self._key(account, key)] = msg
            new.append(msg)
            out.append((msg, False))
        if new:
            self._persist(new)
            self.messages.extend(new)
            self.by_id.update((m["message_id"], m) for m in new)
            self.pending.extend((due, m) for m in new)
            self.wake.set()
        return out

    @staticmethod
    def _key(account: str, key: str) -> str:
        # the default account keeps the bare key, as stores written before accounts existed have it
        return key if account == DEFAULT_ACCOUNT else f"{account}\x00{key}"

    def find(self, message_id: str, account: str) -> Message | None:
        """The message ``message_id`` if ``account`` sent it."""
        msg = self.by_id.get(message_id)
        return msg if msg is not None and msg["account"] == account else None

    def settle(self, msgs: list[Message]) -> list[tuple[Message, dict[str, Any]]]:
        """Decide the delivery outcome of ``msgs``, update and persist them; return (message, receipt)
        for those that reached a final status (a number ending 9999 never does)."""
        at = _now()
        receipts = []
        for msg in msgs:
            if msg["to"].endswith("9999"):
                msg["status"] = "sent"  # the carrier never reports: no receipt, no final status
                continue
            status = "failed" if msg["to"].endswith("0000") else "delivered"
            msg["status"], msg["delivered_at"] = status, at
            if status == "failed":
                logger.debug("delivery of %s to %s failed", msg["message_id"], mask_phone(msg["to"]))
            receipts.append(
                (
                    msg,
                    {
                        "message_id": msg["message_id"],
                        "client_ref": msg["client_ref"],
                        "to": msg["to"],
                        "status": status,
                        "delivered_at": at,
                    },
                )
            )
        self._persist(msgs)
        return receipts

    async def run_receipts(self, client: httpx.AsyncClient) -> None:
        """Settle due messages in batches and POST their receipts; runs until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            if not self.pending:
                self.wake.clear()
                await self.wake.wait()
                continue
            delay = self.pending[0][0] - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = loop.time()
            batch: list[Message] = []
            while self.pending and self.pending[0][0] <= now and len(batch) < RECEIPTS_PER_POST:
                batch.append(self.pending.popleft()[1])
            try:
                groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
                for msg, receipt in self.settle(batch):
                    url = msg.get("callback_url") or self.receipt_url
                    if url:
                        groups.setdefault((url, msg["account"]), []).append(receipt)
                for (url, account), receipts in groups.items():
                    await self._post_receipts(client, url, account, receipts)
            except Exception:
                # one bad batch (e.g. disk full) must not stop receipts for good
                logger.exception("receipt batch of %d messages failed", len(batch))

    async def _post_receipts(
        self, client: httpx.AsyncClient, url: str, account: str, receipts: list[dict[str, Any]]
    ) -> None:
        payload = orjson.dumps({"receipts": receipts})
        secret = self.accounts.get(account, "")
        reason = ""
        for attempt in range(1, self.receipt_attempts + 1):
            timestamp = str(int(time.time()))  # signed afresh on every try
            headers = {
                "content-type": "application/json",
                "X-Account": account,
                "X-Timestamp": timestamp,
                "X-Signature": sign(secret, timestamp, payload),
            }
            try:
                resp = await client.post(url, content=payload, headers=headers)
                if resp.status_code < 500 and resp.status_code != 429:
                    if resp.is_error:
                        logger.warning(
                            "receipt receiver rejected %d receipts: HTTP %d", len(receipts), resp.status_code
                        )
                    return
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
            if attempt < self.receipt_attempts:
                await asyncio.sleep(self.receipt_backoff_s * 2 ** (attempt - 1))
        logger.warning(
            "dropped %d receipts after %d attempts: %s", len(receipts), self.receipt_attempts, reason
        )


def create_app(
    *,
    receipt_url: str | None,
    store_path: Path | None,
    receipt_delay_s: float = 0.2,
    receipt_attempts: int = 5,
    receipt_backoff_s: float = 0.5,
    accounts: dict[str, str] | None = None,
    inbound_url: str | None = None,
) -> FastAPI:
    """Build the sandbox app; the receipt worker runs inside the app's lifespan. ``accounts`` maps
    account ids to webhook secrets (default: ``sandbox`` with the development secret)."""
    sandbox = Sandbox(receipt_url, store_path, receipt_delay_s, receipt_attempts, receipt_backoff_s, accounts)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            task = asyncio.create_task(sandbox.run_receipts(client), name="sms-sandbox-receipts")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="SMS provider sandbox", lifespan=lifespan)
    app.state.sandbox = sandbox

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(_: Request, exc: RequestValidationError) -> Response:
        return _invalid([{"field": ".".join(map(str, e["loc"])), "detail": e["msg"]} for e in exc.errors()])

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return _problem(exc.status_code, "about:blank", str(exc.detail))

    def account_of(request: Request) -> str:
        account = request.headers.get("x-account") or DEFAULT_ACCOUNT
        if account not in sandbox.accounts:
            raise StarletteHTTPException(401, "unknown account (X-Account)")
        return account

    async def read_json(request: Request) -> Any:
        try:
            return orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise StarletteHTTPException(400, f"request body is not valid JSON: {exc}") from exc

    @app.post("/v1/messages", status_code=202)
    async def send_message(request: Request) -> Response:
        """Accept one message; ``Idempotency-Key`` (or ``client_ref``) deduplicates retries."""
        account = account_of(request)
        item = await read_json(request)
        if errors := _check_item(item, "", "", ref_required=False):
            return _invalid(errors)
        key = request.headers.get("idempotency-key") or item.get("client_ref")
        if key is not None and len(key) > MAX_REF_CHARS:
            return _invalid(
                [{"field": "Idempotency-Key", "detail": f"must be at most {MAX_REF_CHARS} characters"}]
            )
        [(msg, dup)] = sandbox.accept([(item, key)], account)
        logger.debug("message %s to %s duplicate=%s", msg["message_id"], mask_phone(msg["to"]), dup)
        return _json({"message_id": msg["message_id"], "status": msg["status"], "duplicate": dup}, 202)

    @app.post("/v1/messages/batch")
    async def send_batch(request: Request) -> Response:
        """Accept up to 1,000 messages, each deduplicated by its ``client_ref``; all-or-nothing validation."""
        account = account_of(request)
        data = await read_json(request)
        items = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(items, list):
            return _invalid([{"field": "messages", "pointer": "/messages", "detail": "must be a JSON array"}])
        if len(items) > MAX_BATCH:
            detail = f"at most {MAX_BATCH} messages per batch (got {len(items)})"
            return _invalid([{"field": "messages", "pointer": "/messages", "detail": detail}])
        errors = [
            e
            for i, item in enumerate(items)
            for e in _check_item(item, f"messages[{i}]", f"/messages/{i}", ref_required=True)
        ]
        if errors:
            return _invalid(errors)
        accepted = sandbox.accept([(item, item["client_ref"]) for item in items], account)
        logger.debug("batch of %d, %d duplicates", len(items), sum(dup for _, dup in accepted))
        results = [
            {
                "client_ref": m["client_ref"],
                "message_id": m["message_id"],
                "status": m["status"],
                "duplicate": dup,
            }
            for m, dup in accepted
        ]
        return _json({"results": results})

    @app.get("/v1/messages/{message_id}")
    async def message_status(message_id: str, request: Request) -> Response:
        """A message's status for the account that sent it: queued, sent, delivered or undelivered."""
        msg = sandbox.find(message_id, account_of(request))
        if msg is None:
            return _problem(404, "about:blank", "no such message for this account")
        return _json(
            {
                "message_id": msg["message_id"],
                "client_ref": msg["client_ref"],
                "status": PUBLIC_STATUS.get(msg["status"], "unknown"),
                "delivered_at": msg["delivered_at"],
            }
        )

    @app.get("/messages")
    async def list_messages(
        to: str | None = None, client_ref: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> Response:
        """List the newest ``limit`` stored messages matching the filters, oldest first."""
        if to is not None:
            to = to.strip()
            # an unencoded `+` in a query string arrives as a space
            if to[:1].isdigit():
                to = "+" + to
        found: list[Message] = []
        for msg in reversed(sandbox.messages):
            if (to is None or msg["to"] == to) and (client_ref is None or msg["client_ref"] == client_ref):
                found.append(msg)
                if len(found) >= limit:
                    break
        return _json({"messages": found[::-1]})

    @app.post("/v1/inbound")
    async def customer_replies(request: Request) -> Response:
        """Play a customer's phone: a reply ``{"from": "+86...", "body": "TD"}`` (optionally ``"account"``) is
        delivered at once, signed like receipts, to the inbound URL, as a provider delivers
        mobile-originated messages. Answers with what the receiver said."""
        data = await read_json(request)
        if not isinstance(data, dict) or not isinstance(data.get("from"), str) or not isinstance(data.get("body"), str):
            return _invalid([{"pointer": "#/", "detail": "give from (E.164) and body"}])
        if inbound_url is None:
            return _problem(409, "about:blank", "no --inbound-url: nowhere to deliver replies")
        account = str(data.get("account") or DEFAULT_ACCOUNT)
        message = {"message_id": f"mo_{uuid.uuid4().hex}", "from": data["from"], "body": data["body"],
                   "received_at": _now()}
        payload = orjson.dumps({"messages": [message]})
        timestamp = str(int(time.time()))
        headers = {"content-type": "application/json", "X-Account": account, "X-Timestamp": timestamp,
                   "X-Signature": sign(sandbox.accounts.get(account, ""), timestamp, payload)}
        async with httpx.AsyncClient(timeout=5.0) as client:
            try:
                resp = await client.post(inbound_url, content=payload, headers=headers)
            except httpx.HTTPError as exc:
                return _problem(502, "about:blank", f"the receiver did not answer: {type(exc).__name__}")
        logger.info("reply from %s delivered: HTTP %d", mask_phone(data["from"]), resp.status_code)
        return _json({"message_id": message["message_id"], "status": resp.status_code,
                      "answer": resp.json() if resp.headers.get("content-type", "").endswith("json") else None})

    @app.get("/messages/count")
    async def count_messages() -> Response:
        """Return the number of stored messages."""
        return _json({"count": len(sandbox.messages)})

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness probe for ``make run``."""
        return _json({"status": "ok"})

    return app


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: serve the sandbox with uvicorn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--receipt-url", default=None, help="where delivery receipts are POSTed")
    parser.add_argument("--store", type=Path, default=None, help="JSON-lines file that survives restarts")
    parser.add_argument("--receipt-delay", type=float, default=0.2, help="seconds before a receipt is sent")
    parser.add_argument("--inbound-url", default=None, help="where customers' replies are POSTed")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ID=SECRET",
        help=f"a provider account and its webhook secret (repeatable; default {DEFAULT_ACCOUNT}=<dev secret>)",
    )
    args = parser.parse_args(argv)
    accounts = {}
    for spec in args.account:
        account, sep, secret = spec.partition("=")
        if not sep or not account or not secret:
            parser.error(f"--account {spec!r}: write ID=SECRET")
        accounts[account] = secret
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(
        receipt_url=args.receipt_url,
        store_path=args.store,
        receipt_delay_s=args.receipt_delay,
        accounts=accounts or None,
        inbound_url=args.inbound_url,
    )
    logger.info("SMS sandbox on http://%s:%d (receipts -> %s)", args.host, args.port, args.receipt_url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
