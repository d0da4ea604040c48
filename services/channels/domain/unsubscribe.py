"""Unsubscribe links in our e-mails: signed, expiring tokens (RFC 8058 one-click, and a confirmation page).

Every collection e-mail carries ``<base>/v1/unsubscribe/<token>`` in its body and in ``List-Unsubscribe``.
The token is the credential: whoever holds it may stop e-mails to that address for that tenant, nothing
else. It binds the tenant, the customer, the contact (the e-mail it came in), the address as its keyed hash
(``cp1:``, shared/identity.py: the address itself is never in the URL), the customer's locale and an expiry.

Layout (then base64url without padding; about 130 characters for a UUID contact id):

    version (1) | key id (1 + n) | expires, unix seconds (4) | locale (1) | destination key (16)
    | contact id (2 + 16 for a UUID, else 2 + n) | tenant (1 + n) | customer id (2 + n) | MAC (16)

``MAC`` is the first 16 bytes of HMAC-SHA256(key, ``DOMAIN`` + everything before it), compared in constant
time. The key id names which of the configured keys signed it (keys rotate; a retired key stays configured
while its links may still be used). The MAC is checked before anything else is read, and before expiry: a
tampered token is "invalid" (400) whatever it claims, a genuine one past its expiry "expired" (410). Pure:
no I/O, the clock is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

VERSION = 1
DOMAIN = b"gentle-collections/channels/unsubscribe/v1\x00"
MAC_BYTES = 16
MAX_TOKEN_CHARS = 2048
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,16}")
_TENANT = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DESTINATION_KEY = re.compile(r"cp1:([0-9a-f]{32})")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_LOCALES = ("en", "zh-CN")


class TokenError(Exception):
    """Why a token cannot be used; ``reason`` is a short label (for metrics and the page), never a secret."""

    reason = "invalid"


class TokenInvalid(TokenError):
    """Malformed, tampered with, or signed with a key we do not hold: nothing in it can be trusted."""


class TokenExpired(TokenError):
    """Genuine, but past its expiry."""

    reason = "expired"

    def __init__(self, claims: Unsubscribe) -> None:
        super().__init__("the link has expired")
        self.claims = claims


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """What a token says: stop e-mails to ``destination_key`` of ``customer_id`` for ``tenant``; it came in
    the e-mail ``contact_id``, for a customer of ``locale`` (``zh-CN`` or ``en``), until ``expires_at``."""

    tenant: str
    customer_id: str
    contact_id: str
    destination_key: str
    locale: str
    expires_at: int

    @property
    def message_id(self) -> str:
        """The id of this unsubscribe request (one per e-mail): ``channels.opt-out.v1``'s ``message_id``."""
        return f"unsub:{self.contact_id}"


def _short(value: str, what: str) -> bytes:
    raw = value.encode()
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"{what} must be 1 to 255 bytes")
    return bytes([len(raw)]) + raw


def _long(value: str, what: str) -> bytes:
    raw = value.encode()
    if not 1 <= len(raw) <= 1024:
        raise ValueError(f"{what} must be 1 to 1024 bytes")
    return struct.pack(">H", len(raw)) + raw


def _mac(key: bytes, signed: bytes) -> bytes:
    return hmac.new(key, DOMAIN + signed, hashlib.sha256).digest()[:MAC_BYTES]


def issue(claims: Unsubscribe, *, key_id: str, key: bytes) -> str:
    """The token for ``claims``, signed with ``key`` (named ``key_id``). ValueError for claims that cannot be
    carried (a destination key that is not ``cp1:``, an unknown locale, an id too long)."""
    if not KEY_ID.fullmatch(key_id):
        raise ValueError("invalid key id")
    found = _DESTINATION_KEY.fullmatch(claims.destination_key)
    if found is None:
        raise ValueError("the destination key must be a cp1: key")
    if claims.locale not in _LOCALES:
        raise ValueError(f"locale must be one of {_LOCALES}")
    if not _TENANT.fullmatch(claims.tenant):
        raise ValueError("invalid tenant id")
    if not 0 < claims.expires_at < 2**32:
        raise ValueError("expiry out of range")
    try:  # a UUID (as the scheduler's contact ids are) in 16 bytes, behind a length of 0
        parsed = uuid.UUID(claims.contact_id)
        contact = b"\x00\x00" + parsed.bytes if str(parsed) == claims.contact_id else _long(claims.contact_id,
                                                                                          "contact id")
    except ValueError:
        contact = _long(claims.contact_id, "contact id")
    signed = b"".join((
        bytes([VERSION]), _short(key_id, "key id"), struct.pack(">I", claims.expires_at),
        bytes([_LOCALES.index(claims.locale)]), bytes.fromhex(found.group(1)), contact,
        _short(claims.tenant, "tenant"), _long(claims.customer_id, "customer id")))
    return base64.urlsafe_b64encode(signed + _mac(key, signed)).rstrip(b"=").decode("ascii")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise TokenInvalid("truncated")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def text(self, n: int) -> str:
        if n == 0:
            raise TokenInvalid("empty field")
        try:
            return self.take(n).decode()
        except UnicodeDecodeError:
            raise TokenInvalid("not UTF-8") from None

    def short(self) -> str:
        return self.text(self.take(1)[0])

    def long(self) -> str:
        return self.text(struct.unpack(">H", self.take(2))[0])


def read(token: str, *, keys: Mapping[str, bytes], now: float) -> Unsubscribe:
    """The claims of a genuine, unexpired token. TokenInvalid (malformed, tampered, unknown key) or
    TokenExpired (genuine but too old: its claims are attached, for the page's language only)."""
    if not token or len(token) > MAX_TOKEN_CHARS or not _B64URL.fullmatch(token) or len(token) % 4 == 1:
        raise TokenInvalid("malformed")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenInvalid("malformed") from None
    if len(data) <= MAC_BYTES:
        raise TokenInvalid("truncated")
    signed, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    r = _Reader(signed)
    if r.take(1)[0] != VERSION:
        raise TokenInvalid("unknown version")
    key_id = r.short()
    key = keys.get(key_id)
    if key is None:
        _mac(b"\x00" * 32, signed)  # the same work as for a known key
        raise TokenInvalid("unknown key")
    if not hmac.compare_digest(_mac(key, signed), mac):
        raise TokenInvalid("signature")
    # genuine from here on: a failure below is a token we never issued, still refused, never an error
    (expires_at,) = struct.unpack(">I", r.take(4))
    locale_index = r.take(1)[0]
    if locale_index >= len(_LOCALES):
        raise TokenInvalid("unknown locale")
    destination_key = "cp1:" + r.take(16).hex()
    (contact_length,) = struct.unpack(">H", r.take(2))
    contact_id = str(uuid.UUID(bytes=r.take(16))) if contact_length == 0 else r.text(contact_length)
    tenant, customer_id = r.short(), r.long()
    if r.at != len(signed) or not _TENANT.fullmatch(tenant) or len(customer_id) > 128 or len(contact_id) > 128:
        raise TokenInvalid("malformed claims")
    claims = Unsubscribe(tenant, customer_id, contact_id, destination_key, _LOCALES[locale_index], expires_at)
    if now >= expires_at:
        raise TokenExpired(claims)
    return claims
