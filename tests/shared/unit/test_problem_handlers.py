"""Every error leaves as RFC 9457 problem details: domain errors with their status, the unexpected as 500."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import httpx
from fastapi import APIRouter, Request

from services.plans.settings import Settings
from shared.domain import IllegalTransition, NotFound
from shared.service import build_app


class Light(StrEnum):
    OFF = "off"


class LightEvent(StrEnum):
    DIM = "dim"


router = APIRouter()


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@router.get("/outage")
async def outage() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


@router.get("/missing")
async def missing() -> None:
    raise NotFound("No plan 'p-1' in your tenant.")


@router.get("/illegal")
async def illegal() -> None:
    raise IllegalTransition("light", Light.OFF, LightEvent.DIM)


async def _get(path: str, *, raise_app_exceptions: bool = False) -> httpx.Response:
    app = build_app(Settings(app_env="test"), title="t", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    response = await _get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal error"
    assert "hunter2" not in response.text and "secret" not in response.text


async def test_domain_errors_carry_their_status() -> None:
    missing = await _get("/missing")
    assert (missing.status_code, missing.json()["title"]) == (404, "Not found")
    assert missing.json()["detail"] == "No plan 'p-1' in your tenant."
    illegal = await _get("/illegal")
    assert (illegal.status_code, illegal.headers["content-type"]) == (409, "application/problem+json")
    assert "'dim' does not apply to state 'off'" in illegal.json()["detail"]


@router.get("/db-down")
async def db_down() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


async def test_an_unreachable_dependency_is_a_503_with_retry_after() -> None:
    response = await _get("/db-down")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["title"] == "Service unavailable"
    assert "127.0.0.1" not in response.text


@router.post("/echo-size")
async def echo_size(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}


async def _post(content: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    app = build_app(Settings(app_env="test", http_max_body_bytes=2048), title="t", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/echo-size", content=content, headers=headers)


async def test_a_body_over_the_limit_is_a_413_before_it_is_read() -> None:
    assert (await _post(b"x" * 2048)).json() == {"size": 2048}
    declared = await _post(b"x" * 5000)
    assert declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"

    async def chunks() -> Any:  # no Content-Length: counted while it streams in
        for _ in range(10):
            yield b"x" * 1000

    streamed = await _post(chunks())
    assert streamed.status_code == 413 and streamed.json()["title"] == "Request body too large"
    bad = await _post(b"{}", headers={"content-length": "abc"})
    assert bad.status_code == 400


async def test_an_outage_is_a_503_handled_inside_the_app_not_re_raised_to_the_server() -> None:
    # raise_app_exceptions: an exception the app re-raises after answering (so the server would log its
    # traceback at ERROR on every request during a database outage) fails the request here
    response = await _get("/outage", raise_app_exceptions=True)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "5")
    assert response.json()["title"] == "Service unavailable" and "5432" not in response.text
