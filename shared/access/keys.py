"""API keys and principals, without I/O: the key format, how a secret is hashed, the roles.

A key is ``gck_<key_id>_<secret>``: ``key_id`` (16 hex digits) names the stored row and may be shown and
logged; ``secret`` is 43 base62 characters (256 random bits) and is shown once, when the key is issued. Only
the SHA-256 of the secret is stored. A slow password hash (bcrypt, scrypt, Argon2) exists to make guessing a
*low-entropy* password from its hash expensive; a 256-bit random secret cannot be guessed at any hash speed
(2^256 tries), so a fast hash loses nothing and keeps verification cheap. No salt is needed either: every
secret is unique and random, so precomputed tables are useless.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "gck"
_BASE62 = string.ascii_letters + string.digits
SECRET_CHARS = 43  # 43 x log2(62) = 256.03 bits
KEY_ID_HEX = 16
_KEY = re.compile(rf"^{PREFIX}_(?P<key_id>[0-9a-f]{{{KEY_ID_HEX}}})_(?P<secret>[0-9A-Za-z]{{{SECRET_CHARS}}})$")
# Principal names: what audit columns record. No colon: ``static:<tenant>`` is reserved for API_KEYS keys.
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
STATIC_PREFIX = "static:"


class Role(StrEnum):
    """What a principal may do within its tenant (docs/access.md, "Roles")."""

    PARTNER = "partner"        # a partner or core system: push events and payments, post plans, read
    AGENT = "agent"            # a collector: POST /v1/checks before a contact, read
    SUPERVISOR = "supervisor"  # a team lead: approves complaint deadline extensions, places and lifts holds
    COMPLIANCE = "compliance"  # a compliance officer: holds, suppressions, consents, complaints, calendar, agencies
    STRATEGIST = "strategist"  # a collections strategist: segmentation policies, strategies, experiments
    ADMIN = "admin"            # issues, rotates and revokes keys of its tenant


ALL_ROLES: frozenset[str] = frozenset(r.value for r in Role)


def parse_roles(text: str) -> frozenset[str]:
    """``"agent,supervisor"`` -> the roles; an unknown or missing role is a ValueError naming the known ones."""
    roles = frozenset(r.strip().lower() for r in text.split(",") if r.strip())
    unknown = roles - ALL_ROLES
    if unknown or not roles:
        raise ValueError(f"unknown or missing roles {sorted(unknown) or text!r}; expected some of "
                         f"{', '.join(sorted(ALL_ROLES))}")
    return roles


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a partner system, an agent, a supervisor, a compliance officer, an admin of ``tenant``.

    ``name`` is what every change records as its author (``created_by``, ``lifted_by`` ...); ``key_id`` the key
    it presented (None for a key of the ``API_KEYS`` setting)."""

    tenant: str
    name: str
    roles: frozenset[str]
    key_id: str | None = None

    def has_any(self, roles: frozenset[str] | set[str]) -> bool:
        """Whether the principal holds at least one of ``roles``."""
        return not roles or bool(self.roles & roles)


def static_principal(tenant: str) -> Principal:
    """The principal of a key from the ``API_KEYS`` setting: every role, named ``static:<tenant>``."""
    return Principal(tenant=tenant, name=f"{STATIC_PREFIX}{tenant}", roles=ALL_ROLES)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: the text to hand over once, its id, and the hash to store."""

    key_id: str
    secret: str

    @property
    def text(self) -> str:
        return f"{PREFIX}_{self.key_id}_{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def mint() -> NewKey:
    """A new random key (``secrets``: the operating system's CSPRNG)."""
    return NewKey(key_id=secrets.token_hex(KEY_ID_HEX // 2),
                  secret="".join(secrets.choice(_BASE62) for _ in range(SECRET_CHARS)))


def parse(text: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else None (a key of the ``API_KEYS`` setting, or garbage)."""
    match = _KEY.match(text)
    return (match["key_id"], match["secret"]) if match else None


def hash_secret(secret: str) -> str:
    """The stored form of a secret: lowercase hex SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
