"""Compliance: every contact is checked against the rule pack and the decision is logged."""

from __future__ import annotations

from fastapi import FastAPI

from services.compliance.api.attempts import router as attempts_router
from services.compliance.api.policy import router as policy_router
from services.compliance.api.records import router as records_router
from services.compliance.api.routes import router
from services.compliance.consumers.handlers import build_handlers
from services.compliance.settings import Settings
from services.compliance.workers.clocks import complaint_clocks_loop
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: compliance",
                     routers=[router, records_router, policy_router, attempts_router],
                     handlers=build_handlers, loops=[complaint_clocks_loop])
