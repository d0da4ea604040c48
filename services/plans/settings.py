"""Plans settings: the shared ones (shared/settings.py) plus its own, prefixed PLANS_."""

import hashlib
import hmac
from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings, service_config

# The portal's link key when PLANS_PORTAL_SECRET is unset: derived from IDENTITY_KEY (so the development default
# comes from the development identity key, which APP_ENV=prod refuses).
_PORTAL_KEY_LABEL = b"gentle-collections/plans/portal-link-key/v1"


class Settings(ServiceSettings):
    model_config = service_config("plans")
    service_name: ClassVar[str] = "plans"

    # The customer portal (docs/plans.md, "Customer portal"): the HMAC-SHA256 key of its links (at least 32
    # characters; unset: derived from IDENTITY_KEY, see portal_key), how long a link works, where customers reach
    # it, and how many link openings one client address may make per 15 minutes.
    portal_secret: str | None = Field(None, min_length=32, max_length=512, repr=False)
    portal_link_ttl_hours: int = Field(72, ge=1, le=720)
    portal_base_url: str | None = Field(None, pattern=r"^https?://[^\s?#]+$", max_length=500)
    portal_openings_per_address: int = Field(60, ge=1, le=100_000)

    # Signed webhooks (docs/partners.md): attempts before a delivery is failed, the backoff (base doubling per
    # attempt, capped, with jitter), the receiver's timeout, and whether private and loopback addresses may
    # receive them (true for `make run` and the tests; production sets it false).
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(60.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(3600.0, gt=0, le=86_400)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_allow_private: bool = True
    webhook_batch: int = Field(50, ge=1, le=1000)
    webhook_poll_interval_s: float = Field(1.0, gt=0, le=60)

    # Promises to pay and plan monitoring (docs/plans.md, "Promises to pay and monitoring"): a promise's grace
    # after its due day and how far ahead it may be due; a plan's grace after an unpaid instalment's due date
    # before it breaks; how often the monitor (workers/monitor.py) decides due promises and breaks missed
    # plans, and how many of each one tick claims.
    promise_grace_days: int = Field(2, ge=0, le=30)
    promise_max_days: int = Field(30, ge=1, le=366)
    plan_grace_days: int = Field(3, ge=0, le=60)
    monitor_interval_seconds: float = Field(30.0, gt=0, le=3600)
    monitor_batch: int = Field(500, ge=1, le=10_000)

    # Negotiation (docs/plans.md, "Negotiation"): how long a quote's offers may be accepted.
    quote_ttl_minutes: int = Field(60, ge=1, le=7 * 24 * 60)

    @property
    def portal_key(self) -> bytes:
        """The key that signs the portal's links: PLANS_PORTAL_SECRET, else one derived from IDENTITY_KEY."""
        if self.portal_secret:
            return self.portal_secret.encode()
        return hmac.new(self.identity_secret, _PORTAL_KEY_LABEL, hashlib.sha256).digest()
