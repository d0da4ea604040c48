from typing import ClassVar

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings

DEV_WEBHOOK_TOKEN = "dev-webhook-token"  # noqa: S105 - development default, refused in prod


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHANNELS_", extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "channels"

    port: int = 8004
    sms_base_url: str = "http://127.0.0.1:8090"
    sms_sender: str = "GENTLE"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    mail_from: str = "collections@gentle.example"
    webhook_token: str = DEV_WEBHOOK_TOKEN
    dispatch_batch: int = 500
    # A row left 'dispatching' longer than this is recovered (see consumers/dispatch.py).
    dispatch_lease_s: float = 60.0
    max_send_tries: int = 5

    @model_validator(mode="after")
    def _refuse_dev_webhook_token(self) -> "Settings":
        if self.app_env == "prod" and self.webhook_token == DEV_WEBHOOK_TOKEN:
            raise ValueError("CHANNELS_WEBHOOK_TOKEN is the development token: set a secret one when APP_ENV=prod")
        return self
