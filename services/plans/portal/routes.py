"""The customer portal's pages (``/portal/...``, not in the OpenAPI document) and the route that mints a link
for an account (``POST /v1/accounts/{account_id}/portal-links``, for partners, agents and supervisors).

The pages are server-rendered HTML (Jinja2, ``templates/``), in zh-CN or English, with one stylesheet served
here (``static/``): no script, no third-party asset, a strict Content-Security-Policy, never cached. A session
is a cookie (HttpOnly, SameSite=Strict, path ``/portal``) whose SHA-256 is stored; every form carries the
session's CSRF token. Opening a link (GET) changes nothing (link previews and scanners fetch links): its
button POSTs the token, which then is used. Nothing about the debt or the customer's text is logged.
"""

from __future__ import annotations

import functools
import logging
import re
import traceback
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.plans import portal_service as svc
from services.plans.db.portal import PortalSession
from services.plans.portal import i18n, links
from services.plans.settings import Settings
from shared.audit import record_change
from shared.deps import CipherDep, Principal, Role, SettingsDep, UowDep, require
from shared.domain import DomainError
from shared.errors import is_data_error, is_transient
from shared.http import RETRY_AFTER_S, ProblemError
from shared.money import format_amount, to_minor
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)


class _PortalRoute(APIRoute):
    """A portal page's route: whatever goes wrong (PostgreSQL down, a body over the size limit, a bug) is a page
    with the portal's headers in the customer's language, never problem+json, a traceback or internals. A failure
    is logged by its class and frames only: an exception's message may quote SQL parameters (the debt, the
    customer's words)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every failure becomes a page
                return _failure(request, exc)

        return guarded


def _failure(request: Request, exc: Exception) -> HTMLResponse:
    locale = _lang(request.query_params.get("lang")) or i18n.DEFAULT_LOCALE
    if isinstance(exc, StarletteHTTPException):  # e.g. a body streamed past HTTP_MAX_BODY_BYTES: 413
        return _message(locale, "notfound" if exc.status_code == 404 else "invalid_input", status=exc.status_code)
    if isinstance(exc, svc.PortalError):  # e.g. the session's account gone while a page is shown
        return _refused(exc, locale)
    if isinstance(exc, RequestValidationError) or is_data_error(exc):
        return _message(locale, "invalid_input", status=400)
    if is_transient(exc):
        log.warning("portal: dependency unavailable", extra={"error": type(exc).__name__})
        response = _message(locale, "unavailable", status=503)
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    log.error("portal: unhandled error", extra={
        "error": type(exc).__name__, "frames": "".join(traceback.format_tb(exc.__traceback__))[-4000:]})
    return _message(locale, "error", status=500)


router = APIRouter(prefix="/portal", include_in_schema=False, route_class=_PortalRoute)
links_router = APIRouter(prefix="/v1", tags=["portal"])

COOKIE = "gc_portal"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "object-src 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}
_HERE = Path(__file__).parent
_STATIC = {"portal.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
_ENV = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_AMOUNT = re.compile(r"[0-9]{1,13}([.][0-9]{1,4})?")
_IDENT = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
MAX_FORM_BYTES = 64 * 1024


def _settings(settings: Any) -> Settings:
    if not isinstance(settings, Settings):  # never: the plans app is built with its own settings
        raise ProblemError(500, "Internal error", "Plans settings are missing.")
    return settings


def _secret(settings: Any) -> bytes:
    return _settings(settings).portal_key


def _client(request: Request, settings: Any) -> str:
    return svc.client_key(_secret(settings), request.client.host if request.client else "unknown")


# --- the link route (REST) ---------------------------------------------------------------------------------------

class PortalLinkPublic(BaseModel):
    url: str
    expires_at: datetime


AccountIdPath = Annotated[str, PathParam(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]


@links_router.post("/accounts/{account_id}/portal-links", status_code=201, response_model=PortalLinkPublic)
async def create_portal_link(
        uow: UowDep, request: Request, settings: SettingsDep, account_id: AccountIdPath,
        principal: Annotated[Principal, require(Role.PARTNER, Role.AGENT, Role.SUPERVISOR)]) -> PortalLinkPublic:
    """A one-time link to the customer portal for one of your accounts, to send in an SMS or e-mail: it works
    once, for ``PORTAL_LINK_TTL_HOURS`` (72 by default), and shows nothing before the customer gives the
    last four characters of their ID number (docs/plans.md, "Customer portal"). 404 for an account plans does
    not know (no overdue notice yet, or another tenant's)."""
    s = _settings(settings)
    minted = await svc.mint_link(uow, tenant=principal.tenant, account_id=account_id, created_by=principal.name,
                                 secret=_secret(s), ttl=timedelta(hours=s.portal_link_ttl_hours),
                                 now=datetime.now(UTC))
    await record_change(uow, principal, action="portal-link.mint", subject=account_id,
                        reason="a customer portal link for the customer")
    await uow.commit()
    base = s.portal_base_url or str(request.base_url)
    return PortalLinkPublic(url=f"{base.rstrip('/')}/portal/l/{minted.token}", expires_at=minted.expires_at)


# --- pages ---------------------------------------------------------------------------------------------------------

def _money(currency: str) -> Any:
    return lambda minor: f"{format_amount(int(minor), currency)} {currency}"


def _page(template: str, locale: str, title_key: str, *, status: int = 200, switch_url: str | None = None,
          **context: Any) -> HTMLResponse:
    other = i18n.other_locale(locale)
    body = _ENV.get_template(template).render(
        locale=locale, t=functools.partial(i18n.text, locale), title=i18n.text(locale, title_key),
        switch_url=switch_url, other=other, other_name=i18n.text(other, "lang_name"),
        day=functools.partial(i18n.long_date, locale), **context)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def _message(locale: str, kind: str, *, status: int, back: bool = False, switch_url: str | None = None,
             **values: Any) -> HTMLResponse:
    return _page("message.html", locale, f"{kind}_title", status=status, back=back, switch_url=switch_url,
                 message=i18n.text(locale, f"{kind}_text", **values))


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


def _lang(value: str | None) -> str | None:
    return value if value in i18n.LOCALES else None


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (the first value of each); anything else is an empty form (and so fails the
    CSRF check)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return {}
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # read no further than the limit (not the app's 4 MiB)
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return {}
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=20)
    except ValueError:
        return {}
    return {k: v[0] for k, v in fields.items() if v}


def _locale(row: PortalSession) -> str:
    return i18n.locale_of(None, row.locale)


_REFUSALS = {"used": 410, "expired": 410, "busy": 429, "session": 401, "no_id": 200}


def _refused(exc: svc.PortalError, locale: str, chosen: str | None = None, hours: int = 0) -> HTMLResponse:
    """The page of a refusal, in the language chosen, else the account's (when known), else ``locale``."""
    kind = exc.page if exc.page in _REFUSALS else "invalid"
    locale = chosen or i18n.locale_of(exc.locale, locale if exc.locale is None else None)
    return _message(locale, kind, status=_REFUSALS.get(kind, 400), hours=hours)


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in _STATIC:
        return Response(status_code=404, headers=HEADERS)
    return Response(_static(name), media_type=_STATIC[name],
                    headers={**HEADERS, "Cache-Control": "public, max-age=3600"})


@functools.cache
def _static(name: str) -> bytes:
    return (_HERE / "static" / name).read_bytes()


@router.get("/l/{token}")
async def open_link(token: str, request: Request, uow: UowDep, settings: SettingsDep,
                    lang: str | None = None) -> Response:
    """The page a link opens: a button to continue (which uses the link); nothing is shown or changed yet."""
    chosen, now = _lang(lang), datetime.now(UTC)
    locale = chosen or i18n.DEFAULT_LOCALE
    try:
        await svc.count_opening(uow, client=_client(request, settings),
                                limit=_settings(settings).portal_openings_per_address, now=now)
        state = await svc.read_link(uow, token=token, secret=_secret(settings), now=now)
    except links.LinkError:
        await uow.commit()
        return _message(locale, "invalid", status=400)
    except svc.PortalError as exc:
        await uow.commit()
        return _refused(exc, locale, chosen, _settings(settings).portal_link_ttl_hours)
    await uow.commit()
    locale = i18n.locale_of(state.locale, chosen)
    return _page("link.html", locale, "link_title", action=f"/portal/l/{token}",
                 switch_url=f"/portal/l/{token}?lang={i18n.other_locale(locale)}")


@router.post("/l/{token}")
async def use_link(token: str, request: Request, uow: UowDep, settings: SettingsDep) -> Response:
    """Exchange the link for a session (once), then ask for the second factor."""
    form, now = await _form(request), datetime.now(UTC)
    chosen = _lang(form.get("lang"))
    try:
        await svc.count_opening(uow, client=_client(request, settings),
                                limit=_settings(settings).portal_openings_per_address, now=now)
        new = await svc.exchange_link(uow, token=token, secret=_secret(settings), locale=chosen, now=now)
    except links.LinkError:
        await uow.commit()
        return _message(chosen or i18n.DEFAULT_LOCALE, "invalid", status=400)
    except svc.PortalError as exc:
        await uow.commit()
        return _refused(exc, i18n.DEFAULT_LOCALE, chosen, _settings(settings).portal_link_ttl_hours)
    await uow.commit()
    response = _redirect("/portal/verify")
    # Secure whenever customers reach plans over HTTPS (also behind a proxy that terminates TLS)
    secure = request.url.scheme == "https" or (_settings(settings).portal_base_url or "").startswith("https:")
    response.set_cookie(COOKIE, new.cookie, httponly=True, samesite="strict", path="/portal", secure=secure)
    return response


async def _session(uow: UnitOfWork, request: Request, lang: str | None = None) -> PortalSession:
    row = await svc.current_session(uow, cookie=request.cookies.get(COOKIE), now=datetime.now(UTC))
    if (chosen := _lang(lang)) is not None:
        row.locale = chosen
    return row


def _verify_page(row: PortalSession, *, error: str | None = None, locked_until: datetime | None = None,
                 status: int = 200) -> HTMLResponse:
    locale = _locale(row)
    return _page("verify.html", locale, "verify_title", status=status, csrf=row.csrf_token, error=error,
                 locked_until=None if locked_until is None else locked_until.strftime("%Y-%m-%d %H:%M"),
                 switch_url=f"/portal/verify?lang={i18n.other_locale(locale)}")


@router.get("/verify")
async def verify_page(request: Request, uow: UowDep, cipher: CipherDep, lang: str | None = None) -> Response:
    try:
        row = await _session(uow, request, lang)
    except svc.PortalError as exc:
        return _refused(exc, _lang(lang) or i18n.DEFAULT_LOCALE)
    if row.verified_at is not None:
        await uow.commit()
        return _redirect("/portal/account")
    try:
        await svc.require_factor_possible(uow, row, cipher, datetime.now(UTC))
    except svc.Locked as exc:
        await uow.commit()
        return _verify_page(row, locked_until=exc.until, status=429)
    except svc.PortalError as exc:
        await uow.commit()
        return _refused(exc, _locale(row))
    await uow.commit()
    return _verify_page(row)


@router.post("/verify")
async def verify(request: Request, uow: UowDep, cipher: CipherDep, settings: SettingsDep) -> Response:
    form, now = await _form(request), datetime.now(UTC)
    try:
        row = await _session(uow, request)
    except svc.PortalError as exc:
        return _refused(exc, i18n.DEFAULT_LOCALE)
    locale = _locale(row)
    if not svc.csrf_ok(row, form.get("csrf")):
        await uow.commit()
        return _message(locale, "forbidden", status=403)
    if row.verified_at is not None:
        await uow.commit()
        return _redirect("/portal/account")
    answer = svc.normalised_answer(form.get("answer", ""))
    try:
        if answer is None:
            await svc.require_factor_possible(uow, row, cipher, now)
            await uow.commit()
            return _verify_page(row, error=i18n.text(locale, "verify_format"))
        left = await svc.check_factor(uow, row=row, answer=answer, cipher=cipher,
                                      client=_client(request, settings), now=now)
    except svc.Locked as exc:
        await uow.commit()
        return _verify_page(row, locked_until=exc.until, status=429)
    except svc.PortalError as exc:
        await uow.commit()
        return _refused(exc, locale)
    await uow.commit()
    if left is None:
        return _redirect("/portal/account")
    return _verify_page(row, error=i18n.text(locale, "verify_wrong", left=left))


async def _verified(uow: UnitOfWork, request: Request, lang: str | None = None) -> PortalSession | Response:
    """The session, verified; else the page or redirect to show instead (the unit of work committed)."""
    try:
        row = await _session(uow, request, lang)
    except svc.PortalError as exc:
        return _refused(exc, _lang(lang) or i18n.DEFAULT_LOCALE)
    if row.verified_at is None:
        await uow.commit()
        return _redirect("/portal/verify")
    return row


def _decimal(value: str, currency: str) -> Decimal | None:
    """A non-negative amount in the currency's precision (commas and spaces ignored), else None."""
    value = value.replace(",", "").replace(" ", "").strip()
    if not _AMOUNT.fullmatch(value):
        return None
    amount = Decimal(value)
    try:
        to_minor(amount, currency)
    except (ValueError, InvalidOperation):
        return None
    return amount


async def _account_page(uow: UnitOfWork, row: PortalSession, settings: Settings, *,
                        income: Decimal | None = None,
                        expenses: Decimal | None = None, errors: Mapping[str, str] | None = None,
                        form: Mapping[str, str] | None = None, status: int = 200) -> HTMLResponse:
    now = datetime.now(UTC)
    owed = await svc.owed(uow, row)
    quote = None
    if owed.overdue_minor > 0:
        try:
            async with uow.session.begin_nested():
                quote = await svc.quote(uow, row, income=income, expenses=expenses,
                                        ttl_minutes=settings.quote_ttl_minutes, now=now)
        except DomainError:
            quote = None
    await uow.commit()
    locale = _locale(row)
    return _page("account.html", locale, "account_title", status=status, owed=owed, quote=quote,
                 csrf=row.csrf_token, errors=dict(errors or {}), form=dict(form or {}),
                 money=_money(owed.currency), product=i18n.product_name(locale, owed.product),
                 today=now.date().isoformat(),
                 last_day=(now.date() + timedelta(days=settings.promise_max_days)).isoformat(),
                 max_days=settings.promise_max_days,
                 max_chars=svc.MAX_DETAIL_CHARS, switch_url=f"/portal/account?lang={i18n.other_locale(locale)}")


@router.get("/account")
async def account(request: Request, uow: UowDep, settings: SettingsDep, lang: str | None = None) -> Response:
    row = await _verified(uow, request, lang)
    if not isinstance(row, PortalSession):
        return row
    return await _account_page(uow, row, _settings(settings))


async def _verified_post(uow: UnitOfWork, request: Request) -> tuple[PortalSession, dict[str, str]] | Response:
    form = await _form(request)
    row = await _verified(uow, request)
    if not isinstance(row, PortalSession):
        return row
    if not svc.csrf_ok(row, form.get("csrf")):
        await uow.commit()
        return _message(_locale(row), "forbidden", status=403, back=True)
    return row, form


@router.post("/account")
async def budget(request: Request, uow: UowDep, settings: SettingsDep) -> Response:
    """The account page again, the offers quoted for the income and expenses given."""
    checked = await _verified_post(uow, request)
    if isinstance(checked, Response):
        return checked
    row, form = checked
    owed = await svc.owed(uow, row)
    values: dict[str, Decimal | None] = {}
    errors: dict[str, str] = {}
    for name in ("income", "expenses"):
        raw = form.get(name, "").strip()
        if raw:
            values[name] = _decimal(raw, owed.currency)
            if values[name] is None:
                errors[name] = i18n.text(_locale(row), "amount_hint", currency=owed.currency)
    if errors:
        return await _account_page(uow, row, _settings(settings), errors=errors, form=form)
    return await _account_page(uow, row, _settings(settings), income=values.get("income"),
                               expenses=values.get("expenses"), form=form)


def _done(row: PortalSession, kind: str, *, schedule: list[tuple[int, str, str]] | None = None,
          **values: Any) -> HTMLResponse:
    locale = _locale(row)
    return _page("done.html", locale, f"{kind}_title", message=i18n.text(locale, f"{kind}_text", **values),
                 schedule=schedule or [], switch_url=f"/portal/account?lang={i18n.other_locale(locale)}")


@router.post("/offers")
async def agree_offer(request: Request, uow: UowDep) -> Response:
    """Agree one offer of a quote: the plan is agreed (the treatment pauses), or waits for an approval."""
    checked = await _verified_post(uow, request)
    if isinstance(checked, Response):
        return checked
    row, form = checked
    locale = _locale(row)
    quote_id, offer_id = form.get("quote_id", ""), form.get("offer_id", "")
    if not (_IDENT.fullmatch(quote_id) and _IDENT.fullmatch(offer_id)):
        await uow.commit()
        return _message(locale, "offer_error", status=422, back=True)
    try:
        async with uow.session.begin_nested():
            view = await svc.accept(uow, row, quote_id=quote_id, offer_id=offer_id,
                                    reason="agreed by the customer on the portal", now=datetime.now(UTC))
    except (DomainError, svc.PortalError):
        await uow.commit()
        return _message(locale, "offer_error", status=409, back=True)
    await uow.commit()
    plan = view.plan
    if plan.status != "agreed":
        return _done(row, "waiting")
    money = _money(plan.currency)
    return _done(row, "agreed", n=len(view.instalments), total=money(plan.total_minor),
                 schedule=[(i.seq, i18n.long_date(locale, i.due_date), money(i.amount_minor))
                           for i in view.instalments])


@router.post("/promise")
async def promise(request: Request, uow: UowDep, settings: SettingsDep) -> Response:
    """Promise to pay an amount (at most what is owed) by a day (today to 30 days ahead)."""
    checked = await _verified_post(uow, request)
    if isinstance(checked, Response):
        return checked
    row, form = checked
    s = _settings(settings)
    locale, today = _locale(row), datetime.now(UTC).date()
    owed = await svc.owed(uow, row)
    errors: dict[str, str] = {}
    amount = _decimal(form.get("amount", ""), owed.currency)
    amount_minor = 0 if amount is None else to_minor(amount, owed.currency)
    if not 0 < amount_minor <= owed.overdue_minor:
        errors["amount"] = i18n.text(locale, "promise_amount_error", currency=owed.currency)
    try:
        due_on: date | None = date.fromisoformat(form.get("due_on", "").strip()[:10])
    except ValueError:
        due_on = None
    # the customer's own day may be a day either side of UTC's: make_promise checks it in the account's zone
    if due_on is None or not today - timedelta(days=1) <= due_on <= today + timedelta(days=s.promise_max_days + 1):
        errors["due_on"] = i18n.text(locale, "promise_date_error", days=s.promise_max_days)
    if errors or due_on is None:
        return await _account_page(uow, row, s, errors=errors, form=form)
    try:
        async with uow.session.begin_nested():
            await svc.promise(uow, row, amount_minor=amount_minor, currency=owed.currency, due_on=due_on,
                              grace_days=s.promise_grace_days, max_days=s.promise_max_days, now=datetime.now(UTC))
    except svc.promises.PromiseRefused:
        return await _account_page(uow, row, s, errors={
            "due_on": i18n.text(locale, "promise_date_error", days=s.promise_max_days)}, form=form)
    except DomainError:
        await uow.commit()
        return _message(locale, "promise_error", status=409, back=True)
    await uow.commit()
    return _done(row, "promise_done", amount=_money(owed.currency)(amount_minor),
                 date=i18n.long_date(locale, due_on))


def _customer_text(value: str) -> str:
    """The customer's words: control characters but line breaks and tabs dropped, trimmed."""
    return "".join(c for c in value if c in "\n\t" or (ord(c) >= 32 and ord(c) != 127)).strip()


async def _request(request: Request, uow: UnitOfWork, cipher: Any, settings: Any,
                   kind: svc.RequestKind) -> Response:
    checked = await _verified_post(uow, request)
    if isinstance(checked, Response):
        return checked
    row, form = checked
    locale = _locale(row)
    field = "hardship" if kind == "hardship" else "complaint"
    detail = _customer_text(form.get("detail", ""))
    error = None
    if len(detail) > svc.MAX_DETAIL_CHARS:
        error = i18n.text(locale, "text_error", n=svc.MAX_DETAIL_CHARS)
    elif kind == "complaint" and not detail:
        error = i18n.text(locale, "text_required")
    if error is not None:
        return await _account_page(uow, row, _settings(settings), errors={field: error},
                                   form={field: detail[:svc.MAX_DETAIL_CHARS]})
    request_id = await svc.customer_request(uow, row, kind=kind, channel=None, detail=detail or None, cipher=cipher,
                                            now=datetime.now(UTC))
    await uow.commit()
    if kind == "hardship":
        return _done(row, "hardship_done")
    return _done(row, "complaint_done", ref=request_id[:8].upper())


@router.post("/hardship")
async def hardship(request: Request, uow: UowDep, cipher: CipherDep, settings: SettingsDep) -> Response:
    """Declare financial difficulty: compliance places a hold and routes the account to a person."""
    return await _request(request, uow, cipher, settings, "hardship")


@router.post("/complaint")
async def complaint(request: Request, uow: UowDep, cipher: CipherDep, settings: SettingsDep) -> Response:
    """File a complaint: compliance starts its answer clock."""
    return await _request(request, uow, cipher, settings, "complaint")


@router.post("/opt-out")
async def opt_out(request: Request, uow: UowDep, cipher: CipherDep, settings: SettingsDep) -> Response:
    """Stop one channel (SMS, e-mail or calls)."""
    checked = await _verified_post(uow, request)
    if isinstance(checked, Response):
        return checked
    row, form = checked
    locale = _locale(row)
    name = form.get("channel", "")
    channel = svc.OPT_OUT_CHANNELS.get(name)
    if channel is None:
        return await _account_page(uow, row, _settings(settings), errors={"channel": i18n.text(locale, "optout_error")})
    await svc.customer_request(uow, row, kind="opt_out", channel=channel, detail=None, cipher=cipher,
                               now=datetime.now(UTC))
    await uow.commit()
    return _done(row, "optout_done", channel=i18n.text(locale, f"optout_{name}"))


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


@router.api_route("/{rest:path}", methods=_METHODS)
async def not_a_page(request: Request, rest: str) -> Response:
    """Any other path under ``/portal`` (404), or a page's path with another method (405): a page with the
    portal's headers, as every page (this route is the router's last)."""
    path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
    allowed = sorted({m for r in router.routes if isinstance(r, APIRoute) and r.endpoint is not not_a_page
                      and r.path_regex.match(path) for m in r.methods or ()})
    locale = _lang(request.query_params.get("lang")) or i18n.DEFAULT_LOCALE
    if not allowed:
        return _message(locale, "notfound", status=404)
    response = _message(locale, "invalid_input", status=405)
    response.headers["Allow"] = ", ".join(allowed)
    return response
