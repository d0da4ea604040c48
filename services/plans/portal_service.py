"""The customer portal's use cases: mint a link for an account, exchange it once for a session, check the
second factor (the last four characters of the national ID number, with a lock after five wrong answers), show
what is owed and the offers the policy allows, agree one or promise a payment, and record the customer's
requests (hardship, complaint, opt-out), each announced on ``plans.customer-request.v1``.

Offers and promises are negotiation's (``negotiation.py``) and promises' (``promises.py``) use cases.
Nothing about the debt, the ID number or the customer's text is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

from services.plans import negotiation, promises, service
from services.plans.db import portal as repo
from services.plans.db import repository as accounts
from services.plans.domain.accounts import PaymentFact, overdue_now
from services.plans.portal import i18n, links
from services.plans.service import AccountUnknown
from shared.contracts import topics
from shared.contracts.events import Channel, CustomerRequestV1
from shared.crypto import PiiCipher, PiiCryptoError
from shared.uow import UnitOfWork

SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=2)  # however active, a session ends two hours after its link was used
FACTOR_MAX_FAILURES = 5
FACTOR_LOCK = timedelta(minutes=15)
# at most this many wrong answers on an account's links per FACTOR_DAY: then they all wait until a day after the
# first of them (five per 15 minutes alone would allow ~1,400 guesses over a link's 72 hours)
FACTOR_DAILY_MAX = 10
FACTOR_DAY = timedelta(hours=24)
OPENINGS_WINDOW = timedelta(minutes=15)
MAX_DETAIL_CHARS = 2000
OPT_OUT_CHANNELS: dict[str, Channel] = {"sms": Channel.SMS, "email": Channel.EMAIL, "voice": Channel.CALL}


class PortalError(Exception):
    """A state the portal shows the customer a page for (never a problem+json); ``locale`` the account's, when
    known."""

    page = "invalid"

    def __init__(self, message: str, *, locale: object = None) -> None:
        super().__init__(message)
        self.locale = locale


class LinkUsed(PortalError):
    page = "used"


class LinkExpired(PortalError):
    """A genuine link past its expiry."""

    page = "expired"


class TooManyOpenings(PortalError):
    page = "busy"


class SessionEnded(PortalError):
    page = "session"


class NoNationalId(PortalError):
    page = "no_id"


class Locked(PortalError):
    page = "locked"

    def __init__(self, until: datetime) -> None:
        super().__init__("locked")
        self.until = until


def client_key(secret: bytes, address: str) -> str:
    """The client address as a keyed hash: rate limits count it; the address itself is never stored."""
    return hmac.new(secret, b"portal-client\x00" + address.encode(), hashlib.sha256).hexdigest()[:32]


def session_key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MintedLink:
    token: str
    expires_at: datetime


async def mint_link(uow: UnitOfWork, *, tenant: str, account_id: str, created_by: str, secret: bytes,
                    ttl: timedelta, now: datetime) -> MintedLink:
    """A one-time link for an account of the tenant known to plans (``AccountUnknown`` otherwise: the same
    404 for another tenant's account)."""
    if await accounts.account(uow.session, tenant=tenant, account_id=account_id) is None:
        raise AccountUnknown(f"Account {account_id!r} is not known to plans for your tenant (no overdue notice has "
                             "reached plans): a portal link can only be made for an account plans knows.")
    nonce = secrets.token_bytes(links.NONCE_BYTES)
    expires_at = (now + ttl).replace(microsecond=0)
    token = links.mint(secret, tenant=tenant, account_id=account_id, nonce=nonce,
                       expires_at=int(expires_at.timestamp()))
    await repo.add_link(uow.session, repo.PortalLink(nonce=nonce.hex(), tenant=tenant, account_id=account_id,
                                                     created_by=created_by[:200], expires_at=expires_at))
    return MintedLink(token, expires_at)


async def count_opening(uow: UnitOfWork, *, client: str, limit: int, now: datetime) -> None:
    """Count a link opening from this client address; ``TooManyOpenings`` beyond ``limit`` per 15 minutes (the
    refused opening is counted too, in the caller's committed unit of work)."""
    seen = await repo.openings_since(uow.session, client_key=client, since=now - OPENINGS_WINDOW)
    await repo.add_attempt(uow.session, kind="open", client_key=client, session_key=None, ok=seen < limit, at=now)
    if seen >= limit:
        raise TooManyOpenings("too many openings")


@dataclass(frozen=True, slots=True)
class LinkState:
    claims: links.PortalLink
    locale: object  # the account's contact.locale


async def read_link(uow: UnitOfWork, *, token: str, secret: bytes, now: datetime) -> LinkState:
    """The link's claims if it can still be exchanged: ``links.LinkInvalid`` when it is not ours or names an
    account plans does not know, else ``LinkExpired`` or ``LinkUsed`` (with the account's locale, for the page
    saying so). A genuine link whose nonce plans never stored (minted by channels for a message) is unused."""
    try:
        claims = links.verify(token, secret, now=now.timestamp())
    except links.LinkExpired as exc:
        claims, expired = exc.claims, True
    else:
        expired = False
    account = await accounts.account(uow.session, tenant=claims.tenant, account_id=claims.account_id)
    if account is None:  # plans mints only for a known account; channels may have one plans has not heard of
        raise links.LinkInvalid("unknown account")
    locale = (account.contact or {}).get("locale")
    if expired:
        raise LinkExpired("expired", locale=locale)
    if await repo.link_used(uow.session, nonce=claims.nonce):
        raise LinkUsed("used", locale=locale)
    return LinkState(claims, locale)


_LATEST = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())


def _when(expires_at: int) -> datetime:
    """A link's expiry as a datetime (one signed to outlive the calendar is stored as the year 9999)."""
    return datetime.fromtimestamp(min(expires_at, _LATEST), UTC)


@dataclass(frozen=True, slots=True)
class NewSession:
    cookie: str
    row: repo.PortalSession


async def exchange_link(uow: UnitOfWork, *, token: str, secret: bytes, locale: str | None,
                        now: datetime) -> NewSession:
    """Use the link (once) and open a session for its account, in ``locale`` when the customer chose one (else
    the account's); the cookie is returned, only its hash stored."""
    state = await read_link(uow, token=token, secret=secret, now=now)
    claims = state.claims
    locale = i18n.locale_of(state.locale, locale)
    if not await repo.use_link(uow.session, nonce=claims.nonce, tenant=claims.tenant, account_id=claims.account_id,
                               expires_at=_when(claims.expires_at), now=now):
        raise LinkUsed("used", locale=state.locale)
    cookie = secrets.token_urlsafe(32)
    row = repo.PortalSession(session_key=session_key(cookie), nonce=claims.nonce, tenant=claims.tenant,
                             account_id=claims.account_id, csrf_token=secrets.token_urlsafe(32), locale=locale,
                             created_at=now, last_seen_at=now)
    await repo.add_session(uow.session, row)
    return NewSession(cookie, row)


async def current_session(uow: UnitOfWork, *, cookie: str | None, now: datetime) -> repo.PortalSession:
    """The session of this cookie, its idle clock restarted; ``SessionEnded`` when there is none, it was idle
    for 30 minutes, or it began two hours ago."""
    if not cookie or len(cookie) > 200:
        raise SessionEnded("no session")
    row = await repo.get_session(uow.session, session_key(cookie), lock=True)
    if row is None or now - row.last_seen_at >= SESSION_IDLE or now - row.created_at >= SESSION_MAX:
        raise SessionEnded("ended")
    row.last_seen_at = now
    return row


def csrf_ok(row: repo.PortalSession, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(row.csrf_token.encode(), (submitted or "").encode())


def normalised_answer(answer: str) -> str | None:
    """The customer's four characters, upper-cased; None when it is not four letters or digits."""
    answer = answer.strip().upper()
    return answer if len(answer) == 4 and answer.isascii() and answer.isalnum() else None


async def _national_id(uow: UnitOfWork, row: repo.PortalSession, cipher: PiiCipher) -> str:
    account = await accounts.account(uow.session, tenant=row.tenant, account_id=row.account_id)
    sealed = None if account is None else (account.contact or {}).get("national_id")
    if not isinstance(sealed, str):
        raise NoNationalId("no national id")
    try:
        national_id = cipher.open(sealed, context=row.tenant).strip().upper()
    except PiiCryptoError:
        raise NoNationalId("unreadable national id") from None
    if len(national_id) < 4:
        raise NoNationalId("short national id")
    return national_id


async def _account_lock(uow: UnitOfWork, row: repo.PortalSession) -> tuple[int, datetime | None]:
    """The wrong answers of the account's other sessions, and the account's lock: the latest of its sessions'
    (and this one's own, not yet flushed)."""
    others, locked = await repo.account_factor_state(uow.session, tenant=row.tenant, account_id=row.account_id,
                                                     other_than=row.session_key)
    if row.locked_until is not None and (locked is None or row.locked_until > locked):
        locked = row.locked_until
    return others, locked


async def require_factor_possible(uow: UnitOfWork, row: repo.PortalSession, cipher: PiiCipher,
                                  now: datetime) -> str:
    """``NoNationalId`` when the second factor cannot be asked, ``Locked`` while the account is locked (by the
    wrong answers of any of its links: five lock them all for 15 minutes, ten within a day until a day after the
    first of those); else the national ID the answer is checked against."""
    national_id = await _national_id(uow, row, cipher)
    _, locked = await _account_lock(uow, row)
    if locked is not None and now < locked:
        raise Locked(locked)
    wrong, earliest = await repo.wrong_answers_since(uow.session, tenant=row.tenant, account_id=row.account_id,
                                                     since=now - FACTOR_DAY)
    if wrong >= FACTOR_DAILY_MAX and earliest is not None:
        raise Locked(earliest + FACTOR_DAY)
    return national_id


async def check_factor(uow: UnitOfWork, *, row: repo.PortalSession, answer: str, cipher: PiiCipher,
                       client: str, now: datetime) -> int | None:
    """Check four normalised characters against the national ID's last four (constant time). None when right
    (the session is verified); else the tries left before the lock (``Locked`` when this answer locked it).

    The wrong answers are counted across every link of the account (their sessions' sum), so more links do not
    give more guesses: each fifth wrong answer locks them all for ``FACTOR_LOCK``; a right answer starts the
    count again. The account's answers are checked one at a time."""
    await repo.serialise_factor(uow.session, tenant=row.tenant, account_id=row.account_id)
    expected = (await require_factor_possible(uow, row, cipher, now))[-4:]
    ok = hmac.compare_digest(expected.encode(), answer.encode())
    await repo.add_attempt(uow.session, kind="factor", client_key=client, session_key=row.session_key, ok=ok, at=now)
    others, _ = await _account_lock(uow, row)
    if ok:
        # the count starts again: this session takes back the account's wrong answers since the last lock
        row.failures -= (others + row.failures) % FACTOR_MAX_FAILURES
        row.verified_at, row.locked_until = now, None
        return None
    row.failures += 1
    wrong = (others + row.failures) % FACTOR_MAX_FAILURES
    if wrong == 0:
        row.locked_until = now + FACTOR_LOCK
        raise Locked(row.locked_until)
    return FACTOR_MAX_FAILURES - wrong


@dataclass(frozen=True, slots=True)
class Owed:
    """What the account owes now and why (minor units of ``currency``)."""

    account_id: str
    customer_id: str
    currency: str
    overdue_minor: int
    outstanding_minor: int
    due_date: date
    days_past_due: int
    product: str
    account_ref: str | None


async def owed(uow: UnitOfWork, row: repo.PortalSession) -> Owed:
    account = await accounts.account(uow.session, tenant=row.tenant, account_id=row.account_id)
    if account is None:
        raise SessionEnded("account gone")
    payments = await accounts.payments_of_account(uow.session, tenant=row.tenant, account_id=row.account_id)
    facts = [PaymentFact(p.amount_minor, p.currency, p.paid_at) for p in payments]
    overdue = overdue_now(reported_minor=account.overdue_minor, currency=account.currency, as_of=account.as_of,
                          payments=facts)
    paid_since = sum(f.amount_minor for f in facts if f.currency == account.currency and f.paid_at > account.as_of)
    return Owed(account_id=account.account_id, customer_id=account.customer_id, currency=account.currency,
                overdue_minor=overdue, outstanding_minor=max(account.outstanding_minor - paid_since, 0),
                due_date=account.due_date, days_past_due=account.days_past_due, product=account.product,
                account_ref=account.account_ref)


async def quote(uow: UnitOfWork, row: repo.PortalSession, *, income: Decimal | None, expenses: Decimal | None,
                ttl_minutes: int, now: datetime) -> negotiation.QuoteView:
    """The offers the tenant's policy allows for the account now (refused like negotiation's quote)."""
    return await negotiation.quote(uow, tenant=row.tenant, account_id=row.account_id, income=income,
                                   expenses=expenses, requested_by="portal:customer", now=now,
                                   ttl_minutes=ttl_minutes)


async def accept(uow: UnitOfWork, row: repo.PortalSession, *, quote_id: str, offer_id: str, reason: str,
                 now: datetime) -> service.PlanView:
    """Agree an offer of one of this account's quotes as the customer (a plan needing approval waits for it)."""
    quoted = await negotiation.get_quote(uow.session, tenant=row.tenant, quote_id=quote_id)
    if quoted.account_id != row.account_id:  # another account's quote of the same tenant: as if unknown
        raise negotiation.QuoteNotFound(f"No quote {quote_id!r} for this account.")
    return await negotiation.accept(uow, tenant=row.tenant, quote_id=quote_id, offer_id=offer_id,
                                    maker="portal:customer", maker_roles=frozenset(), reason=reason, now=now)


async def promise(uow: UnitOfWork, row: repo.PortalSession, *, amount_minor: int, currency: str, due_on: date,
                  grace_days: int, max_days: int, now: datetime) -> promises.PromiseView:
    """A promise to pay made by the customer (refused like promises' make_promise)."""
    return await promises.make_promise(uow, tenant=row.tenant, account_id=row.account_id,
                                       amount_minor=amount_minor, currency=currency, due_on=due_on,
                                       source="portal", made_by="portal:customer", now=now,
                                       reason="promised by the customer on the portal", grace_days=grace_days,
                                       max_days=max_days)


RequestKind = Literal["hardship", "complaint", "opt_out"]


async def customer_request(uow: UnitOfWork, row: repo.PortalSession, *, kind: RequestKind,
                           channel: Channel | None, detail: str | None, cipher: PiiCipher,
                           now: datetime) -> str:
    """Store the request (its text sealed, the tenant as context) and announce it on
    ``plans.customer-request.v1``; compliance places the hold, starts the complaint's clock or stops the
    channel. Returns the request id."""
    if detail is not None and len(detail) > MAX_DETAIL_CHARS:
        raise ValueError("detail too long")
    account = await owed(uow, row)
    sealed = cipher.seal(detail, context=row.tenant) if detail else None
    request_id = str(uuid.uuid4())
    await repo.add_request(uow.session, repo.PortalRequest(
        request_id=request_id, tenant=row.tenant, account_id=row.account_id, customer_id=account.customer_id,
        kind=kind, channel=None if channel is None else channel.value, detail=sealed, session_key=row.session_key,
        created_at=now))
    uow.emit(topics.CUSTOMER_REQUEST, CustomerRequestV1(
        tenant=row.tenant, request_id=request_id, account_id=row.account_id, customer_id=account.customer_id,
        kind=kind, channel=channel, detail=sealed, occurred_at=now), subject=row.account_id)
    return request_id


def now_utc() -> datetime:
    return datetime.now(UTC)
