import base64
import os

import pytest
from pydantic import ValidationError

from services.channels.settings import DEV_WEBHOOK_TOKEN, Settings

PROD = {"pii_keys": {"k": base64.b64encode(b"k" * 32).decode()}, "pii_active_key": "k", "api_keys": {"x": "t"}}


def test_prod_refuses_the_development_webhook_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(ValidationError, match="CHANNELS_WEBHOOK_TOKEN"):
        Settings(**PROD)
    monkeypatch.setenv("CHANNELS_WEBHOOK_TOKEN", "a-real-secret")
    assert Settings(**PROD).webhook_token == "a-real-secret"  # noqa: S105


def test_dev_keeps_the_development_webhook_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_ENV", raising=False)
    monkeypatch.delenv("CHANNELS_WEBHOOK_TOKEN", raising=False)
    assert Settings().webhook_token == DEV_WEBHOOK_TOKEN


@pytest.fixture
def no_channels_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CHANNELS_")] + ["APP_ENV"]:
        monkeypatch.delenv(name, raising=False)


def test_delivery_defaults(no_channels_env: None) -> None:
    s = Settings()
    assert (s.smtp_tls, s.smtp_username, s.smtp_password) == ("none", None, None)
    assert (s.smtp_timeout_s, s.sms_timeout_s) == (15.0, 15.0)
    assert s.dispatch_idle_wait_s == 0.5
    assert (s.retry_backoff_base_s, s.retry_backoff_max_s) == (2.0, 300.0)


def test_delivery_settings_from_the_environment(no_channels_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"CHANNELS_SMTP_TLS": "starttls", "CHANNELS_SMTP_USERNAME": "mailer",
                        "CHANNELS_SMTP_PASSWORD": "pa55-word", "CHANNELS_SMTP_TIMEOUT_S": "4.5",
                        "CHANNELS_SMS_TIMEOUT_S": "3", "CHANNELS_DISPATCH_IDLE_WAIT_S": "0.1",
                        "CHANNELS_RETRY_BACKOFF_BASE_S": "3", "CHANNELS_RETRY_BACKOFF_MAX_S": "60"}.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.smtp_tls, s.smtp_username, s.smtp_password) == ("starttls", "mailer", "pa55-word")
    assert (s.smtp_timeout_s, s.sms_timeout_s, s.dispatch_idle_wait_s) == (4.5, 3.0, 0.1)
    assert (s.retry_backoff_base_s, s.retry_backoff_max_s) == (3.0, 60.0)


def test_smtp_password_never_appears_in_repr(no_channels_env: None) -> None:
    s = Settings(smtp_tls="tls", smtp_username="mailer", smtp_password="pa55-word")  # noqa: S106
    assert "pa55-word" not in repr(s) and "pa55-word" not in str(s)
    assert "mailer" in repr(s)


@pytest.mark.parametrize("field", ["smtp_tls", "smtp_timeout_s", "sms_timeout_s", "dispatch_idle_wait_s",
                                   "retry_backoff_base_s", "retry_backoff_max_s"])
def test_bad_delivery_values_are_refused(no_channels_env: None, field: str) -> None:
    bad = {"smtp_tls": "ssl", "smtp_timeout_s": 0, "sms_timeout_s": -1, "dispatch_idle_wait_s": 0,
           "retry_backoff_base_s": 0.5, "retry_backoff_max_s": 0}
    with pytest.raises(ValidationError):
        Settings(**{field: bad[field]})  # type: ignore[arg-type]


@pytest.mark.parametrize("credentials", [{"smtp_username": "u"}, {"smtp_password": "p"}])
def test_smtp_credentials_go_together(no_channels_env: None, credentials: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="CHANNELS_SMTP_USERNAME and CHANNELS_SMTP_PASSWORD"):
        Settings(**credentials)  # type: ignore[arg-type]


def test_prod_refuses_a_password_over_plain_smtp(monkeypatch: pytest.MonkeyPatch, no_channels_env: None) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    monkeypatch.setenv("CHANNELS_WEBHOOK_TOKEN", "a-real-secret")
    creds = {"smtp_username": "u", "smtp_password": "p"}
    with pytest.raises(ValidationError, match="CHANNELS_SMTP_TLS=none"):
        Settings(**PROD, **creds)  # type: ignore[arg-type]
    assert Settings(**PROD, **creds, smtp_tls="starttls").smtp_tls == "starttls"  # type: ignore[arg-type]

