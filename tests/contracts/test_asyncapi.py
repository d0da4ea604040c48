"""docs/asyncapi.yaml is generated from the contracts, complete, deterministic and valid AsyncAPI 3.0.0."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.contracts import events as ev
from shared.contracts import topics as topic_map
from shared.contracts.envelope import CloudEvent
from shared.contracts.topics import ALL_TOPICS, CONSUMER_GROUPS, Topic, dlq_topic, message_key
from shared.crypto import PREFIX, is_sealed
from shared.settings import EMBEDDED_KAFKA
from shared.tools import asyncapi, catalog
from shared.tools.topics import all_topic_names

TOPIC_IDS = [t.name for t in ALL_TOPICS]
TOOLS = catalog.ROOT / "tools" / "asyncapi"
VALIDATOR = TOOLS / "validate.cjs"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return asyncapi.build_asyncapi()


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return own + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


# --- generated, current, deterministic ------------------------------------------------------------------

def test_committed_document_is_current() -> None:
    assert catalog.ASYNCAPI_PATH.exists(), "docs/asyncapi.yaml is missing: run `make docs`"
    committed = catalog.ASYNCAPI_PATH.read_text(encoding="utf-8")
    assert committed == asyncapi.render_asyncapi(), "docs/asyncapi.yaml is out of date: run `make docs`"


def test_render_is_deterministic() -> None:
    text = asyncapi.render_asyncapi()
    assert text == asyncapi.render_asyncapi()
    # Another interpreter with other hash seeds (set and dict-of-set order) renders the same bytes.
    code = "import sys; from shared.tools.asyncapi import render_asyncapi; sys.stdout.write(render_asyncapi())"
    for seed in ("1", "4242"):
        out = subprocess.run([sys.executable, "-c", code], cwd=catalog.ROOT, capture_output=True, check=True,
                             env=os.environ | {"PYTHONHASHSEED": seed}).stdout
        assert out.decode("utf-8") == text


def test_yaml_is_plain_and_round_trips(doc: dict[str, Any]) -> None:
    text = asyncapi.render_asyncapi()
    assert text.startswith("# AsyncAPI 3.0 document") and "make docs" in text.splitlines()[1]
    assert yaml.safe_load(text) == doc
    assert not re.search(r"(^|\s)[&*]id\d+", text), "no YAML anchors or aliases"


def test_check_flag_reports_a_stale_asyncapi_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    events_md = tmp_path / "docs" / "events.md"
    target = tmp_path / "docs" / "asyncapi.yaml"
    monkeypatch.setattr(catalog, "DOC_PATH", events_md)
    monkeypatch.setattr(catalog, "ASYNCAPI_PATH", target)
    assert catalog.main([]) == 0
    assert target.read_text(encoding="utf-8") == asyncapi.render_asyncapi()
    assert catalog.main(["--check"]) == 0
    capsys.readouterr()
    target.write_text(target.read_text(encoding="utf-8") + "x-stale: true\n", encoding="utf-8")
    assert catalog.main(["--check"]) == 1
    err = capsys.readouterr().err.strip()
    assert "asyncapi.yaml is out of date" in err and "make docs" in err
    assert "events.md" not in err and "\n" not in err
    target.unlink()
    assert catalog.main(["--check"]) == 1
    assert "asyncapi.yaml" in capsys.readouterr().err
    assert catalog.main([]) == 0
    assert catalog.main(["--check"]) == 0


# --- completeness ---------------------------------------------------------------------------------------

def test_header_and_servers(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    servers = doc["servers"]
    assert set(servers) == {"production", "local"}
    assert {s["protocol"] for s in servers.values()} == {"kafka"}
    assert servers["local"]["host"] == EMBEDDED_KAFKA == "127.0.0.1:59092"
    assert set(re.findall(r"{(\w+)}", servers["production"]["host"])) == set(servers["production"]["variables"])


def test_channels_are_exactly_the_topics_and_dlqs(doc: dict[str, Any]) -> None:
    channels = doc["channels"]
    assert list(channels) == all_topic_names()  # what shared.tools.topics creates
    for name, channel in channels.items():
        assert channel["address"] == name


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=TOPIC_IDS)
def test_topic_channel_carries_its_cloudevent(doc: dict[str, Any], topic: Topic) -> None:
    channel = doc["channels"][topic.name]
    assert channel["address"] == topic.name
    (message_ref,) = channel["messages"].values()
    message = _resolve(doc, message_ref["$ref"])
    assert message["name"] == topic.event_type
    envelope, refinement = message["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/CloudEvent"}
    assert refinement["properties"]["type"] == {"const": topic.event_type}
    assert refinement["properties"]["data"] == {"$ref": f"#/components/schemas/{topic.payload.__name__}"}
    assert set(refinement["required"]) == {"type", "data"}
    assert message["examples"][0]["payload"] == catalog.EXAMPLES[topic.name]
    key = message["bindings"]["kafka"]["key"]
    assert _resolve(doc, key["$ref"]) == doc["components"]["schemas"]["MessageKey"]


def test_envelope_schema_has_every_cloudevent_attribute(doc: dict[str, Any]) -> None:
    schema = doc["components"]["schemas"]["CloudEvent"]
    assert list(schema["properties"]) == list(CloudEvent.model_fields)
    assert schema["additionalProperties"] is True  # unknown extension attributes are accepted
    for name, prop in schema["properties"].items():
        assert prop["description"] == catalog.ENVELOPE_DOCS[name]


def test_message_key_is_tenant_colon_customer(doc: dict[str, Any]) -> None:
    key = doc["components"]["schemas"]["MessageKey"]
    assert key["type"] == "string" and "tenant:customer_id" in key["description"]
    tenant = ev.AccountOverdueV1.model_json_schema()["properties"]["tenant"]
    assert key["pattern"].startswith(tenant["pattern"].removesuffix("+$").removesuffix("$") + "{1,")
    for example in catalog.EXAMPLES.values():
        value = message_key(example["tenant"], catalog.customer_of(example["data"])).decode()
        assert re.search(key["pattern"], value)
    for bad in ("C-100042", ":C-1", "tenant-a:", "tenant a:C-1"):
        assert not re.search(key["pattern"], bad)


def _payload_models() -> list[type[BaseModel]]:
    return [t.payload for t in ALL_TOPICS]


def _without_additions(value: Any) -> Any:
    """A schema without what the generator adds: property descriptions and the sealed-PII pattern."""
    if isinstance(value, dict):
        out = {k: _without_additions(v) for k, v in value.items()
               if not (k == "pattern" and v == asyncapi.SEALED_PATTERN)}
        if "properties" in out:
            out["properties"] = {n: {k: v for k, v in p.items() if k != "description"}
                                 for n, p in out["properties"].items()}
        return out
    if isinstance(value, list):
        return [_without_additions(v) for v in value]
    return value


@pytest.mark.parametrize("model", [CloudEvent, *_payload_models()], ids=lambda m: m.__name__)
def test_every_model_has_its_pydantic_schema(doc: dict[str, Any], model: type[BaseModel]) -> None:
    schemas = doc["components"]["schemas"]
    expected = model.model_json_schema(ref_template=asyncapi.SCHEMA_REF)
    defs = expected.pop("$defs", {})
    for name, schema in ((model.__name__, expected), *defs.items()):  # $defs are hoisted
        assert name in schemas, f"{name} is missing from components.schemas"
        assert _without_additions(schemas[name]) == _without_additions(schema)
    assert "$defs" not in schemas[model.__name__]


def test_every_field_is_described_and_every_ref_resolves(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert {"CustomerContact", "CoLender", "Instalment", "Channel", "Segment"} <= set(schemas)
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    refs = _refs(doc)
    assert refs
    for ref in refs:
        _resolve(doc, ref)


def _sealed_fields() -> list[tuple[str, str]]:
    return [(name, field) for name, model in catalog.MODELS.items() if name in asyncapi.schemas()
            for field, info in model.model_fields.items()
            if ev._require_sealed in catalog.field_validators(info)]


def test_sealed_fields_carry_the_sealed_pattern(doc: dict[str, Any]) -> None:
    sealed = _sealed_fields()
    assert {("CustomerContact", "name"), ("CustomerContact", "phone"), ("ContactRequestV1", "destination")} \
        <= set(sealed)
    schemas = doc["components"]["schemas"]
    for name, field in sealed:
        branches = asyncapi._string_branches(schemas[name]["properties"][field])
        assert branches and all(b["pattern"] == asyncapi.SEALED_PATTERN for b in branches), (name, field)


@given(st.one_of(st.text(), st.builds(lambda rest: PREFIX + rest, st.text(alphabet="ab:=\n-_"))))
def test_sealed_pattern_is_is_sealed(value: str) -> None:
    assert bool(re.search(asyncapi.SEALED_PATTERN, value)) == is_sealed(value)


# --- who sends, who receives ----------------------------------------------------------------------------

def _operations(doc: dict[str, Any], channel: str, action: str) -> dict[str, dict[str, Any]]:
    return {op_id: op for op_id, op in doc["operations"].items()
            if op["channel"]["$ref"] == f"#/channels/{channel}" and op["action"] == action}


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=TOPIC_IDS)
def test_operations_name_the_publishers_and_consumer_groups(doc: dict[str, Any], topic: Topic) -> None:
    sends = _operations(doc, topic.name, "send")
    receives = _operations(doc, topic.name, "receive")
    assert [op["tags"][0]["name"] for op in sends.values()] == list(asyncapi.SENDERS[topic.name])
    groups = [op["bindings"]["kafka"]["groupId"]["const"] for op in receives.values()]
    assert groups == list(catalog.CONSUMERS[topic.name])


def test_every_operation_is_well_formed(doc: dict[str, Any]) -> None:
    tags = {t["name"] for t in doc["info"]["tags"]}
    channels_used = set()
    for op_id, op in doc["operations"].items():
        channel = _resolve(doc, op["channel"]["$ref"])
        channels_used.add(channel["address"])
        assert op_id == f"{op['tags'][0]['name']}.{op['action']}.{channel['address']}"
        assert op["tags"][0]["name"] in tags
        for message in op["messages"]:
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/")
            _resolve(doc, message["$ref"])
    assert channels_used == set(doc["channels"])


def test_senders_agree_with_the_catalogue() -> None:
    for topic, senders in asyncapi.SENDERS.items():
        prose = catalog.PRODUCERS[topic]
        for sender in senders:
            assert (sender.replace("-", " ") if sender == asyncapi.CORE_BANKING else sender) in prose
        if topic in asyncapi.REST_INGEST:
            assert asyncapi.REST_INGEST[topic] in prose


def test_senders_match_the_services_code() -> None:
    """A service publishes a topic iff its code uses the topic's constant (not just ``.name``, a handler key)."""
    constants = {name: value.name for name, value in vars(topic_map).items() if isinstance(value, Topic)}
    used = re.compile(r"\btopics\.([A-Z_]+)\b(?!\.name)")
    for service in CONSUMER_GROUPS:
        published = set()
        for path in (catalog.ROOT / "services" / service).rglob("*.py"):
            published |= {constants[c] for c in used.findall(path.read_text(encoding="utf-8")) if c in constants}
        expected = {topic for topic, senders in asyncapi.SENDERS.items() if service in senders}
        assert published == expected, service


@pytest.mark.parametrize("group", CONSUMER_GROUPS)
def test_dlq_channel_documents_its_headers(doc: dict[str, Any], group: str) -> None:
    channel = doc["channels"][dlq_topic(group)]
    (message_ref,) = channel["messages"].values()
    message = _resolve(doc, message_ref["$ref"])
    headers = message["headers"]
    assert list(headers["properties"]) == [*catalog.DLQ_HEADERS, *catalog.DLQ_OPTIONAL_HEADERS]
    assert headers["required"] == list(catalog.DLQ_HEADERS)
    assert headers["properties"]["dlq.group"]["const"] == group
    origins = [t for t, groups in catalog.CONSUMERS.items() if group in groups]
    assert headers["properties"]["dlq.origin.topic"]["enum"] == origins
    assert list(_operations(doc, dlq_topic(group), "send")) == [f"{group}.send.{dlq_topic(group)}"]
    (replay,) = _operations(doc, dlq_topic(group), "receive").values()
    assert replay["bindings"]["kafka"]["groupId"]["const"] == f"{dlq_topic(group)}-replay"


# --- the official validator -----------------------------------------------------------------------------

def _broken(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Documents the validator must reject, named by the diagnostic it must report."""
    cases: dict[str, dict[str, Any]] = {}
    schema_error = copy.deepcopy(doc)
    del schema_error["channels"]["plans.plan-event.v1"]["address"]
    schema_error["servers"]["local"]["protocol"] = 42
    cases["asyncapi-document-resolved"] = schema_error  # the AsyncAPI 3.0.0 JSON Schema
    dangling = copy.deepcopy(doc)
    del dangling["components"]["schemas"]["CoLender"]
    cases["invalid-ref"] = dangling
    wrong_message = copy.deepcopy(doc)
    wrong_message["operations"]["plans.send.plans.plan-event.v1"]["messages"] = [
        {"$ref": "#/channels/core.account-overdue.v1/messages/core.AccountOverdue.v1"}]
    cases["asyncapi3-operation-messages-from-referred-channel"] = wrong_message
    bad_example = copy.deepcopy(doc)
    bad_example["components"]["messages"]["plans.PlanEvent.v1"]["examples"][0]["payload"]["data"]["currency"] = "cny"
    cases["message-example"] = bad_example
    return cases


@pytest.fixture(scope="module")
def validator_run(doc: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of tools/asyncapi/validate.cjs over the rendered document and each broken one."""
    node = shutil.which("node")
    if node is None or not (TOOLS / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.skip("the AsyncAPI validator is not installed: `make lint` installs it (tools/asyncapi/)")
    folder = tmp_path_factory.mktemp("asyncapi")
    good = folder / "asyncapi.yaml"
    good.write_text(asyncapi.render_asyncapi(), encoding="utf-8")
    files = {"good": good}
    for code, broken in _broken(doc).items():
        files[code] = folder / f"{code}.yaml"
        files[code].write_text(yaml.safe_dump(broken, sort_keys=False), encoding="utf-8")
    run = subprocess.run([node, str(VALIDATOR), *map(str, files.values())], capture_output=True, text=True,
                         timeout=120)
    return {"returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr, "files": files}


def test_document_is_valid_asyncapi_3(validator_run: dict[str, Any]) -> None:
    good = str(validator_run["files"]["good"])
    assert f"{good}: valid AsyncAPI" in validator_run["stdout"].splitlines()
    assert not [line for line in validator_run["stderr"].splitlines() if line.startswith(good)]


@pytest.mark.parametrize("code", ["asyncapi-document-resolved", "invalid-ref",
                                  "asyncapi3-operation-messages-from-referred-channel", "message-example"])
def test_validator_rejects_broken_documents(validator_run: dict[str, Any], code: str) -> None:
    assert validator_run["returncode"] == 1
    path = str(validator_run["files"][code])
    reported = [line for line in validator_run["stderr"].splitlines() if line.startswith(path + ":")]
    assert any(f"error {code}:" in line for line in reported), validator_run["stderr"]
