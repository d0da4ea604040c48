"""HTTP plumbing: RFC 9457 problem details, request metrics and ids (tenancy: shared/deps.py)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics
from shared.domain import DomainError, Refused
from shared.errors import is_data_error, is_transient
from shared.logging import request_id_var, tenant_var

PROBLEM = "application/problem+json"
RETRY_AFTER_S = 5  # seconds a client should wait after a 503 (a dependency outage)
log = logging.getLogger(__name__)


class ProblemError(Exception):
    """A domain or request error a partner can act on; rendered as problem details."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank",
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.type, self.extensions = status, title, detail, type_, extensions
        self.headers = dict(headers or {})  # e.g. Retry-After on a 503


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **ext: Any) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body = {"type": type_, "title": title, "status": status, "detail": detail, **ext}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error to problem details in one place."""

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.detail, exc.type, **exc.extensions)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        # a document refused for several reasons (a policy, a strategy) lists each, as validation issues do
        if isinstance(exc, Refused) and exc.errors:
            return problem(exc.status, exc.title, str(exc), errors=[
                {"loc": list(exc.loc), "msg": str(r), "type": exc.kind} for r in exc.errors])
        return problem(exc.status, exc.title, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return problem(422, "Invalid request", "The request body or parameters failed validation.",
                       errors=errors)

    # A handler for ``Exception`` runs in Starlette's outermost middleware, which sends the response and then
    # re-raises, so the server logs a traceback for every outage answered with a 503. The errors an outage or a
    # refused value raise are registered by their own classes too: those are handled inside the app, once.
    @app.exception_handler(Exception)
    @app.exception_handler(OSError)  # TimeoutError and ConnectionError included
    @app.exception_handler(DBAPIError)  # OperationalError, InterfaceError, DataError
    @app.exception_handler(KafkaError)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_data_error(exc):  # the database refused a value (a NUL character, a number out of range)
            return problem(422, "Invalid request", "A value in the request cannot be stored (for example a NUL "
                           "character or a number out of range); nothing was changed.")
        if is_transient(exc):  # the database or the broker is unreachable: try again shortly
            log.warning("dependency unavailable", extra={"error": type(exc).__name__})
            response = problem(503, "Service unavailable",
                               "A dependency (database or broker) is unavailable; retry shortly.")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        # logged with its traceback; the caller gets a problem, never internals
        log.error("unhandled error", exc_info=exc)
        return problem(500, "Internal error", "The request failed unexpectedly; it has been logged.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, str(exc.detail), str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the first route matched
            response.headers["Allow"] = allowed_methods(request, exc)
        return response


def allowed_methods(request: Request, exc: StarletteHTTPException) -> str:
    """The ``Allow`` header of a 405: the methods of every route whose path matches the request's (the
    router names only the first route that matched, e.g. POST for ``DELETE /v1/plans`` though GET works)."""
    methods = {m.strip().upper() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()}
    path = request.scope["path"]
    root_path = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path):]
    for route in iter_route_contexts(request.app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is None or not regex.match(path):
            continue
        if route.methods:
            methods |= route.methods
        elif isinstance(getattr(route, "app", None), StaticFiles):
            methods |= {"GET", "HEAD"}
    return ", ".join(sorted(methods))


class MetricsMiddleware:
    """Counts and times requests by route template (never the raw path), sets a request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                route = _route_template(scope)
                metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
                metrics.HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the client can see the response and ask /metrics
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            record()
            request_id_var.reset(token)
            tenant_var.set(None)

class BodyLimitMiddleware:
    """Refuses a request body larger than ``max_bytes`` with 413, before it is read or parsed: at once
    from ``Content-Length``, else while it streams in (a chunked body)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, title = (413, "Request body too large") if declared.isdigit() else (400, "Bad request")
            response = problem(status, title, f"Send at most {self.max_bytes} bytes." if status == 413
                               else "Content-Length is not a number.")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, "Request body too large")
            return message

        await self.app(scope, limited, send)


def _route_template(scope: Scope) -> str:
    """The matched route's template (set by the router), so labels never carry ids."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "<unmatched>")
