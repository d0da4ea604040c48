"""Compliance settings: the shared ones (shared/settings.py) plus its own, prefixed COMPLIANCE_."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("compliance")
    service_name: ClassVar[str] = "compliance"

