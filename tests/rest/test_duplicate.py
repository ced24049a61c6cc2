"""`POST /orgs/{org_id}/assistants/{id}/duplicate` (docs/duplicate.md), on both databases."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import update

from app.domain.releases import RELEASES
from app.domain.storage import recount, usage
from app.store import Store
from tests.helpers.duplicates import expected_copy, make_source
from tests.helpers.factories import Org
from tests.helpers.keys import READ, WRITE, everything, make_key
from tests.helpers.rows import count_assistants


def url(assistant_id: str, tail: str = "/duplicate") -> str:
    return f"/orgs/c/assistants/{assistant_id}{tail}"


async def duplicate(
    client: httpx.AsyncClient, org: Org, assistant_id: str, body: Any = None
) -> dict[str, Any]:
    response = await client.post(url(assistant_id), json=body, headers=org.headers)
    assert response.status_code == 201, response.text
    copy: dict[str, Any] = response.json()
    return copy


async def uncounted(db: Store) -> dict[str, int]:
    """Stored bytes the organisations' counters miss (the avatars tests insert straight in the
    database, say): a write that counts its bytes exactly leaves this as it was."""
    async with db.read() as tx:
        counted, stored = await usage(tx), await recount(tx)
    return {org_id: stored[org_id] - counted.get(org_id, 0) for org_id in stored}


async def read(client: httpx.AsyncClient, org: Org, assistant_id: str) -> dict[str, Any]:
    response = await client.get(url(assistant_id, ""), headers=org.headers)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def test_a_duplicate_copies_the_draft_with_new_ids(client, db, org):
    source = await make_source(client, db, org)
    missed = await uncounted(db)
    response = await client.post(url(source["id"]), json={}, headers=org.headers)
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy == expected_copy(source, copy, "Support (copy)")
    assert response.headers["location"] == f"/orgs/c/assistants/{copy['id']}"
    assert response.headers["etag"] == '"1"'
    assert await read(client, org, copy["id"]) == copy
    assert await read(client, org, source["id"]) == source  # the source is untouched
    listed = await client.get("/orgs/c/assistants", headers=org.headers)
    assert [a["id"] for a in listed.json()] == [source["id"], copy["id"]]
    assert await uncounted(db) == missed  # the copy's bytes are counted, exactly


async def test_the_body_may_be_absent_and_the_name_chosen(client, db, org):
    source = await make_source(client, db, org)
    bare = await client.post(url(source["id"]), headers=org.headers)  # no body at all
    assert bare.status_code == 201, bare.text
    assert bare.json() == expected_copy(source, bare.json(), "Support (copy)")
    named = await duplicate(client, org, source["id"], {"name": "  Trial  "})
    assert named == expected_copy(source, named, "Trial")  # stored trimmed, as on create
    null = await duplicate(client, org, source["id"], {"name": None, "from_release": None})
    assert null["name"] == "Support (copy)"
    again = await duplicate(client, org, bare.json()["id"])  # a copy of a copy
    assert again["name"] == "Support (copy) (copy)"


@pytest.mark.parametrize(
    ("body", "integrations", "actions"),
    [
        ({"include_integrations": False}, 0, 3),
        ({"include_actions": False}, 2, 0),
        ({"include_integrations": False, "include_actions": False}, 0, 0),
        ({"include_integrations": True, "include_actions": True}, 2, 3),
    ],
)
async def test_integrations_and_actions_may_be_left_out(
    client, db, org, body, integrations, actions
):
    source = await make_source(client, db, org)
    missed = await uncounted(db)
    copy = await duplicate(client, org, source["id"], body)
    kept = {
        **source,
        "integrations": source["integrations"][:integrations],
        "actions": source["actions"][:actions],
    }
    assert copy == expected_copy(kept, copy, "Support (copy)")
    assert await uncounted(db) == missed


async def test_from_release_copies_what_the_release_froze(client, db, org):
    source = await make_source(client, db, org)
    published = await client.post(url(source["id"], "/releases"), json={}, headers=org.headers)
    assert published.status_code == 201, published.text
    release = published.json()
    # the draft moves on: another name and config, one integration more, one action less
    base = url(source["id"], "")
    changes = {
        "name": "Support v2",
        "config": {"instructions": "Be brief.", "tts": {"voice_id": "v2"}},
    }
    assert (await client.patch(base, json=changes, headers=org.headers)).status_code == 200
    added = await client.post(
        f"{base}/integrations", json={"integration_id": "internal"}, headers=org.headers
    )
    assert added.status_code == 201
    gone = source["actions"][0]["id"]
    assert (await client.delete(f"{base}/actions/{gone}", headers=org.headers)).status_code == 204

    copy = await duplicate(client, org, source["id"], {"from_release": 1})
    assert copy == expected_copy(release["assistant"], copy, "Support (copy)")
    assert copy["config"]["instructions"] == "Be kind."
    assert [a["name"] for a in copy["actions"]] == ["third", "first", "second"]
    revisions = await client.get(url(copy["id"], "/revisions"), headers=org.headers)
    [created] = revisions.json()
    assert created["duplicated_from"] == {"assistant_id": source["id"], "version": 2}
    # from the draft, it is the draft's version now
    draft_copy = await duplicate(client, org, source["id"], {"include_actions": False})
    assert draft_copy["config"]["instructions"] == "Be brief."
    assert [i["integration_id"] for i in draft_copy["integrations"]] == [
        "whatsapp",
        "slack",
        "internal",
    ]
    revisions = await client.get(url(draft_copy["id"], "/revisions"), headers=org.headers)
    assert revisions.json()[0]["duplicated_from"] == {"assistant_id": source["id"], "version": 3}


async def test_the_created_revision_names_its_source(client, db, org):
    source = await make_source(client, db, org)
    copy = await duplicate(client, org, source["id"])
    history = await client.get(url(copy["id"], "/revisions"), headers=org.headers)
    source_history = await client.get(url(source["id"], "/revisions"), headers=org.headers)
    source_created = source_history.json()[-1]
    assert "duplicated_from" not in source_created  # a plain create names no source

    def value(path: str) -> Any:
        node: Any = copy
        for key in path.split("."):
            node = node[key]
        return node

    leaves = [change["path"] for change in source_created["changes"]]
    assert history.json() == [
        {
            "assistant_id": copy["id"],
            "version": 1,
            "changed_at": copy["created_at"],
            "change_type": "created",
            "actor_key_id": org.key_id,
            "source": "rest",
            "changes": [{"path": p, "from": None, "to": value(p)} for p in leaves],
            "duplicated_from": {"assistant_id": source["id"], "version": 2},
        }
    ]
    one = await client.get(url(copy["id"], "/revisions/1"), headers=org.headers)
    snapshot = {
        key: copy[key]
        for key in ("id", "version", "name", "enabled", "avatar_id", "avatar_url", "config")
    }
    snapshot |= {"created_at": copy["created_at"], "updated_at": copy["updated_at"]}
    assert one.json() == {**history.json()[0], "snapshot": snapshot}


async def test_bad_bodies_name_the_field_and_store_nothing(client, db, org):
    source = await make_source(client, db, org)
    before = await everything(db)
    cases: list[tuple[Any, str]] = [
        ({"include_actions": "yes"}, "include_actions"),
        ({"include_integrations": None}, "include_integrations"),
        ({"from_release": 0}, "from_release"),
        ({"from_release": "1"}, "from_release"),
        ({"name": ""}, "name"),
        ({"name": "a\u0007b"}, "name"),
        ({"name": "x" * 1025}, "name"),
        ({"nope": 1}, "nope"),
    ]
    for body, field in cases:
        response = await client.post(url(source["id"]), json=body, headers=org.headers)
        assert response.status_code == 400, body
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED", body
        assert [e["path"] for e in problem["errors"]] == [field], body
    for body in ([], "x", 1):
        response = await client.post(url(source["id"]), json=body, headers=org.headers)
        assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")
    broken = await client.post(
        url(source["id"]), content=b"{", headers={**org.headers, "content-type": "application/json"}
    )
    assert broken.status_code == 400
    text = await client.post(
        url(source["id"]), content=b"{}", headers={**org.headers, "content-type": "text/plain"}
    )
    assert text.status_code == 415
    assert await everything(db) == before


async def test_a_default_name_too_long_is_refused(client, db, org):
    long = await client.post("/orgs/c/assistants", json={"name": "n" * 1020}, headers=org.headers)
    assert long.status_code == 201
    before = await everything(db)
    response = await client.post(url(long.json()["id"]), json={}, headers=org.headers)
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    [error] = problem["errors"]
    assert error["path"] == "name"
    assert "send a name" in error["message"]
    assert await everything(db) == before
    named = await duplicate(client, org, long.json()["id"], {"name": "short"})
    assert named["name"] == "short"


async def test_unknown_sources_are_404_and_store_nothing(client, db, org, other_org):
    source = await make_source(client, db, org)
    theirs = await client.post(
        "/orgs/c/assistants", json={"name": "Theirs"}, headers=other_org.headers
    )
    deleted = await client.post("/orgs/c/assistants", json={"name": "Gone"}, headers=org.headers)
    assert (
        await client.delete(url(deleted.json()["id"], ""), headers=org.headers)
    ).status_code == 204
    before = await everything(db)
    for assistant_id, body in [
        ("nope", {}),
        (theirs.json()["id"], {}),
        (deleted.json()["id"], {}),
        (source["id"], {"from_release": 9}),
    ]:
        response = await client.post(url(assistant_id), json=body, headers=org.headers)
        assert response.status_code == 404, (assistant_id, body)
        problem = response.json()
        assert problem["code"] == "NOT_FOUND"
        assert problem["status"] == 404
    assert await everything(db) == before
    # the same answer as GET for an unknown assistant
    get = await client.get(url("nope", ""), headers=org.headers)
    post = await client.post(url("nope"), json={}, headers=org.headers)
    assert get.json() == post.json()


async def test_only_an_unrestricted_key_with_write_may_duplicate(client, db, org):
    source = await make_source(client, db, org)
    reader = await make_key(client, org, [READ])
    writer = await make_key(client, org, [WRITE])
    bound = await make_key(client, org, [READ, WRITE], assistant_ids=[source["id"]])
    before = await everything(db)
    refused = await client.post(url(source["id"]), json={}, headers=reader.headers)
    assert refused.status_code == 403
    assert (refused.json()["code"], refused.json()["required_scope"]) == (
        "INSUFFICIENT_SCOPE",
        WRITE,
    )
    assert (
        refused.headers["www-authenticate"] == f'Bearer error="insufficient_scope", scope="{WRITE}"'
    )
    refused = await client.post(url(source["id"]), json={}, headers=bound.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "INSUFFICIENT_SCOPE")
    assert "restricted" in refused.json()["detail"]
    assert await everything(db) == before
    copy = await client.post(url(source["id"]), json={}, headers=writer.headers)  # write alone
    assert copy.status_code == 201, copy.text


async def test_duplicates_count_against_the_creation_limit(make_client, db, org):
    client = await make_client(create_assistant_limit="2/hour")
    source = await client.post("/orgs/c/assistants", json={"name": "One"}, headers=org.headers)
    assert source.status_code == 201
    source_id = source.json()["id"]
    invalid = await client.post(url(source_id), json={"name": ""}, headers=org.headers)
    assert invalid.status_code == 400  # refused before counting: spends nothing
    unknown = await client.post(url(source_id), json={"from_release": 1}, headers=org.headers)
    assert unknown.status_code == 404  # nor does an unknown release
    assert (await client.post(url(source_id), json={}, headers=org.headers)).status_code == 201
    before = await everything(db)
    refused = await client.post(url(source_id), json={}, headers=org.headers)
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert 3500 < int(refused.headers["retry-after"]) <= 3600
    query = 'mutation($a: ID!) { duplicateAssistant(orgId: "c", assistantId: $a) { id } }'
    answer = await client.post(
        "/graphql", json={"query": query, "variables": {"a": source_id}}, headers=org.headers
    )
    assert answer.status_code == 429
    assert answer.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    created = await client.post("/orgs/c/assistants", json={"name": "Three"}, headers=org.headers)
    assert created.status_code == 429  # creates and duplicates share the one count
    assert await everything(db) == before
    assert await count_assistants(db) == 2


async def test_a_duplicate_past_the_storage_quota_stores_nothing(make_client, client, db, org):
    source = await make_source(client, db, org)
    async with db.read() as tx:
        used = (await usage(tx))[org.org_id]
    small = await make_client(org_storage_quota=used + 200)  # less than the copy's bytes
    before = await everything(db)
    refused = await small.post(url(source["id"]), json={}, headers=org.headers)
    assert (refused.status_code, refused.json()["code"]) == (413, "QUOTA_EXCEEDED")
    assert await everything(db) == before


async def test_a_release_older_than_a_leaf_copies_its_default(client, db, org):
    """A release made before a config leaf existed does not hold it: the copy gets the leaf's
    default, as a create would."""
    source = await make_source(client, db, org)
    published = await client.post(url(source["id"], "/releases"), json={}, headers=org.headers)
    assert published.status_code == 201
    document = published.json()
    del document["assistant"]["config"]["timezone"]
    del document["assistant"]["config"]["conversation"]["enable_auto_csat"]
    del document["assistant"]["config"]["tts"]["voice_id"]
    async with db.write() as tx:
        await tx.execute(
            update(RELEASES)
            .where(RELEASES.c.assistant_id == source["id"])
            .values(document=orjson.dumps(document).decode())
        )
    copy = await duplicate(client, org, source["id"], {"from_release": 1})
    config = copy["config"]
    assert (config["timezone"], config["conversation"]["enable_auto_csat"]) == ("UTC", False)
    assert config["tts"] == {"model": "tts-1", "voice_id": None}
    assert config["instructions"] == "Be kind."
