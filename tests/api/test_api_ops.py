"""Every service's /healthz, /readyz and /metrics through the ASGI app (shared/service.py build_app)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.support import SERVICES, OpenService, assert_problem

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
    tenant_routes = [op for path, ops in schema["paths"].items() if path.startswith("/v1/") and "webhooks" not in path
                     for op in ops.values()]
    assert tenant_routes and all({"apiKey": []} in op["security"] for op in tenant_routes)
