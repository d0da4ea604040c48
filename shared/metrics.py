"""Every metric name, defined once, on the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request latency", ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_CONSUMED = Counter("events_consumed_total", "Events handled and committed", ["group", "topic"])
EVENTS_DUPLICATE = Counter("events_duplicate_total", "Redelivered events skipped by the inbox", ["group", "topic"])
EVENTS_FAILED = Counter("events_failed_total", "Handler attempts that raised", ["group", "topic"])
EVENTS_DEAD_LETTERED = Counter("events_dead_lettered_total", "Poison events sent to the DLQ", ["group", "topic"])
HANDLER_LATENCY = Histogram(
    "event_handler_duration_seconds", "Handler latency per batch, including its transaction", ["group", "topic"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_LAG = Gauge("consumer_lag", "Events not yet committed per assigned partition: last known high watermark "
                     "minus the offset this consumer committed", ["group", "topic", "partition"])
CONSUMER_HALTED = Gauge("consumer_halted", "1 when a consumer stopped itself (DLQ limit, unexpected error)", ["group"])
CONSUMER_RETRYING = Gauge("consumer_retrying", "1 while a transient error (database or broker unreachable) outlasts "
                          "the retries taken quietly: the consumer waits it out, not ready", ["group"])
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published")
OUTBOX_OLDEST_AGE = Gauge("outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row")
OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to Kafka", ["topic"])
CONTACT_DECISIONS = Counter("contact_decisions_total", "Compliance decisions", ["outcome", "rule"])
CONTACTS_SENT = Counter("contacts_sent_total", "Contacts handed to a provider", ["channel", "outcome"])
REQUESTS_RESENT = Counter("scheduler_requests_resent_total",
                          "Contact requests sent again after no verdict came within SCHEDULER_REQUEST_TIMEOUT_S")
# Compliance's complaint clocks (CN-COMPLAINT: an answer within 15 days, 30 if complex, 60 at most with an
# approved extension; an open complaint holds its account). Read from the database by a background loop of
# compliance (services/compliance/workers/clocks.py), never at scrape time: the last values stay while the
# database is away, and the timestamp says how old they are.
COMPLAINTS_OPEN = Gauge("compliance_complaints_open", "Open complaints (each holds its account until answered)",
                        ["tenant"])
COMPLAINTS_DUE_SOON = Gauge("compliance_complaints_due_soon", "Open complaints not yet overdue whose answer is "
                            "due within the window (within: 72h, 24h)", ["tenant", "within"])
COMPLAINTS_OVERDUE = Gauge("compliance_complaints_overdue", "Open complaints past their answer deadline", ["tenant"])
COMPLAINT_CLOCKS_REFRESHED = Gauge("compliance_complaint_clocks_refreshed_timestamp_seconds",
                                   "When the complaint gauges were last read from the database (Unix time; "
                                   "0 until the first read)")
