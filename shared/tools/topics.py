"""Create every topic and DLQ: ``python -m shared.tools.topics [--partitions 6]``. Idempotent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts.topics import ALL_TOPICS, CONSUMER_GROUPS, dlq_topic
from shared.settings import EMBEDDED_KAFKA

log = logging.getLogger(__name__)


def all_topic_names() -> list[str]:
    """Every topic and every consumer group's DLQ topic."""
    return [t.name for t in ALL_TOPICS] + [dlq_topic(g) for g in CONSUMER_GROUPS]


async def ensure_topics(bootstrap_servers: str, *, partitions: int = 6, replication: int = 1) -> list[str]:
    """Create missing topics; returns the names that were created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in all_topic_names() if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, partitions, replication) for name in missing])
        return missing
    finally:
        await admin.close()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--partitions", type=int, default=int(os.environ.get("KAFKA_PARTITIONS", "6")))
    parser.add_argument("--replication", type=int, default=1)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", EMBEDDED_KAFKA))
    args = parser.parse_args()
    created = asyncio.run(ensure_topics(args.bootstrap, partitions=args.partitions, replication=args.replication))
    logging.basicConfig(level="INFO")
    log.info("topics ready; created %d", len(created))


if __name__ == "__main__":
    main()
