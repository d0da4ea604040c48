"""Signed webhooks from the SMS provider: HMAC-SHA256 over ``timestamp + "." + raw body``.

The provider signs every delivery-receipt POST with the secret of the provider account the messages
were sent through, and sends three headers:

- ``X-Account``: the provider account id (which secret to check with);
- ``X-Timestamp``: when it signed, Unix seconds (ASCII digits);
- ``X-Signature``: ``sha256=`` and the lowercase hex HMAC-SHA256 of ``<X-Timestamp>.<raw body>``.

A request is authentic when the account is known, the timestamp is within the replay window of our
clock (either side), and the signature matches (compared in constant time). Header values are checked
against strict ASCII patterns first, so a hostile value (non-ASCII, too long) is refused as malformed,
never an error. Pure: no I/O, the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

ACCOUNT_HEADER = "X-Account"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
SCHEME = "sha256="

ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")
# compared against when the account is unknown, so that an unknown account costs the same work
_NO_SECRET = b"\x00" * 32


class SignatureError(Exception):
    """Why a webhook request is not authentic; ``reason`` is a short label (for metrics), never a secret."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Signature`` value for ``body`` signed at ``timestamp`` with ``secret``."""
    return SCHEME + _digest(secret.encode(), timestamp, body)


def _digest(key: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(*, secrets: Mapping[str, str], account: str | None, timestamp: str | None, signature_value: str | None,
           body: bytes, now: float, window_s: float) -> str:
    """Return the provider account that signed ``body``; raise :class:`SignatureError` otherwise."""
    if not account or not timestamp or not signature_value:
        raise SignatureError("missing", f"Send {ACCOUNT_HEADER}, {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}.")
    if (not ACCOUNT_ID.fullmatch(account) or not _TIMESTAMP.fullmatch(timestamp)
            or not _SIGNATURE.fullmatch(signature_value)):
        raise SignatureError("malformed", f"{ACCOUNT_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} is malformed.")
    if abs(now - int(timestamp)) > window_s:
        raise SignatureError("stale", f"{TIMESTAMP_HEADER} is outside the replay window.")
    secret = secrets.get(account)
    expected = _digest(secret.encode() if secret else _NO_SECRET, timestamp, body)
    # both sides are ASCII (the pattern above, and hexdigest), so compare_digest cannot raise
    matches = hmac.compare_digest(expected, signature_value[len(SCHEME):])
    if secret is None or not matches:
        raise SignatureError("signature", "The signature does not match.")
    return account
