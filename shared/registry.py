"""The one list of services: name, default port, PostgreSQL schema, environment prefix, event source.

Settings, migrations, the local stack, the container healthcheck and the deploy manifests read it
(``deploy/`` is checked against it by tests); adding a service starts here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """What the rest of the system needs to know about one service."""

    name: str
    port: int
    description: str

    @property
    def schema(self) -> str:
        """The PostgreSQL schema the service owns (one schema per service, one database)."""
        return self.name

    @property
    def env_prefix(self) -> str:
        """Prefix of the service's own settings in the environment, e.g. ``SCHEDULER_PORT``."""
        return f"{self.name.upper()}_"

    @property
    def consumer_group(self) -> str:
        """The Kafka consumer group; its dead letters go to ``<group>.dlq``."""
        return self.name

    @property
    def source(self) -> str:
        """The CloudEvents ``source`` of the events the service publishes."""
        return f"urn:gentle-collections:{self.name}"

    @property
    def module(self) -> str:
        """Run it with ``python -m <module>``."""
        return f"services.{self.name}"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("segmentation", 8001, "Ingests overdue accounts and payments (Kafka, and partners' REST calls) "
                                      "and classifies accounts into segments."),
    ServiceSpec("scheduler", 8002, "Runs each account's treatment timeline and asks for contacts."),
    ServiceSpec("compliance", 8003, "Approves, defers or blocks every contact (contact hours, duplicates)."),
    ServiceSpec("channels", 8004, "Makes approved contacts: SMS and e-mail, call and visit tasks for agents."),
    ServiceSpec("plans", 8005, "Records repayment plans and follows their instalments."),
)
BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}
NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)


def spec(name: str) -> ServiceSpec:
    """The service called ``name``; a clear error for a typo."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; expected one of {', '.join(NAMES)}") from None
