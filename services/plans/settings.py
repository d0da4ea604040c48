"""Plans settings: the shared ones (shared/settings.py) plus its own, prefixed PLANS_."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("plans")
    service_name: ClassVar[str] = "plans"

