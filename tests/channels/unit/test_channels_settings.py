import base64

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
