"""The customer portal's links: a one-time, expiring, signed token bound to one account of one tenant.

Plans mints them over REST and opens them (``/portal/l/<token>``); channels mints them at dispatch for the
``portal_url`` of a message. Both sign with the same key, :func:`portal_key` of the shared settings
(``PORTAL_SECRET``, else derived from ``IDENTITY_KEY``).

``<base>/portal/l/<token>``, the token base64url without padding of

    version (1) | expires, unix seconds (8) | nonce (16) | tenant (1 + n) | account id (1 + n) | MAC (32)

``MAC`` is HMAC-SHA256(the portal key, ``DOMAIN`` + everything before it), checked in constant time
before anything else is read: a tampered token is invalid whatever it claims, a genuine one past its expiry
expired. The nonce makes each link unique; plans stores it (at minting, or at first use for a link minted by
channels) and lets it be exchanged for a session once. Pure: no I/O, the clock and the nonce are passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

__all__ = ["DOMAIN", "KEY_LABEL", "MAC_BYTES", "MAX_TOKEN_CHARS", "NONCE_BYTES", "VERSION", "LinkError",
           "LinkExpired", "LinkInvalid", "PortalLink", "mint", "portal_key", "verify"]

VERSION = 1
DOMAIN = b"gentle-collections/plans/portal-link/v1\x00"
NONCE_BYTES = 16
MAC_BYTES = 32
MAX_TOKEN_CHARS = 1024
# The label of the key derived from IDENTITY_KEY when PORTAL_SECRET is unset (plans' since the portal began:
# links minted before the key moved to the shared settings still verify).
KEY_LABEL = b"gentle-collections/plans/portal-link-key/v1"
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class LinkError(Exception):
    """Why a token cannot be used; ``reason`` labels it (for the page and metrics), never a secret."""

    reason = "invalid"


class LinkInvalid(LinkError):
    """Malformed, tampered with, or signed with another key: nothing in it can be trusted."""


class LinkExpired(LinkError):
    """Genuine, but past its expiry."""

    reason = "expired"

    def __init__(self, claims: PortalLink) -> None:
        super().__init__("the link has expired")
        self.claims = claims


@dataclass(frozen=True, slots=True)
class PortalLink:
    """What a token says: account ``account_id`` of ``tenant``, once (``nonce``, hex), until ``expires_at``
    (unix seconds)."""

    tenant: str
    account_id: str
    nonce: str
    expires_at: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _short(value: str, what: str) -> bytes:
    raw = value.encode()
    if not raw or len(raw) > 255:
        raise ValueError(f"{what} must be 1-255 bytes")
    return bytes([len(raw)]) + raw


def mint(secret: bytes, *, tenant: str, account_id: str, nonce: bytes, expires_at: int) -> str:
    """A signed token for ``account_id`` of ``tenant``, with this ``nonce`` (16 bytes), valid until
    ``expires_at`` (unix seconds)."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"the nonce must be {NONCE_BYTES} bytes")
    if not _TENANT.fullmatch(tenant):
        raise ValueError("not a tenant id")
    if any(ord(c) < 32 or ord(c) == 127 for c in account_id):
        raise ValueError("the account id holds control characters")
    body = (bytes([VERSION]) + struct.pack(">Q", expires_at) + nonce + _short(tenant, "tenant")
            + _short(account_id, "account id"))
    return _b64(body + hmac.new(secret, DOMAIN + body, hashlib.sha256).digest())


def verify(token: str, secret: bytes, *, now: float) -> PortalLink:
    """The claims of a token made by :func:`mint` with ``secret``; ``LinkInvalid`` when it is malformed or
    tampered with, ``LinkExpired`` (carrying the claims) when genuine but past its expiry."""
    if not token or len(token) > MAX_TOKEN_CHARS or not _B64URL.fullmatch(token):
        raise LinkInvalid("not a link token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise LinkInvalid("not base64url") from None
    if len(raw) < 1 + 8 + NONCE_BYTES + 2 + 2 + MAC_BYTES:
        raise LinkInvalid("too short")
    body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(secret, DOMAIN + body, hashlib.sha256).digest()):
        raise LinkInvalid("bad signature")
    # signed by us: the layout below is ours, but read it defensively all the same
    if body[0] != VERSION:
        raise LinkInvalid("unknown version")
    (expires_at,) = struct.unpack(">Q", body[1:9])
    nonce = body[9:9 + NONCE_BYTES]
    rest = body[9 + NONCE_BYTES:]
    fields: list[str] = []
    for _ in range(2):
        if not rest or len(rest) < 1 + rest[0] or rest[0] == 0:
            raise LinkInvalid("truncated")
        try:
            fields.append(rest[1:1 + rest[0]].decode())
        except UnicodeDecodeError:
            raise LinkInvalid("not UTF-8") from None
        rest = rest[1 + rest[0]:]
    if rest:
        raise LinkInvalid("trailing bytes")
    claims = PortalLink(tenant=fields[0], account_id=fields[1], nonce=nonce.hex(), expires_at=expires_at)
    if now >= expires_at:
        raise LinkExpired(claims)
    return claims


def portal_key(identity_secret: bytes, secret: str | None) -> bytes:
    """The key that signs the portal's links: ``secret`` (PORTAL_SECRET) when set, else one derived from
    ``identity_secret`` (IDENTITY_KEY's bytes), so every service holding the same settings holds the same key."""
    if secret:
        return secret.encode()
    return hmac.new(identity_secret, KEY_LABEL, hashlib.sha256).digest()
