"""Field-level encryption for PII: AES-256-GCM with a key id, so keys can rotate.

A sealed value is ``pii:v1:<key id>:<base64url(nonce || ciphertext+tag)>``. The database and the
Kafka log only ever hold sealed values for names, phones, e-mails, addresses and ID numbers.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "pii:v1:"


class PiiCryptoError(ValueError):
    """A sealed value could not be opened (unknown key, tampered, or not sealed at all)."""


def is_sealed(value: str) -> bool:
    """True when ``value`` looks like a sealed PII value."""
    return value.startswith(PREFIX) and value.count(":") == 3


class PiiCipher:
    """Seals and opens PII with the active key; opens with any known key."""

    def __init__(self, keys: Mapping[str, str], active_key: str) -> None:
        self._keys = {kid: AESGCM(base64.b64decode(key)) for kid, key in keys.items()}
        for kid, key in keys.items():
            if len(base64.b64decode(key)) != 32:
                raise ValueError(f"PII key {kid!r} must be 32 bytes (base64-encoded)")
        if active_key not in self._keys:
            raise ValueError(f"active PII key {active_key!r} is unknown")
        self._active = active_key

    def seal(self, plaintext: str, *, context: str = "") -> str:
        """Encrypt ``plaintext``; ``context`` (e.g. the tenant) is bound as associated data."""
        nonce = os.urandom(12)
        ct = self._keys[self._active].encrypt(nonce, plaintext.encode(), context.encode() or None)
        return f"{PREFIX}{self._active}:{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def open(self, sealed: str, *, context: str = "") -> str:
        """Decrypt a value made by :meth:`seal` with the same ``context``."""
        if not is_sealed(sealed):
            raise PiiCryptoError("value is not a sealed PII value")
        _, _, kid, blob = sealed.split(":", 3)
        aead = self._keys.get(kid)
        if aead is None:
            raise PiiCryptoError(f"unknown PII key id {kid!r}")
        try:
            raw = base64.urlsafe_b64decode(blob)
            return aead.decrypt(raw[:12], raw[12:], context.encode() or None).decode()
        except Exception as exc:  # InvalidTag carries no message
            raise PiiCryptoError("sealed PII value failed authentication") from exc

    def seal_optional(self, plaintext: str | None, *, context: str = "") -> str | None:
        """Seal ``value`` unless it is None."""
        return None if plaintext is None else self.seal(plaintext, context=context)

    def open_optional(self, sealed: str | None, *, context: str = "") -> str | None:
        """Open ``value`` unless it is None."""
        return None if sealed is None else self.open(sealed, context=context)
