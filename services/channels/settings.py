"""Channels settings: the shared ones (shared/settings.py) plus its own, prefixed CHANNELS_."""

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from shared.settings import ServiceSettings, service_config

DEV_WEBHOOK_TOKEN = "dev-webhook-token"  # noqa: S105 - development default, refused in prod

SmtpTls = Literal["none", "starttls", "tls"]


class Settings(ServiceSettings):
    model_config = service_config("channels")
    service_name: ClassVar[str] = "channels"

    sms_base_url: str = "http://127.0.0.1:8090"
    sms_sender: str = "GENTLE"
    # Timeout of one batch request to the SMS provider; a timeout is retried (idempotency keys).
    sms_timeout_s: float = Field(15.0, gt=0, le=300)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(2525, ge=1, le=65535)
    # "none": plain SMTP; "starttls": upgrade after connecting (usually port 587); "tls": TLS from the
    # first byte (SMTPS, usually port 465). The server's certificate is verified against the system CAs.
    smtp_tls: SmtpTls = "none"
    # Log in with these when both are set (after STARTTLS/TLS). The password is a secret: kept out of repr.
    smtp_username: str | None = None
    smtp_password: str | None = Field(None, repr=False)
    # Timeout of each SMTP step (connect, TLS, login, each message).
    smtp_timeout_s: float = Field(15.0, gt=0, le=300)
    mail_from: str = "collections@gentle.example"
    webhook_token: str = DEV_WEBHOOK_TOKEN
    # Attempts claimed and sent per dispatcher pass (one SMS batch request, one SMTP connection).
    dispatch_batch: int = Field(500, ge=1, le=10_000)
    # How long the dispatcher waits for a wake-up (a new attempt committed) before its next pass.
    dispatch_idle_wait_s: float = Field(0.5, gt=0, le=60)
    # A row left 'dispatching' longer than this is recovered (see services/channels/service.py).
    dispatch_lease_s: float = Field(60.0, gt=0)
    # Tries of a send the provider never accepted, before the attempt fails for good.
    max_send_tries: int = Field(5, ge=1, le=100)
    # A retryable send failure waits min(base ** tries, max) seconds before the next try (service.RetryPolicy).
    retry_backoff_base_s: float = Field(2.0, ge=1, le=60)
    retry_backoff_max_s: float = Field(300.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _refuse_dev_webhook_token(self) -> "Settings":
        if self.app_env == "prod" and self.webhook_token == DEV_WEBHOOK_TOKEN:
            raise ValueError("CHANNELS_WEBHOOK_TOKEN is the development token: set a secret one when APP_ENV=prod")
        return self

    @model_validator(mode="after")
    def _smtp_credentials_together(self) -> "Settings":
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("set both CHANNELS_SMTP_USERNAME and CHANNELS_SMTP_PASSWORD, or neither")
        if self.app_env == "prod" and self.smtp_username is not None and self.smtp_tls == "none":
            raise ValueError("CHANNELS_SMTP_TLS=none would send the SMTP password in clear: "
                             "use starttls or tls when APP_ENV=prod")
        return self
