"""Plans settings: the shared ones (shared/settings.py) plus its own, prefixed PLANS_."""

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("plans")
    service_name: ClassVar[str] = "plans"

    # The customer portal (docs/plans.md, "Customer portal"): how many link openings one client address may make
    # per 15 minutes. Its links' key, base URL and lifetime are shared settings (PORTAL_SECRET, PORTAL_BASE_URL,
    # PORTAL_LINK_TTL_HOURS in shared/settings.py: channels mints links for its messages too).
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
