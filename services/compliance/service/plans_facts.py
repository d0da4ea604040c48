"""What plans tells compliance (issue 9): the customer's requests on the self-service portal
(``plans.customer-request.v1``) and promises to pay (``plans.promise-event.v1``).

- ``hardship``: a HARDSHIP hold on the account with no end, which only a person lifts (``POST /v1/holds/{id}/lift``);
- ``complaint``: a complaint filed as over REST (received at the request's instant, channel ``portal``, due 15 days
  later) with its COMPLAINT hold; the customer's words stay sealed;
- ``opt_out``: an OPT_OUT suppression of the customer on that channel (every contact point), which HOUSE-OPTOUT
  applies;
- a promise ``open`` holds its account (PROMISE) until the promise's deadline; its end (kept, partial, broken,
  cancelled) lifts the hold, whatever order the events arrive in.

Every row's id derives from the request or promise it records, so a replay stores nothing twice, and a batch costs
one statement per kind of row, whatever its size. A hold that comes into force or is lifted is announced
(``compliance.hold-changed.v1``) as every other hold is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from services.compliance.db import repository as repo
from services.compliance.db.models import Complaint, HoldRow, SuppressionRow
from services.compliance.domain import promises
from services.compliance.domain.rules.base import HoldKind, SuppressionKind
from services.compliance.service.records import _SOURCE_COLUMNS, ANSWER_DAYS, announce_hold
from shared.contracts import CloudEvent
from shared.contracts.events import CustomerRequestV1, PromiseEventV1
from shared.crypto import PiiCipher, PiiCryptoError
from shared.uow import UnitOfWork

log = logging.getLogger(__name__)
PLANS = "plans"  # who placed what plans asked for
PORTAL = "portal"
NO_DETAIL = "(filed on the customer portal without a description)"
UNREADABLE = "(filed on the customer portal; its description could not be opened)"


def stable_id(prefix: str, *parts: str) -> str:
    """An id derived from what a row records (at most 64 characters, as the tables take)."""
    return f"{prefix}-{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()[:40]}"


def _causes(causes: Sequence[CloudEvent | None], n: int) -> CloudEvent | None:
    return causes[n] if n < len(causes) else None


# --- the customer's requests on the portal ------------------------------------------------------------------


async def record_customer_requests(uow: UnitOfWork, *, requests: Sequence[CustomerRequestV1], cipher: PiiCipher,
                                   causes: Sequence[CloudEvent | None] = ()) -> None:
    """Act on each request once (ids derived from the request id): hardship holds the account, a complaint is
    filed and holds it, an opt-out suppresses the channel. Three to four statements per batch."""
    cause = {(r.tenant, r.request_id): _causes(causes, n) for n, r in enumerate(requests)}
    unique = list({(r.tenant, r.request_id): r for r in requests}.values())
    hardship = [r for r in unique if r.kind == "hardship"]
    complaints = [r for r in unique if r.kind == "complaint"]
    opt_outs = [r for r in unique if r.kind == "opt_out"]

    holds = [_hold(r, kind=HoldKind.HARDSHIP, source=PORTAL, source_ref=r.request_id,
                   reason=f"hardship declared on the customer portal (request {r.request_id}): a person reviews "
                          "the account and lifts the hold") for r in hardship]
    filed = {r.request_id: stable_id("cmp", r.tenant, r.request_id) for r in complaints}
    new_complaints = await repo.add_new_rows(uow.session, Complaint, [
        {"id": filed[r.request_id], "tenant": r.tenant, "customer_id": r.customer_id, "account_id": r.account_id,
         "received_at": r.occurred_at, "channel": PORTAL, "summary": _sealed_detail(r, cipher),
         "complexity": "simple", "due_at": r.occurred_at + timedelta(days=ANSWER_DAYS["simple"]), "status": "open",
         "created_by": PLANS} for r in complaints])
    holds += [_hold(r, kind=HoldKind.COMPLAINT, source="complaint", source_ref=filed[r.request_id],
                    reason=f"open complaint {filed[r.request_id]} (portal request {r.request_id})")
              for r in complaints if filed[r.request_id] in new_complaints]
    placed = await repo.add_new_rows(uow.session, HoldRow, [h for h, _ in holds])
    for hold, r in holds:
        if hold["id"] in placed:
            announce_hold(uow, hold, action="placed", at=hold["starts_at"], cause=cause[(r.tenant, r.request_id)])
    await repo.add_new_rows(uow.session, SuppressionRow, [
        {"id": stable_id("sup", r.tenant, PORTAL, r.request_id), "tenant": r.tenant, "customer_id": r.customer_id,
         "destination_key": None, "channel": r.channel.value if r.channel is not None else None,
         "kind": SuppressionKind.OPT_OUT.value, "local_start": None, "local_end": None, "source": PORTAL,
         "reason": f"opted out of {r.channel.value if r.channel else 'a channel'} on the customer portal "
                   f"(request {r.request_id})", "created_by": PLANS} for r in opt_outs])


def _hold(r: CustomerRequestV1, *, kind: HoldKind, source: str, source_ref: str,
          reason: str) -> tuple[dict[str, Any], CustomerRequestV1]:
    return {"id": stable_id("hold", r.tenant, source, source_ref), "tenant": r.tenant, "customer_id": r.customer_id,
            "account_id": r.account_id, "kind": kind.value, "starts_at": r.occurred_at, "ends_at": None,
            "reason": reason[:500], "source": source, "source_ref": source_ref, "source_state": "open",
            "source_at": r.occurred_at, "created_by": PLANS, "lifted_at": None, "lifted_by": None,
            "lift_reason": None}, r


def _sealed_detail(r: CustomerRequestV1, cipher: PiiCipher) -> str:
    """The customer's words as plans sealed them (with the tenant as context), kept sealed; a placeholder, sealed,
    when there are none or they cannot be opened here (never stored unreadable: the complaint list opens them)."""
    if r.detail is None:
        return cipher.seal(NO_DETAIL, context=r.tenant)
    try:
        cipher.open(r.detail, context=r.tenant)
    except PiiCryptoError:
        log.warning("a portal complaint's detail could not be opened", extra={"tenant": r.tenant,
                                                                              "request_id": r.request_id})
        return cipher.seal(UNREADABLE, context=r.tenant)
    return r.detail


# --- promises to pay ----------------------------------------------------------------------------------------


def promise_hold(current: Mapping[str, Any] | None, event: PromiseEventV1) -> dict[str, Any]:
    """The PROMISE hold of a promise after ``event``: from when it was made to its deadline while it is open,
    lifted at its end; the same whatever order its events arrive in (``domain/promises.py``)."""
    row: dict[str, Any] = dict(current) if current is not None else {
        "id": stable_id("hold", event.tenant, "promise", event.promise_id), "tenant": event.tenant,
        "customer_id": event.customer_id, "account_id": event.account_id, "kind": HoldKind.PROMISE.value,
        "starts_at": event.made_at, "ends_at": event.deadline,
        "reason": f"promise to pay {event.promise_id} by {event.due_on.isoformat()}", "source": "promise",
        "source_ref": event.promise_id, "source_state": None, "source_at": None, "created_by": PLANS,
        "lifted_at": None, "lifted_by": None, "lift_reason": None}
    stored = (row["source_state"], row["source_at"]) if row["source_state"] is not None else None
    if promises.supersedes(stored=stored, incoming=(event.status, event.occurred_at)):
        row["source_state"], row["source_at"] = event.status, event.occurred_at
        if promises.holds(event.status):
            row["lifted_at"] = row["lifted_by"] = row["lift_reason"] = None
        else:
            row["lifted_at"], row["lifted_by"], row["lift_reason"] = event.occurred_at, PLANS, \
                f"promise {event.status}"
    return row


async def record_promise_events(uow: UnitOfWork, *, events: Sequence[PromiseEventV1],
                                causes: Sequence[CloudEvent | None] = ()) -> None:
    """An open promise holds its account (PROMISE, automated contact paused) until its deadline; its end lifts the
    hold. Idempotent and order-independent; one hold per promise (its id derives from the promise id); a hold that
    comes into force or is lifted is announced. Two statements per batch."""
    stored = await repo.lock_source_holds(uow.session, source="promise",
                                          keys={(e.tenant, e.promise_id) for e in events})
    rows: dict[tuple[str, str], dict[str, Any]] = {
        k: {c: getattr(r, c) for c in _SOURCE_COLUMNS} for k, r in stored.items()}
    before = {k: r["lifted_at"] is None for k, r in rows.items()}
    changed: dict[tuple[str, str], CloudEvent | None] = {}
    for n, e in enumerate(events):
        key = (e.tenant, e.promise_id)
        if key in rows and (rows[key]["customer_id"], rows[key]["account_id"]) != (e.customer_id, e.account_id):
            log.warning("a promise event names another account than its promise: ignored",
                        extra={"tenant": e.tenant, "promise_id": e.promise_id})
            continue
        updated = promise_hold(rows.get(key), e)
        if updated != rows.get(key):
            rows[key] = updated
            changed[key] = _causes(causes, n)
    await repo.save_source_holds(uow.session, [rows[k] for k in sorted(changed)])
    for key in sorted(changed):
        row = rows[key]
        is_on = row["lifted_at"] is None
        if is_on != before.get(key, False):
            announce_hold(uow, row, action="placed" if is_on else "lifted",
                          at=row["starts_at"] if is_on else row["lifted_at"], cause=changed[key])
