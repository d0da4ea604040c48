"""The event catalogue for integrators, rendered from the contracts: ``docs/events.md``.

``python -m shared.tools.catalog`` writes it and the AsyncAPI 3.0 document ``docs/asyncapi.yaml``
(rendered by :mod:`shared.tools.asyncapi` from the same maps and examples); ``--check`` exits 1 when
either committed file differs from what the contracts say (``make docs`` regenerates both). Field
tables come from the payload models' JSON schemas, so the catalogue cannot drift from the code; the
examples below are validated against the envelope and the topic's payload model on every render.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.topics import ALL_TOPICS, BY_NAME, CONSUMER_GROUPS, Topic, dlq_topic, message_key
from shared.crypto import PREFIX, is_sealed
from shared.settings import EMBEDDED_KAFKA, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "events.md"
ASYNCAPI_PATH = ROOT / "docs" / "asyncapi.yaml"
HINT = "{files} out of date with shared/contracts: run `make docs` and commit the result"

# Who consumes what (consumer group = service name). tests/contracts/test_catalog.py checks this
# against the services' handler maps.
CONSUMERS: dict[str, tuple[str, ...]] = {
    "core.account-overdue.v1": ("segmentation", "plans"),
    "core.payment-received.v1": ("segmentation", "scheduler", "plans"),
    "core.instalment-due.v1": ("segmentation",),
    "segmentation.account-segmented.v1": ("scheduler", "plans"),
    "scheduler.contact-requested.v1": ("compliance",),
    "compliance.contact-approved.v1": ("channels",),
    "compliance.contact-rejected.v1": ("scheduler",),
    "channels.contact-outcome.v1": ("scheduler", "compliance"),
    "plans.plan-event.v1": ("scheduler", "compliance", "plans"),
    "compliance.hold-changed.v1": ("scheduler", "channels"),
    "channels.opt-out.v1": ("compliance",),
    "plans.promise-event.v1": ("scheduler", "compliance", "plans"),
    "plans.write-off.v1": ("plans",),
    "plans.customer-request.v1": ("compliance",),
}

PRODUCERS: dict[str, str] = {
    "core.account-overdue.v1":
        "core banking (Kafka); partners via REST `POST /v1/overdue-events` (segmentation)",
    "core.payment-received.v1":
        "core banking (Kafka); partners via REST `POST /v1/payments` (segmentation)",
    "core.instalment-due.v1":
        "core banking (Kafka); partners via REST `POST /v1/due-events` (segmentation)",
    "segmentation.account-segmented.v1": "segmentation",
    "scheduler.contact-requested.v1": "scheduler",
    "compliance.contact-approved.v1": "compliance",
    "compliance.contact-rejected.v1": "compliance",
    "channels.contact-outcome.v1": "channels",
    "plans.plan-event.v1": "plans",
    "compliance.hold-changed.v1": "compliance",
    "channels.opt-out.v1": "channels",
    "plans.promise-event.v1": "plans",
    "plans.write-off.v1": "plans",
    "plans.customer-request.v1": "plans (the customer portal)",
}

# The envelope ``subject``: a path into ``data``.
SUBJECTS: dict[str, tuple[str, ...]] = {
    "core.account-overdue.v1": ("account_id",),
    "core.payment-received.v1": ("account_id",),
    "core.instalment-due.v1": ("account_id",),
    "segmentation.account-segmented.v1": ("account_id",),
    "scheduler.contact-requested.v1": ("contact_id",),
    "compliance.contact-approved.v1": ("request", "contact_id"),
    "compliance.contact-rejected.v1": ("contact_id",),
    "channels.contact-outcome.v1": ("contact_id",),
    "plans.plan-event.v1": ("plan_id",),
    "compliance.hold-changed.v1": ("hold_id",),
    "channels.opt-out.v1": ("message_id",),
    "plans.promise-event.v1": ("promise_id",),
    "plans.write-off.v1": ("write_off_id",),
    "plans.customer-request.v1": ("request_id",),
}

# Headers the consumer runner puts on a dead letter (shared/kafka/consumer.py, ConsumerRunner._dead_letter).
DLQ_HEADERS: dict[str, str] = {
    "dlq.group": "consumer group that gave up on the message",
    "dlq.origin.topic": "topic the message was read from",
    "dlq.origin.partition": "its partition (decimal string)",
    "dlq.origin.offset": "its offset (decimal string)",
    "dlq.error": "why: validation errors or the handler's exception (UTF-8, at most 4,000 bytes)",
    "dlq.time": "when it was dead-lettered, Unix epoch milliseconds (decimal string)",
}
DLQ_OPTIONAL_HEADERS: dict[str, str] = {
    "dlq.truncated": "only on a message too large to dead-letter whole: its original size in bytes, key and value "
                     "(decimal string); the value is cut to `DLQ_MAX_MESSAGE_BYTES`",
}

ENVELOPE_DOCS: dict[str, str] = {
    "specversion": "Always `1.0`.",
    "id": "Unique per fact. Consumers dedupe on it: resend the same fact with the same `id`.",
    "source": "URI-reference of the producer, e.g. `urn:<tenant>:core-banking`.",
    "type": "Event type; must be the one listed for the topic, else the event is dead-lettered.",
    "subject": "What the event is about (each topic names the field).",
    "time": "When the fact happened: RFC 3339 in UTC (`Z`). An offset is converted to UTC; "
            "a time without offset is rejected.",
    "datacontenttype": "Always `application/json`.",
    "dataschema": "`urn:gentle-collections:<topic>`.",
    "tenant": "*Extension.* Tenant id (bank or co-lending partner); must equal `data.tenant`.",
    "traceparent": "*Extension.* W3C Trace Context; our services pass it on to the events they cause.",
    "correlationid": "*Extension.* Id of the first event of a chain; copied onward by our services.",
    "causationid": "*Extension.* `id` of the event that caused this one.",
    "data": "The payload, validated against the topic's payload model.",
}

# Field descriptions: "Model.field" first, then "field". tests/contracts/test_catalog.py requires one for
# every field, so a new field needs a line here (or a ``Field(description=...)`` in events.py).
FIELD_DOCS: dict[str, str] = {
    "tenant": "Tenant id (the bank or co-lending partner); equals the envelope `tenant`.",
    "account_id": "Account (loan) id in the tenant's core system.",
    "customer_id": "Customer id in the tenant's core system; with `tenant`, the Kafka key.",
    "currency": "ISO 4217 code of every `*_minor` amount in the event.",
    "days_past_due": "Days past due (DPD) when the event was produced.",
    "due_date": "The missed due date that started this delinquency cycle.",
    "overdue_minor": "Amount past due, in minor units of `currency`.",
    "outstanding_minor": "Total outstanding balance, in minor units of `currency`.",
    "contact": "How to reach the customer; PII fields sealed.",
    "contact_id": "Id of one contact (account, treatment step, delinquency cycle): the same across "
                  "retries and replays.",
    "channel": "Contact channel.",
    "segment": "Segment the account is in.",
    "decision_id": "Id of the compliance decision (audit trail).",
    "occurred_at": "When it happened (UTC).",
    "locale": "Language of messages to the customer.",
    "borrower_key": "One debtor across accounts and lenders: `bk1:` and 32 hex digits of a keyed HMAC of the "
                    "national ID (else the E.164 phone), computed by segmentation with `IDENTITY_KEY` "
                    "(shared/identity.py). Compliance counts contact caps by it; never a plaintext identifier. "
                    "Absent when the account has neither.",
    "account_ref": "How the customer knows the account, as the lender shows it: the last 2-6 letters or "
                   "digits of its card or account number (`8842` reads 尾号8842 / \"ending 8842\"). Longer values "
                   "are refused, so a full number never travels in clear. Without it messages name no number.",
    "time_zone": "The customer's IANA time zone; contact hours are checked in it.",
    "CustomerContact.name": "Full name, sealed.",
    "CustomerContact.phone": "Mobile number in E.164 (`+8613800138000`) before sealing.",
    "CustomerContact.email": "E-mail address, sealed.",
    "CustomerContact.address": "Postal address (for field visits), sealed.",
    "CustomerContact.national_id": "National ID number, sealed; when given, it (not the phone) identifies the "
                                   "debtor across accounts and lenders (`borrower_key`).",
    "CoLender.tenant": "The co-lending partner's tenant id.",
    "WriteOffV1.plan_id": "The settlement or waiver agreement (a plan) that was fulfilled.",
    "promise_id": "The promise's id in plans.",
    "write_off_id": "The write-off's id in plans: core banking applies each id once.",
    "request_id": "The customer request's id in plans.",
    "CoLender.share": "Its share of the loan as a fraction in (0, 1], the older form of `share_bp` (a whole "
                      "number of basis points). A JSON string (`\"0.3\"`) keeps it exact.",
    "AccountOverdueV1.product": "Product code, e.g. `consumer-loan`.",
    "InstalmentDueV1.product": "Product code, e.g. `consumer-loan`.",
    "InstalmentDueV1.credit_rating": "Credit rating, A (best) to E.",
    "InstalmentDueV1.credit_score": "Credit score, 300-950.",
    "InstalmentDueV1.co_lenders": "Co-lending partners and their shares; empty when the tenant lends alone.",
    "InstalmentDueV1.amount_due_minor": "The instalment falling due, in minor units of `currency`.",
    "InstalmentDueV1.due_date": "When it falls due. Sent some days before (the early warning: docs/strategies.md); "
                                "once it is past due, core banking sends `core.account-overdue.v1` as before.",
    "AccountOverdueV1.credit_rating": "Credit rating, A (best) to E.",
    "AccountOverdueV1.credit_score": "Credit score, 300-950.",
    "AccountOverdueV1.co_lenders": "Co-lending partners and their shares; empty when the tenant lends alone.",
    "PaymentReceivedV1.payment_id": "Payment id in the core system, unique per tenant.",
    "PaymentReceivedV1.amount_minor": "Amount paid, in minor units of `currency`.",
    "PaymentReceivedV1.paid_at": "When the payment was booked (UTC).",
    "AccountSegmentedV1.dpd_bucket": "DPD bucket: `0` (the due date and before), `1-15`, `16-30`, `31-60`, "
                                     "`61-90` or `90+`.",
    "AccountSegmentedV1.days_past_due": "Days past due at `as_of`; negative for an instalment announced before "
                                        "its due date (`core.instalment-due.v1`: the days left).",
    "AccountSegmentedV1.overdue_minor": "Amount past due at `as_of` as reported (for an instalment announced "
                                        "before its due date: the amount falling due), in minor units of "
                                        "`currency`.",
    "AccountSegmentedV1.as_of": "Time of the overdue fact classified (its event `time`): payments booked "
                                "after it are not yet deducted from `overdue_minor`. Absent from older "
                                "producers: read the envelope `time`.",
    "AccountSegmentedV1.score": "The account's repayment-propensity score at `as_of` (docs/scoring.md); absent "
                                "or `null` when no scorecard scored it (additive in v1).",
    "PropensityScore.scorecard": "The scorecard version that scored it (the model registry's).",
    "PropensityScore.points": "Scorecard points: higher is likelier to pay.",
    "PropensityScore.probability": "Probability of curing (paying the overdue amount off) within 30 days, "
                                   "0-1, four decimals; a JSON string (`\"0.6180\"`) keeps it exact.",
    "PropensityScore.reasons": "Reason codes, the features that cost the most points first (e.g. `DPD`, "
                               "`RATING`): docs/scoring.md lists them.",
    "AccountSegmentedV1.reason":
        "Why this segment: policy version, rating and DPD (for people, not parsing).",
    "ContactRequestV1.attempt": "1 for the first request; one more each time compliance defers the contact.",
    "ContactRequestV1.treatment_step": "The strategy step that asked for the contact (docs/strategies.md): the "
                                       "built-in strategy's `pre-due`, `reminder`, `call` or `field-visit`, a "
                                       "tenant strategy's own step ids, and `<id>/retry-<n>` or `<id>/fallback-<n>` "
                                       "for a retry or a fallback after a failed contact.",
    "ContactRequestV1.destination": "Sealed phone (sms, call), e-mail (email) or address (field); "
                                    "`null` when there is none.",
    "ContactRequestV1.template_id": "Message template, e.g. `reminder.sms`.",
    "ContactRequestV1.requested_at": "When the scheduler asked (UTC).",
    "ContactApprovedV1.request": "The approved request, unchanged.",
    "ContactRejectedV1.attempt": "The attempt that was rejected.",
    "ContactRejectedV1.rule_id": "The rule that decided, e.g. `CN-HOURS` (contact hours) or `HOUSE-DUP`.",
    "ContactRejectedV1.reason": "Human-readable reason.",
    "ContactRejectedV1.retry_at":
        "Deferred: when the scheduler may ask again (UTC). `null`: blocked for good.",
    "ContactOutcomeV1.outcome": "`sent` / `delivered` by a provider, `failed`, `task_created` (a call or "
                                "visit task for an agent), `unknown`, or `revoked` (a hold placed after the "
                                "approval stopped it before it was sent). A dialer's or agent's call result: "
                                "`no_answer` (rang out unanswered), `busy`, `voicemail` (a mailbox or answering "
                                "machine took it): dialled, the customer not reached (the scheduler treats them "
                                "like `failed`; compliance counts them against CN-ATTEMPTS); `connected` (a person "
                                "answered) or `right_party_contact` (the debtor, identity confirmed): a "
                                "conversation (treated like `delivered`; counted by CN-CONNECTS and US-7IN7). The "
                                "call results are new in v1: consumers are deployed before producers send them "
                                "(see Versioning).",
    "ContactOutcomeV1.promise": "A promise to pay the customer made in the conversation (`connected` or "
                                "`right_party_contact` only; additive in v1): the scheduler pauses the treatment "
                                "until the promise's day ends (plus SCHEDULER_PROMISE_GRACE_DAYS), then checks "
                                "the payments since; a broken promise resumes it and counts for the strategy's "
                                "escalations (docs/strategies.md).",
    "PromiseToPay.amount_minor": "The amount promised, in minor units of `currency`.",
    "PromiseToPay.due_on": "Paid by the end of this day, the customer's local time.",
    "ContactOutcomeV1.provider_ref": "The provider's message id, when there is one.",
    "ContactOutcomeV1.detail": "Error or note, e.g. why sending failed.",
    "Instalment.seq": "Position in the schedule, from 1.",
    "Instalment.due_date": "When this instalment is due.",
    "Instalment.amount_minor": "Instalment amount, in minor units of the plan's `currency`.",
    "ContactOptOutV1.destination_key": "The contact point, as a keyed hash (`cp1:`, shared/identity.py): "
                                       "the number or address is never on the bus in clear.",
    "ContactOptOutV1.keyword": "What the customer wrote, normalised (`TD`, `退订`, `STOP`, `UNSUBSCRIBE`, ...).",
    "ContactOptOutV1.message_id": "The provider's id of the reply (or of the unsubscribe request): one opt-out "
                                  "per message, however often the provider delivers it.",
    "ContactOptOutV1.received_at": "When the provider received the reply (UTC).",
    "ContactOptOutV1.source": "`sms-reply` (a reply to our SMS) or `email-link` (the signed unsubscribe link).",
    "HoldChangedV1.hold_id": "Id of the hold in compliance.",
    "HoldChangedV1.account_id": "The account held; absent: every account of the customer.",
    "HoldChangedV1.kind": "Why contact is held: `plan`, `promise`, `dispute`, `complaint`, `validation`, "
                          "`hardship`, `breathing_space`, `mental_health`, `vulnerability`, `deceased`, "
                          "`bankrupt`, `cease`.",
    "HoldChangedV1.action": "`placed` (channels revokes contacts approved for it and not yet sent) or `lifted`.",
    "HoldChangedV1.reason": "Why, for people.",
    "HoldChangedV1.starts_at": "When the hold starts (UTC).",
    "HoldChangedV1.ends_at": "When it ends by itself (UTC); absent: until lifted.",
    "PlanEventV1.plan_id": "Repayment plan id.",
    "PlanEventV1.kind": "What happened to the plan.",
    "PlanEventV1.total_minor": "Total the plan repays, in minor units of `currency`.",
    "PlanEventV1.instalments": "The schedule.",
}

# Cross-field rules the JSON schema cannot express (the models' validators).
MODEL_RULES: dict[str, tuple[str, ...]] = {
    "AccountOverdueV1": (
        "At least one of `credit_rating` and `credit_score`; when both are given, the worse one counts.",
        "`overdue_minor` must not exceed `outstanding_minor`.",
        "Each co-lender gives `share_bp` (basis points) or `share` (a fraction that is a whole number of basis "
        "points), or both agreeing; the co-lenders' shares add up to at most 10,000 basis points (the servicer, "
        "the event's tenant, holds the rest); each co-lender is listed once, and never the servicer itself.",
    ),
    "InstalmentDueV1": (
        "The same rules for `credit_rating`/`credit_score` and `co_lenders` as `AccountOverdueV1`; "
        "`amount_due_minor` must not exceed `outstanding_minor`.",
    ),
    "ContactApprovedV1": (
        "No top-level `tenant`: the tenant is `request.tenant`, the same as the envelope's.",
    ),
}

# Python-side validators that the JSON schema does not show.
_VALIDATOR_NOTES = {
    ev._require_sealed: "sealed PII (`pii:v1:…`)",
    ev._require_zone: "IANA time zone",
}

# --- examples -------------------------------------------------------------------------------------------

TENANT = "tenant-a"
CUSTOMER = "C-100042"
ACCOUNT = "LN-2025-000731"
# contact_id_for(tenant-a, LN-2025-000731, reminder, 2025-03-10) in services/scheduler/domain/timeline.py
CONTACT_ID = "255a3563-727a-5b52-a8e8-d08688078ce4"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Sealed with PiiCipher: the development key "dev1" (shared/settings.py), context "tenant-a", fixed nonces.
SEALED_NAME = "pii:v1:dev1:gqNTf_Dbzn7sNdae7oIUtDEST9TQvldCNZyOynPWY-p2xQIdZw=="
SEALED_PHONE = "pii:v1:dev1:RVadpX9Le_Ry16hkzjeGte0NA47eNK2K6GTANgc3d9Gniy4WT8HUNi-4"
SEALED_EMAIL = "pii:v1:dev1:giREF_lWrHxZnxkVvDaXGlVqDtYnUf1VipDtj7SQxknRfEn7E0cgtlStJXms3zhJ9NJ3enE="
SEALED_ADDRESS = ("pii:v1:dev1:2Ayb-RDxRHOO-YNygMTRfDH-_A_otqkifkYfemS32zKyzHfHfi8CQT2zPEzxlsien4oJgU-"
                  "dQHt3p1JeAdgpHvvaLMNnWg==")
# What the sealed examples hold (the tests open them with the development key).
SEALED_PLAINTEXT = {
    SEALED_NAME: "王小明",
    SEALED_PHONE: "+8613800138000",
    SEALED_EMAIL: "wang.xiaoming@example.com",
    SEALED_ADDRESS: "浙江省杭州市西湖区文三路100号",
}

_OVERDUE_ID = "9b2f6c1e-4a7d-4f0b-8e3a-2d5c7b9e1f04"
_SEGMENTED_ID = "3c8e1d47-0f6a-4b92-9d15-6e7a2b4c8f31"
_REQUESTED_ID = "e1a4b7c2-5d8f-4e3a-b6c9-0f2d4a6b8c1e"
_TIMER_REQUEST_ID = "7d9f2b64-1c3e-4a85-b7d0-9e2f4a6c8b13"  # attempt 2, issued by the scheduler's timer
_REJECTED_ID = "b5c7d9e1-2f4a-4b6c-8d0e-1a3c5e7f9b2d"
_APPROVED_ID = "4f6a8c0e-2b4d-4f68-9a1c-3e5b7d9f1a2c"
_OUTCOME_ID = "c2e4a6b8-0d1f-4a3c-8e5b-7d9f1b3d5e6a"
_PAYMENT_ID = "8a0c2e4f-6b8d-4f1a-9c3e-5b7d9f1a3c5e"
_DUE_ID = "7c1e3a5b-9d2f-4e6a-8b0c-1d3f5a7c9e2b"
_PLAN_EVENT_ID = "6e8a0c2f-4b6d-4e8f-a1c3-5d7f9b1d3f5a"
_HOLD_ID = "9a1b3c5d-7e9f-4a2b-8c4d-6e8f0a2b4c6d"
_OPT_OUT_ID = "4c6e8a0b-2d4f-4a6c-8e0a-1b3d5f7a9c2e"
_PROMISE_ID = "1f3b5d7a-9c2e-4b6d-8f0a-2c4e6a8b0d1f"
_WRITE_OFF_ID = "5b7d9f1a-3c5e-4d7f-9b1a-3e5c7a9b1d3f"
_REQUEST_ID = "8d0f2b4c-6e8a-4c1e-a3b5-7d9f1b3d5e7a"

BORROWER_KEY = "bk1:3f9c2a7e51d04b8c96e1f0a2b4c6d8e0"
_CONTACT = {
    "name": SEALED_NAME, "phone": SEALED_PHONE, "email": SEALED_EMAIL, "address": SEALED_ADDRESS, "national_id": None,
    "time_zone": "Asia/Shanghai", "locale": "zh-CN",
}
_REQUEST_1 = {
    "tenant": TENANT, "contact_id": CONTACT_ID, "attempt": 1, "account_id": ACCOUNT,
    "customer_id": CUSTOMER, "channel": "sms", "treatment_step": "reminder", "segment": "standard",
    "days_past_due": 9, "destination": SEALED_PHONE, "time_zone": "Asia/Shanghai", "locale": "zh-CN",
    "template_id": "reminder.sms", "currency": "CNY", "overdue_minor": 125000, "due_date": "2025-03-10",
    "requested_at": "2025-03-19T15:00:02Z", "account_ref": "8842", "borrower_key": BORROWER_KEY,
}
_REQUEST_2 = _REQUEST_1 | {"attempt": 2, "requested_at": "2025-03-20T00:00:01Z"}


def _envelope(event_id: str, topic: Topic, source: str, subject: str, time: str, data: dict[str, Any], *,
              traceparent: str | None = None, correlationid: str | None = None,
              causationid: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0", "id": event_id, "source": source, "type": topic.event_type,
        "subject": subject, "time": time, "datacontenttype": "application/json",
        "dataschema": dataschema(topic), "tenant": TENANT,
    }
    for name, value in (("traceparent", traceparent), ("correlationid", correlationid),
                        ("causationid", causationid)):
        if value is not None:
            event[name] = value
    return event | {"data": data}


def dataschema(topic: Topic) -> str:
    """The ``dataschema`` our producers set (shared/messaging.py build_event)."""
    return f"urn:gentle-collections:{topic.name}"


def _examples() -> dict[str, dict[str, Any]]:
    t = BY_NAME
    seg = "urn:gentle-collections:segmentation"
    examples = [
        _envelope(_OVERDUE_ID, t["core.account-overdue.v1"], "urn:tenant-a:core-banking", ACCOUNT,
                  "2025-03-19T15:00:00Z", {
                      "tenant": TENANT, "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "product": "consumer-loan", "currency": "CNY", "outstanding_minor": 483000,
                      "overdue_minor": 125000, "days_past_due": 9, "due_date": "2025-03-10",
                      "credit_rating": "C", "credit_score": 668, "contact": _CONTACT,
                      "co_lenders": [{"tenant": "tenant-b", "share": "0.3", "share_bp": 3000}], "account_ref": "8842",
                  }, traceparent=TRACEPARENT, correlationid=_OVERDUE_ID),
        _envelope(_PAYMENT_ID, t["core.payment-received.v1"], "urn:tenant-a:core-banking", ACCOUNT,
                  "2025-03-21T06:12:45Z", {
                      "tenant": TENANT, "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "payment_id": "PAY-20250321-88412", "amount_minor": 41667, "currency": "CNY",
                      "paid_at": "2025-03-21T06:12:40Z",
                  }, correlationid=_PAYMENT_ID),
        _envelope(_DUE_ID, t["core.instalment-due.v1"], "urn:tenant-a:core-banking", ACCOUNT,
                  "2025-04-07T01:00:00Z", {
                      "tenant": TENANT, "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "product": "consumer-loan", "currency": "CNY", "outstanding_minor": 358000,
                      "amount_due_minor": 41667, "due_date": "2025-04-10", "credit_rating": "C",
                      "credit_score": 668, "contact": _CONTACT, "co_lenders": [], "account_ref": "8842",
                  }, correlationid=_DUE_ID),
        _envelope(_SEGMENTED_ID, t["segmentation.account-segmented.v1"], seg, ACCOUNT,
                  "2025-03-19T15:00:01Z", {
            "tenant": TENANT, "account_id": ACCOUNT, "customer_id": CUSTOMER, "segment": "standard",
            "dpd_bucket": "1-15", "days_past_due": 9, "due_date": "2025-03-10", "currency": "CNY",
            "overdue_minor": 125000, "outstanding_minor": 483000,
            "reason": "seg-v1: default: rating C, DPD 9: neither prime nor high-risk", "contact": _CONTACT,
            "account_ref": "8842", "borrower_key": BORROWER_KEY, "as_of": "2025-03-19T15:00:00Z",
            "score": {"scorecard": "sim-2025.1", "points": 571, "probability": "0.2651",
                      "reasons": ["DPD", "PAY_90D", "RATING"]},
        }, traceparent=TRACEPARENT, correlationid=_OVERDUE_ID, causationid=_OVERDUE_ID),
        _envelope(_REQUESTED_ID, t["scheduler.contact-requested.v1"], "urn:gentle-collections:scheduler",
                  CONTACT_ID, "2025-03-19T15:00:02Z", _REQUEST_1,
                  traceparent=TRACEPARENT, correlationid=_OVERDUE_ID, causationid=_SEGMENTED_ID),
        _envelope(_APPROVED_ID, t["compliance.contact-approved.v1"], "urn:gentle-collections:compliance",
                  CONTACT_ID, "2025-03-20T00:00:02Z", {
                      "decision_id": "0a2c4e6f-8b1d-4f3a-9c5e-7b9d1f3a5c7e", "request": _REQUEST_2,
                  }, correlationid=_TIMER_REQUEST_ID, causationid=_TIMER_REQUEST_ID),
        _envelope(_REJECTED_ID, t["compliance.contact-rejected.v1"], "urn:gentle-collections:compliance",
                  CONTACT_ID, "2025-03-19T15:00:03Z", {
                      "tenant": TENANT, "decision_id": "f1e3d5c7-9b2a-4c6e-8f0d-2b4d6f8a1c3e",
                      "contact_id": CONTACT_ID, "attempt": 1, "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "channel": "sms", "rule_id": "CN-HOURS",
                      "reason": "local time 23:00 Asia/Shanghai is outside 08:00-22:00",
                      "retry_at": "2025-03-20T00:00:00Z",
                  }, traceparent=TRACEPARENT, correlationid=_OVERDUE_ID, causationid=_REQUESTED_ID),
        _envelope(_OUTCOME_ID, t["channels.contact-outcome.v1"], "urn:gentle-collections:channels",
                  CONTACT_ID, "2025-03-20T00:00:04Z", {
                      "tenant": TENANT, "contact_id": CONTACT_ID, "account_id": ACCOUNT,
                      "customer_id": CUSTOMER,
                      "channel": "sms", "outcome": "sent", "provider_ref": "sms-5f3a9c1e", "detail": None,
                      "occurred_at": "2025-03-20T00:00:04Z", "borrower_key": BORROWER_KEY, "promise": None,
                  }, correlationid=_OUTCOME_ID),
        _envelope(_PLAN_EVENT_ID, t["plans.plan-event.v1"], "urn:gentle-collections:plans", "PLN-000318",
                  "2025-03-20T02:31:09Z", {
                      "tenant": TENANT, "plan_id": "PLN-000318", "account_id": ACCOUNT,
                      "customer_id": CUSTOMER,
                      "kind": "agreed", "currency": "CNY", "total_minor": 125000,
                      "instalments": [
                          {"seq": 1, "due_date": "2025-03-21", "amount_minor": 41667},
                          {"seq": 2, "due_date": "2025-04-21", "amount_minor": 41667},
                          {"seq": 3, "due_date": "2025-05-21", "amount_minor": 41666},
                      ],
                      "occurred_at": "2025-03-20T02:31:09Z",
                  }, correlationid=_PLAN_EVENT_ID),
        _envelope(_HOLD_ID, t["compliance.hold-changed.v1"], "urn:gentle-collections:compliance",
                  "HLD-7c1e", "2025-03-20T02:31:10Z", {
                      "tenant": TENANT, "hold_id": "HLD-7c1e", "customer_id": CUSTOMER, "account_id": ACCOUNT,
                      "kind": "plan", "action": "placed", "reason": "plan PLN-000318 agreed",
                      "starts_at": "2025-03-20T02:31:09Z", "ends_at": None, "occurred_at": "2025-03-20T02:31:10Z",
                  }, correlationid=_PLAN_EVENT_ID, causationid=_PLAN_EVENT_ID),
        _envelope(_OPT_OUT_ID, t["channels.opt-out.v1"], "urn:gentle-collections:channels",
                  "msg_7f3e9a1c", "2025-03-20T01:12:03Z", {
                      "tenant": TENANT, "customer_id": CUSTOMER, "channel": "sms",
                      "destination_key": "cp1:8d2f4a6c0e1b3d5f7a9c2e4b6d8f0a1c", "keyword": "TD",
                      "message_id": "msg_7f3e9a1c", "received_at": "2025-03-20T01:12:02Z", "source": "sms-reply",
                  }, correlationid=_OPT_OUT_ID),
        _envelope(_PROMISE_ID, t["plans.promise-event.v1"], "urn:gentle-collections:plans",
                  "PTP-5d21", "2025-03-20T02:40:00Z", {
                      "tenant": TENANT, "promise_id": "PTP-5d21", "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "status": "open", "source": "portal", "currency": "CNY", "amount_minor": 50000,
                      "paid_minor": 0, "due_on": "2025-03-25", "deadline": "2025-03-27T16:00:00Z",
                      "made_at": "2025-03-20T02:40:00Z", "occurred_at": "2025-03-20T02:40:00Z",
                  }, correlationid=_PROMISE_ID),
        _envelope(_WRITE_OFF_ID, t["plans.write-off.v1"], "urn:gentle-collections:plans",
                  "WO-31c8", "2025-05-21T03:00:00Z", {
                      "tenant": TENANT, "write_off_id": "WO-31c8", "plan_id": "PLN-000318", "account_id": ACCOUNT,
                      "customer_id": CUSTOMER, "kind": "settlement", "currency": "CNY", "amount_minor": 25001,
                      "shares": [{"lender": TENANT, "share_bp": 7000, "amount_minor": 17501},
                                 {"lender": "tenant-b", "share_bp": 3000, "amount_minor": 7500}],
                      "approved_by": ["supervisor-wang"], "occurred_at": "2025-05-21T03:00:00Z",
                  }, correlationid=_WRITE_OFF_ID),
        _envelope(_REQUEST_ID, t["plans.customer-request.v1"], "urn:gentle-collections:plans",
                  "REQ-6a0e", "2025-03-20T02:45:00Z", {
                      "tenant": TENANT, "request_id": "REQ-6a0e", "account_id": ACCOUNT, "customer_id": CUSTOMER,
                      "kind": "hardship", "channel": None, "detail": _CONTACT["name"],
                      "occurred_at": "2025-03-20T02:45:00Z",
                  }, correlationid=_REQUEST_ID),
    ]
    return {topic.name: next(e for e in examples if e["type"] == topic.event_type) for topic in ALL_TOPICS}


# One complete CloudEvent per topic, as a producer would put it on the bus.
EXAMPLES: dict[str, dict[str, Any]] = _examples()


def customer_of(data: dict[str, Any]) -> str:
    """The customer id of a payload (ContactApprovedV1 carries it in its request)."""
    return str(data["customer_id"] if "customer_id" in data else data["request"]["customer_id"])


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def validate_example(topic: Topic, example: dict[str, Any]) -> BaseModel:
    """Check an example the way a consumer would, and that it is in canonical (wire) form."""
    event = CloudEvent.model_validate(example)
    if event.model_dump(mode="json", exclude_none=True) != example:
        raise ValueError(f"{topic.name}: example envelope is not in canonical form")
    if event.type != topic.event_type:
        raise ValueError(f"{topic.name}: example type {event.type!r} != {topic.event_type!r}")
    if event.dataschema != dataschema(topic):
        raise ValueError(f"{topic.name}: example dataschema {event.dataschema!r}")
    payload = topic.payload.model_validate(event.data)
    if payload.model_dump(mode="json") != event.data:
        raise ValueError(f"{topic.name}: example data is not in canonical form (missing defaults?)")
    tenant = getattr(payload, "tenant", None) or event.data.get("request", {}).get("tenant")
    if tenant != event.tenant:
        raise ValueError(f"{topic.name}: payload tenant {tenant!r} != envelope tenant {event.tenant!r}")
    if event.subject != _dig(event.data, SUBJECTS[topic.name]):
        raise ValueError(f"{topic.name}: subject is not data.{'.'.join(SUBJECTS[topic.name])}")
    for value in _strings(event.data):
        if value.startswith(PREFIX) and not is_sealed(value):
            raise ValueError(f"{topic.name}: malformed sealed value {value!r}")
    return payload


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# --- schema rendering -----------------------------------------------------------------------------------

MODELS: dict[str, type[BaseModel]] = {
    name: obj for name, obj in vars(ev).items()
    if isinstance(obj, type) and issubclass(obj, BaseModel) and obj.__module__ == ev.__name__
}
PAYLOAD_TOPIC: dict[str, Topic] = {t.payload.__name__: t for t in ALL_TOPICS}


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _link(model: str) -> str:
    topic = PAYLOAD_TOPIC.get(model)
    target = _anchor("topic", topic.name) if topic else _anchor("type", model)
    return f"[`{model}`](#{target})"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`" if not isinstance(value, str) else f"`{value}`"


def _constraints(schema: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if "enum" in schema:
        out.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    if "const" in schema:
        out.append(f"always {_code(schema['const'])}")
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if lo is not None and hi is not None:
        out.append(f"length {lo}–{hi}")
    elif lo is not None:
        out.append(f"length ≥ {lo}")
    elif hi is not None:
        out.append(f"length ≤ {hi}")
    if "pattern" in schema:
        out.append(f"pattern `{schema['pattern']}`")
    bounds = (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
    for key, sign in bounds:
        if key in schema:
            out.append(f"{sign} {_num(schema[key])}")
    if "minItems" in schema:
        out.append(f"at least {schema['minItems']} items")
    if "maxItems" in schema:
        out.append(f"at most {schema['maxItems']} items")
    return out


def _describe(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[str, list[str], bool]:
    """(type, constraints, nullable) of one property schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        target = defs[name]
        if "enum" in target:
            return f"string ({name})", _constraints(target), False
        return f"object {_link(name)}", [], False
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        types = {o.get("type") for o in options}
        if types == {"number", "string"}:  # Decimal: a JSON number, or a string to keep it exact
            number = next(o for o in options if o.get("type") == "number")
            return "decimal (number or string)", _constraints(number), nullable
        described = [_describe(o, defs) for o in options]
        return (" or ".join(d[0] for d in described), [c for d in described for c in d[1]],
                nullable or any(d[2] for d in described))
    kind = schema.get("type", "any")
    if kind == "array":
        item_type, item_constraints, _ = _describe(schema.get("items", {}), defs)
        constraints = _constraints(schema) + [f"items: {c}" for c in item_constraints]
        return f"array of {item_type}", constraints, False
    if kind == "string" and schema.get("format") in ("date", "date-time"):
        kind = schema["format"]
    return kind, _constraints(schema), False


def _annotation_validators(annotation: Any) -> list[Any]:
    found: list[Any] = [meta.func for meta in getattr(annotation, "__metadata__", ())
                        if isinstance(meta, AfterValidator)]
    for arg in typing.get_args(annotation):
        found.extend(_annotation_validators(arg))
    return found


def field_validators(field: FieldInfo) -> list[Any]:
    """The ``AfterValidator`` functions of a field: its own and those inside its type (``Sealed | None``)."""
    # pydantic moves a field's own Annotated metadata to field.metadata; unions keep theirs.
    own = [m.func for m in field.metadata if isinstance(m, AfterValidator)]
    return own + _annotation_validators(field.annotation)


def field_description(model: type[BaseModel], name: str, schema: dict[str, Any]) -> str:
    """The catalogue's description of a payload field, if it has one."""
    return schema.get("description") or FIELD_DOCS.get(f"{model.__name__}.{name}") or FIELD_DOCS.get(name, "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _field_rows(model: type[BaseModel], schema: dict[str, Any], defs: dict[str, Any]) -> list[list[str]]:
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema["properties"].items():
        field = model.model_fields[name]
        kind, constraints, nullable = _describe(prop, defs)
        notes = [_VALIDATOR_NOTES[f] for f in field_validators(field) if f in _VALIDATOR_NOTES]
        if name in required:
            req = "yes, may be `null`" if nullable else "yes"
        else:
            default = field.get_default(call_default_factory=True)
            req = f"no (default {_code(default)})"
        rows.append([f"`{name}`", kind, req, "; ".join(dict.fromkeys(notes + constraints)),
                     field_description(model, name, prop)])
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _payload_table(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    return _table(["Field", "Type", "Required", "Constraints", "Description"],
                  _field_rows(model, schema, schema.get("$defs", {})))


def shared_types() -> list[str]:
    """Object models nested in payloads that are not themselves a topic's payload, in first-use order."""
    found: list[str] = []
    for topic in ALL_TOPICS:
        for name, target in topic.payload.model_json_schema().get("$defs", {}).items():
            if target.get("type") == "object" and name not in PAYLOAD_TOPIC and name not in found:
                found.append(name)
    return found


# --- the document ---------------------------------------------------------------------------------------

def _consumers(topic: Topic) -> str:
    return ", ".join(f"`{g}`" for g in CONSUMERS[topic.name])


def _check_maps() -> None:
    names = {t.name for t in ALL_TOPICS}
    for label, mapping in (("CONSUMERS", CONSUMERS), ("PRODUCERS", PRODUCERS), ("SUBJECTS", SUBJECTS),
                           ("EXAMPLES", EXAMPLES)):
        if set(mapping) != names:
            raise ValueError(f"catalog.{label} does not cover exactly the topics in ALL_TOPICS")
    for topic, groups in CONSUMERS.items():
        unknown = set(groups) - set(CONSUMER_GROUPS)
        if unknown:
            raise ValueError(f"{topic}: unknown consumer groups {sorted(unknown)}")


_INTRO = """\
# Event catalogue

<!-- Generated by `python -m shared.tools.catalog` from shared/contracts/.
     Do not edit by hand: run `make docs`. -->

Gentle collections is five services (segmentation, scheduler, compliance, channels, plans) that talk
through Kafka. Core banking publishes **overdue accounts** and **payments** onto Kafka
(`core.account-overdue.v1`, `core.payment-received.v1`); partners that cannot reach Kafka push the same
facts over REST to the segmentation service (`POST /v1/overdue-events`, `POST /v1/payments`, up to 1,000
per call, plaintext contact data over TLS that the service seals), which publishes exactly these events.
Every other topic is internal; it is listed so integrators can follow (or audit) what happens next.

This file is generated from `shared/contracts/` (`topics.py`, `events.py`, `envelope.py`) by
`python -m shared.tools.catalog`, together with the machine-readable
[AsyncAPI document](#asyncapi-document); the tests fail when either is out of date.

## Contents

- [Envelope](#envelope)
- [Keys and ordering](#keys-and-ordering)
- [Data conventions](#data-conventions)
- [Delivery and deduplication](#delivery-and-deduplication)
- [Personal data is sealed](#personal-data-is-sealed)
- [Topics](#topics)
- [Shared types](#shared-types)
- [Dead-letter topics](#dead-letter-topics)
- [Versioning](#versioning)
- [AsyncAPI document](#asyncapi-document)

## Envelope

Every message is a [CloudEvents 1.0](https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md)
event in **structured JSON mode**: the Kafka record value is one UTF-8 JSON object holding the
attributes below and the payload in `data`. Kafka headers are not needed and are ignored. `tenant`,
`traceparent`, `correlationid` and `causationid` are our extension attributes; any other extension
attribute is accepted and ignored.
"""


def _envelope_section() -> str:
    schema = CloudEvent.model_json_schema()
    rows = []
    for name, row in zip(schema["properties"], _field_rows(CloudEvent, schema, schema.get("$defs", {})),
                         strict=True):
        row[4] = ENVELOPE_DOCS.get(name, row[4])
        rows.append(row)
    return _table(["Attribute", "Type", "Required", "Constraints", "Description"], rows)


def _conventions() -> str:
    key = message_key("tenant-a", "C-100042").decode()
    return f"""\
## Keys and ordering

Every topic is keyed by **`tenant:customer_id`** (UTF-8), e.g. `{key}`. Kafka keeps the order of a
key's records within one partition of one topic, so one consumer replica sees all of a customer's
events on a topic, across all of the customer's accounts, and the scheduler and compliance can apply
per-customer limits without coordinating between replicas. Producers must use the same key: a wrong
key does not lose the event, but it loses that locality.

**Order is not guaranteed across topics, and producers retry, replay and publish late.** A payment
can reach the scheduler before the overdue notice it settles (they travel on different topics, and
the notice goes through segmentation first); a plan event can arrive before the account exists; a
receipt can overtake our own record of the send. Every consumer therefore reaches the same state
whatever the order, by keeping facts and deriving state from all of them:

- an overdue notice is a snapshot of the account at its event `time` (`as_of`); the newest snapshot
  wins and an older one arriving late changes nothing;
- a payment is kept (once per `payment_id`) even when its account is not known yet; the amount
  overdue is the newest snapshot's `overdue_minor` less the payments booked (`paid_at`) after that
  snapshot: payments before it are already in it;
- a plan event is kept even when no treatment exists yet; a plan's last word (`completed`,
  `cancelled`, `broken`) wins over `agreed` whatever the arrival order;
- a contact outcome applies by `occurred_at`: an older outcome arriving late does not overwrite a
  newer one.

A test drives every interleaving of one account's events through the real services and the real
database and checks the end state equals the one the sorted sequence gives
(`tests/scheduler/integration/test_scheduler_order_independence.py`,
`tests/segmentation/integration/test_segmentation_order_independence.py`).

## Data conventions

- **Money** is an integer count of **minor units** (`*_minor`, e.g. fen, cents) with an
  **ISO 4217** code in `currency`: `125000` with `CNY` is ¥1,250.00. Never floats.
- **Times** are RFC 3339 in **UTC** (`2025-03-19T15:00:00Z`); dates are `YYYY-MM-DD`.
- The customer's local time lives in one place: the **IANA time zone** in the contact
  (`contact.time_zone`, e.g. `Asia/Shanghai`; default `Asia/Shanghai`). Contact-hour rules are
  evaluated in it.
- Ids are strings chosen by their owner (`account_id`, `customer_id`, `payment_id`: the core system).

## Delivery and deduplication

Delivery is **at least once**. Producers retry and consumers may see an event more than once; each
consumer group records the `id` of every event it handled (in the same database transaction as its
effects) and skips ids it has seen. So:

- **Reuse the `id` when you resend the same fact** (a retry after a timeout, a replayed batch). A new
  `id` means a new fact and is processed again.
- Give a different fact a different `id`, even if the payload is the same (an account overdue again
  next month is a new event).
- Over REST, put your own id in `event_id`; the event `id` becomes `<tenant>:<event_id>`, so resending a
  batch is harmless.
"""


def _pii_section() -> str:
    return f"""\
## Personal data is sealed

Names, phone numbers, e-mail addresses and postal addresses (the `name`, `phone`, `email` and `address`
of [`CustomerContact`](#{_anchor("type", "CustomerContact")}), and a contact request's `destination`)
are never on the bus in plaintext. Each is **sealed**:

```
{PREFIX}<key id>:<base64url(nonce || AES-256-GCM ciphertext+tag)>
```

- AES-256-GCM with a random 12-byte nonce and the 16-byte tag appended to the ciphertext;
  base64url **with** `=` padding;
- the **tenant id** (UTF-8) is the associated data, so a value sealed for one tenant does not open for
  another;
- `<key id>` names the key, so keys can rotate: seal with the active key, keep old keys to open.
  Agree the key and its id with us out of band.

A payload with a plaintext value in a sealed field fails validation and is **dead-lettered**; nothing
acts on it. A value that merely looks sealed but does not open with a key we hold cannot be used for
any contact. Core banking can seal with `PiiCipher` from `shared/crypto.py` (any AES-GCM library works):

```python
import os

from shared.crypto import PiiCipher

# 32-byte AES key, base64-encoded; "k1" is the key id agreed with gentle collections.
cipher = PiiCipher({{"k1": os.environ["PII_KEY_K1"]}}, active_key="k1")
phone = cipher.seal("+8613800138000", context="tenant-a")  # context = the tenant id (associated data)
# phone == "pii:v1:k1:…" (a new random nonce every time); put it in data.contact.phone
```

The sealed values in the examples below were made with the public development key `dev1`
(`shared/settings.py`) for tenant `tenant-a`.
"""


def _topics_table() -> str:
    rows = [[f"[`{t.name}`](#{_anchor('topic', t.name)})", f"`{t.event_type}`", PRODUCERS[t.name],
             _consumers(t), t.description] for t in ALL_TOPICS]
    table = _table(["Topic", "Event type", "Producer", "Consumers", "Description"], rows)
    return f"## Topics\n\n{table}\n"


def _topic_section(topic: Topic) -> str:
    model = topic.payload
    example = EXAMPLES[topic.name]
    key = message_key(example["tenant"], customer_of(example["data"])).decode()
    unknown = "rejected" if model.model_config.get("extra") == "forbid" else "ignored"
    facts = [
        ["Event `type`", f"`{topic.event_type}`"],
        ["`dataschema`", f"`{dataschema(topic)}`"],
        ["`subject`", f"`data.{'.'.join(SUBJECTS[topic.name])}`"],
        ["Key", "`tenant:customer_id`"],
        ["Producer", PRODUCERS[topic.name]],
        ["Consumer groups", _consumers(topic)],
        ["Payload model", f"`{model.__name__}` (`shared/contracts/events.py`); unknown fields are {unknown}"],
    ]
    parts = [
        f'<a id="{_anchor("topic", topic.name)}"></a>',
        f"### `{topic.name}`",
        "",
        topic.description + ".",
        "",
        _table(["Property", "Value"], facts),
        "",
        "**Payload (`data`)**",
        "",
        _payload_table(model),
    ]
    rules = MODEL_RULES.get(model.__name__)
    if rules:
        parts += ["", "Rules:", ""] + [f"- {r}" for r in rules]
    parts += ["", f"**Example** (Kafka key `{key}`)", "", "```json",
              json.dumps(example, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(parts)


def _shared_types_section() -> str:
    parts = ["## Shared types", "",
             "Object types used inside payloads, described once. A contact request nested in "
             f"`compliance.contact-approved.v1` is the payload of {_link('ContactRequestV1')}.", ""]
    for name in shared_types():
        model = MODELS[name]
        parts += [f'<a id="{_anchor("type", name)}"></a>', f"### `{name}`", ""]
        doc = model.model_json_schema().get("description")
        if doc:
            parts += [doc, ""]
        parts += [_payload_table(model), ""]
    return "\n".join(parts)


def _dlq_section() -> str:
    defaults = ServiceSettings.model_fields
    limit = defaults["dlq_max_consecutive"].default
    ratio = defaults["dlq_max_invalid_ratio"].default
    min_seen = defaults["dlq_ratio_min_messages"].default
    retries = defaults["max_transient_retries"].default
    dlqs = ", ".join(f"`{dlq_topic(g)}`" for g in CONSUMER_GROUPS)
    headers = _table(["Header", "Value"], [[f"`{h}`", d] for h, d in (DLQ_HEADERS | DLQ_OPTIONAL_HEADERS).items()])
    return f"""\
## Dead-letter topics

Each consumer group has a dead-letter topic `<group>.dlq`: {dlqs}.

A message goes there when it cannot be parsed (not JSON, envelope invalid, wrong `type` for the topic,
payload invalid, payload tenant differs from the envelope tenant) or when its handler fails for a
reason that is not transient even when the message is handled on its own. The dead letter keeps the
original key and value byte for byte and carries these headers:

{headers}

The dead-letter write is acknowledged before the offset is committed, so nothing is lost. Transient
errors (database or broker unreachable) are never dead-lettered: they are retried with exponential
backoff, capped, until the fault clears (after {retries} retries the service reports itself not ready
while it goes on retrying); an outage never halts a consumer.

**Halt rule** (per partition, after arroyo's `DlqLimit`): more than {limit} dead letters in a row on one
partition (env `<SERVICE>_DLQ_MAX_CONSECUTIVE`), or more than {ratio:.0%} of the messages seen on one
partition once at least {min_seen} were seen (`<SERVICE>_DLQ_MAX_INVALID_RATIO`,
`<SERVICE>_DLQ_RATIO_MIN_MESSAGES`), stop the consumer instead of dead-lettering the whole topic after a
bad deploy or a broken producer. A halted consumer commits nothing further, `/readyz` reports
`halted: <reason>` and the `consumer_halted{{group=…}}` gauge is 1; it resumes from the last committed
offset when the service is restarted. Fix the producer, then replay what you need from the DLQ with the
same event `id`s (consumers dedupe).
"""


def _versioning_section() -> str:
    forbid = sorted(t.payload.__name__ for t in ALL_TOPICS if t.payload.model_config.get("extra") == "forbid")
    all_forbid = len(forbid) == len(ALL_TOPICS)
    state = ("every payload model forbids unknown fields\n  (`extra=\"forbid\"`)" if all_forbid
             else "these payload models forbid unknown fields\n  (`extra=\"forbid\"`): " + ", ".join(forbid))
    return f"""\
## Versioning

The version is part of the topic name (`….v1`), of the event `type` and of the payload model
(`…V1`).

- A **breaking change** (a field removed, renamed, retyped, newly required or more tightly
  constrained, or a meaning changed) is a **new topic** `….v2` with a new payload model
  (`…V2`) and event type. Producers publish both versions until every consumer has moved; then v1 is
  retired.
- An **additive, optional** field may be added to a v1 model only if every consumer ignores
  unknown fields. But {state}, so an event carrying a field its consumer does not know is
  dead-lettered: today **any change to a payload is a new version**.
- A **new value of an enumerated field** keeps the version when every consumer in this repository handles
  it: events with the old values stay valid, but a consumer still running the old model dead-letters the
  new value, so the consumers are deployed before anything sends it. `channels.contact-outcome.v1`'s call
  outcomes (`no_answer`, `busy`, `voicemail`, `connected`, `right_party_contact`) were added this way.
- The envelope accepts unknown extension attributes, so adding one is not a breaking change.
"""


def _asyncapi_section() -> str:
    channels = len(ALL_TOPICS) + len(CONSUMER_GROUPS)
    return f"""\
## AsyncAPI document

[`asyncapi.yaml`](asyncapi.yaml) describes the same bus as an
[AsyncAPI 3.0.0](https://www.asyncapi.com/docs/reference/specification/v3.0.0) document, for code
generators, schema registries and AsyncAPI viewers:

- `servers`: `production` (your Kafka cluster, `KAFKA_BOOTSTRAP_SERVERS`) and `local`, the embedded
  development broker at `{EMBEDDED_KAFKA}`;
- `channels`: one per topic and one per dead-letter topic ({channels} in all), `address` = the topic name;
- `operations`: who sends and who receives on each channel (`<service>.send.<topic>`,
  `<group>.receive.<topic>`; a receive's Kafka binding names its consumer group);
- `components.messages`: the CloudEvents envelope in structured mode with `data` = the topic's payload,
  the Kafka key (`bindings.kafka.key`: `tenant:customer_id`) and the topic's example from this file;
  the dead letters with their headers;
- `components.schemas`: the models' JSON schemas (from pydantic) with the descriptions of this file;
  sealed fields carry the `{PREFIX}` pattern.

It is generated with this file (`make docs`). `make lint` validates it with the official AsyncAPI
parser ([`@asyncapi/parser`](https://github.com/asyncapi/parser-js), pinned with its lock file in
`tools/asyncapi/`): the AsyncAPI 3.0.0 JSON Schema, the AsyncAPI ruleset (every reference resolves,
operations use their channel's messages) and every example against its message's schemas.
"""


def render_catalog() -> str:
    """The whole of docs/events.md; deterministic (no dates), validated examples."""
    _check_maps()
    for topic in ALL_TOPICS:
        validate_example(topic, EXAMPLES[topic.name])
    sections = [
        _INTRO,
        _envelope_section() + "\n",
        _conventions(),
        _pii_section(),
        _topics_table(),
        *(_topic_section(t) for t in ALL_TOPICS),
        _shared_types_section(),
        _dlq_section(),
        _versioning_section(),
        _asyncapi_section(),
    ]
    return "\n".join(sections).rstrip("\n") + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and what it must hold."""
    from shared.tools.asyncapi import render_asyncapi  # that module builds on this one

    return {DOC_PATH: render_catalog(), ASYNCAPI_PATH: render_asyncapi()}


def _shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: write the documents, or check them with ``--check``."""
    parser = argparse.ArgumentParser(prog="python -m shared.tools.catalog",
                                     description="Render docs/events.md and docs/asyncapi.yaml from the contracts.")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/events.md or docs/asyncapi.yaml is out of date")
    args = parser.parse_args(argv)
    rendered = outputs()
    if args.check:
        stale = [path for path, text in rendered.items()
                 if not path.exists() or path.read_text(encoding="utf-8") != text]
        if stale:
            files = " and ".join(_shown(p) for p in stale)
            print(HINT.format(files=f"{files} {'is' if len(stale) == 1 else 'are'}"), file=sys.stderr)
            return 1
        return 0
    for path, text in rendered.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
