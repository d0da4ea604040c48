"""The portal's links: the token code lives in ``shared/portal_links.py`` (channels mints links for its
messages with the same code and key); re-exported here for plans' portal."""

from shared.portal_links import (
    DOMAIN,
    KEY_LABEL,
    MAC_BYTES,
    MAX_TOKEN_CHARS,
    NONCE_BYTES,
    VERSION,
    LinkError,
    LinkExpired,
    LinkInvalid,
    PortalLink,
    mint,
    portal_key,
    verify,
)

__all__ = ["DOMAIN", "KEY_LABEL", "MAC_BYTES", "MAX_TOKEN_CHARS", "NONCE_BYTES", "VERSION", "LinkError",
           "LinkExpired", "LinkInvalid", "PortalLink", "mint", "portal_key", "verify"]
