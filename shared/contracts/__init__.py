"""Event contracts: the CloudEvents envelope, versioned payloads and the topic map."""

from shared.contracts.envelope import CloudEvent, new_event_id
from shared.contracts.topics import ALL_TOPICS, BY_NAME, Topic, dlq_topic, message_key

__all__ = ["ALL_TOPICS", "BY_NAME", "CloudEvent", "Topic", "dlq_topic", "message_key", "new_event_id"]
