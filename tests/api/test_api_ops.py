"""Every service's /healthz, /readyz and /metrics through the ASGI app (shared/service.py build_app), and what its
OpenAPI document, /docs and its error answers promise (shared/openapi.py, shared/http.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import iter_route_contexts
from prometheus_client.parser import text_string_to_metric_families

from shared.http import PROBLEM
from tests.api.support import SERVICES, OpenService, ServiceApi, assert_problem

pytestmark = pytest.mark.integration
NAMES = list(SERVICES)


def counter(text: str, method: str, route: str, status: str) -> float:
    """The value of http_requests_total{method, route, status} in a Prometheus exposition, 0 if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels == {
                    "method": method, "route": route, "status": status}:
                return float(sample.value)
    return 0.0


@pytest.mark.parametrize("name", NAMES)
async def test_healthz_answers_without_a_key(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    response = await api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response.headers["x-request-id"]
    echoed = await api.client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert echoed.headers["x-request-id"] == "req-123"


@pytest.mark.parametrize("name", NAMES)
async def test_metrics_count_requests_by_route_template(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    before = (await api.client.get("/metrics")).text
    assert_problem(await api.client.get("/v1/no-such-route"), 404)
    await api.client.get("/healthz")
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert counter(text, "GET", "/healthz", "200") == counter(before, "GET", "/healthz", "200") + 1
    assert counter(text, "GET", "<unmatched>", "404") == counter(before, "GET", "<unmatched>", "404") + 1
    assert "/v1/no-such-route" not in text  # labels carry route templates, never raw paths


async def test_metrics_label_a_parametrised_route_by_its_template(open_api: OpenService) -> None:
    api = await open_api("plans")
    tenant = api.tenants[0]
    before = (await api.client.get("/metrics")).text
    assert_problem(await api.client.get("/v1/plans/some-plan-id", headers=tenant.headers), 404)
    text = (await api.client.get("/metrics")).text
    assert counter(text, "GET", "/v1/plans/{plan_id}", "404") == counter(before, "GET", "/v1/plans/{plan_id}",
                                                                         "404") + 1
    assert "some-plan-id" not in text


@pytest.mark.parametrize("name", NAMES)
async def test_readyz_is_a_503_problem_until_kafka_is_connected(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    # The producer is built but not started (no lifespan): the database answers, Kafka is not reachable.
    problem = assert_problem(await api.client.get("/readyz"), 503)
    assert problem["title"] == "Not ready"
    assert problem["checks"]["database"] == "ok"
    assert problem["checks"]["kafka"].startswith("error: ")
    assert "consumer" not in problem["checks"]  # no consumer was started


@pytest.mark.parametrize("name", NAMES)
async def test_readyz_is_ready_once_the_producer_is_connected_to_the_broker(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    await api.runtime.producer.start()  # stopped by the fixture
    response = await api.client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "kafka": "ok"}}


@pytest.mark.parametrize("name", NAMES)
async def test_openapi_declares_the_api_key_schemes(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    schema = (await api.client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "http", "scheme": "bearer", "description": "Your API key, as a bearer token"}
    assert schemes["xApiKey"]["type"] == "apiKey" and schemes["xApiKey"]["name"] == "X-API-Key"
    # webhooks are signed by the provider, unsubscribe links carry their own signed token: no API key
    tenant_routes = [op for path, ops in schema["paths"].items() if path.startswith("/v1/")
                     and "webhooks" not in path and not path.startswith("/v1/unsubscribe/") for op in ops.values()]
    assert tenant_routes and all({"apiKey": []} in op["security"] for op in tenant_routes)


# --- The OpenAPI documents tell the truth (shared/openapi.py) -------------------------------------------

METHODS = {"get", "put", "post", "delete", "patch"}


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every documented operation."""
    return [(method, path, op) for path, ops in schema["paths"].items() for method, op in ops.items()
            if method in METHODS]


def url_of(path: str, operation: dict[str, Any]) -> str:
    """The path with its parameters filled in, and every required query parameter given."""
    url = re.sub(r"\{[^}]+\}", "some-id", path)
    query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")]
    return url + ("?" + "&".join(f"{name}=some-id" for name in query) if query else "")


def documented(operation: dict[str, Any], response: httpx.Response) -> None:
    """The operation documents the status it answered, as a problem with the Problem schema."""
    status = str(response.status_code)
    assert status in operation["responses"], (status, sorted(operation["responses"]), response.text)
    content = operation["responses"][status]["content"]
    if response.headers["content-type"].startswith("text/html"):  # a page for people (an unsubscribe link)
        assert "text/html" in content, (status, content)
        return
    assert content[PROBLEM] == {"schema": {"$ref": "#/components/schemas/Problem"}}
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("name", NAMES)
async def test_openapi_declares_the_problem_schema_for_every_error(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    schema = (await api.client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    problem = components["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"type", "title", "status", "detail", "instance", "errors"} <= set(problem["properties"])
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ValidationIssue"}
    assert set(components["ValidationIssue"]["properties"]) == {"loc", "msg", "type"}
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    assert {"apiKey", "xApiKey"} <= set(schema["components"]["securitySchemes"])
    for method, path, op in operations(schema):
        statuses = set(op["responses"])
        assert "500" in statuses, (method, path)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                content = dict(response["content"])
                if path.startswith("/v1/unsubscribe/") and "text/html" in content:
                    # a page for the customer: a bad or expired link answers in HTML
                    assert content.pop("text/html") == {"schema": {"type": "string"}}, (method, path, status)
                    if not content:
                        continue
                assert content == {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}, (
                    method, path, status)
                assert response["description"]
        assert ("401" in statuses) == bool(op.get("security")) or "webhooks" in path, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= statuses, (method, path)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if "503" in statuses:
            assert "Retry-After" in op["responses"]["503"]["headers"]
    ops = {(method, path): op for method, path, op in operations(schema)}
    assert set(ops[("get", "/metrics")]["responses"]["200"]["content"]) == {"text/plain"}
    assert "503" not in ops[("get", "/metrics")]["responses"]  # /metrics reaches no dependency
    assert "503" in ops[("get", "/readyz")]["responses"] and "503" in ops[("get", "/healthz")]["responses"]


@pytest.mark.parametrize("name", NAMES)
async def test_documented_statuses_include_those_the_routes_answer(open_api: OpenService, name: str) -> None:
    api = await open_api(name, http_max_body_bytes=1024)
    tenant = api.tenants[0]
    schema = (await api.client.get("/openapi.json")).json()
    checked = 0
    for method, path, op in operations(schema):
        url = url_of(path, op)
        if op.get("security"):  # 401 without a key (the same with a wrong one)
            for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"X-API-Key": "not-a-key"}):
                response = await api.client.request(method, url, headers=headers, json={})
                assert response.status_code == 401, (method, path, response.text)
                documented(op, response)
                checked += 1
        if "requestBody" in op:
            big = b'{"x": "' + b"a" * 2048 + b'"}'
            response = await api.client.request(method, url, headers=tenant.headers, content=big)
            assert response.status_code == 413, (method, path, response.text)
            documented(op, response)
            not_a_number = {**tenant.headers, "Content-Length": "ten"}
            response = await api.client.request(method, url, headers=not_a_number, content=b"{}")
            assert response.status_code == 400, (method, path, response.text)
            documented(op, response)
            response = await api.client.request(method, url, headers=tenant.headers, json=["not", "an", "object"])
            if op.get("security"):  # the webhook checks its signature first (a 401, documented)
                assert response.status_code == 422, (method, path, response.text)
                assert assert_problem(response, 422)["errors"][0]["loc"][0] == "body"
            documented(op, response)
            checked += 3
    assert checked >= 3


@pytest.mark.parametrize("name", NAMES)
async def test_a_wrong_method_is_a_405_problem_with_allow(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    schema = (await api.client.get("/openapi.json")).json()
    for path, ops in schema["paths"].items():
        allowed = {m.upper() for m in ops if m in METHODS}
        wrong = next(m for m in ("DELETE", "PUT", "PATCH") if m not in allowed)
        response = await api.client.request(wrong, url_of(path, {}))
        assert_problem(response, 405)
        assert set(response.headers["allow"].split(", ")) == allowed, (path, response.headers["allow"])


async def test_allow_lists_the_methods_of_every_route_on_the_path(plans: ServiceApi) -> None:
    # Starlette names only the first route that matched (POST /v1/plans); GET /v1/plans is another route.
    response = await plans.client.delete("/v1/plans")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


@pytest.mark.parametrize("name", NAMES)
async def test_api_docs_are_served_without_a_cdn(open_api: OpenService, name: str) -> None:
    api = await open_api(name)
    types = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",), ".png": ("image/png",)}
    for page in ("/docs", "/redoc"):
        response = await api.client.get(page)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        html = response.text
        assert not re.search(r"https?://", html), re.findall(r"https?://[^\s\"'<>]+", html)
        assets = re.findall(r"(?:src|href)=\"([^\"]+)\"", html)
        assert assets and all(a.startswith("/docs/static/") for a in assets), assets
        for asset in assets:
            fetched = await api.client.get(asset)
            assert fetched.status_code == 200, asset
            assert fetched.headers["content-type"].split(";")[0] in types[asset[asset.rindex("."):]], (
                asset, fetched.headers["content-type"])
        assert "/openapi.json" in html
    swagger = (await api.client.get("/docs")).text
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/docs/static/favicon.png"} <= set(
        re.findall(r"(?:src|href)=\"([^\"]+)\"", swagger))
    assert '"validatorUrl": null' in swagger  # Swagger UI would otherwise post the document to an online validator
    assert (await api.client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await api.client.get("/openapi.json")).status_code == 200


def query_params(dependant: Dependant) -> list[Any]:
    """The query parameters of a route and of its dependencies."""
    return [*dependant.query_params, *(p for d in dependant.dependencies for p in query_params(d))]


@pytest.mark.parametrize("name", NAMES)
async def test_query_parameters_without_a_default_are_documented_as_required(open_api: OpenService,
                                                                              name: str) -> None:
    api = await open_api(name)
    schema = api.app.openapi()
    seen = 0
    for route in iter_route_contexts(api.app.routes):
        dependant = getattr(route, "dependant", None)
        if dependant is None or not route.include_in_schema:
            continue
        for method in route.methods or ():
            documented_params = {p["name"]: p for p in schema["paths"][route.path_format][method.lower()].get(
                "parameters", []) if p["in"] == "query"}
            for param in query_params(dependant):
                assert documented_params[param.alias].get("required", False) == param.field_info.is_required(), (
                    route.path_format, param.alias)
                seen += 1
    assert seen or name in ("segmentation", "scheduler")  # they take no query parameters


async def test_plans_openapi_shows_money_as_decimal_strings(plans: ServiceApi) -> None:
    schemas = plans.app.openapi()["components"]["schemas"]
    amount_in = schemas["InstalmentIn"]["properties"]["amount"]
    assert amount_in["type"] == "string" and re.fullmatch(amount_in["pattern"], "500.00")
    assert not re.fullmatch(amount_in["pattern"], "5e2") and not re.fullmatch(amount_in["pattern"], "500.")
    money = [("InstalmentIn", "amount"), ("InstalmentPublic", "amount"), ("PlanPublic", "total")]
    for model, field_name in money:
        prop = schemas[model]["properties"][field_name]
        assert prop.get("type") == "string" and "anyOf" not in prop, (model, field_name, prop)
    assert '"type": "number"' not in json.dumps(schemas)  # nothing, amounts least of all, is a JSON number
    list_plans = plans.app.openapi()["paths"]["/v1/plans"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in list_plans] == [("account_id", "query", True)]
