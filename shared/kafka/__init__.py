"""Kafka plumbing: producer factory, consumer runner with inbox/DLQ, outbox relay."""
