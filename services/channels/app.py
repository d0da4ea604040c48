"""Channels: sends approved contacts (SMS, e-mail) and records calls and visits as agent tasks."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.channels.api.branding import router as branding_router
from services.channels.api.routes import router
from services.channels.api.templates import router as templates_router
from services.channels.api.unsubscribe import document_pages
from services.channels.api.unsubscribe import router as unsubscribe_router
from services.channels.consumers.handlers import build_handlers
from services.channels.settings import Settings
from services.channels.workers.dispatcher import dispatch_loop
from services.channels.workers.reconciler import reconcile_loop
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    app = build_app(settings or Settings(), title="Gentle collections: channels",
                    routers=[router, templates_router, branding_router, unsubscribe_router],
                    handlers=build_handlers, loops=[dispatch_loop, reconcile_loop])
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return document_pages(generate())  # the unsubscribe pages' 400 and 410 are HTML, not problems

    app.openapi = openapi  # type: ignore[method-assign]
    return app
