"""Scheduler: turns segmented accounts into treatments and due steps into contact requests."""

from __future__ import annotations

from fastapi import FastAPI

from services.scheduler.api.routes import router
from services.scheduler.api.strategies import router as strategies_router
from services.scheduler.consumers.handlers import build_handlers
from services.scheduler.settings import Settings
from services.scheduler.workers.timers import timer_loop
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: scheduler", routers=[router, strategies_router],
                     handlers=build_handlers, loops=[timer_loop])
