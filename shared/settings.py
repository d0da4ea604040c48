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

# The embedded stack (`make run`) listens here; see shared/devstack/stack.py.
EMBEDDED_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:55432/collections"
EMBEDDED_KAFKA = "127.0.0.1:59092"

# Development-only secrets. Settings refuse them unless APP_ENV is dev or test.
DEV_PII_KEYS = {"dev1": base64.b64encode(b"gentle-collections-dev-key-32byt").decode()}
DEV_API_KEYS = {"dev-key-tenant-a": "tenant-a", "dev-key-tenant-b": "tenant-b"}


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
    kafka_fetch_max_wait_ms: int = Field(20, validation_alias="KAFKA_FETCH_MAX_WAIT_MS")
    kafka_max_batch: int = Field(500, validation_alias="KAFKA_MAX_BATCH")
    # Wait this long for more records when a fetch returns a small batch (throughput vs latency).
    kafka_consumer_linger_ms: int = Field(20, validation_alias="KAFKA_CONSUMER_LINGER_MS")
    outbox_linger_ms: int = Field(5, validation_alias="OUTBOX_LINGER_MS")
    # The local broker holds a group join for the rebalance timeout: keep it short (docs/operations.md).
    kafka_session_timeout_ms: int = Field(10_000, validation_alias="KAFKA_SESSION_TIMEOUT_MS")
    kafka_rebalance_timeout_ms: int = Field(3_000, validation_alias="KAFKA_REBALANCE_TIMEOUT_MS")
    pii_keys: dict[str, str] = Field(default_factory=lambda: dict(DEV_PII_KEYS), validation_alias="PII_KEYS")
    pii_active_key: str = Field("dev1", validation_alias="PII_ACTIVE_KEY")
    api_keys: dict[str, str] = Field(default_factory=lambda: dict(DEV_API_KEYS), validation_alias="API_KEYS")

    host: str = "127.0.0.1"
    port: int = 8000
    # Consumer safety limits (shared/kafka/consumer.py).
    max_transient_retries: int = 5
    dlq_max_consecutive: int = 50
    shutdown_timeout_s: float = 20.0
    startup_timeout_s: float = Field(60.0, validation_alias="STARTUP_TIMEOUT_S")
    outbox_poll_interval_s: float = 0.2

    @field_validator("pii_keys", "api_keys", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value)
        return value

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> ServiceSettings:
        if self.app_env == "prod":
            if set(self.pii_keys.values()) & set(DEV_PII_KEYS.values()):
                raise ValueError("PII_KEYS holds the development key: set real keys when APP_ENV=prod")
            if any(k in DEV_API_KEYS for k in self.api_keys):
                raise ValueError("API_KEYS holds development keys: set real keys when APP_ENV=prod")
        if self.pii_active_key not in self.pii_keys:
            raise ValueError(f"PII_ACTIVE_KEY {self.pii_active_key!r} is not one of PII_KEYS")
        return self

    @property
    def schema_name(self) -> str:
        """The PostgreSQL schema this service owns."""
        return self.service_name

    @property
    def consumer_group(self) -> str:
        return self.service_name
