"""Channels: sends approved contacts (SMS, e-mail) and records calls and visits as agent tasks."""

from __future__ import annotations

from fastapi import FastAPI

from services.channels.api.routes import router
from services.channels.api.templates import router as templates_router
from services.channels.consumers.handlers import build_handlers
from services.channels.settings import Settings
from services.channels.workers.dispatcher import dispatch_loop
from services.channels.workers.reconciler import reconcile_loop
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: channels", routers=[router, templates_router],
                     handlers=build_handlers, loops=[dispatch_loop, reconcile_loop])
