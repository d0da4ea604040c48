"""Unit tests for the settings base (shared/settings.py), through a service subclass."""

from __future__ import annotations

import base64
import json
import os

import pytest
from pydantic import ValidationError

from services.plans.settings import Settings
from shared.settings import DEV_API_KEYS, DEV_IDENTITY_KEY, DEV_PII_KEYS, EMBEDDED_DATABASE_URL, EMBEDDED_KAFKA

ENV_VARS = ["APP_ENV", "LOG_LEVEL", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_ENABLE_IDEMPOTENCE",
            "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_REBALANCE_TIMEOUT_MS",
            "KAFKA_FETCH_MAX_WAIT_MS", "KAFKA_MAX_BATCH", "PII_KEYS", "PII_ACTIVE_KEY", "API_KEYS",
            "KAFKA_CONSUMER_LINGER_MS", "KAFKA_POLL_TIMEOUT_MS", "KAFKA_HEARTBEAT_INTERVAL_MS",
            "KAFKA_MAX_POLL_INTERVAL_MS", "KAFKA_CONSUMER_BACKOFF_BASE_S", "KAFKA_PRODUCER_LINGER_MS",
            "KAFKA_REQUEST_TIMEOUT_MS", "OUTBOX_BATCH_SIZE", "OUTBOX_LINGER_MS", "STARTUP_TIMEOUT_S"]
REAL_KEY = base64.b64encode(os.urandom(32)).decode()
REAL_API_KEYS = {"k-7f3c9a": "tenant-a"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*ENV_VARS, *(k for k in os.environ if k.startswith("PLANS_"))]:
        monkeypatch.delenv(name, raising=False)


def prod(monkeypatch: pytest.MonkeyPatch, *, pii_keys: dict[str, str] | None = None, active: str = "prod1",
         api_keys: dict[str, str] | None = None) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    monkeypatch.setenv("PII_KEYS", json.dumps({"prod1": REAL_KEY} if pii_keys is None else pii_keys))
    monkeypatch.setenv("PII_ACTIVE_KEY", active)
    monkeypatch.setenv("API_KEYS", json.dumps(REAL_API_KEYS if api_keys is None else api_keys))
    monkeypatch.setenv("IDENTITY_KEY", REAL_IDENTITY_KEY)


REAL_IDENTITY_KEY = base64.b64encode(b"a-real-identity-key-of-32-bytes!").decode()


def test_prod_refuses_the_development_identity_key_and_any_short_one(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch)
    monkeypatch.setenv("IDENTITY_KEY", DEV_IDENTITY_KEY)
    with pytest.raises(ValidationError, match="IDENTITY_KEY is the development key"):
        Settings()
    monkeypatch.setenv("APP_ENV", "dev")
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        monkeypatch.setenv("IDENTITY_KEY", bad)
        with pytest.raises(ValidationError, match="IDENTITY_KEY must be base64 of at least 16 bytes"):
            Settings()


def test_dev_defaults() -> None:
    s = Settings()
    assert s.app_env == "dev"
    assert s.database_url == EMBEDDED_DATABASE_URL
    assert s.kafka_bootstrap_servers == EMBEDDED_KAFKA
    assert s.pii_keys == DEV_PII_KEYS
    assert s.pii_active_key == "dev1"
    assert s.api_keys == DEV_API_KEYS
    assert s.port == 8005
    assert (s.schema_name, s.consumer_group) == ("plans", "plans")


def test_defaults_are_copies() -> None:
    Settings().pii_keys["x"] = "y"
    assert "x" not in Settings().pii_keys
    assert "x" not in DEV_PII_KEYS


@pytest.mark.parametrize("env", ["dev", "test"])
def test_dev_secrets_allowed_in_dev_and_test(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("APP_ENV", env)
    assert Settings().app_env == env


def test_prod_with_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch)
    s = Settings()
    assert s.app_env == "prod"
    assert s.pii_keys == {"prod1": REAL_KEY}
    assert s.pii_active_key == "prod1"
    assert s.api_keys == REAL_API_KEYS


def test_prod_refuses_all_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(ValidationError, match="development key"):
        Settings()


def test_prod_refuses_dev_pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch, pii_keys={**DEV_PII_KEYS, "prod1": REAL_KEY})
    with pytest.raises(ValidationError, match="PII_KEYS holds the development key"):
        Settings()


@pytest.mark.parametrize("dev_key", list(DEV_API_KEYS))
def test_prod_refuses_dev_api_keys(monkeypatch: pytest.MonkeyPatch, dev_key: str) -> None:
    prod(monkeypatch, api_keys={**REAL_API_KEYS, dev_key: "tenant-b"})
    with pytest.raises(ValidationError, match="API_KEYS holds development keys"):
        Settings()


def test_prod_refuses_default_api_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch)
    monkeypatch.delenv("API_KEYS")
    with pytest.raises(ValidationError, match="API_KEYS holds development keys"):
        Settings()


def test_prod_refuses_dev_pii_key_material_under_another_id(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch, pii_keys={"prod1": DEV_PII_KEYS["dev1"]})
    with pytest.raises(ValidationError, match="development key"):
        Settings()


def test_json_env_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    other = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("PII_KEYS", json.dumps({"k1": REAL_KEY, "k2": other}))
    monkeypatch.setenv("PII_ACTIVE_KEY", "k2")
    monkeypatch.setenv("API_KEYS", json.dumps({"key-a": "tenant-a", "key-b": "tenant-b"}))
    s = Settings()
    assert s.pii_keys == {"k1": REAL_KEY, "k2": other}
    assert s.pii_active_key == "k2"
    assert s.api_keys == {"key-a": "tenant-a", "key-b": "tenant-b"}


def test_json_string_values_parsed_by_validator() -> None:
    s = Settings(pii_keys=json.dumps({"k1": REAL_KEY}), pii_active_key="k1",  # type: ignore[arg-type]
                 api_keys=json.dumps({"key-a": "tenant-a"}))
    assert s.pii_keys == {"k1": REAL_KEY}
    assert s.api_keys == {"key-a": "tenant-a"}


def test_unknown_active_pii_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_KEYS", json.dumps({"k1": REAL_KEY}))
    monkeypatch.setenv("PII_ACTIVE_KEY", "k2")
    with pytest.raises(ValidationError, match="PII_ACTIVE_KEY 'k2' is not one of PII_KEYS"):
        Settings()


def test_unknown_active_pii_key_refused_with_default_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_ACTIVE_KEY", "nope")
    with pytest.raises(ValidationError, match="not one of PII_KEYS"):
        Settings()


def test_prod_with_keys_but_default_active_key_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    prod(monkeypatch)
    monkeypatch.delenv("PII_ACTIVE_KEY")  # default 'dev1' is not among the prod keys
    with pytest.raises(ValidationError, match="not one of PII_KEYS"):
        Settings()


def test_infrastructure_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app@db.internal:5432/collections")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0:9092,kafka-1:9092")
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "true")
    monkeypatch.setenv("KAFKA_MAX_BATCH", "100")
    s = Settings()
    assert s.database_url == "postgresql+asyncpg://app@db.internal:5432/collections"
    assert s.kafka_bootstrap_servers == "kafka-0:9092,kafka-1:9092"
    assert s.kafka_enable_idempotence is True
    assert s.kafka_max_batch == 100


def test_service_prefix_applies_to_unaliased_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANS_PORT", "9105")
    monkeypatch.setenv("PLANS_DATABASE_POOL_SIZE", "11")
    monkeypatch.setenv("PORT", "1")  # unprefixed: ignored
    s = Settings()
    assert s.port == 9105
    assert s.database_pool_size == 11


def test_bad_app_env_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "staging")
    with pytest.raises(ValidationError):
        Settings()


# Tunables that used to be hard-coded: (field, env name, default, a valid override, an out-of-bounds value).
TUNABLES = [
    ("kafka_poll_timeout_ms", "KAFKA_POLL_TIMEOUT_MS", 200, 1000, -1),
    ("kafka_heartbeat_interval_ms", "KAFKA_HEARTBEAT_INTERVAL_MS", 1000, 3000, 0),
    ("kafka_max_poll_interval_ms", "KAFKA_MAX_POLL_INTERVAL_MS", 300_000, 600_000, 10),
    ("kafka_consumer_backoff_base_s", "KAFKA_CONSUMER_BACKOFF_BASE_S", 0.2, 1.5, -1),
    ("kafka_producer_linger_ms", "KAFKA_PRODUCER_LINGER_MS", 2, 10, -1),
    ("kafka_request_timeout_ms", "KAFKA_REQUEST_TIMEOUT_MS", 15_000, 40_000, 0),
    ("outbox_batch_size", "OUTBOX_BATCH_SIZE", 1000, 250, 0),
    ("dlq_max_consecutive", "PLANS_DLQ_MAX_CONSECUTIVE", 50, 10, -1),
    ("dlq_max_invalid_ratio", "PLANS_DLQ_MAX_INVALID_RATIO", 0.5, 0.1, 1.5),
    ("dlq_ratio_min_messages", "PLANS_DLQ_RATIO_MIN_MESSAGES", 100, 1000, 0),
]


@pytest.mark.parametrize(("field", "env", "default", "value", "bad"), TUNABLES)
def test_tunables(monkeypatch: pytest.MonkeyPatch, field: str, env: str, default: float, value: float,
                  bad: float) -> None:
    assert getattr(Settings(), field) == default
    monkeypatch.setenv(env, str(value))
    assert getattr(Settings(), field) == value
    monkeypatch.setenv(env, str(bad))
    with pytest.raises(ValidationError, match=f"{env}|{field}"):
        Settings()


def test_tunables_by_field_name() -> None:
    s = Settings(kafka_poll_timeout_ms=50, outbox_batch_size=10, dlq_max_invalid_ratio=None)
    assert (s.kafka_poll_timeout_ms, s.outbox_batch_size, s.dlq_max_invalid_ratio) == (50, 10, None)


def test_dlq_ratio_zero_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANS_DLQ_MAX_INVALID_RATIO", "0")
    assert Settings().dlq_max_invalid_ratio == 0  # disables the ratio limit


def test_heartbeat_must_be_below_the_session_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "10000")
    with pytest.raises(ValidationError, match=r"KAFKA_HEARTBEAT_INTERVAL_MS .* must be below KAFKA_SESSION_TIMEOUT_MS"):
        Settings()
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "30000")
    assert Settings().kafka_heartbeat_interval_ms == 10_000
