"""The AsyncAPI 3.0 document of the event bus, rendered from the contracts: ``docs/asyncapi.yaml``.

``python -m shared.tools.catalog`` writes it together with docs/events.md, from the same topic map, maps
and validated examples (:mod:`shared.tools.catalog`), and ``--check`` fails when it is stale; ``make lint``
validates it with the official AsyncAPI parser (``tools/asyncapi/``). Channels are the topics of
``shared/contracts/topics.py`` and the consumer groups' dead-letter topics; operations say who sends and
who receives on each; messages are CloudEvents in structured mode (``data`` = the topic's payload) keyed
``tenant:customer_id``; ``components.schemas`` are the pydantic models' JSON schemas, ``$defs`` hoisted.
The output is deterministic: no dates, dicts in a fixed order.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml
from pydantic import BaseModel

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.topics import ALL_TOPICS, BY_NAME, CONSUMER_GROUPS, Topic, dlq_topic, message_key
from shared.crypto import PREFIX
from shared.registry import SERVICES
from shared.settings import EMBEDDED_KAFKA
from shared.tools import catalog

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"
CONTENT_TYPE = "application/cloudevents+json"
KEY_SCHEMA = "MessageKey"
# shared.crypto.is_sealed as a JSON-schema pattern: the prefix, then exactly one more ':' (key id, data).
SEALED_PATTERN = f"^{re.escape(PREFIX)}[^:]*:[^:]*$"

CORE_BANKING = "core-banking"
OPERATORS = "operators"

# Who publishes each topic (the consumers are catalog.CONSUMERS). tests/contracts/test_asyncapi.py checks
# this against catalog.PRODUCERS and against the services' code.
SENDERS: dict[str, tuple[str, ...]] = {
    "core.account-overdue.v1": (CORE_BANKING, "segmentation"),
    "core.payment-received.v1": (CORE_BANKING, "segmentation"),
    "core.instalment-due.v1": (CORE_BANKING, "segmentation"),
    "segmentation.account-segmented.v1": ("segmentation",),
    "scheduler.contact-requested.v1": ("scheduler",),
    "compliance.contact-approved.v1": ("compliance",),
    "compliance.contact-rejected.v1": ("compliance",),
    "channels.contact-outcome.v1": ("channels",),
    "plans.plan-event.v1": ("plans",),
    "compliance.hold-changed.v1": ("compliance",),
    "channels.opt-out.v1": ("channels",),
    "plans.promise-event.v1": ("plans",),
    "plans.write-off.v1": ("plans",),
    "plans.customer-request.v1": ("plans",),
}

# The REST call through which partners have segmentation publish a core topic for them.
REST_INGEST: dict[str, str] = {
    "core.account-overdue.v1": "POST /v1/overdue-events",
    "core.payment-received.v1": "POST /v1/payments",
    "core.instalment-due.v1": "POST /v1/due-events",
}

# Everyone who sends or receives, as the document's tags (one per operation).
ACTORS: dict[str, str] = {
    CORE_BANKING: "The bank's core system (outside gentle collections): publishes overdue accounts and payments.",
    **{service.name: service.description for service in SERVICES},
    OPERATORS: "People running the platform: they inspect and replay dead letters with "
               "`python -m shared.tools.dlq`.",
}

_DESCRIPTION = f"""\
Every topic of gentle collections, an event-driven collections platform: who publishes and who consumes
it, its Kafka key and its payload. Generated from `shared/contracts/` by `python -m shared.tools.catalog`
(`make docs`), together with `docs/events.md`, the event catalogue for people; do not edit by hand.

- **Envelope.** Every message is a CloudEvents 1.0 event in **structured JSON mode**: the Kafka record
  value is one UTF-8 JSON object with the envelope attributes (schema `CloudEvent`) and the payload in
  `data`. Kafka headers are neither needed nor read. The envelope `type` must be the one the topic's
  message names, else the event is dead-lettered.
- **Key.** Every topic is keyed by `tenant:customer_id` (schema `{KEY_SCHEMA}`), so a consumer sees all of
  a customer's events in order.
- **Delivery** is at least once: consumers dedupe on the event `id`, so resend a fact with the same `id`.
- **Personal data is sealed** (`{PREFIX}<key id>:<data>`, AES-256-GCM bound to the tenant); a payload
  with plaintext in a sealed field is dead-lettered.
- **Money** is integer minor units (`*_minor`) with an ISO 4217 `currency`; times are RFC 3339 in UTC.
- **Dead letters.** Each consumer group `<group>` dead-letters what it cannot handle to `<group>.dlq`,
  key and value byte for byte, with `dlq.*` headers.
- **Versions** are in the topic name, the event type and the payload model: any payload change is a new
  topic (`….v2`).
"""


# --- schemas --------------------------------------------------------------------------------------------

def _string_branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema itself if it is a string, or its string options (``str | None``)."""
    if schema.get("type") == "string":
        return [schema]
    return [s for option in schema.get("anyOf", ()) for s in _string_branches(option)]


def _describe(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Add the catalogue's field descriptions and the sealed-PII pattern to a model's schema, in place."""
    for name, prop in schema.get("properties", {}).items():
        text = (catalog.ENVELOPE_DOCS.get(name) if model is CloudEvent else None) or \
            catalog.field_description(model, name, prop)
        if text:
            prop["description"] = text
        if ev._require_sealed in catalog.field_validators(model.model_fields[name]):
            for branch in _string_branches(prop):
                branch["pattern"] = SEALED_PATTERN


def _key_schema() -> dict[str, Any]:
    """The Kafka key: the payload's ``tenant`` and ``customer_id`` constraints joined by a colon."""
    fields = ev.AccountOverdueV1.model_json_schema()["properties"]
    tenant, customer = fields["tenant"], fields["customer_id"]
    chars = tenant["pattern"].removeprefix("^").removesuffix("+$")
    return {
        "type": "string",
        "description": "`tenant:customer_id` in UTF-8 (`message_key` in shared/contracts/topics.py): the "
                       "tenant id, a colon, the customer id. Kafka keeps a key's records in order within "
                       "its partition, so one consumer sees all of a customer's events in order, across "
                       "all of the customer's accounts. A wrong key does not lose the event, but it loses "
                       "the ordering.",
        "pattern": f"^{chars}{{{tenant['minLength']},{tenant['maxLength']}}}"
                   f":.{{{customer['minLength']},{customer['maxLength']}}}$",
        "examples": [message_key(catalog.TENANT, catalog.CUSTOMER).decode()],
    }


def schemas() -> dict[str, dict[str, Any]]:
    """``components.schemas``: the envelope, the key and every payload model, nested models hoisted."""
    out: dict[str, dict[str, Any]] = {}
    models: list[type[BaseModel]] = [CloudEvent, *(t.payload for t in ALL_TOPICS)]
    for model in models:
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        defs = schema.pop("$defs", {})
        for name, sub in ((model.__name__, schema), *defs.items()):
            if out.get(name, sub) != sub:
                raise ValueError(f"two different JSON schemas are named {name}")
            out[name] = sub
        if model is CloudEvent:
            out[KEY_SCHEMA] = _key_schema()
    described: dict[str, type[BaseModel]] = catalog.MODELS | {CloudEvent.__name__: CloudEvent}
    for name, schema in out.items():
        if name in described:
            _describe(described[name], schema)
    return out


# --- messages, channels, operations ---------------------------------------------------------------------

def message_id(topic: Topic) -> str:
    """``core.AccountOverdue.v1``: the event type without its common prefix."""
    return topic.event_type.removeprefix("com.gentlecollections.")


def _dead_letter_id(group: str) -> str:
    return f"{group}.DeadLetter"


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def _kafka(**binding: Any) -> dict[str, Any]:
    return {"kafka": {**binding, "bindingVersion": KAFKA_BINDING}}


def _message(topic: Topic) -> dict[str, Any]:
    model = topic.payload.__name__
    subject = "data." + ".".join(catalog.SUBJECTS[topic.name])
    example = catalog.EXAMPLES[topic.name]
    key = message_key(example["tenant"], catalog.customer_of(example["data"])).decode()
    return {
        "name": topic.event_type,
        "title": message_id(topic),
        "summary": topic.description + ".",
        "description": f"A CloudEvent of type `{topic.event_type}` in structured JSON mode; `data` is a "
                       f"`{model}`, `subject` is `{subject}`.",
        "contentType": CONTENT_TYPE,
        "correlationId": {"description": "Id of the first event of the chain (copied onward by our services).",
                          "location": "$message.payload#/correlationid"},
        "payload": {"allOf": [
            _ref("components", "schemas", CloudEvent.__name__),
            {
                "type": "object",
                "required": ["type", "data"],
                "properties": {
                    "type": {"const": topic.event_type},
                    "subject": {"description": f"`{subject}`."},
                    "dataschema": {"examples": [catalog.dataschema(topic)]},
                    "data": _ref("components", "schemas", model),
                },
            },
        ]},
        "bindings": _kafka(key=_ref("components", "schemas", KEY_SCHEMA)),
        "examples": [{"name": topic.name, "summary": f"Kafka key `{key}`.", "payload": example}],
    }


def _dead_letter(group: str) -> dict[str, Any]:
    origins = [t for t, groups in catalog.CONSUMERS.items() if group in groups]
    decimal = {"type": "string", "pattern": "^[0-9]+$"}
    special: dict[str, dict[str, Any]] = {
        "dlq.group": {"type": "string", "const": group},
        "dlq.origin.topic": {"type": "string", "enum": origins},
        "dlq.origin.partition": decimal,
        "dlq.origin.offset": decimal,
        "dlq.time": decimal,
        "dlq.truncated": decimal,
    }
    headers = {name: {"type": "string", **special.get(name, {}), "description": text[0].upper() + text[1:] + "."}
               for name, text in (catalog.DLQ_HEADERS | catalog.DLQ_OPTIONAL_HEADERS).items()}
    origin = BY_NAME[origins[0]]
    field = "request.currency" if "request" in catalog.EXAMPLES[origin.name]["data"] else "currency"
    error = f"1 validation error(s) for {origin.payload.__name__}: {field}: String should match pattern '^[A-Z]{{3}}$'"
    return {
        "name": "dead-letter",
        "title": f"Dead letter of {group}",
        "summary": f"A message the `{group}` consumer group gave up on, key and value byte for byte.",
        "description": "Written when a message cannot be parsed (not JSON, envelope invalid, wrong `type` for "
                       "the topic, payload invalid, payload tenant differs from the envelope tenant) or its "
                       "handler fails for a reason that is not transient. Transient errors are retried, "
                       "never dead-lettered.",
        "contentType": "application/octet-stream",
        "headers": {"type": "object", "required": list(catalog.DLQ_HEADERS), "properties": headers},
        "payload": {"description": "The original record value, byte for byte: normally a CloudEvent of the "
                                   "origin topic, but it may be anything (which may be why it is here)."},
        "bindings": _kafka(key={"description": "The original record key, byte for byte (normally "
                                               "`tenant:customer_id`)."}),
        "examples": [{
            "name": "invalid-payload",
            "summary": "A payload that failed validation.",
            "headers": {
                "dlq.group": group, "dlq.origin.topic": origin.name, "dlq.origin.partition": "3",
                "dlq.origin.offset": "41", "dlq.error": error, "dlq.time": "1742396400000",
            },
        }],
    }


def _channels() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        consumers = ", ".join(f"`{g}`" for g in catalog.CONSUMERS[topic.name])
        out[topic.name] = {
            "address": topic.name,
            "title": topic.name,
            "summary": topic.description + ".",
            "description": f"Producer: {catalog.PRODUCERS[topic.name]}. Consumer groups: {consumers}.",
            "messages": {message_id(topic): _ref("components", "messages", message_id(topic))},
        }
    for group in CONSUMER_GROUPS:
        out[dlq_topic(group)] = {
            "address": dlq_topic(group),
            "title": dlq_topic(group),
            "summary": f"Dead letters of the `{group}` consumer group.",
            "description": "Replay them with `python -m shared.tools.dlq replay --group "
                           f"{group}` once the cause is fixed; consumers dedupe on the event `id`.",
            "messages": {"DeadLetter": _ref("components", "messages", _dead_letter_id(group))},
        }
    return out


def _send_summary(actor: str, topic: str) -> str:
    if actor == CORE_BANKING:
        return "Core banking publishes it on Kafka."
    if topic in REST_INGEST:
        return (f"Segmentation publishes it for partners that call `{REST_INGEST[topic]}`, through its "
                "transactional outbox.")
    return f"The {actor} service publishes it through its transactional outbox."


def _operation(actor: str, action: str, channel: str, message: str, summary: str,
               group: str | None = None) -> tuple[str, dict[str, Any]]:
    operation: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel),
        "title": f"{actor} {action}s {channel}",
        "summary": summary,
        "tags": [{"name": actor}],
        "messages": [_ref("channels", channel, "messages", message)],
    }
    if group is not None:
        operation["bindings"] = _kafka(groupId={"type": "string", "const": group})
    return f"{actor}.{action}.{channel}", operation


def _operations() -> dict[str, Any]:
    ops: list[tuple[str, dict[str, Any]]] = []
    for topic in ALL_TOPICS:
        mid = message_id(topic)
        ops += [_operation(actor, "send", topic.name, mid, _send_summary(actor, topic.name))
                for actor in SENDERS[topic.name]]
        ops += [_operation(group, "receive", topic.name, mid,
                           f"Consumer group `{group}`: dedupes on the event `id`, dead-letters what it cannot "
                           f"handle to `{dlq_topic(group)}`.", group=group)
                for group in catalog.CONSUMERS[topic.name]]
    for group in CONSUMER_GROUPS:
        dlq = dlq_topic(group)
        ops.append(_operation(group, "send", dlq, "DeadLetter",
                              f"The `{group}` consumer dead-letters a message it cannot handle."))
        ops.append(_operation(OPERATORS, "receive", dlq, "DeadLetter",
                              f"`python -m shared.tools.dlq list|replay --group {group}`: replay re-publishes "
                              f"each letter to its origin topic and commits in consumer group "
                              f"`{dlq}-replay`, so a letter is replayed once.", group=f"{dlq}-replay"))
    return dict(ops)


# --- the document ---------------------------------------------------------------------------------------

def _version() -> str:
    with (catalog.ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def _check_maps() -> None:
    names = [t.name for t in ALL_TOPICS]
    for label, mapping in (("SENDERS", SENDERS), ("catalog.CONSUMERS", catalog.CONSUMERS)):
        if list(mapping) != names:
            raise ValueError(f"{label} does not list exactly the topics of ALL_TOPICS, in order")
    actors = {a for senders in SENDERS.values() for a in senders} | set(CONSUMER_GROUPS) | {OPERATORS}
    if actors != set(ACTORS):
        raise ValueError(f"ACTORS must describe exactly {sorted(actors)}")


def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document as plain data (examples validated as for docs/events.md)."""
    _check_maps()
    for topic in ALL_TOPICS:
        catalog.validate_example(topic, catalog.EXAMPLES[topic.name])
    messages = {message_id(t): _message(t) for t in ALL_TOPICS}
    messages |= {_dead_letter_id(g): _dead_letter(g) for g in CONSUMER_GROUPS}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:gentle-collections:events",
        "info": {
            "title": "Gentle collections events",
            "version": _version(),
            "description": _DESCRIPTION,
            "tags": [{"name": name, "description": text} for name, text in ACTORS.items()],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "production": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "title": "Production Kafka",
                "summary": "Your Apache Kafka cluster (`KAFKA_BOOTSTRAP_SERVERS`).",
                "description": "Any broker of the cluster the services are pointed at with "
                               "`KAFKA_BOOTSTRAP_SERVERS` (deploy/ runs Apache Kafka in KRaft mode). "
                               "`python -m shared.tools.topics` creates every channel's topic.",
                "variables": {"bootstrap": {
                    "description": "One `host:port` of `KAFKA_BOOTSTRAP_SERVERS`.",
                    "examples": ["kafka:9092"],
                }},
            },
            "local": {
                "host": EMBEDDED_KAFKA,
                "protocol": "kafka",
                "title": "Embedded development broker",
                "summary": "The in-memory Kafka-API broker that `make run` and the tests start.",
                "description": "Started from pip wheels on loopback, without TLS or authentication; it "
                               "does not support idempotent producers (`KAFKA_ENABLE_IDEMPOTENCE=false`).",
            },
        },
        "channels": _channels(),
        "operations": _operations(),
        "components": {"schemas": schemas(), "messages": messages},
    }


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # repeated subtrees are written out, never as &anchors
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)

_HEADER = """\
# AsyncAPI 3.0 document of every Kafka topic of gentle collections.
# Generated by `python -m shared.tools.catalog` from shared/contracts/. Do not edit by hand: run `make docs`.
# `make lint` validates it with the official AsyncAPI parser (tools/asyncapi/).
"""


def render_asyncapi() -> str:
    """The whole of docs/asyncapi.yaml; deterministic."""
    body = yaml.dump(build_asyncapi(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110,
                     default_flow_style=False)
    return _HEADER + body
