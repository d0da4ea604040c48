"""The customer portal's tables and their repository (adds and flushes, never commits): links with their nonce
used once (stored at minting over REST, or at first use for a link channels minted in a message), sessions,
attempts (link openings by client address, second-factor answers by session) and the customer's requests
(hardship, complaint, opt-out), their text sealed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, and_, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from shared.db import lock_key, table_of


class PortalLink(SQLModel, table=True):
    """A link minted for an account: its nonce is exchanged for a session once (``used_at``)."""

    __tablename__ = "portal_links"

    nonce: str = Field(primary_key=True, max_length=32)
    tenant: str = Field(max_length=64)
    account_id: str = Field(max_length=128)
    created_by: str = Field(max_length=200)
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    created_at: datetime | None = Field(default=None, sa_column=Column(
        DateTime(timezone=True), server_default=func.now(), nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))


class PortalSession(SQLModel, table=True):
    """A browser's session, keyed by the SHA-256 of its cookie (the cookie itself is never stored)."""

    __tablename__ = "portal_sessions"
    # the second factor counts and locks across an account's sessions
    __table_args__ = (Index("ix_portal_sessions_account", "tenant", "account_id"),)

    session_key: str = Field(primary_key=True, max_length=64)
    nonce: str = Field(max_length=32, unique=True)
    tenant: str = Field(max_length=64)
    account_id: str = Field(max_length=128)
    csrf_token: str = Field(max_length=64)
    locale: str | None = Field(default=None, max_length=8)
    # this session's share of the account's wrong second-factor answers (their sum, modulo five, is the count
    # since the last lock or right answer: portal_service.check_factor); negative after a right answer
    failures: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    verified_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PortalAttempt(SQLModel, table=True):
    """One link opening (``open``, by client address) or second-factor answer (``factor``, by session)."""

    __tablename__ = "portal_attempts"
    __table_args__ = (Index("ix_portal_attempts_client", "kind", "client_key", "at"),
                      Index("ix_portal_attempts_session", "session_key", "at"))

    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    kind: str = Field(max_length=16)
    # HMAC of the client address with the portal secret: rate limits without storing the address
    client_key: str = Field(max_length=64)
    session_key: str | None = Field(default=None, max_length=64)
    ok: bool
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


class PortalRequest(SQLModel, table=True):
    """Something the customer asked for: ``hardship``, ``complaint`` or ``opt_out`` (of ``channel``)."""

    __tablename__ = "portal_requests"
    __table_args__ = (Index("ix_portal_requests_account", "tenant", "account_id"),)

    request_id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(max_length=64)
    account_id: str = Field(max_length=128)
    customer_id: str = Field(max_length=128)
    kind: str = Field(max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    detail: str | None = None  # sealed (shared.crypto, the tenant as context)
    session_key: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))


LINKS = table_of(PortalLink)
SESSIONS = table_of(PortalSession)
ATTEMPTS = table_of(PortalAttempt)
REQUESTS = table_of(PortalRequest)


async def add_link(session: AsyncSession, link: PortalLink) -> None:
    session.add(link)
    await session.flush()


# who made a link whose nonce plans first saw when it was used: channels, in a message it sent
MINTED_ELSEWHERE = "channels:message"


async def use_link(session: AsyncSession, *, nonce: str, tenant: str, account_id: str, expires_at: datetime,
                   now: datetime) -> bool:
    """Mark the link used; False when it was used already, or its nonce is stored for another account. A
    genuine link whose nonce plans never stored (channels minted it for a message) is stored here, used. One
    statement (insert, or update of an unused row): two concurrent openings cannot both win."""
    inserted = insert(LINKS).values(nonce=nonce, tenant=tenant, account_id=account_id, created_by=MINTED_ELSEWHERE,
                                    expires_at=expires_at, used_at=now)
    row = (await session.execute(inserted.on_conflict_do_update(
        index_elements=[LINKS.c.nonce], set_={"used_at": inserted.excluded.used_at},
        where=and_(LINKS.c.used_at.is_(None), LINKS.c.tenant == tenant, LINKS.c.account_id == account_id),
    ).returning(LINKS.c.nonce))).first()
    return row is not None


async def link_used(session: AsyncSession, *, nonce: str) -> bool:
    return (await session.execute(select(LINKS.c.used_at).where(LINKS.c.nonce == nonce))).scalar() is not None


async def add_session(session: AsyncSession, row: PortalSession) -> None:
    session.add(row)
    await session.flush()


async def get_session(session: AsyncSession, session_key: str, *, lock: bool = False) -> PortalSession | None:
    query = select(PortalSession).where(PortalSession.session_key == session_key)  # type: ignore[arg-type]
    return (await session.execute(query.with_for_update() if lock else query)).scalars().first()


async def serialise_factor(session: AsyncSession, *, tenant: str, account_id: str) -> None:
    """Hold the account's second-factor lock until the transaction ends: the answers given on several links of
    one account are checked one at a time (only ever taken while holding no other session's row)."""
    await lock_key(session, "portal-factor", tenant, account_id)


async def account_factor_state(session: AsyncSession, *, tenant: str, account_id: str,
                               other_than: str) -> tuple[int, datetime | None]:
    """The wrong answers given in the account's sessions but ``other_than``, and the latest lock of any of them."""
    row = (await session.execute(select(
        func.coalesce(func.sum(SESSIONS.c.failures).filter(SESSIONS.c.session_key != other_than), 0),
        func.max(SESSIONS.c.locked_until)).where(SESSIONS.c.tenant == tenant,
                                                 SESSIONS.c.account_id == account_id))).one()
    return int(row[0]), row[1]


async def wrong_answers_since(session: AsyncSession, *, tenant: str, account_id: str,
                              since: datetime) -> tuple[int, datetime | None]:
    """How many wrong second-factor answers were given on any link of the account since ``since``, and the
    earliest of them."""
    row = (await session.execute(
        select(func.count(), func.min(ATTEMPTS.c.at)).select_from(
            ATTEMPTS.join(SESSIONS, SESSIONS.c.session_key == ATTEMPTS.c.session_key))
        .where(ATTEMPTS.c.kind == "factor", ATTEMPTS.c.ok.is_(False), ATTEMPTS.c.at >= since,
               SESSIONS.c.tenant == tenant, SESSIONS.c.account_id == account_id))).one()
    return int(row[0]), row[1]


async def add_attempt(session: AsyncSession, *, kind: str, client_key: str, session_key: str | None, ok: bool,
                      at: datetime) -> None:
    await session.execute(insert(ATTEMPTS).values(kind=kind, client_key=client_key, session_key=session_key, ok=ok,
                                                  at=at))


async def openings_since(session: AsyncSession, *, client_key: str, since: datetime) -> int:
    """Link openings from this client address since ``since``."""
    return int((await session.execute(select(func.count()).select_from(ATTEMPTS).where(
        ATTEMPTS.c.kind == "open", ATTEMPTS.c.client_key == client_key, ATTEMPTS.c.at >= since))).scalar() or 0)


async def add_request(session: AsyncSession, row: PortalRequest) -> None:
    session.add(row)
    await session.flush()
