"""Plans: negotiated repayment agreements, their schedules and payment allocation."""

from __future__ import annotations

from fastapi import FastAPI

from services.plans.api.routes import router
from services.plans.consumers.handlers import build_handlers
from services.plans.settings import Settings
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: plans", routers=[router],
                     handlers=build_handlers)
