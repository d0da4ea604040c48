"""Principals, roles and API keys on the real database (access.api_keys) through compliance's app: issue, revoke,
rotate, tenant isolation, 403 for a missing role (nothing stored), the audit columns and log carry the principal,
an unreachable key store is a 503; and the ``python -m shared.tools.keys`` command line."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.access import store
from shared.access.keys import parse
from shared.audit import AuditEntry
from shared.db import asyncpg_url, table_of
from shared.tools import keys as keys_cli
from tests.api.support import OpenService, ServiceApi, Tenant, assert_problem, unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def issue(infra: Any, tenant: str, roles: set[str], principal: str | None = None,
                expires_at: datetime | None = None) -> str:
    engine = create_async_engine(asyncpg_url(infra.database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            key, _ = await store.issue(conn, tenant=tenant, principal=principal or unique("p"),
                                       roles=frozenset(roles), created_by="test", now=datetime.now(UTC),
                                       expires_at=expires_at)
    finally:
        await engine.dispose()
    return key.text


async def in_access(infra: Any, work: Any) -> Any:
    engine = create_async_engine(asyncpg_url(infra.database_url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def key_id_of(key: str) -> str:
    parsed = parse(key)
    assert parsed is not None
    return parsed[0]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


HOLD = {"kind": "dispute", "account_id": "A1", "reason": "disputes the balance"}


@pytest.fixture
async def compliance0(open_api: OpenService) -> ServiceApi:
    """Compliance whose key cache keeps nothing (API_KEY_CACHE_TTL_S=0): every request reads the key."""
    return await open_api("compliance", api_key_cache_ttl_s=0)


async def test_an_issued_key_works_and_a_revoked_one_fails_after_the_ttl(
        open_api: OpenService, infra: Any, tenant_a: Tenant) -> None:
    api = await open_api("compliance", api_key_cache_ttl_s=0.5)
    key = await issue(infra, tenant_a.id, {"compliance"})
    assert (await api.client.get("/v1/holds", headers=bearer(key))).status_code == 200
    assert (await api.client.get("/v1/holds", headers={"X-API-Key": key})).status_code == 200
    assert_problem(await api.client.get("/v1/holds", headers=bearer(key[:-1] + ("x" if key[-1] != "x" else "y"))),
                   401)
    key_id = key_id_of(key)
    await in_access(infra, lambda c: store.revoke(c, key_id=key_id, revoked_by="test", reason="left",
                                                  now=datetime.now(UTC)))
    assert (await api.client.get("/v1/holds", headers=bearer(key))).status_code == 200  # cached, within the TTL
    await asyncio.sleep(0.6)
    assert_problem(await api.client.get("/v1/holds", headers=bearer(key)), 401)


async def test_an_expired_key_fails(compliance0: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    key = await issue(infra, tenant_a.id, {"agent"}, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert_problem(await compliance0.client.get("/v1/holds", headers=bearer(key)), 401)


async def test_a_rotated_key_works_with_the_new_one_during_the_grace_period_only(
        compliance0: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    old = await issue(infra, tenant_a.id, {"compliance"}, principal="officer-li")
    new, stored = await in_access(infra, lambda c: store.rotate(
        c, key_id=key_id_of(old), grace=timedelta(seconds=1), created_by="test",
        now=datetime.now(UTC)))
    assert (stored.principal, stored.roles) == ("officer-li", frozenset({"compliance"}))
    for key in (old, new.text):
        assert (await compliance0.client.get("/v1/holds", headers=bearer(key))).status_code == 200
    await asyncio.sleep(1.1)
    assert_problem(await compliance0.client.get("/v1/holds", headers=bearer(old)), 401)
    created = await compliance0.client.post("/v1/holds", json=HOLD | {"customer_id": unique("C")},
                                            headers=bearer(new.text))
    assert created.status_code == 201 and created.json()["created_by"] == "officer-li"
    with pytest.raises(ValueError, match="expired"):  # an expired key cannot be rotated
        await in_access(infra, lambda c: store.rotate(
            c, key_id=key_id_of(old), grace=timedelta(0), created_by="test", now=datetime.now(UTC)))


async def test_a_rotated_key_cannot_be_rotated_twice(infra: Any, tenant_a: Tenant) -> None:
    old = await issue(infra, tenant_a.id, {"agent"})
    rotate = lambda c: store.rotate(c, key_id=key_id_of(old), grace=timedelta(hours=1),  # noqa: E731
                                    created_by="test", now=datetime.now(UTC))
    await in_access(infra, rotate)
    with pytest.raises(ValueError, match="already rotated"):
        await in_access(infra, rotate)


async def test_a_key_of_tenant_a_never_reads_or_changes_tenant_b(
        compliance0: ServiceApi, infra: Any, tenant_a: Tenant, tenant_b: Tenant) -> None:
    customer = unique("C")
    theirs = await compliance0.client.post("/v1/holds", json=HOLD | {"customer_id": customer},
                                           headers=tenant_b.headers)
    assert theirs.status_code == 201
    mine = await issue(infra, tenant_a.id, {"compliance", "admin", "supervisor", "agent", "partner"})
    listed = await compliance0.client.get("/v1/holds", params={"customer_id": customer}, headers=bearer(mine))
    assert listed.status_code == 200 and listed.json() == []
    assert_problem(await compliance0.client.post(f"/v1/holds/{theirs.json()['id']}/lift", json={"reason": "mine"},
                                                 headers=bearer(mine)), 404)
    still = await compliance0.client.get("/v1/holds", params={"customer_id": customer, "active": "true"},
                                         headers=tenant_b.headers)
    assert [h["id"] for h in still.json()] == [theirs.json()["id"]]


async def test_a_missing_role_is_a_403_and_stores_nothing(compliance0: ServiceApi, infra: Any,
                                                          tenant_a: Tenant) -> None:
    agent = await issue(infra, tenant_a.id, {"agent"}, principal="agent-7")
    partner = await issue(infra, tenant_a.id, {"partner"})
    customer = unique("C")
    body = assert_problem(await compliance0.client.post("/v1/holds", json=HOLD | {"customer_id": customer},
                                                        headers=bearer(agent)), 403)
    assert "compliance" in body["detail"] and "agent-7" in body["detail"]
    for path, payload in (("/v1/suppressions", {"kind": "opt_out", "customer_id": customer, "reason": "r"}),
                          ("/v1/agencies/AG9", None)):
        if payload is None:
            response = await compliance0.client.put(path, json={"name": "n", "listed": True, "reason": "r"},
                                                    headers=bearer(agent))
        else:
            response = await compliance0.client.post(path, json=payload, headers=bearer(agent))
        assert_problem(response, 403)
    # reads take any role of the tenant; checks need agent, supervisor or compliance
    assert (await compliance0.client.get("/v1/holds", headers=bearer(partner))).status_code == 200
    check = {"account_id": "A1", "customer_id": customer, "channel": "call", "time_zone": "Asia/Shanghai"}
    assert (await compliance0.client.post("/v1/checks", json=check, headers=bearer(agent))).status_code == 200
    assert_problem(await compliance0.client.post("/v1/checks", json=check, headers=bearer(partner)), 403)
    async with compliance0.runtime.sessions() as session:
        holds = (await session.execute(text("SELECT count(*) FROM holds WHERE tenant = :t"),
                                       {"t": tenant_a.id})).scalar_one()
        audited = (await session.execute(text("SELECT count(*) FROM audit_log WHERE tenant = :t"),
                                         {"t": tenant_a.id})).scalar_one()
    assert (holds, audited) == (0, 0)


async def test_the_audit_columns_and_log_carry_the_principal_and_the_reason(
        compliance0: ServiceApi, infra: Any, tenant_a: Tenant) -> None:
    officer = await issue(infra, tenant_a.id, {"compliance"}, principal="officer-li")
    lead = await issue(infra, tenant_a.id, {"supervisor"}, principal="lead-wang")
    customer, account = unique("C"), unique("A")
    hold = (await compliance0.client.post("/v1/holds", json=HOLD | {"customer_id": customer},
                                          headers=bearer(lead) | {"X-Actor": "someone-else"})).json()
    assert hold["created_by"] == "lead-wang"   # the principal; X-Actor is ignored
    lifted = await compliance0.client.post(f"/v1/holds/{hold['id']}/lift", json={"reason": "settled"},
                                           headers=bearer(officer))
    assert (lifted.json()["lifted_by"], lifted.json()["lift_reason"]) == ("officer-li", "settled")
    complaint = (await compliance0.client.post("/v1/complaints", json={
        "customer_id": customer, "account_id": account, "received_at": datetime.now(UTC).isoformat(),
        "channel": "phone", "summary": "calls at night", "reason": "taken by phone"}, headers=bearer(officer))).json()
    assert complaint["created_by"] == "officer-li"
    extend = f"/v1/complaints/{complaint['id']}/extend"
    own = {"days": 30, "reason": "needs the file", "requested_by": "lead-wang", "approved_by": "officer-li"}
    assert_problem(await compliance0.client.post(extend, json=own, headers=bearer(lead)), 422)  # four eyes
    extended = await compliance0.client.post(extend, json=own, headers=bearer(officer))
    assert (extended.json()["extension_requested_by"], extended.json()["extension_approved_by"]) == (
        "lead-wang", "officer-li")
    assert_problem(await compliance0.client.post(f"/v1/complaints/{complaint['id']}/answer",
                                                 json={"reason": "letter"}, headers=bearer(lead)), 403)
    audit = table_of(AuditEntry)
    async with compliance0.runtime.sessions() as session:
        rows = (await session.execute(select(audit).where(audit.c.tenant == tenant_a.id).order_by(audit.c.id))).all()
    assert [(r.principal, r.action, r.subject, r.reason) for r in rows] == [
        ("lead-wang", "hold.place", hold["id"], "disputes the balance"),
        ("officer-li", "hold.lift", hold["id"], "settled"),
        ("officer-li", "complaint.file", complaint["id"], "taken by phone"),
        ("officer-li", "complaint.extend", complaint["id"], "needs the file")]
    assert {r.key_id for r in rows} == {key_id_of(officer), key_id_of(lead)}


async def test_an_unreachable_key_store_is_a_503_and_spares_keys_read_within_the_ttl(
        open_api: OpenService, infra: Any, tenant_a: Tenant) -> None:
    api = await open_api("compliance", api_key_cache_ttl_s=60)
    cached = await issue(infra, tenant_a.id, {"agent"})
    unread = await issue(infra, tenant_a.id, {"agent"})
    assert (await api.client.get("/v1/holds", headers=bearer(cached))).status_code == 200
    dead = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none", poolclass=NullPool)
    working, api.runtime.keys._engine = api.runtime.keys._engine, dead
    try:
        assert (await api.client.get("/v1/holds", headers=bearer(cached))).status_code == 200
        response = await api.client.get("/v1/holds", headers=bearer(unread))
        assert_problem(response, 503)
        assert response.headers["Retry-After"] == "5"
    finally:
        api.runtime.keys._engine = working
        await dead.dispose()


async def test_openapi_documents_403_and_the_roles_where_a_role_is_required(compliance: ServiceApi) -> None:
    paths = compliance.app.openapi()["paths"]
    assert "403" in paths["/v1/holds"]["post"]["responses"]
    assert paths["/v1/holds"]["post"]["x-required-roles"] == ["compliance", "supervisor"]
    assert "403" in paths["/v1/checks"]["post"]["responses"]
    assert "403" not in paths["/v1/holds"]["get"]["responses"]
    assert "401" in paths["/v1/holds"]["get"]["responses"]


async def test_the_access_migration_matches_the_table(infra: Any) -> None:
    def columns(sync_conn: Any) -> dict[str, str]:
        from sqlalchemy import inspect
        return {c["name"]: str(c["type"]) for c in inspect(sync_conn).get_columns("api_keys", schema="access")}
    stored = await in_access(infra, lambda c: c.run_sync(columns))
    assert set(stored) == {c.name for c in store.api_keys.columns}


async def test_the_command_line_issues_lists_rotates_and_revokes(infra: Any, tenant_a: Tenant) -> None:
    env = os.environ | {"DATABASE_URL": infra.database_url}
    argv = [sys.executable, "-m", "shared.tools.keys", "--by", "ops-anna", "issue", "--tenant", tenant_a.id,
            "--principal", "partner-core", "--roles", "partner,agent", "--expires", "90d"]
    issued = await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, env=env, capture_output=True, text=True,
                                     timeout=60)
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip()
    key_id, secret = parse(key)  # type: ignore[misc]
    assert "shown only this once" in issued.stderr

    async def cli(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = await keys_cli.run(keys_cli.parser().parse_args(["--database-url", infra.database_url, *argv]),
                                  out, err)
        return code, out.getvalue(), err.getvalue()

    code, listing, _ = await cli("list", "--tenant", tenant_a.id)
    assert code == 0 and key_id in listing and "partner-core" in listing and "active" in listing
    assert secret not in listing
    row = await in_access(infra, lambda c: store.get(c, key_id))
    assert (row.created_by, row.roles, secret not in row.secret_sha256) == ("ops-anna", {"partner", "agent"}, True)
    assert row.expires_at is not None and row.expires_at > datetime.now(UTC) + timedelta(days=89)
    code, rotated, _ = await cli("rotate", "--key-id", key_id, "--grace", "0s")
    new_id = key_id_of(rotated.strip())
    assert code == 0 and new_id != key_id
    code, _, _ = await cli("revoke", "--key-id", new_id, "--reason", "laptop lost")
    assert code == 0
    code, listing, _ = await cli("list", "--tenant", tenant_a.id, "--principal", "partner-core")
    assert "revoked" in listing and "expired" in listing
    code, _, err = await cli("revoke", "--key-id", "0000000000000000", "--reason", "r")
    assert code == 1 and "no key" in err
    with pytest.raises(SystemExit):
        keys_cli.parser().parse_args(["issue", "--tenant", "t", "--principal", "a:b", "--roles", "agent"])
    with pytest.raises(SystemExit):
        keys_cli.parser().parse_args(["issue", "--tenant", "t", "--principal", "p", "--roles", "root"])
