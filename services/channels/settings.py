"""Channels settings: the shared ones (shared/settings.py) plus its own, prefixed CHANNELS_."""

import base64
import binascii
import hashlib
import hmac
import json
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from services.channels.domain.signatures import ACCOUNT_ID
from services.channels.domain.unsubscribe import KEY_ID
from shared.settings import ServiceSettings, service_config

# The SMS sandbox (devstack/sms_sandbox.py) signs its receipts as this account with this secret by default.
DEV_SMS_ACCOUNT = "sandbox"
DEV_SMS_WEBHOOK_SECRET = "dev-sms-webhook-secret"  # noqa: S105 - development default, refused in prod
# The unsubscribe-link key derived from IDENTITY_KEY when CHANNELS_UNSUBSCRIBE_KEYS names none (always accepted).
DERIVED_UNSUBSCRIBE_KEY_ID = "i1"
_DERIVATION_LABEL = b"gentle-collections/channels/unsubscribe-key/v1"
MIN_UNSUBSCRIBE_KEY_BYTES = 32

SmtpTls = Literal["none", "starttls", "tls"]


class Settings(ServiceSettings):
    model_config = service_config("channels")
    service_name: ClassVar[str] = "channels"

    sms_base_url: str = "http://127.0.0.1:8090"
    sms_sender: str = "GENTLE"
    # The provider account we send through (sent as X-Account); stored on each SMS attempt, and only
    # that account's signed receipts are accepted for it. Must be one of sms_webhook_secrets.
    sms_account: str = DEV_SMS_ACCOUNT
    # Provider account id -> the secret it signs webhooks with. JSON {"acct": "secret"} or acct=secret,...
    # Keep an old account here while receipts for messages sent through it may still arrive.
    sms_webhook_secrets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {DEV_SMS_ACCOUNT: DEV_SMS_WEBHOOK_SECRET}, repr=False)
    # A signed webhook whose X-Timestamp is further than this from our clock (either way) is refused.
    sms_webhook_window_s: float = Field(300.0, gt=0, le=86_400)
    # The provider's limit of messages per batch request; a larger dispatch batch is sent in chunks.
    sms_max_batch: int = Field(1000, ge=1, le=10_000)
    # Where the provider (and customers' browsers) can reach this service from outside; when set, each SMS
    # names <public_base_url>/v1/webhooks/sms/receipts as its receipt callback (unset: the URL configured at
    # the provider), and each e-mail's unsubscribe link is <public_base_url>/v1/unsubscribe/<token>.
    public_base_url: str | None = None
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
    # Reconciler (workers/reconciler.py): an SMS 'sent' this long without a final status is polled at the
    # provider, and polled again this often while the provider has none.
    reconcile_after_s: float = Field(300.0, gt=0, le=86_400)
    # Attempts claimed per reconciler pass (one status request each, a few at a time).
    reconcile_batch: int = Field(100, ge=1, le=1000)
    # Pause between reconciler passes (a full batch is followed by the next at once).
    reconcile_interval_s: float = Field(30.0, gt=0, le=3600)
    # An SMS still without a final status this long after it was sent becomes 'unknown' (outcome 'unknown').
    reconcile_give_up_s: float = Field(86_400.0, gt=0, le=30 * 86_400)
    # An opt-out reply concerns every tenant that texted that number within this many days.
    opt_out_lookback_days: int = Field(180, ge=1, le=3650)
    # Keys that sign the unsubscribe links in e-mails (HMAC-SHA256, domain/unsubscribe.py): key id -> base64 of
    # at least 32 random bytes, as JSON {"u1": "..."} or u1=...,u2=... Unset: one key derived from IDENTITY_KEY
    # (key id "i1", always accepted). Keep a retired key while links it signed may still be used.
    unsubscribe_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    # The key that signs new links; default: the only one of unsubscribe_keys, else the derived "i1".
    unsubscribe_active_key: str | None = None
    # An e-mail's unsubscribe link works for this many days after the e-mail was sent (then: 410, expired).
    unsubscribe_ttl_days: int = Field(60, ge=1, le=366)

    @field_validator("sms_webhook_secrets", "unsubscribe_keys", mode="before")
    @classmethod
    def _parse_secrets(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return json.loads(text)
        pairs = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            account, sep, secret = item.partition("=")
            if not sep:
                what = "account=secret" if info.field_name == "sms_webhook_secrets" else "id=base64 key"
                raise ValueError(f"CHANNELS_{str(info.field_name).upper()}: write {what},... or a JSON object")
            pairs[account.strip()] = secret.strip()
        return pairs

    @model_validator(mode="after")
    def _check_unsubscribe_keys(self) -> "Settings":
        for key_id, secret in self.unsubscribe_keys.items():
            if not KEY_ID.fullmatch(key_id) or key_id == DERIVED_UNSUBSCRIBE_KEY_ID:
                raise ValueError(f"CHANNELS_UNSUBSCRIBE_KEYS: {key_id!r} is not a valid key id (letters, digits, "
                                 f". _ -; at most 16; {DERIVED_UNSUBSCRIBE_KEY_ID!r} is the derived key's)")
            try:
                if len(base64.b64decode(secret, validate=True)) < MIN_UNSUBSCRIBE_KEY_BYTES:
                    raise ValueError("too short")
            except (binascii.Error, ValueError):
                raise ValueError(f"CHANNELS_UNSUBSCRIBE_KEYS: the key {key_id!r} must be base64 of at least "
                                 f"{MIN_UNSUBSCRIBE_KEY_BYTES} bytes") from None
        if self.unsubscribe_active_key is None:
            self.unsubscribe_active_key = (next(iter(self.unsubscribe_keys)) if len(self.unsubscribe_keys) == 1
                                           else DERIVED_UNSUBSCRIBE_KEY_ID)
        if self.unsubscribe_active_key not in self.unsubscribe_signing_keys:
            raise ValueError(f"CHANNELS_UNSUBSCRIBE_ACTIVE_KEY {self.unsubscribe_active_key!r} is not one of "
                             "CHANNELS_UNSUBSCRIBE_KEYS")
        return self

    @property
    def unsubscribe_signing_keys(self) -> dict[str, bytes]:
        """Every key an unsubscribe link may be signed with: the configured ones and the derived one."""
        derived = hmac.new(self.identity_secret, _DERIVATION_LABEL, hashlib.sha256).digest()
        return {DERIVED_UNSUBSCRIBE_KEY_ID: derived,
                **{k: base64.b64decode(v) for k, v in self.unsubscribe_keys.items()}}

    @property
    def unsubscribe_base_url(self) -> str | None:
        """Where a customer's browser or mail client reaches this service: CHANNELS_PUBLIC_BASE_URL; outside
        prod, this service's own address when that is unset. None: e-mails go without a link."""
        if self.public_base_url:
            return self.public_base_url
        return None if self.app_env == "prod" else f"http://{self.host}:{self.port}"

    @model_validator(mode="after")
    def _check_sms_accounts(self) -> "Settings":
        if not self.sms_webhook_secrets:
            raise ValueError("CHANNELS_SMS_WEBHOOK_SECRETS is empty: give the secret of CHANNELS_SMS_ACCOUNT")
        for account, secret in self.sms_webhook_secrets.items():
            if not ACCOUNT_ID.fullmatch(account):
                raise ValueError(f"CHANNELS_SMS_WEBHOOK_SECRETS: {account!r} is not a valid account id "
                                 "(letters, digits, . _ : -; at most 64)")
            if not secret:
                raise ValueError(f"CHANNELS_SMS_WEBHOOK_SECRETS: the secret of {account!r} is empty")
            if self.app_env == "prod" and secret == DEV_SMS_WEBHOOK_SECRET:
                raise ValueError("CHANNELS_SMS_WEBHOOK_SECRETS holds the development secret: set real secrets "
                                 "when APP_ENV=prod")
        if self.sms_account not in self.sms_webhook_secrets:
            raise ValueError(f"CHANNELS_SMS_ACCOUNT {self.sms_account!r} has no secret in "
                             "CHANNELS_SMS_WEBHOOK_SECRETS: its receipts could never be verified")
        return self

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_public_base_url(self) -> "Settings":
        if self.public_base_url is not None:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ValueError("CHANNELS_PUBLIC_BASE_URL must be an http(s) URL without query or fragment")
            self.public_base_url = self.public_base_url.rstrip("/")
        return self

    @model_validator(mode="after")
    def _give_up_after_polling(self) -> "Settings":
        if self.reconcile_give_up_s <= self.reconcile_after_s:
            raise ValueError(f"CHANNELS_RECONCILE_GIVE_UP_S ({self.reconcile_give_up_s}) must be above "
                             f"CHANNELS_RECONCILE_AFTER_S ({self.reconcile_after_s})")
        return self

    @property
    def sms_receipt_url(self) -> str | None:
        """The receipt callback given to the provider with each SMS (None: the provider's configured one)."""
        return f"{self.public_base_url}/v1/webhooks/sms/receipts" if self.public_base_url else None

    @model_validator(mode="after")
    def _smtp_credentials_together(self) -> "Settings":
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("set both CHANNELS_SMTP_USERNAME and CHANNELS_SMTP_PASSWORD, or neither")
        if self.app_env == "prod" and self.smtp_username is not None and self.smtp_tls == "none":
            raise ValueError("CHANNELS_SMTP_TLS=none would send the SMTP password in clear: "
                             "use starttls or tls when APP_ENV=prod")
        return self
