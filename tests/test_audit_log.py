"""The audit log (docs/audit-log.md) over REST and GraphQL, on SQLite and PostgreSQL: one entry
per change (whole entries compared), refusals for a missing scope, nothing left by a change that
rolls back, the hash chain checked by hand and by `audit verify` (tampering named), retention,
and no secret or body value in any entry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from app.domain.access import Access
from app.domain.assistants import update_assistant
from app.domain.audit import GENESIS
from app.domain.audit_log import prune, remove_older_than, verify_chain
from app.domain.revisions import Writer
from app.models import AuditEntry, AuditPending
from app.settings import Settings
from app.store import Store
from tests.helpers.event_clients import AsgiWebSocket
from tests.helpers.factories import Org
from tests.helpers.keys import PNG, READ, WRITE, make_key
from tests.helpers.server_process import ROOT, server_env

LOG = AuditEntry.__table__  # type: ignore[attr-defined]
PENDING = AuditPending.__table__  # type: ignore[attr-defined]
AUDIT = "audit:read"
AGENT = "audit-test/1.0 " + "x" * 300  # cut to 200 characters in the entry
HOOK_URL = "https://93.184.215.14/hook"


async def entries(client: httpx.AsyncClient, org: Org, query: str = "") -> list[dict[str, Any]]:
    response = await client.get(f"/orgs/c/audit-log?take=100{query}", headers=org.headers)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def expected(
    org: Org,
    key: Org | None,
    key_name: str | None,
    action: str,
    resource: tuple[str, str | None],
    *,
    transport: str = "rest",
    outcome: str = "ok",
    version: int | None = None,
) -> dict[str, Any]:
    """An entry as the API shows it, but its id, `at`, request id and hash (checked apart)."""
    return {
        "org_id": org.org_id,
        "actor": {
            "type": "cli" if key is None else "api_key",
            "key_id": None if key is None else key.key_id,
            "key_name": key_name,
            "key_prefix": None if key is None else key.api_key[:8],
        },
        "action": action,
        "resource": {"type": resource[0], "id": resource[1]},
        "outcome": outcome,
        "transport": transport,
        "client_ip": None if key is None else "127.0.0.1",
        "user_agent": None if key is None else AGENT[:200],
        "version": version,
    }


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in ("id", "at", "request_id", "hash")}


def chain_ok(newest_first: list[dict[str, Any]], previous: str = GENESIS) -> None:
    """The hash chain checked by hand, as docs/audit-log.md tells a user to."""
    for entry in reversed(newest_first):
        body = {k: v for k, v in entry.items() if k != "hash"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256((previous + canonical).encode("utf-8")).hexdigest()
        assert entry["hash"] == digest, entry
        previous = entry["hash"]


async def test_every_kind_of_change_writes_one_entry(
    client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    admin = org
    h = {**admin.headers, "User-Agent": AGENT}
    name = "First key"
    done: list[dict[str, Any]] = []

    async def call(
        method: str, path: str, status: int, more: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        response = await client.request(method, path, headers={**h, **(more or {})}, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else {}

    a = await call("POST", "/orgs/c/assistants", 201, json={"name": "Audited"})
    aid, base = a["id"], f"/orgs/c/assistants/{a['id']}"
    done.append(expected(admin, admin, name, "assistant.create", ("assistant", aid), version=1))
    await call("PATCH", base, 200, json={"name": "Renamed"})
    done.append(expected(admin, admin, name, "assistant.update", ("assistant", aid), version=2))
    await call("POST", base + "/rotate-secret-key", 200)
    done.append(
        expected(admin, admin, name, "assistant.rotate_secret_key", ("assistant", aid), version=3)
    )
    await call("POST", base + "/revisions/1/restore", 200)
    done.append(expected(admin, admin, name, "assistant.restore", ("assistant", aid), version=4))
    i = await call("POST", base + "/integrations", 201, json={"integration_id": "slack"})
    done.append(expected(admin, admin, name, "integration.create", ("integration", i["id"])))
    await call("PATCH", f"{base}/integrations/{i['id']}", 200, json={"enabled": False})
    done.append(expected(admin, admin, name, "integration.update", ("integration", i["id"])))
    await call("DELETE", f"{base}/integrations/{i['id']}", 204)
    done.append(expected(admin, admin, name, "integration.delete", ("integration", i["id"])))
    x = await call("POST", base + "/actions", 201, json={"action_id": "TOOLS:X", "name": "x"})
    done.append(expected(admin, admin, name, "action.create", ("action", x["id"])))
    await call("PATCH", f"{base}/actions/{x['id']}", 200, json={"name": "y"})
    done.append(expected(admin, admin, name, "action.update", ("action", x["id"])))
    positions = {"positions": [{"id": x["id"], "position": 5}]}
    await call("PATCH", base + "/actions/reorder", 200, json=positions)
    done.append(expected(admin, admin, name, "action.reorder", ("assistant", aid)))
    await call("DELETE", f"{base}/actions/{x['id']}", 204)
    done.append(expected(admin, admin, name, "action.delete", ("action", x["id"])))
    await call("POST", base + "/releases", 201, json={"note": "n"})
    done.append(expected(admin, admin, name, "release.publish", ("assistant", aid)))
    await call("PUT", base + "/environments/production", 200, json={"release": 1})
    done.append(expected(admin, admin, name, "environment.pin", ("assistant", aid)))
    await call("DELETE", base + "/environments/production", 204)
    done.append(expected(admin, admin, name, "environment.remove", ("assistant", aid)))
    avatar = await call("POST", "/orgs/c/avatars", 201, {"Content-Type": "image/png"}, content=PNG)
    done.append(expected(admin, admin, name, "avatar.create", ("avatar", avatar["id"])))
    k = await call("POST", "/orgs/c/api-keys", 201, json={"name": "made", "scopes": [READ]})
    done.append(expected(admin, admin, name, "api_key.create", ("api_key", k["id"])))
    await call("DELETE", f"/orgs/c/api-keys/{k['id']}", 204)
    done.append(expected(admin, admin, name, "api_key.revoke", ("api_key", k["id"])))
    w = (await call("POST", "/orgs/c/webhooks", 201, json={"url": HOOK_URL}))["id"]
    done.append(expected(admin, admin, name, "webhook.create", ("webhook", w)))
    await call("PATCH", f"/orgs/c/webhooks/{w}", 200, json={"description": "d"})
    done.append(expected(admin, admin, name, "webhook.update", ("webhook", w)))
    await call("POST", f"/orgs/c/webhooks/{w}/rotate-secret", 200)
    done.append(expected(admin, admin, name, "webhook.rotate_secret", ("webhook", w)))
    await call("DELETE", f"/orgs/c/webhooks/{w}", 204)
    done.append(expected(admin, admin, name, "webhook.delete", ("webhook", w)))
    await call("DELETE", base, 204)
    done.append(expected(admin, admin, name, "assistant.delete", ("assistant", aid), version=5))

    found = await entries(client, admin)
    # the organisation and its first key were made on the command line (tests/conftest.py)
    first_two = [
        expected(admin, None, None, "organisation.create", ("organisation", admin.org_id)),
        expected(admin, None, None, "api_key.create", ("api_key", admin.key_id)),
    ]
    for entry in first_two:
        entry["transport"] = "cli"
    assert [comparable(e) for e in reversed(found)] == first_two + done
    ids = [e["id"] for e in reversed(found)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(e["request_id"] for e in found[: len(done)])
    chain_ok(found)
    assert (await verify_chain(db, admin.org_id)).document() == {
        "entries": len(found),
        "ok": True,
    }


UPDATE = """mutation($a: ID!) {
  updateAssistant(orgId: "c", assistantId: $a, input: {name: "Via GraphQL"}) { version }
}"""
LOG_QUERY = """query($first: Int, $after: String, $filter: AuditLogFilter) {
  auditLog(orgId: "c", first: $first, after: $after, filter: $filter) {
    totalCount pageInfo { hasNextPage endCursor }
    nodes { id action outcome transport version actor { type keyId keyName keyPrefix }
            resource { type id } hash userAgent clientIp requestId at orgId }
  }
}"""


async def test_graphql_changes_and_the_auditlog_connection(
    client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    a = await make_assistant(org)
    h = {**org.headers, "User-Agent": AGENT}
    for _ in range(2):
        response = await client.post(
            "/graphql", json={"query": UPDATE, "variables": {"a": a["id"]}}, headers=h
        )
        assert "errors" not in response.json(), response.text
    rest = await entries(client, org)
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        variables = {"first": 2, "after": after}
        response = await client.post(
            "/graphql", json={"query": LOG_QUERY, "variables": variables}, headers=org.headers
        )
        body = response.json()["data"]["auditLog"]
        assert body["totalCount"] == len(rest)
        pages += body["nodes"]
        if not body["pageInfo"]["hasNextPage"]:
            break
        after = body["pageInfo"]["endCursor"]
    assert [int(n["id"]) for n in pages] == [e["id"] for e in rest]
    newest = pages[0]
    assert (
        newest
        == {
            "id": str(rest[0]["id"]),
            "action": "assistant.update",
            "outcome": "ok",
            "transport": "graphql",
            "version": 2,  # the second update changed nothing: the version it left
            "actor": {
                "type": "api_key",
                "keyId": org.key_id,
                "keyName": "First key",
                "keyPrefix": org.api_key[:8],
            },
            "resource": {"type": "assistant", "id": a["id"]},
            "hash": rest[0]["hash"],
            "userAgent": AGENT[:200],
            "clientIp": "127.0.0.1",
            "requestId": rest[0]["request_id"],
            "at": rest[0]["at"],
            "orgId": org.org_id,
        }
    )
    filtered = await client.post(
        "/graphql",
        json={"query": LOG_QUERY, "variables": {"filter": {"action": "assistant.create"}}},
        headers=org.headers,
    )
    nodes = filtered.json()["data"]["auditLog"]["nodes"]
    assert [(n["action"], n["resource"]["id"]) for n in nodes] == [("assistant.create", a["id"])]


async def test_filters_and_pages(client: httpx.AsyncClient, org: Org, make_assistant: Any) -> None:
    first = await make_assistant(org)
    other = await make_key(client, org, [WRITE, AUDIT], name="writer")
    second = await make_assistant(other)
    everything = await entries(client, org)
    by_key = await entries(client, org, f"&actor_key_id={other.key_id}")
    assert [(e["action"], e["resource"]["id"]) for e in by_key] == [
        ("assistant.create", second["id"])
    ]
    by_resource = await entries(client, org, f"&resource_id={first['id']}")
    assert [e["action"] for e in by_resource] == ["assistant.create"]
    by_action = await entries(client, org, "&action=api_key.create")
    assert len(by_action) == 2
    middle = everything[2]["at"]
    since = await entries(client, org, f"&since={middle.replace('+', '%2B')}")
    until = await entries(client, org, f"&until={middle}")
    assert since == everything[:3]
    assert until == everything[3:]
    page = await client.get("/orgs/c/audit-log?page=2&take=2", headers=org.headers)
    assert page.json() == everything[2:4]
    assert page.headers["pagination-count"] == str(len(everything))
    bad = await client.get("/orgs/c/audit-log?since=yesterday&take=0", headers=org.headers)
    assert bad.status_code == 400
    assert {f["path"] for f in bad.json()["errors"]} == {"since", "take"}


async def test_refusals_for_a_missing_scope_are_entries(
    client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    a = await make_assistant(org)
    reader = await make_key(client, org, [READ], name="reader")
    writer = await make_key(client, org, [WRITE], name="writer")
    bound = await make_key(client, org, [READ, WRITE], name="bound", assistant_ids=[a["id"]])
    rh = {**reader.headers, "User-Agent": AGENT}
    refused = await client.patch(f"/orgs/c/assistants/{a['id']}", json={"name": "n"}, headers=rh)
    assert refused.status_code == 403
    refused = await client.get(
        f"/orgs/c/assistants/{a['id']}", headers={**writer.headers, "User-Agent": AGENT}
    )
    assert refused.status_code == 403
    refused = await client.post(
        "/graphql",
        json={"query": UPDATE, "variables": {"a": a["id"]}},
        headers={**reader.headers, "User-Agent": AGENT},
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    refused = await client.post(
        "/orgs/c/assistants", json={"name": "no"}, headers={**bound.headers, "User-Agent": AGENT}
    )
    assert refused.status_code == 403
    refused = await client.get("/orgs/c/audit-log", headers={**reader.headers, "User-Agent": AGENT})
    assert refused.status_code == 403
    found = await entries(client, org)
    assert [comparable(e) for e in found[:5]] == [
        expected(org, reader, "reader", "audit_log.read", ("organisation", None), outcome="denied"),
        expected(org, bound, "bound", "assistant.create", ("assistant", None), outcome="denied"),
        expected(
            org,
            reader,
            "reader",
            "assistant.update",
            ("assistant", a["id"]),
            outcome="denied",
            transport="graphql",
        ),
        expected(org, writer, "writer", "assistant.read", ("assistant", a["id"]), outcome="denied"),
        expected(
            org, reader, "reader", "assistant.update", ("assistant", a["id"]), outcome="denied"
        ),
    ]
    chain_ok(found)


async def update_then_fail(db: Store, org_id: str, assistant_id: str) -> None:
    async with db.write() as tx:
        await update_assistant(
            tx,
            access=Access(key_id=None, org_id=org_id),
            assistant_id=assistant_id,
            patch={"name": "rolled back"},
            writer=Writer(key_id=None, source="cli"),
        )
        raise RuntimeError("after the entry")


async def test_a_change_that_rolls_back_leaves_no_entry(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    a = await make_assistant(org)
    before = await entries(client, org)
    invalid = await client.patch(
        f"/orgs/c/assistants/{a['id']}", json={"name": ""}, headers=org.headers
    )
    assert invalid.status_code == 400
    stale = await client.patch(
        f"/orgs/c/assistants/{a['id']}",
        json={"name": "n"},
        headers={**org.headers, "If-Match": '"7"'},
    )
    assert stale.status_code == 412
    # a change whose entry was written, then its transaction rolled back
    with pytest.raises(RuntimeError):
        await update_then_fail(db, org.org_id, a["id"])
    assert await entries(client, org) == before
    assert (await verify_chain(db, org.org_id)).broken_at is None


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=server_env(settings, 0),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_audit_verify_names_the_entry_that_was_tampered_with(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store, settings: Settings
) -> None:
    a = await make_assistant(org)
    for n in range(3):
        response = await client.patch(
            f"/orgs/c/assistants/{a['id']}", json={"name": f"n{n}"}, headers=org.headers
        )
        assert response.status_code == 200
    found = await entries(client, org)
    verified = run_cli(settings, "audit", "verify", org.org_id)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout) == {"entries": len(found), "ok": True}
    exported = run_cli(settings, "audit", "export", org.org_id)
    assert [json.loads(line) for line in exported.stdout.splitlines()] == found[::-1]
    since = run_cli(settings, "audit", "export", org.org_id, "--since", found[1]["at"])
    assert [json.loads(line) for line in since.stdout.splitlines()] == found[1::-1]

    tampered = found[2]["id"]
    async with db.write() as tx:
        await tx.execute(update(LOG).where(LOG.c.id == tampered).values(action="assistant.read"))
    broken = run_cli(settings, "audit", "verify", org.org_id)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_bad_id"] == tampered
    assert f"entry {tampered}" in broken.stderr


async def test_a_removed_or_reordered_entry_breaks_the_chain(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    a = await make_assistant(org)
    for n in range(3):
        await client.patch(
            f"/orgs/c/assistants/{a['id']}", json={"name": f"n{n}"}, headers=org.headers
        )
    found = await entries(client, org)
    async with db.write() as tx:
        await tx.execute(LOG.delete().where(LOG.c.id == found[2]["id"]))
    verdict = await verify_chain(db, org.org_id)
    assert verdict.broken_at == found[1]["id"]
    async with db.write() as tx:
        await tx.execute(LOG.delete().where(LOG.c.id == found[0]["id"]))
        await tx.execute(LOG.delete().where(LOG.c.id == found[1]["id"]))
    # the newest entries gone: the chain's head says more were written
    assert (await verify_chain(db, org.org_id)).broken_at == found[3]["id"]


async def test_retention_keeps_the_chain_verifiable_from_the_oldest_kept(
    client: httpx.AsyncClient, org: Org, make_assistant: Any, db: Store
) -> None:
    a = await make_assistant(org)
    for n in range(4):
        await client.patch(
            f"/orgs/c/assistants/{a['id']}", json={"name": f"n{n}"}, headers=org.headers
        )
    found = await entries(client, org)
    async with db.read() as tx:
        cutoff = await tx.scalar(select(LOG.c.at).where(LOG.c.id == found[3]["id"]))
    async with db.write() as tx:
        removed = await remove_older_than(tx, cutoff)
    assert removed >= len(found) - 4
    kept = await entries(client, org)
    assert kept == found[:4]
    assert (await verify_chain(db, org.org_id)).document() == {"entries": 4, "ok": True}
    assert await prune(db, keep_days=1) == 0  # AUDIT_KEEP_DAYS=1: all are younger
    await prune(db, keep_days=timedelta(microseconds=1) / timedelta(days=1))
    assert await entries(client, org) == []
    await client.patch(f"/orgs/c/assistants/{a['id']}", json={"name": "after"}, headers=org.headers)
    [newest] = await entries(client, org)
    chain_ok([newest], previous=kept[0]["hash"])
    assert (await verify_chain(db, org.org_id)).document() == {"entries": 1, "ok": True}


async def test_no_secret_or_body_value_in_any_entry(
    client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    secrets: set[str] = {org.api_key}
    marker = "body-value-7f3a9c"
    h = org.headers
    made = await client.post(
        "/orgs/c/assistants",
        json={
            "name": marker + "-name",
            "generate_secret_key": True,
            "config": {"instructions": marker + "-instructions"},
        },
        headers=h,
    )
    assert made.status_code == 201, made.text
    assistant = made.json()
    secrets.add(assistant["secret_key"])
    base = f"/orgs/c/assistants/{assistant['id']}"
    rotated = await client.post(base + "/rotate-secret-key", headers=h)
    secrets.add(rotated.json()["secret_key"])
    await client.patch(base, json={"config": {"welcome_banner": marker + "-banner"}}, headers=h)
    await client.post(
        base + "/actions",
        json={"action_id": "TOOLS:X", "name": marker + "-action", "instructions": marker},
        headers=h,
    )
    key = await client.post(
        "/orgs/c/api-keys", json={"name": "scanner key", "scopes": [READ]}, headers=h
    )
    secrets.add(key.json()["api_key"])
    hook = await client.post(
        "/orgs/c/webhooks", json={"url": HOOK_URL, "description": marker + "-hook"}, headers=h
    )
    secrets.add(hook.json()["secret"])
    again = await client.post(f"/orgs/c/webhooks/{hook.json()['id']}/rotate-secret", headers=h)
    secrets.add(again.json()["secret"])
    refused = await client.patch(
        base,
        json={"name": marker + "-refused"},
        headers=Org(org.org_id, "", key.json()["api_key"]).headers,
    )
    assert refused.status_code == 403
    async with db.read() as tx:  # the chained entries and any still pending (PostgreSQL)
        rows = [*await tx.all(select(LOG)), *await tx.all(select(PENDING))]
    assert len(rows) >= 9
    text = "\n".join(repr(tuple(row)) for row in rows)
    for secret in secrets:
        assert secret not in text
        assert secret[:12] not in text  # (a key's 8-character prefix is its only shown part)
    assert marker not in text


async def test_a_refusal_over_the_websocket_is_an_entry(
    app: Any, client: httpx.AsyncClient, org: Org, make_assistant: Any
) -> None:
    a = await make_assistant(org)
    reader = await make_key(client, org, [READ], name="reader")
    async with AsgiWebSocket(app) as socket:
        assert await socket.init(f"Bearer {reader.api_key}") == {"type": "connection_ack"}
        payload = {"query": UPDATE, "variables": {"a": a["id"]}}
        await socket.send({"id": "1", "type": "subscribe", "payload": payload})
        answer = await socket.receive()
        assert answer["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        await socket.receive()  # complete
    [refusal] = await entries(client, org, "&action=assistant.update")
    assert comparable(refusal) == {
        **expected(
            org,
            reader,
            "reader",
            "assistant.update",
            ("assistant", a["id"]),
            outcome="denied",
            transport="websocket",
        ),
        "user_agent": None,
        "client_ip": refusal["client_ip"],
    }


def test_every_use_case_has_an_action_name() -> None:
    """A refusal names its action from app/domain/audit_actions.py: every use case has one."""
    import importlib
    import pkgutil

    import app.domain
    from app.domain.access import ANY_SCOPE, required_scope
    from app.domain.audit_actions import ACTIONS

    use_cases = set()
    for module_info in pkgutil.iter_modules(app.domain.__path__):
        module = importlib.import_module(f"app.domain.{module_info.name}")
        for name, value in vars(module).items():
            if callable(value) and required_scope(value) not in (None, ANY_SCOPE):
                use_cases.add(name)
    assert use_cases
    assert sorted(use_cases - set(ACTIONS)) == []


async def test_a_duplicate_and_a_bundle_apply_write_one_entry_each(
    client: httpx.AsyncClient, org: Org
) -> None:
    """A duplicate is `assistant.duplicate` of the new assistant; a bundle apply is one
    `bundle.apply` entry of the organisation (not one per assistant it changed), and an apply
    that changes nothing, or a dry run, writes none."""
    h = {**org.headers, "User-Agent": AGENT}
    source = await client.post("/orgs/c/assistants", json={"name": "Source"}, headers=h)
    copy = await client.post(f"/orgs/c/assistants/{source.json()['id']}/duplicate", headers=h)
    assert copy.status_code == 201, copy.text
    bundle = {
        "kind": "assistants-api/bundle",
        "version": 1,
        "assistants": [{"ref": "support", "name": "Support"}, {"ref": "sales", "name": "Sales"}],
    }
    for query in ("?dry_run=true", "", ""):  # a dry run, an apply, the same apply again
        applied = await client.post(f"/orgs/c/bundles/apply{query}", json=bundle, headers=h)
        assert applied.status_code == 200, applied.text
    found = [comparable(e) for e in await entries(client, org)]
    name = "First key"
    assert found[:3] == [
        expected(org, org, name, "bundle.apply", ("organisation", org.org_id)),
        expected(
            org, org, name, "assistant.duplicate", ("assistant", copy.json()["id"]), version=1
        ),
        expected(org, org, name, "assistant.create", ("assistant", source.json()["id"]), version=1),
    ]
    assert [e["action"] for e in found[3:]] == ["api_key.create", "organisation.create"]
