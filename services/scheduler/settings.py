from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "scheduler"

    port: int = 8002
    timer_interval_s: float = 1.0
