"""Producer factory; idempotence is a setting (Apache Kafka: on; the local broker lacks it)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.settings import ServiceSettings


def create_producer(settings: ServiceSettings, *, client_id: str | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id or settings.service_name,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15000,
    )
