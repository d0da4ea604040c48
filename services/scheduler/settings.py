"""Scheduler settings: the shared ones (shared/settings.py) plus its own, prefixed SCHEDULER_."""

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings, service_config


class Settings(ServiceSettings):
    model_config = service_config("scheduler")
    service_name: ClassVar[str] = "scheduler"

    timer_interval_s: float = 1.0
    # Due steps claimed per timer transaction.
    timer_batch: int = Field(500, ge=1, le=10_000)
    # A step requested this long ago with no verdict (its request lost on the way) is requested again.
    request_timeout_s: float = Field(600.0, ge=5)
    # What one contact costs, per channel, in minor units of the currency the experiment report shows costs in
    # (docs/strategies.md, "The experiment report"); JSON in SCHEDULER_CONTACT_COSTS_MINOR. Assumed defaults in CNY
    # fen, the simulator's (docs/simulator.md): an SMS 0.05, an e-mail 0.01, a call 3.00, a field visit 50.00.
    contact_costs_minor: dict[str, int] = Field(default_factory=lambda: {"sms": 5, "email": 1, "call": 300,
                                                                         "field": 5000})
    # A promise to pay stays open (the treatment paused) until the end of its day plus this many days, in the
    # customer's time zone; then it is checked (docs/strategies.md, "Promises to pay").
    promise_grace_days: int = Field(1, ge=0, le=30)
