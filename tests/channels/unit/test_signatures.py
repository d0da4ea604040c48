"""Unit tests for the SMS webhook signatures (services/channels/domain/signatures.py): HMAC-SHA256 over
``timestamp + "." + raw body`` with the provider account's secret, a replay window, strict headers."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.sms_sandbox import sign as sandbox_sign
from services.channels.domain.signatures import SignatureError, signature, verify

PROPS = settings(max_examples=200, deadline=None, database=None)
SECRETS = {"acct-1": "s3cret-one", "acct-2": "s3cret-two"}
NOW = 1_760_000_000
BODY = b'{"receipts":[{"message_id":"m-1","client_ref":"c-1","status":"delivered"}]}'


def signed(account: str = "acct-1", *, at: int = NOW, body: bytes = BODY, secret: str | None = None,
           **overrides: Any) -> dict[str, Any]:
    """verify()'s arguments for ``body`` signed at ``at``, with ``overrides`` applied after signing."""
    ts = str(at)
    key = secret if secret is not None else SECRETS.get(account, "x")
    args: dict[str, Any] = {"secrets": SECRETS, "account": account, "timestamp": ts,
                            "signature_value": signature(key, ts, body), "body": body,
                            "now": float(NOW), "window_s": 300.0}
    args.update(overrides)
    return args


def reason(**args: Any) -> str:
    with pytest.raises(SignatureError) as info:
        verify(**args)
    return info.value.reason


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"s3cret-one", b"1760000000." + BODY, hashlib.sha256).hexdigest()
    assert signature("s3cret-one", "1760000000", BODY) == f"sha256={expected}"
    assert sandbox_sign("s3cret-one", "1760000000", BODY) == signature("s3cret-one", "1760000000", BODY)


def test_a_correctly_signed_request_names_its_account() -> None:
    assert verify(**signed("acct-1")) == "acct-1"
    assert verify(**signed("acct-2")) == "acct-2"


@pytest.mark.parametrize("skew", [-300, -1, 0, 1, 300])
def test_timestamps_within_the_window_either_side_are_accepted(skew: int) -> None:
    assert verify(**signed(at=NOW + skew)) == "acct-1"


@pytest.mark.parametrize("skew", [-301, 301, -86_400, 10**9])
def test_timestamps_outside_the_window_are_stale(skew: int) -> None:
    assert reason(**signed(at=NOW + skew)) == "stale"


@pytest.mark.parametrize("missing", ["account", "timestamp", "signature_value"])
@pytest.mark.parametrize("value", [None, ""])
def test_a_missing_header_is_refused(missing: str, value: str | None) -> None:
    assert reason(**signed(**{missing: value})) == "missing"


@pytest.mark.parametrize(("field", "value"), [
    ("account", "账户"), ("account", "acct-1\n"), ("account", " acct-1"), ("account", "a" * 65),
    ("account", "acct-1\u00e9"),
    ("timestamp", "１７６００００００"), ("timestamp", "1760000000.5"), ("timestamp", "-1"), ("timestamp", "1" * 13),
    ("timestamp", "1760000000\n"),
    ("signature_value", "sha256=" + "Z" * 64), ("signature_value", "sha256=" + "a" * 63),
    ("signature_value", "sha1=" + "a" * 40), ("signature_value", "令牌"), ("signature_value", "a" * 64),
    ("signature_value", "SHA256=" + "a" * 64), ("signature_value", "sha256=" + "٠" * 64),
])
def test_malformed_or_non_ascii_headers_are_refused_not_an_error(field: str, value: str) -> None:
    assert reason(**signed(**{field: value})) == "malformed"


def test_a_wrong_secret_another_accounts_secret_or_an_unknown_account_is_a_bad_signature() -> None:
    assert reason(**signed("acct-1", secret="guess")) == "signature"  # noqa: S106
    assert reason(**signed("acct-1", secret=SECRETS["acct-2"])) == "signature"  # signed by acct-2, claims acct-1
    assert reason(**signed("acct-3", secret="anything")) == "signature"  # noqa: S106 - an account we do not know
    assert reason(**signed("acct-1", secret="")) == "signature"


def test_any_change_to_body_timestamp_or_signature_breaks_it() -> None:
    good = signed()
    assert reason(**{**good, "body": BODY + b" "}) == "signature"
    assert reason(**{**good, "body": BODY.replace(b"delivered", b"failed")}) == "signature"
    assert reason(**{**good, "timestamp": str(NOW + 1)}) == "signature"
    sig = good["signature_value"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert reason(**{**good, "signature_value": flipped}) == "signature"
    assert reason(**{**good, "signature_value": sig.upper().replace("SHA256=", "sha256=")}) in (
        "malformed", "signature")


def test_errors_never_carry_a_secret() -> None:
    for args in (signed(secret="guess"), signed(at=0), signed(account="acct-3")):  # noqa: S106
        with pytest.raises(SignatureError) as info:
            verify(**args)
        assert all(secret not in str(info.value) for secret in SECRETS.values())


@PROPS
@given(body=st.binary(max_size=2000), account=st.sampled_from(sorted(SECRETS)), skew=st.integers(-300, 300),
       tamper=st.binary(min_size=1, max_size=8))
def test_signed_bodies_verify_and_tampered_ones_never(body: bytes, account: str, skew: int, tamper: bytes) -> None:
    assert verify(**signed(account, body=body, at=NOW + skew)) == account
    assert reason(**{**signed(account, body=body, at=NOW + skew), "body": body + tamper}) == "signature"


@PROPS
@given(account=st.text(max_size=80), timestamp=st.text(max_size=20), sig=st.text(max_size=80))
def test_arbitrary_headers_are_refused_with_a_reason_never_an_exception(account: str, timestamp: str,
                                                                        sig: str) -> None:
    with pytest.raises(SignatureError):
        verify(secrets=SECRETS, account=account, timestamp=timestamp, signature_value=sig, body=BODY,
               now=float(NOW), window_s=300.0)
