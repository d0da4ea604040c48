"""Segmentation: scores overdue accounts by each tenant's live scorecard, classifies them by each tenant's
segmentation policy and takes partners' overdue events and payments."""

from __future__ import annotations

from fastapi import FastAPI

from services.segmentation.api import policy, scorecards
from services.segmentation.api.routes import router
from services.segmentation.consumers.handlers import build_handlers
from services.segmentation.settings import Settings
from shared.service import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Gentle collections: segmentation",
                     routers=[router, policy.router, scorecards.router],
                     handlers=build_handlers)
