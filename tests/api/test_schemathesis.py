"""Schemathesis over every service's OpenAPI document: the documents tell the truth.

For each operation of each service, schemathesis generates requests from the document (valid ones, and
invalid ones that break a parameter, a header or the body) and sends them to the app, built as in the
other route tests (tests/api/support.py: the real dependencies on the session's PostgreSQL; of the
runtime only the producer is started, so /readyz is ready), with a valid API key of one tenant; valid SMS
receipts are signed as the provider signs them. No response may be a 5xx; every status and content type
must be documented, and every body match its documented schema; an invalid request must get a 4xx.

The app runs in an event loop of its own (an anyio portal thread), so hypothesis drives the cases from a
plain test function; the run is bounded (``POSITIVE``/``NEGATIVE`` cases per operation, no shrinking)
and deterministic (``derandomize``).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from services.channels.domain import signatures
from services.channels.settings import Settings as ChannelsSettings
from tests.api.support import SERVICES, ServiceApi, Tenant, open_service

pytestmark = pytest.mark.integration

# Cases per operation: valid ones (as the document describes them), and invalid ones (a wrong type, a missing
# field, a value out of range). Raise them, with SCHEMATHESIS_RANDOM=1 for new inputs each run, to search harder.
POSITIVE = int(os.environ.get("SCHEMATHESIS_POSITIVE", "80"))
NEGATIVE = int(os.environ.get("SCHEMATHESIS_NEGATIVE", "50"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
HYPOTHESIS = settings(deadline=None, database=None, derandomize=os.environ.get("SCHEMATHESIS_RANDOM") != "1",
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as blocking_portal:
        yield blocking_portal


@contextmanager
def served(portal: BlockingPortal, name: str, database_url: str, kafka: str, tenant: Tenant) -> Iterator[ServiceApi]:
    """``open_service`` entered in the portal's event loop: its engine's connections belong to that loop."""
    with portal.wrap_async_context_manager(open_service(name, database_url, kafka, [tenant])) as api:
        yield api


Signer = Callable[[bytes], dict[str, str]]


def sms_receipt_signer(api: ServiceApi) -> Signer:
    """Signs a body as the SMS provider does (services/channels/domain/signatures.py), with the account and
    secret of the app's settings, so that valid receipts get past the signature to the body and the database."""
    settings = api.app.state.settings
    assert isinstance(settings, ChannelsSettings)
    account = settings.sms_account
    secret = settings.sms_webhook_secrets[account]

    def sign(body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        return {signatures.ACCOUNT_HEADER: account, signatures.TIMESTAMP_HEADER: timestamp,
                signatures.SIGNATURE_HEADER: signatures.signature(secret, timestamp, body)}

    return sign


# (service, "METHOD /path") -> how to sign that operation's valid cases (invalid ones go unsigned: a 401)
SIGNED: dict[tuple[str, str], Callable[[ServiceApi], Signer]] = {
    ("channels", "POST /v1/webhooks/sms/receipts"): sms_receipt_signer,
}


def send(portal: BlockingPortal, client: httpx.AsyncClient, case: schemathesis.Case,
         sign: Signer | None = None) -> httpx.Response:
    """Send a generated case through the app's ASGI client, in the portal's loop."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    headers = dict(kwargs.get("headers") or {})
    request: dict[str, Any] = {"method": kwargs["method"], "url": kwargs["url"], "params": kwargs.get("params")}
    if "json" in kwargs:
        request["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content" if isinstance(data, (bytes, str)) else "data"] = data
    if kwargs.get("cookies"):
        request["cookies"] = kwargs["cookies"]
    if sign is not None:
        content = request.get("content", b"")
        signed = sign(content.encode() if isinstance(content, str) else content)
        headers = {k: v for k, v in headers.items() if k.lower() not in {h.lower() for h in signed}} | signed
    return portal.call(partial(client.request, headers=headers, **request))


def exercise(portal: BlockingPortal, api: ServiceApi, operation: schemathesis.APIOperation,
             mode: GenerationMode, examples: int, headers: dict[str, str], statuses: Counter[int],
             sign: Signer | None) -> None:
    """Run up to ``examples`` cases of one operation in one mode, counting the statuses answered."""
    checks = NEGATIVE_CHECKS if mode is GenerationMode.NEGATIVE else CHECKS

    @settings(HYPOTHESIS, max_examples=examples)
    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    def run(case: schemathesis.Case) -> None:
        response = send(portal, api.client, case, sign if mode is GenerationMode.POSITIVE else None)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks, headers=headers)

    try:
        run()
    except Unsatisfiable:  # nothing to break: no parameters, or only a free-form string in the path
        assert mode is GenerationMode.NEGATIVE


def describe(exc: BaseException) -> str:
    """A failure as schemathesis words it (its checks, the response, a curl command), groups flattened."""
    if isinstance(exc, FailureGroup):
        return exc.message.strip()
    if isinstance(exc, BaseExceptionGroup):
        return "\n".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


# A failure in a service this change may not fix is marked on that service alone:
# pytest.param("channels", marks=pytest.mark.xfail(strict=False, reason="<route, input, status>")).
@pytest.mark.parametrize("name", list(SERVICES))
def test_every_response_is_documented(infra: Any, portal: BlockingPortal, name: str,
                                      record_property: Callable[[str, object], None]) -> None:
    tenant = Tenant.new()
    failures: dict[str, str] = {}
    counts: dict[str, Counter[int]] = {}
    started = time.perf_counter()
    with served(portal, name, infra.database_url, infra.kafka, tenant) as api:
        portal.call(api.runtime.producer.start)  # so /readyz can be ready (open_service stops it)
        schema = schemathesis.openapi.from_dict(api.app.openapi())
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()  # the document is valid OpenAPI
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            counts[label] = Counter()
            for mode, examples in ((GenerationMode.POSITIVE, POSITIVE), (GenerationMode.NEGATIVE, NEGATIVE)):
                try:
                    exercise(portal, api, operation, mode, examples, tenant.headers, counts[label],
                             sign=SIGNED[(name, label)](api) if (name, label) in SIGNED else None)
                except (Exception, BaseExceptionGroup) as exc:  # failed checks, with a curl to reproduce each
                    failures[f"{label} ({mode.value})"] = describe(exc)
    total = sum(c.total() for c in counts.values())
    record_property("schemathesis_cases", total)
    print(f"\n{name}: {total} cases in {time.perf_counter() - started:.1f}s; statuses by operation:",
          *(f"{label}: {dict(sorted(c.items()))}" for label, c in counts.items()), sep="\n  ")
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
