"""Plans: negotiated repayment agreements, their schedules and payment allocation."""

from __future__ import annotations

from fastapi import FastAPI

from services.plans.api.co_lending import router as co_lending_router
from services.plans.api.negotiation import router as negotiation_router
from services.plans.api.promises import router as promises_router
from services.plans.api.routes import router
from services.plans.api.webhooks import router as webhooks_router
from services.plans.consumers.handlers import build_handlers
from services.plans.portal.routes import links_router as portal_links_router
from services.plans.portal.routes import router as portal_router
from services.plans.settings import Settings
from services.plans.workers.monitor import monitor_loop
from services.plans.workers.webhooks import webhook_loop
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: plans",
                     routers=[router, negotiation_router, promises_router, co_lending_router, webhooks_router,
                              portal_links_router, portal_router],
                     handlers=build_handlers, loops=[monitor_loop, webhook_loop])
