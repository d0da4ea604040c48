"""Segmentation settings: the shared ones (shared/settings.py) plus its own, prefixed SEGMENTATION_."""

from typing import ClassVar

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("segmentation")
    service_name: ClassVar[str] = "segmentation"

