"""`Idempotency-Key` on REST POST/PATCH/DELETE and GraphQL mutations (docs/idempotency.md), on
SQLite and PostgreSQL: replays, reuse, keys in flight, what is not stored, expiry, per-key
isolation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update

from app.domain.idempotency import TABLE, sweep_slice
from app.models import Assistant, AssistantRevision, utcnow
from app.settings import Settings
from app.store import Store
from tests.helpers.database_locks import holding_assistant
from tests.helpers.factories import MakeAssistant, MakeClient, NewKey, Org
from tests.helpers.idempotency import count_rows, idempotency_layer, stored_keys

REVISIONS = AssistantRevision.__table__  # type: ignore[attr-defined]
ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
KEPT = ("content-type", "etag", "location")
UPDATE = """
mutation($id: ID!, $name: String!) {
  updateAssistant(orgId: "c", assistantId: $id, input: {name: $name}) { id name version }
}"""


def keyed(org: Org, key: str) -> dict[str, str]:
    return {**org.headers, "Idempotency-Key": key}


def assert_replayed(first: httpx.Response, again: httpx.Response) -> None:
    """The same answer (status, body, stored headers), marked as replayed."""
    assert again.status_code == first.status_code
    assert again.content == first.content
    assert {h: again.headers.get(h) for h in KEPT} == {h: first.headers.get(h) for h in KEPT}
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_a_repeated_patch_replays_its_answer_and_changes_nothing_more(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    first = await client.patch(url, json={"name": "Renamed"}, headers=keyed(org, "patch-1"))
    assert first.status_code == 200
    assert first.json()["version"] == 2
    again = await client.patch(url, json={"name": "Renamed"}, headers=keyed(org, "patch-1"))
    assert_replayed(first, again)
    assert again.headers["etag"] == '"2"'
    assert (await client.get(url, headers=org.headers)).json()["version"] == 2
    assert await count_rows(db, REVISIONS) == 2  # created, then one update
    assert await stored_keys(db) == ["patch-1"]


async def test_a_repeated_create_makes_one_assistant_and_replays_its_location(
    client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    url = f"/orgs/{org.org_id}/assistants"
    body = {"name": "Once", "generate_secret_key": True}
    first = await client.post(url, json=body, headers=keyed(org, "create-1"))
    assert first.status_code == 201
    assert first.headers["location"].endswith(first.json()["id"])
    again = await client.post(url, json=body, headers=keyed(org, "create-1"))
    assert_replayed(first, again)
    assert await count_rows(db, ASSISTANTS) == 1


async def test_a_repeated_delete_replays_204_instead_of_404(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    first = await client.delete(url, headers=keyed(org, "delete-1"))
    assert first.status_code == 204
    again = await client.delete(url, headers=keyed(org, "delete-1"))
    assert_replayed(first, again)
    assert (await client.delete(url, headers=org.headers)).status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix", "body", "query"),
    [
        ("PATCH", "", {"name": "Other"}, ""),  # another body
        ("PATCH", "", {"name": "Renamed"}, "?dry_run=true"),  # another query
        ("POST", "/rotate-secret-key", None, ""),  # another method and path
    ],
)
async def test_the_same_key_with_another_request_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    org: Org,
    make_assistant: MakeAssistant,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    query: str,
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    first = await client.patch(url, json={"name": "Renamed"}, headers=keyed(org, "reused"))
    assert first.status_code == 200
    other = await client.request(
        method, url + suffix + query, json=body, headers=keyed(org, "reused")
    )
    assert other.status_code == 422
    assert other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "Idempotency-Key" in other.json()["detail"]
    now = (await client.get(url, headers=org.headers)).json()
    assert (now["name"], now["version"]) == ("Renamed", 2)


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_malformed_key_is_400_naming_the_header_and_changes_nothing(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, key: str, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    headers = {**org.headers, "Idempotency-Key": key.encode("latin-1")}
    answer = await client.patch(url, json={"name": "Nope"}, headers=headers)  # type: ignore[arg-type]
    assert answer.status_code == 400
    problem = answer.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert problem["errors"][0]["path"] == "Idempotency-Key"
    assert "Idempotency-Key" in problem["detail"]
    assert (await client.get(url, headers=org.headers)).json()["version"] == 1
    assert await stored_keys(db) == []


async def test_the_longest_key_is_255_printable_characters(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    key = "~ !" + "k" * 252
    first = await client.patch(url, json={"name": "Long"}, headers=keyed(org, key))
    again = await client.patch(url, json={"name": "Long"}, headers=keyed(org, key))
    assert first.status_code == 200
    assert_replayed(first, again)


async def test_a_client_error_is_stored_and_replayed_without_any_effect(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    first = await client.patch(url, json={"name": ""}, headers=keyed(org, "bad-1"))
    assert first.status_code == 400
    again = await client.patch(url, json={"name": ""}, headers=keyed(org, "bad-1"))
    assert_replayed(first, again)
    assert again.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=org.headers)).json()["version"] == 1
    assert await count_rows(db, REVISIONS) == 1


async def test_an_unauthenticated_request_is_not_stored(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    headers = {"Authorization": "Bearer not-a-key", "Idempotency-Key": "anon"}
    for _ in range(2):
        answer = await client.patch(url, json={"name": "X"}, headers=headers)
        assert answer.status_code == 401
        assert "idempotent-replayed" not in answer.headers
    assert await stored_keys(db) == []


async def test_a_revoked_key_gets_401_not_its_stored_answer(
    client: httpx.AsyncClient, org: Org, new_key: NewKey, make_assistant: MakeAssistant
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    second = await new_key(org)
    first = await client.patch(url, json={"name": "X"}, headers=keyed(second, "k"))
    assert first.status_code == 200
    revoked = await client.delete(
        f"/orgs/{org.org_id}/api-keys/{second.key_id}", headers=org.headers
    )
    assert revoked.status_code == 204
    again = await client.patch(url, json={"name": "X"}, headers=keyed(second, "k"))
    assert again.status_code == 401
    assert "idempotent-replayed" not in again.headers


async def test_two_api_keys_with_the_same_idempotency_key_are_independent(
    client: httpx.AsyncClient, org: Org, new_key: NewKey, make_assistant: MakeAssistant
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    second = await new_key(org)
    one = await client.patch(url, json={"name": "One"}, headers=keyed(org, "shared"))
    two = await client.patch(url, json={"name": "Two"}, headers=keyed(second, "shared"))
    assert (one.status_code, two.status_code) == (200, 200)
    assert (one.json()["version"], two.json()["version"]) == (2, 3)
    assert "idempotent-replayed" not in two.headers
    again = await client.patch(url, json={"name": "One"}, headers=keyed(org, "shared"))
    assert_replayed(one, again)
    assert_replayed(
        two, await client.patch(url, json={"name": "Two"}, headers=keyed(second, "shared"))
    )


async def test_reads_ignore_the_header(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    before = await client.get(url, headers=keyed(org, "read"))
    await client.patch(url, json={"name": "Changed"}, headers=org.headers)
    after = await client.get(url, headers=keyed(org, "read"))
    assert (before.json()["name"], after.json()["name"]) == ("Support bot", "Changed")
    assert "idempotent-replayed" not in after.headers
    assert await stored_keys(db) == []


async def test_an_expired_answer_is_gone_and_the_request_runs_again(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}/rotate-secret-key"
    first = await client.post(url, headers=keyed(org, "old"))
    assert first.json()["version"] == 2
    async with db.write() as tx:
        past = utcnow() - timedelta(seconds=1)
        await tx.execute(update(TABLE).values(expires_at=past))
    rerun = await client.post(url, headers=keyed(org, "old"))
    assert rerun.status_code == 200
    assert "idempotent-replayed" not in rerun.headers
    assert rerun.json()["version"] == 3
    assert rerun.json()["secret_key"] != first.json()["secret_key"]
    assert_replayed(rerun, await client.post(url, headers=keyed(org, "old")))


async def test_expired_answers_are_swept_a_slice_a_minute_and_live_ones_kept(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    """The sweep of a minute removes the expired answers of that minute's slice of the ids
    (docs/idempotency.md); the others wait for their minute (they count as absent already)."""
    assistant = await make_assistant(org)
    if (second := utcnow().second) >= 57:  # the request below sweeps in the rows' minute
        await asyncio.sleep(61 - second)
    now = utcnow()
    first, last = sweep_slice(now)
    rows = [
        ("expired", first, now - timedelta(hours=1)),
        ("live", first + 1, now + timedelta(hours=1)),
        ("expired, another slice", last + 1 if last < 2**63 - 1 else 0, now - timedelta(hours=1)),
    ]
    async with db.write() as tx:
        for key, row_id, expires_at in rows:
            values = {"id": row_id, "key_hash": "0" * 64, "key": key, "fingerprint": "f" * 64}
            await tx.execute(
                insert(TABLE).values(
                    **values, status=200, headers={}, body=b"{}", expires_at=expires_at
                )
            )
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    assert (await client.patch(url, json={"name": "S"}, headers=keyed(org, "new"))).is_success
    assert await stored_keys(db) == ["expired, another slice", "live", "new"]


async def test_the_ttl_setting_sets_the_expiry(
    make_client: MakeClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    client = await make_client(idempotency_ttl=timedelta(minutes=5))
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    before = utcnow()
    await client.patch(url, json={"name": "T"}, headers=keyed(org, "ttl"))
    async with db.read() as tx:
        row = await tx.first(TABLE.select())
    assert row is not None
    expires_at = row[-1]
    assert timedelta(minutes=5) <= expires_at - before <= timedelta(minutes=5, seconds=30)


async def test_a_repeat_while_the_first_runs_is_409_with_retry_after(
    app: Any,
    client: httpx.AsyncClient,
    make_client: MakeClient,
    settings: Settings,
    org: Org,
    make_assistant: MakeAssistant,
) -> None:
    """The first request waits on a lock the test holds; on PostgreSQL the repeat goes to
    another app (another process's view: the database's advisory lock answers), on SQLite to
    the same app (a writer of another process would wait for the database's write lock)."""
    assistant = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    other = client if settings.is_sqlite else await make_client()
    async with holding_assistant(settings, assistant["id"]) as holder:
        first = asyncio.create_task(
            client.patch(url, json={"name": "Slow"}, headers=keyed(org, "slow"))
        )
        await _until_in_flight(app, holder, settings)
        repeat = await other.patch(url, json={"name": "Slow"}, headers=keyed(org, "slow"))
        assert repeat.status_code == 409
        assert repeat.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        assert repeat.headers["retry-after"] == "1"
    done = await first
    assert done.status_code == 200
    assert_replayed(done, await other.patch(url, json={"name": "Slow"}, headers=keyed(org, "slow")))


async def _until_in_flight(app: Any, holder: Any, settings: Settings) -> None:
    """Until the first request runs: in this process's set, and (PostgreSQL) holding its key's
    advisory lock."""
    for _ in range(500):
        await asyncio.sleep(0.01)
        if not idempotency_layer(app).in_flight:
            continue
        if settings.is_sqlite:
            return
        query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        if await holder.fetchval(query):
            return
    raise AssertionError("the first request never started")


async def test_a_server_error_is_not_stored_and_its_retry_runs(
    make_client: MakeClient, settings: Settings, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    """503 DATABASE_UNAVAILABLE (a lock held past DATABASE_TIMEOUT_SECONDS): nothing stored."""
    assistant = await make_assistant(org)
    client = await make_client(database_timeout_seconds=0.3)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    async with holding_assistant(settings, assistant["id"]):
        failed = await client.patch(url, json={"name": "Later"}, headers=keyed(org, "5xx"))
    assert failed.status_code == 503
    assert await stored_keys(db) == []
    retried = await client.patch(url, json={"name": "Later"}, headers=keyed(org, "5xx"))
    assert retried.status_code == 200
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["version"] == 2


# -- GraphQL -------------------------------------------------------------------------------------


async def test_a_repeated_graphql_mutation_replays_the_whole_answer(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    request = {"query": UPDATE, "variables": {"id": assistant["id"], "name": "G"}}
    first = await client.post("/graphql", json=request, headers=keyed(org, "gql-1"))
    assert first.json()["data"]["updateAssistant"]["version"] == 2
    again = await client.post("/graphql", json=request, headers=keyed(org, "gql-1"))
    assert_replayed(first, again)
    assert await count_rows(db, REVISIONS) == 2
    # the same document and variables, written differently in JSON, are the same request
    spaced = b'{ "variables": {"name": "G", "id": "%s"}, "query": %s }' % (
        assistant["id"].encode(),
        httpx.Response(200, json=UPDATE).content,
    )
    headers = {**keyed(org, "gql-1"), "Content-Type": "application/json"}
    assert_replayed(first, await client.post("/graphql", content=spaced, headers=headers))


async def test_a_graphql_key_with_other_variables_is_422(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant
) -> None:
    assistant = await make_assistant(org)
    request = {"query": UPDATE, "variables": {"id": assistant["id"], "name": "G"}}
    await client.post("/graphql", json=request, headers=keyed(org, "gql-2"))
    request["variables"]["name"] = "H"  # type: ignore[index]
    other = await client.post("/graphql", json=request, headers=keyed(org, "gql-2"))
    assert other.status_code == 422
    assert other.json()["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_graphql_queries_ignore_the_header(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    query = {"query": 'query($id: ID!) { assistant(orgId: "c", id: $id) { name } }'}
    query["variables"] = {"id": assistant["id"]}  # type: ignore[assignment]
    headers = {**org.headers, "Idempotency-Key": ""}  # not even checked
    before = await client.post("/graphql", json=query, headers=headers)
    await client.patch(
        f"/orgs/{org.org_id}/assistants/{assistant['id']}", json={"name": "N"}, headers=org.headers
    )
    after = await client.post("/graphql", json=query, headers=headers)
    assert before.json()["data"]["assistant"]["name"] == "Support bot"
    assert after.json()["data"]["assistant"]["name"] == "N"
    assert "idempotent-replayed" not in after.headers
    assert await stored_keys(db) == []


async def test_a_graphql_document_whose_second_mutation_fails_keeps_the_first(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    """Each mutation of a document stands or falls alone, as without the header; the answer
    (data and errors) is stored with what stood."""
    assistant = await make_assistant(org)
    document = """mutation($id: ID!) {
      a: updateAssistant(orgId: "c", assistantId: $id, input: {name: "A"}) { version }
      b: updateAssistant(orgId: "c", assistantId: "nope", input: {name: "B"}) { version }
    }"""
    request = {"query": document, "variables": {"id": assistant["id"]}}
    first = await client.post("/graphql", json=request, headers=keyed(org, "two"))
    assert first.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    again = await client.post("/graphql", json=request, headers=keyed(org, "two"))
    assert_replayed(first, again)
    url = f"/orgs/{org.org_id}/assistants/{assistant['id']}"
    now = (await client.get(url, headers=org.headers)).json()
    assert (now["name"], now["version"]) == ("A", 2)
    assert await count_rows(db, REVISIONS) == 2


async def test_a_graphql_mutation_without_a_valid_key_is_not_stored(
    client: httpx.AsyncClient, org: Org, make_assistant: MakeAssistant, db: Store
) -> None:
    assistant = await make_assistant(org)
    request = {"query": UPDATE, "variables": {"id": assistant["id"], "name": "G"}}
    headers = {"Authorization": "Bearer wrong", "Idempotency-Key": "anon"}
    answer = await client.post("/graphql", json=request, headers=headers)
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await stored_keys(db) == []


async def test_the_openapi_document_names_the_header_on_every_write(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    writes = [
        operation
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in ("post", "patch", "delete")
    ]
    assert len(writes) > 20
    for operation in writes:
        names = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
        assert names == ["Idempotency-Key"], operation["operationId"]
        assert {"409", "422"} <= operation["responses"].keys(), operation["operationId"]
    reads = [item["get"] for item in document["paths"].values() if "get" in item]
    assert all(p["in"] != "header" for op in reads for p in op["parameters"])
