"""Producer factory. Idempotence, linger and the request timeout are settings
(``KAFKA_ENABLE_IDEMPOTENCE``: on for Apache Kafka, the local broker lacks it;
``KAFKA_PRODUCER_LINGER_MS``; ``KAFKA_REQUEST_TIMEOUT_MS``)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from shared.settings import ServiceSettings


def create_producer(settings: ServiceSettings, *, client_id: str | None = None) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id or settings.service_name,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=settings.kafka_producer_linger_ms,
        max_batch_size=256 * 1024,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        max_request_size=settings.kafka_max_request_size,
    )
