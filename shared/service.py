"""The FastAPI app around a service's runtime (shared/runtime.py), with /healthz, /readyz and /metrics."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared.deps import RuntimeDep
from shared.http import BodyLimitMiddleware, MetricsMiddleware, install_problem_handlers, problem
from shared.kafka.consumer import Handler
from shared.logging import configure_logging
from shared.openapi import DocumentedFastAPI, install_docs
from shared.runtime import Runtime, S, Worker
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


def build_app(
    settings: S, *, title: str, routers: Sequence[APIRouter] = (),
    handlers: Callable[[Runtime[S]], dict[str, Handler]] = lambda rt: {},
    loops: Sequence[Worker] = (), description: str = "",
) -> FastAPI:
    """Assemble a service: the app owns a Runtime, started and drained by the lifespan.

    ``handlers`` maps topics to consumer handlers (``consumers/``); ``loops`` are the workers
    (``workers/``); routes reach the runtime only through ``shared.deps``.
    """
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime: Runtime[S] = Runtime(settings)
        app.state.runtime = runtime
        await runtime.start(handlers(runtime), loops)
        log.info("service started", extra={"port": settings.port})
        try:
            yield
        finally:
            await runtime.stop()
            log.info("service stopped")

    # Its OpenAPI document declares the problem responses (shared/openapi.py); /docs and /redoc are
    # served with their assets from a package (install_docs), never from a CDN.
    app = DocumentedFastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan,
                            docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.http_max_body_bytes)
    app.add_middleware(MetricsMiddleware)
    install_problem_handlers(app)
    install_docs(app)

    @app.get("/healthz", tags=["ops"], response_model=Alive)
    async def healthz(runtime: RuntimeDep) -> Any:
        """Liveness: fails (503) once the consumer halted or could not start, so an orchestrator restarts it."""
        if runtime.alive:
            return {"status": "ok"}
        return problem(503, "Not alive", "The consumer has stopped; restart the service.",
                       consumer=runtime.consumer_state())

    @app.get("/readyz", tags=["ops"], response_model=Ready)
    async def readyz(runtime: RuntimeDep) -> Any:
        """Readiness: the database and the broker answer, and the consumer (once started) runs; else 503."""
        checks = await runtime.readiness()
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", "checks": checks}
        return problem(503, "Not ready", "A dependency is unavailable.", checks=checks)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics, in the text exposition format."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app


def serve(app_factory: Callable[[], FastAPI], settings: ServiceSettings) -> None:
    """Run one service with uvicorn; SIGTERM/SIGINT trigger the lifespan drain."""
    import uvicorn

    app = app_factory()
    settle_garbage_collector()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=int(settings.shutdown_timeout_s) + 5)



def settle_garbage_collector(young_threshold: int = 10_000) -> None:
    """Exempt what the imports built (modules, classes, pydantic and SQLAlchemy schemas: most of the heap, and
    all of it long-lived) from the cyclic garbage collector, and collect the young generation less often. Without
    this, each full collection walks every object of the process, and profiles of the services under load show
    those pauses (tens of milliseconds each) in whatever line allocated last. Reference counting still frees
    everything as before; only cycle detection skips the frozen objects."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
