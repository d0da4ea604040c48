"""The unsubscribe link of our e-mails: ``GET /v1/unsubscribe/{token}`` shows a confirmation page (it changes
nothing: mail scanners and link previews fetch links), ``POST`` (its form's button, or a mail client's RFC 8058
one-click POST with ``List-Unsubscribe=One-Click``) stops e-mails to that address for that tenant at once.

No API key: the signed token is the credential (``domain/unsubscribe.py``). Pages are small, server-rendered
HTML in the customer's language (the token's locale; Accept-Language when the token is unreadable), with no
script, no third-party asset and a strict Content-Security-Policy. A malformed or tampered token gets a 400
page, an expired one a 410 page; neither emits anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.channels import service
from services.channels.domain import unsubscribe as tokens
from services.channels.domain.templates import BUILT_INS
from services.channels.metrics import UNSUBSCRIBES
from services.channels.settings import Settings
from shared.deps import SettingsDep, UowDep
from shared.http import ProblemError

router = APIRouter(prefix="/v1", tags=["unsubscribe"])
PATH = "/unsubscribe/{token}"
DOCUMENTED_PATH = "/v1" + PATH

_CSS = ("body{margin:0;font:16px/1.6 system-ui,-apple-system,'Segoe UI','PingFang SC','Microsoft YaHei',sans-serif;"
        "color:#1a1a1a;background:#f6f6f4}main{max-width:34rem;margin:3rem auto;padding:2rem;background:#fff;"
        "border:1px solid #d6d6d0;border-radius:8px}h1{font-size:1.5rem;line-height:1.3;margin:0 0 1rem}"
        "p{margin:0 0 1rem}.note{color:#4a4a4a;font-size:.9rem}button{font:inherit;font-weight:600;color:#fff;"
        "background:#1f4e8c;border:0;border-radius:6px;padding:.7rem 1.4rem;cursor:pointer;margin:0 0 1rem}"
        "button:hover{background:#163b6b}button:focus-visible{outline:3px solid #e0a100;outline-offset:2px}")
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()
HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}

# page -> locale -> (title, heading, text, note); {lender} and {days} are filled in
_TEXTS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "confirm": {
        "en": ("Unsubscribe from collection e-mails", "Stop these e-mails?",
               "You asked to stop receiving e-mails from {lender} about your account at the address this link was "
               "sent to. Press the button to confirm: nothing changes until you do.",
               "This stops collection e-mails to this address only. If you need help or wish to make a complaint, "
               "contact {lender} customer service."),
        "zh-CN": ("退订催收邮件", "确认不再接收此类邮件？",
                  "您正在申请不再通过收到此链接的邮箱接收{lender}关于您账户的邮件。请点击下方按钮确认；确认之前不会有任何变更。",
                  "此操作仅停止向该邮箱发送催收邮件。如需帮助或投诉，请联系{lender}客服。"),
    },
    "done": {
        "en": ("Unsubscribed", "You are unsubscribed",
               "We will send no more collection e-mails to this address. This takes effect at once.",
               "If you need help or wish to make a complaint, contact {lender} customer service."),
        "zh-CN": ("退订成功", "您已成功退订",
                  "我们将不再向该邮箱发送催收邮件，即时生效。",
                  "如需帮助或投诉，请联系{lender}客服。"),
    },
    "invalid": {
        "en": ("Link not valid", "This link does not work",
               "This unsubscribe link is incomplete or has been changed. Open it again from the e-mail (the whole "
               "link), or contact {lender} customer service and we will stop the e-mails for you.",
               "Nothing has been changed."),
        "zh-CN": ("链接无效", "此链接无法使用",
                  "此退订链接不完整或已被修改。请从邮件中重新打开完整的链接，或联系{lender}客服为您办理退订。",
                  "未做任何变更。"),
    },
    "expired": {
        "en": ("Link expired", "This link has expired",
               "Unsubscribe links work for {days} days after the e-mail was sent. Use the link in a more recent "
               "e-mail from us, or contact {lender} customer service and we will stop the e-mails for you.",
               "Nothing has been changed."),
        "zh-CN": ("链接已过期", "此链接已过期",
                  "退订链接自邮件发出起{days}天内有效。请使用我们较新邮件中的链接，或联系{lender}客服为您办理退订。",
                  "未做任何变更。"),
    },
}
_BUTTON = {"en": "Unsubscribe", "zh-CN": "确认退订"}
_STATUS = {"confirm": 200, "done": 200, "invalid": 400, "expired": 410}


def page(kind: str, locale: str, *, days: int) -> HTMLResponse:
    """One of the pages, in ``locale`` (zh-CN or en); the confirmation page holds the form that POSTs back to
    the same URL."""
    title, heading, text, note = (html.escape(part.format(lender=BUILT_INS[locale].default_lender, days=days))
                                  for part in _TEXTS[kind][locale])
    form = (f'<form method="post"><button type="submit">{html.escape(_BUTTON[locale])}</button></form>\n'
            if kind == "confirm" else "")
    body = (f'<!doctype html>\n<html lang="{locale}">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="robots" content="noindex, nofollow">\n<meta name="referrer" content="no-referrer">\n'
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{heading}</h1>\n<p>{text}</p>\n{form}<p class=\"note\">{note}</p>\n</main>\n</body>\n</html>\n")
    return HTMLResponse(body, status_code=_STATUS[kind], headers=HEADERS)


def preferred_locale(accept_language: str | None) -> str:
    """zh-CN or en from an Accept-Language header (the highest q among zh-* and en-*), en by default."""
    best, best_q = "en", 0.0
    for item in (accept_language or "")[:500].split(","):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        tag = tag.strip().lower()
        locale = "zh-CN" if tag.startswith("zh") else "en" if tag.startswith("en") else None
        if locale is not None and q > best_q:
            best, best_q = locale, q
    return best


def _settings(settings: Any) -> Settings:
    if not isinstance(settings, Settings):  # never: the channels app is built with its own settings
        raise ProblemError(500, "Internal error", "Channels settings are missing.")
    return settings


def _read(token: str, request: Request, settings: Settings, method: str) -> tokens.Unsubscribe | HTMLResponse:
    """The token's claims, or the page that says why it cannot be used."""
    try:
        return tokens.read(token, keys=settings.unsubscribe_signing_keys, now=time.time())
    except tokens.TokenExpired as exc:
        UNSUBSCRIBES.labels(method, "expired").inc()
        return page("expired", exc.claims.locale, days=settings.unsubscribe_ttl_days)
    except tokens.TokenError:
        UNSUBSCRIBES.labels(method, "invalid").inc()
        return page("invalid", preferred_locale(request.headers.get("accept-language")),
                    days=settings.unsubscribe_ttl_days)


_PAGES = {
    400: "Invalid link: malformed, incomplete or tampered with (a page saying so); nothing was changed",
    410: "Expired link (a page saying so); nothing was changed",
}


@router.get(PATH, response_class=HTMLResponse, responses={200: {"description": "The confirmation page, with a "
                                                                               "form whose button POSTs here"},
                                                         **{k: {"description": v} for k, v in _PAGES.items()}})
async def unsubscribe_page(token: str, request: Request, settings: SettingsDep) -> HTMLResponse:
    """The page an e-mail's unsubscribe link opens: it asks the customer to confirm with a button (a form
    POSTing to the same URL). A GET never unsubscribes: mail scanners and link previews fetch links. No API
    key: the signed, expiring token is the credential."""
    s = _settings(settings)
    claims = _read(token, request, s, "GET")
    if isinstance(claims, HTMLResponse):
        return claims
    UNSUBSCRIBES.labels("GET", "shown").inc()
    return page("confirm", claims.locale, days=s.unsubscribe_ttl_days)


@router.post(PATH, response_class=HTMLResponse,
             responses={200: {"description": "Unsubscribed (or already): a page confirming it"},
                        **{k: {"description": v} for k, v in _PAGES.items()}},
             openapi_extra={"requestBody": {"required": False, "content": {
                 "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                     "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}},
                 "multipart/form-data": {"schema": {"type": "object", "properties": {
                     "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}}}}})
async def unsubscribe(token: str, request: Request, uow: UowDep, settings: SettingsDep) -> HTMLResponse:
    """Stop collection e-mails to the address the link was sent to, for the tenant that sent it, at once
    (announced on `channels.opt-out.v1`, channel `email`, source `email-link`; compliance suppresses the
    address). The confirmation page's button posts here, and so do mail clients' one-click unsubscribes
    (RFC 8058: `List-Unsubscribe=One-Click`); the body is not needed. Using a link again changes nothing."""
    s = _settings(settings)
    await request.body()  # read (bounded by HTTP_MAX_BODY_BYTES); what it says does not matter
    claims = _read(token, request, s, "POST")
    if isinstance(claims, HTMLResponse):
        return claims
    new = await service.record_unsubscribe(uow, request=claims, received_at=datetime.now(UTC))
    await uow.commit()
    UNSUBSCRIBES.labels("POST", "opted_out" if new else "repeated").inc()
    return page("done", claims.locale, days=s.unsubscribe_ttl_days)


def document_pages(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document (changed in place): these routes answer a bad or expired link (400, 410) with an HTML
    page for the customer; a malformed request (a 400 from the body limit) is still a problem."""
    for operation in schema.get("paths", {}).get(DOCUMENTED_PATH, {}).values():
        for status, description in _PAGES.items():
            response = operation.get("responses", {}).get(str(status))
            if response is not None:
                response["description"] = description
                page_content = {"text/html": {"schema": {"type": "string"}}}
                response["content"] = {**response.get("content", {}), **page_content} if status == 400 \
                    else page_content
        if "404" in operation.get("responses", {}):
            operation["responses"]["404"]["description"] = "No token in the path (an incomplete link)"
    return schema
