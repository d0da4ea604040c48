"""Settings base shared by every service.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``SCHEDULER_`` ...).
Infrastructure endpoints are global (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``) so one
environment points all five services at the same cluster; each service keeps its own schema.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import portal_links, registry

# The embedded stack (`make run`) listens here; see devstack/stack.py.
EMBEDDED_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:55432/collections"
EMBEDDED_KAFKA = "127.0.0.1:59092"

# Development-only secrets. Settings refuse them unless APP_ENV is dev or test.
DEV_PII_KEYS = {"dev1": base64.b64encode(b"gentle-collections-dev-key-32byt").decode()}
DEV_API_KEYS = {"dev-key-tenant-a": "tenant-a", "dev-key-tenant-b": "tenant-b"}
DEV_IDENTITY_KEY = base64.b64encode(b"gentle-collections-dev-identity!").decode()


class ServiceSettings(BaseSettings):
    """Common settings; a subclass sets ``service_name`` and ``model_config.env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)
    service_name: ClassVar[str] = "service"

    app_env: Literal["dev", "test", "prod"] = Field("dev", validation_alias="APP_ENV")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    database_url: str = Field(EMBEDDED_DATABASE_URL, validation_alias="DATABASE_URL")
    database_pool_size: int = 5
    kafka_bootstrap_servers: str = Field(EMBEDDED_KAFKA, validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_enable_idempotence: bool = Field(False, validation_alias="KAFKA_ENABLE_IDEMPOTENCE")
    # Latency on the local broker follows the fetch wait (docs/benchmarks.md).
    kafka_fetch_max_wait_ms: int = Field(20, ge=0, validation_alias="KAFKA_FETCH_MAX_WAIT_MS")
    kafka_max_batch: int = Field(500, ge=1, validation_alias="KAFKA_MAX_BATCH")
    # Wait this long for more records when a fetch returns a small batch (throughput vs latency).
    kafka_consumer_linger_ms: int = Field(20, ge=0, validation_alias="KAFKA_CONSUMER_LINGER_MS")
    # How long one consumer poll waits for records; an idle consumer notices a stop this often.
    kafka_poll_timeout_ms: int = Field(200, ge=0, le=60_000, validation_alias="KAFKA_POLL_TIMEOUT_MS")
    # Delay before the n-th retry (from 0) of a transient error: base * 2**n (consumer and offset commits).
    kafka_consumer_backoff_base_s: float = Field(0.2, ge=0, le=60, validation_alias="KAFKA_CONSUMER_BACKOFF_BASE_S")
    # Largest request the producer sends (the broker's message.max.bytes must allow it), and the largest
    # dead letter written: a bigger poison message is dead-lettered truncated, with its size in a header.
    kafka_max_request_size: int = Field(1_048_576, ge=65_536, validation_alias="KAFKA_MAX_REQUEST_SIZE")
    dlq_max_message_bytes: int = Field(900_000, ge=1024, validation_alias="DLQ_MAX_MESSAGE_BYTES")
    # The longest wait between retries of a transient error: the consumer retries until the fault clears.
    kafka_consumer_backoff_max_s: float = Field(30.0, gt=0, le=600, validation_alias="KAFKA_CONSUMER_BACKOFF_MAX_S")
    outbox_linger_ms: int = Field(5, ge=0, validation_alias="OUTBOX_LINGER_MS")
    # Rows the outbox relay claims and publishes per transaction.
    outbox_batch_size: int = Field(1000, ge=1, le=100_000, validation_alias="OUTBOX_BATCH_SIZE")
    # The local broker holds a group join for the rebalance timeout: keep it short (docs/operations.md).
    kafka_session_timeout_ms: int = Field(10_000, ge=1, validation_alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_rebalance_timeout_ms: int = Field(3_000, ge=1, validation_alias="KAFKA_REBALANCE_TIMEOUT_MS")
    # Must stay below the session timeout (a third of it is the usual rule).
    kafka_heartbeat_interval_ms: int = Field(1_000, ge=1, validation_alias="KAFKA_HEARTBEAT_INTERVAL_MS")
    # The longest one batch (handlers, retries, dead letters) may take before the broker evicts the member.
    kafka_max_poll_interval_ms: int = Field(300_000, ge=1_000, validation_alias="KAFKA_MAX_POLL_INTERVAL_MS")
    # Producer (shared/kafka/producer.py): how long it waits to fill a batch, and for the broker's answer.
    kafka_producer_linger_ms: int = Field(2, ge=0, le=10_000, validation_alias="KAFKA_PRODUCER_LINGER_MS")
    kafka_request_timeout_ms: int = Field(15_000, ge=1_000, validation_alias="KAFKA_REQUEST_TIMEOUT_MS")
    pii_keys: dict[str, str] = Field(default_factory=lambda: dict(DEV_PII_KEYS), validation_alias="PII_KEYS")
    pii_active_key: str = Field("dev1", validation_alias="PII_ACTIVE_KEY")
    api_keys: dict[str, str] = Field(default_factory=lambda: dict(DEV_API_KEYS), validation_alias="API_KEYS")
    # How long a key read from access.api_keys is trusted without reading it again: a revocation takes effect
    # within this; an outage of the database fails no key checked less than this long ago (docs/access.md).
    api_key_cache_ttl_s: float = Field(5.0, ge=0, le=300, validation_alias="API_KEY_CACHE_TTL_S")
    # base64 of at least 16 random bytes: keys borrower and contact-point hashes (shared/identity.py); the
    # same on every service, and stable (changing it splits every borrower's history in two)
    identity_key: str = Field(DEV_IDENTITY_KEY, validation_alias="IDENTITY_KEY", repr=False)
    # The customer portal's links (shared/portal_links.py), minted by plans over REST and by channels in its
    # messages, opened by plans: the HMAC-SHA256 key (at least 32 characters; unset: derived from IDENTITY_KEY,
    # see portal_key), where customers' browsers reach plans' /portal/... (unset: channels puts no link in its
    # messages, plans answers with the address the request came to), and how long a link works.
    portal_secret: str | None = Field(None, min_length=32, max_length=512, validation_alias="PORTAL_SECRET",
                                      repr=False)
    portal_base_url: str | None = Field(None, pattern=r"^https?://[^\s?#]+$", max_length=500,
                                        validation_alias="PORTAL_BASE_URL")
    portal_link_ttl_hours: int = Field(72, ge=1, le=720, validation_alias="PORTAL_LINK_TTL_HOURS")

    # Request bodies above this are refused with 413 before they are read (a batch of 1,000 events is ~1 MB).
    http_max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, validation_alias="HTTP_MAX_BODY_BYTES")
    host: str = "127.0.0.1"
    # 0: the service's port in the registry (shared/registry.py); <PREFIX>PORT overrides it.
    port: int = Field(0, ge=0, le=65535)
    # Consumer safety limits (shared/kafka/consumer.py), per service (<PREFIX>MAX_TRANSIENT_RETRIES ...).
    max_transient_retries: int = Field(5, ge=0)
    # Dead-letter limits, per partition: halt rather than dead-letter more than this many in a row ...
    dlq_max_consecutive: int = Field(50, ge=0)
    # ... or more than this fraction of the messages seen (None or 0: no ratio limit) ...
    dlq_max_invalid_ratio: float | None = Field(0.5, ge=0, le=1)
    # ... once at least this many messages were seen on the partition.
    dlq_ratio_min_messages: int = Field(100, ge=1)
    shutdown_timeout_s: float = 20.0
    startup_timeout_s: float = Field(60.0, validation_alias="STARTUP_TIMEOUT_S")
    outbox_poll_interval_s: float = 0.2

    @field_validator("pii_keys", "api_keys", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("portal_secret", "portal_base_url", mode="before")
    @classmethod
    def _empty_portal_setting_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _heartbeat_below_session_timeout(self) -> ServiceSettings:
        if self.kafka_heartbeat_interval_ms >= self.kafka_session_timeout_ms:
            raise ValueError(f"KAFKA_HEARTBEAT_INTERVAL_MS ({self.kafka_heartbeat_interval_ms}) must be below "
                             f"KAFKA_SESSION_TIMEOUT_MS ({self.kafka_session_timeout_ms})")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> ServiceSettings:
        if self.app_env == "prod":
            if set(self.pii_keys.values()) & set(DEV_PII_KEYS.values()):
                raise ValueError("PII_KEYS holds the development key: set real keys when APP_ENV=prod")
            if any(k in DEV_API_KEYS for k in self.api_keys):
                raise ValueError("API_KEYS holds development keys: set real keys when APP_ENV=prod")
            if self.identity_key == DEV_IDENTITY_KEY:
                raise ValueError("IDENTITY_KEY is the development key: set a real one when APP_ENV=prod")
        try:
            if len(base64.b64decode(self.identity_key, validate=True)) < 16:
                raise ValueError("too short")
        except ValueError as exc:
            raise ValueError("IDENTITY_KEY must be base64 of at least 16 bytes") from exc
        if self.pii_active_key not in self.pii_keys:
            raise ValueError(f"PII_ACTIVE_KEY {self.pii_active_key!r} is not one of PII_KEYS")
        if self.port == 0 and self.service_name in registry.BY_NAME:
            self.port = registry.spec(self.service_name).port
        return self

    @property
    def identity_secret(self) -> bytes:
        """IDENTITY_KEY's bytes."""
        return base64.b64decode(self.identity_key)

    @property
    def portal_key(self) -> bytes:
        """The key that signs the portal's links: PORTAL_SECRET, else one derived from IDENTITY_KEY (the same on
        every service given the same settings: channels mints links plans opens)."""
        return portal_links.portal_key(self.identity_secret, self.portal_secret)

    @property
    def portal_url_base(self) -> str | None:
        """PORTAL_BASE_URL without a trailing slash; a link is ``<it>/portal/l/<token>``. None when unset."""
        return self.portal_base_url.rstrip("/") if self.portal_base_url else None

    @property
    def spec(self) -> registry.ServiceSpec:
        """This service's entry in the registry."""
        return registry.spec(self.service_name)

    @property
    def schema_name(self) -> str:
        """The PostgreSQL schema this service owns."""
        return self.spec.schema

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group (and so the DLQ topic's prefix)."""
        return self.spec.consumer_group


def service_config(name: str) -> SettingsConfigDict:
    """The settings config of service ``name``: its environment prefix from the registry."""
    return SettingsConfigDict(env_prefix=registry.spec(name).env_prefix, extra="ignore", populate_by_name=True)
