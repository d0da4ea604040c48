"""What every service's OpenAPI document says about errors, and its API docs served without a CDN.

Errors are RFC 9457 problem details (``application/problem+json``, one ``Problem`` schema), mapped in
one place by ``shared/http.py``. The statuses an operation documents are derived here from what the
shared plumbing really does, so routes need no ``responses=`` of their own:

- every operation: 500 (an unexpected error, logged; the body carries no internals);
- an operation that reaches the runtime (database, broker: ``shared.deps.RuntimeDep`` and everything
  built on it): 503 with ``Retry-After``;
- parameters or a body: 422 (validation; ``errors`` lists each invalid field; also a value the database
  refuses or the domain rejects);
- a body: 400 (a body that is not UTF-8 text, a malformed ``Content-Length``) and 413 (larger than
  ``HTTP_MAX_BODY_BYTES``);
- the API-key security dependency (``shared.deps.TenantDep``, ``PrincipalDep``): 401;
- a role required (``shared.deps.require``, at any depth of the dependencies): 403, its description naming the
  roles, which the operation also lists as ``x-required-roles``;
- an operation that addresses a resource (a path parameter, or a POST that creates one: 201): 404; and if
  it changes state (not GET): 409 (a conflict with the resource's current state).

A route adds what only it knows with ``responses={status: {"description": ...}}``; every status >= 400
is given the problem schema, keeping the route's description. ``/docs`` (Swagger UI) and ``/redoc``
load their assets from the ``fastapi-offline`` package under ``/docs/static``: no CDN, no fonts from
the internet, no online validator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import iter_route_contexts
from fastapi.staticfiles import StaticFiles

from shared.deps import get_runtime
from shared.http import PROBLEM, RETRY_AFTER_S

DOCS_STATIC = "/docs/static"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # swagger-ui-bundle.js, swagger-ui.css,
# redoc.standalone.js, favicon.png: the package refreshes them from swagger-ui-dist 5 and redoc 2

REF = "#/components/schemas/"
PROBLEM_SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "title": "Problem",
        "type": "object",
        "description": "RFC 9457 problem details, sent as application/problem+json for every error. Some "
                       "problems add extension members (`errors` on a 422 from validation, `checks` on "
                       "/readyz, counts on the SMS webhook); ignore members you do not know.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "default": "about:blank",
                     "description": "The problem type; `about:blank`: the status code says it all"},
            "title": {"type": "string", "description": "A short summary, the same for every occurrence"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599,
                       "description": "The HTTP status code of this response"},
            "detail": {"type": "string", "description": "What went wrong this time, and what to do about it"},
            "instance": {"type": "string", "format": "uri-reference",
                         "description": "This occurrence, when it is identified (not sent today)"},
            "errors": {"type": "array", "items": {"$ref": f"{REF}ValidationIssue"},
                       "description": "On a 422: each invalid field (request validation), or each reason a "
                                      "document was refused (`type` `refused`)"},
        },
        "additionalProperties": True,
    },
    "ValidationIssue": {
        "title": "ValidationIssue",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "description": "Where: `body`, `query`, `path` or `header`, then the field's path"},
            "msg": {"type": "string"},
            "type": {"type": "string", "description": "The error's kind, e.g. `missing`, `string_pattern_mismatch`"},
        },
    },
}

DESCRIPTIONS = {
    400: "Bad request: a body that cannot be read (not UTF-8 text) or a Content-Length that is not a number",
    401: "Unauthorized: no valid API key (send `Authorization: Bearer <key>` or `X-API-Key`)",
    403: "Forbidden: the principal of your API key lacks the role this needs; nothing was changed",
    404: "Not found in your tenant",
    409: "Conflict with the current state of the resource; nothing was changed",
    413: "Request body too large (more than HTTP_MAX_BODY_BYTES); nothing was read",
    422: "Invalid request: the body or parameters failed validation (`errors` lists each) or hold a value "
         "that cannot be stored or is refused; nothing was changed",
    500: "Internal error: unexpected, logged with its request id; the body carries no internals",
    503: "A dependency (database or broker) is unavailable, or the service is not ready; retry after "
         "`Retry-After` seconds",
}
RETRY_AFTER_HEADER = {"Retry-After": {
    "description": f"Seconds to wait before retrying (usually {RETRY_AFTER_S})", "schema": {"type": "integer"}}}
WRITE_METHODS = {"post", "put", "patch", "delete"}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented problem response."""
    response: dict[str, Any] = {"description": description or DESCRIPTIONS.get(status, "Error"),
                                "content": {PROBLEM: {"schema": {"$ref": f"{REF}Problem"}}}}
    if status == 503:
        response["headers"] = dict(RETRY_AFTER_HEADER)
    return response


def _reaches_runtime(dependant: Dependant | None) -> bool:
    """Whether a dependency (at any depth) is the runtime: the route may then meet an outage (503)."""
    if dependant is None:
        return False
    return any(d.call is get_runtime or _reaches_runtime(d) for d in dependant.dependencies)


def _required_roles(dependant: Dependant | None) -> frozenset[str]:
    """The roles a route requires (``shared.deps.require``, at any depth): it may answer 403."""
    if dependant is None:
        return frozenset()
    roles: frozenset[str] = frozenset()
    for d in dependant.dependencies:
        roles |= getattr(d.call, "required_roles", frozenset()) | _required_roles(d)
    return roles


def problem_statuses(method: str, operation: dict[str, Any], *, reaches_runtime: bool,
                     creates: bool, roles: frozenset[str] = frozenset()) -> set[int]:
    """The problem statuses the shared plumbing can answer this operation with (see the module doc)."""
    statuses = {500}
    if roles:
        statuses.add(403)
    parameters = operation.get("parameters") or []
    has_body = "requestBody" in operation
    if reaches_runtime:
        statuses.add(503)
    if parameters or has_body:
        statuses.add(422)
    if has_body:
        statuses |= {400, 413}
    if operation.get("security"):
        statuses.add(401)
    if any(p.get("in") == "path" for p in parameters) or creates:
        statuses.add(404)
        if method in WRITE_METHODS:
            statuses.add(409)
    return statuses


def document_problems(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Give ``schema`` (the app's generated OpenAPI, changed in place) its problem responses."""
    facts: dict[tuple[str, str], tuple[bool, bool, frozenset[str]]] = {}
    for route in iter_route_contexts(app.routes):
        dependant = getattr(route, "dependant", None)
        path = route.path_format
        if dependant is None or path is None:  # not an API route (/openapi.json, /docs, static files)
            continue
        for method in route.methods or ():
            facts[(path, method.lower())] = (_reaches_runtime(dependant), getattr(route, "status_code", None) == 201,
                                             _required_roles(dependant))
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                continue
            reaches_runtime, creates, roles = facts.get((path, method), (True, False, frozenset()))
            responses: dict[str, Any] = operation.setdefault("responses", {})
            wanted = problem_statuses(method, operation, reaches_runtime=reaches_runtime, creates=creates,
                                      roles=roles)
            if roles:
                operation["x-required-roles"] = sorted(roles)
                responses.setdefault("403", {"description": (
                    f"Forbidden: the principal of your API key holds none of the roles this needs "
                    f"({', '.join(sorted(roles))}); nothing was changed")})
            wanted |= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(wanted):
                declared = responses.get(str(status), {})
                # FastAPI's own 422 ("Validation Error", HTTPValidationError) is replaced: the handler in
                # shared/http.py answers validation errors with a problem.
                description = declared.get("description")
                if status == 422 and description == "Validation Error":
                    description = None
                responses[str(status)] = problem_response(status, description) | {
                    k: v for k, v in declared.items() if k not in {"description", "content", "headers"}}
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(PROBLEM_SCHEMAS)
    _drop_unused(components, schema, ("HTTPValidationError", "ValidationError"))
    return schema


def _drop_unused(components: dict[str, Any], schema: dict[str, Any], names: Iterable[str]) -> None:
    """Remove FastAPI's validation-error schemas once nothing refers to them."""
    for name in names:
        if name in components:
            held = components.pop(name)
            if f'"{REF}{name}"' in json.dumps(schema):
                components[name] = held


class DocumentedFastAPI(FastAPI):
    """FastAPI whose OpenAPI document declares the problem responses (``document_problems``)."""

    _documented: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        if schema is not self._documented:  # FastAPI generated it anew (first call, or the routes changed)
            self._documented = document_problems(self, schema)
        return schema


def install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc, their assets served from the fastapi-offline package.

    Build the app with ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not also added."""
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    oauth2_redirect = "/docs/oauth2-redirect"

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=f"{base}{app.openapi_url}", title=f"{app.title}: API docs",
            swagger_js_url=f"{base}{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{base}{DOCS_STATIC}/favicon.png",
            oauth2_redirect_url=f"{base}{oauth2_redirect}",
            # validatorUrl None: Swagger UI would otherwise send the document to an online validator
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True})

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(openapi_url=f"{base}{app.openapi_url}", title=f"{app.title}: API reference",
                              redoc_js_url=f"{base}{DOCS_STATIC}/redoc.standalone.js",
                              redoc_favicon_url=f"{base}{DOCS_STATIC}/favicon.png", with_google_fonts=False)
