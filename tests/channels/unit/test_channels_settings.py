import base64
import os

import pytest
from pydantic import ValidationError

from services.channels.settings import DEV_SMS_ACCOUNT, DEV_SMS_WEBHOOK_SECRET, Settings

PROD = {"pii_keys": {"k": base64.b64encode(b"k" * 32).decode()}, "pii_active_key": "k", "api_keys": {"x": "t"},
        "identity_key": base64.b64encode(b"i" * 32).decode()}


@pytest.fixture
def no_channels_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CHANNELS_")] + ["APP_ENV"]:
        monkeypatch.delenv(name, raising=False)


def test_prod_refuses_the_development_webhook_secret(monkeypatch: pytest.MonkeyPatch, no_channels_env: None) -> None:
    monkeypatch.setenv("APP_ENV", "prod")
    with pytest.raises(ValidationError, match="CHANNELS_SMS_WEBHOOK_SECRETS holds the development secret"):
        Settings(**PROD)
    monkeypatch.setenv("CHANNELS_SMS_WEBHOOK_SECRETS", f"{DEV_SMS_ACCOUNT}=a-real-secret,old={DEV_SMS_WEBHOOK_SECRET}")
    with pytest.raises(ValidationError, match="development secret"):
        Settings(**PROD)
    monkeypatch.setenv("CHANNELS_SMS_WEBHOOK_SECRETS", f"{DEV_SMS_ACCOUNT}=a-real-secret")
    assert Settings(**PROD).sms_webhook_secrets == {DEV_SMS_ACCOUNT: "a-real-secret"}


def test_dev_defaults_match_the_sandbox(no_channels_env: None) -> None:
    from devstack.sms_sandbox import DEFAULT_ACCOUNT, DEFAULT_SECRET

    s = Settings()
    assert s.sms_account == DEFAULT_ACCOUNT == DEV_SMS_ACCOUNT
    assert s.sms_webhook_secrets == {DEFAULT_ACCOUNT: DEFAULT_SECRET}
    assert s.sms_webhook_window_s == 300.0
    assert s.sms_max_batch == 1000
    assert (s.public_base_url, s.sms_receipt_url) == (None, None)
    assert (s.reconcile_after_s, s.reconcile_batch, s.reconcile_interval_s, s.reconcile_give_up_s) == (
        300.0, 100, 30.0, 86_400.0)


@pytest.mark.parametrize(("value", "expected"), [
    ('{"acct-1": "s1", "acct-2": "s=2,x"}', {"acct-1": "s1", "acct-2": "s=2,x"}),
    ("acct-1=s1,acct-2=s==2", {"acct-1": "s1", "acct-2": "s==2"}),
    (" acct-1 = s1 , , acct-2=s2 ", {"acct-1": "s1", "acct-2": "s2"}),
])
def test_webhook_secrets_as_json_or_pairs(no_channels_env: None, monkeypatch: pytest.MonkeyPatch, value: str,
                                          expected: dict[str, str]) -> None:
    monkeypatch.setenv("CHANNELS_SMS_WEBHOOK_SECRETS", value)
    monkeypatch.setenv("CHANNELS_SMS_ACCOUNT", "acct-2")
    s = Settings()
    assert (s.sms_webhook_secrets, s.sms_account) == (expected, "acct-2")
    assert "s1" not in repr(s) and "s2" not in repr(s)


@pytest.mark.parametrize(("env", "message"), [
    ({"CHANNELS_SMS_WEBHOOK_SECRETS": "acct-1"}, "account=secret"),
    ({"CHANNELS_SMS_WEBHOOK_SECRETS": "acct-1="}, "is empty"),
    ({"CHANNELS_SMS_WEBHOOK_SECRETS": "{}"}, "is empty"),
    ({"CHANNELS_SMS_WEBHOOK_SECRETS": "账户=s"}, "not a valid account id"),
    ({"CHANNELS_SMS_WEBHOOK_SECRETS": "acct-1=s"}, "CHANNELS_SMS_ACCOUNT 'sandbox' has no secret"),
    ({"CHANNELS_SMS_ACCOUNT": "other"}, "CHANNELS_SMS_ACCOUNT 'other' has no secret"),
    ({"CHANNELS_SMS_WEBHOOK_WINDOW_S": "0"}, "sms_webhook_window_s"),
    ({"CHANNELS_SMS_MAX_BATCH": "0"}, "sms_max_batch"),
    ({"CHANNELS_PUBLIC_BASE_URL": "ftp://x.example"}, "CHANNELS_PUBLIC_BASE_URL"),
    ({"CHANNELS_PUBLIC_BASE_URL": "https://x.example/?a=1"}, "CHANNELS_PUBLIC_BASE_URL"),
    ({"CHANNELS_RECONCILE_GIVE_UP_S": "300"}, "must be above CHANNELS_RECONCILE_AFTER_S"),
    ({"CHANNELS_RECONCILE_BATCH": "1001"}, "reconcile_batch"),
])
def test_bad_sms_settings_are_refused(no_channels_env: None, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                      message: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_public_base_url_names_the_receipt_callback(no_channels_env: None) -> None:
    s = Settings(public_base_url="https://collections.example.com/")
    assert s.public_base_url == "https://collections.example.com"
    assert s.sms_receipt_url == "https://collections.example.com/v1/webhooks/sms/receipts"


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
    monkeypatch.setenv("CHANNELS_SMS_WEBHOOK_SECRETS", "sandbox=a-real-secret")
    creds = {"smtp_username": "u", "smtp_password": "p"}
    with pytest.raises(ValidationError, match="CHANNELS_SMTP_TLS=none"):
        Settings(**PROD, **creds)  # type: ignore[arg-type]
    assert Settings(**PROD, **creds, smtp_tls="starttls").smtp_tls == "starttls"  # type: ignore[arg-type]

