"""ORG_STORAGE_QUOTA (docs/storage.md): each organisation's stored bytes are counted as rows
are written; the write that would pass the quota is 413 QUOTA_EXCEEDED (REST) or an error
QUOTA_EXCEEDED (GraphQL) and stores nothing; reads and deletes keep working, deletes and
shrinking updates give bytes back, other organisations are not touched. The counter is
checked against a recount of the stored rows by the documented rule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import func, select, text

from app.domain.storage import recount
from app.migrate import alembic_config, upgrade
from app.models import Action, Assistant, Avatar, Integration, Organisation
from app.settings import Settings
from app.store import Store, open_store
from tests.helpers.rows import stored_children
from tests.helpers.statements import statements

QUOTA = 40_000
ROW = 64  # what every row counts besides its content (docs/storage.md)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR"

ORGS = Organisation.__table__  # type: ignore[attr-defined]
ASSISTANTS = Assistant.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
ACTIONS = Action.__table__  # type: ignore[attr-defined]
AVATARS = Avatar.__table__  # type: ignore[attr-defined]

# the columns whose content counts, as docs/storage.md lists them
ASSISTANT_TEXT = (
    "name",
    "language",
    "model",
    "instructions",
    "knowledge_scope",
    "timezone",
    "stt_model",
    "tts_model",
    "tts_voice_id",
    "thread_mode",
    "welcome_banner",
    "suggested_messages",
    "auto_intro_message",
)
INTEGRATION_TEXT = ("integration_id", "connection_id", "config")
ACTION_TEXT = ("action_id", "name", "instructions", "connection_id", "config")

UPDATE_ASSISTANT = """
mutation($org: ID!, $id: ID!, $input: UpdateAssistantInput!) {
  updateAssistant(orgId: $org, assistantId: $id, input: $input) { id version }
}
"""
CREATE_ACTION = """
mutation($org: ID!, $assistant: ID!, $input: CreateActionInput!) {
  createAction(orgId: $org, assistantId: $assistant, input: $input) { id }
}
"""
UPDATE_INTEGRATION = """
mutation($org: ID!, $id: ID!, $input: UpdateIntegrationInput!) {
  updateIntegration(orgId: $org, integrationId: $id, input: $input) { id }
}
"""
DELETE_ACTION = "mutation($org: ID!, $id: ID!) { deleteAction(orgId: $org, actionId: $id) }"
DELETE_ASSISTANT = """
mutation($org: ID!, $id: ID!) { deleteAssistant(orgId: $org, assistantId: $id) }
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Both databases (the conftest's fixture), with a small quota."""
    return settings.model_copy(update={"org_storage_quota": QUOTA})


def config_of(size: int) -> dict[str, Any]:
    """An object of exactly `size` bytes as compact JSON."""
    return {"k": "x" * (size - len(b'{"k":""}'))}


def measure(value: Any) -> int:
    """A value's bytes by the documented rule."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict | list):
        return len(orjson.dumps(value))
    return 0


async def used(db: Store, org_id: str) -> int:
    async with db.read() as tx:
        value = await tx.scalar(select(ORGS.c.storage_used).where(ORGS.c.id == org_id))
    return int(value)


async def documented(db: Store, org_id: str) -> int:
    """The organisation's bytes recounted from its stored rows, by docs/storage.md's rule."""
    total = 0
    async with db.read() as tx:
        for table, columns, *where in (
            (ASSISTANTS, ASSISTANT_TEXT, ASSISTANTS.c.deleted.is_(False)),
            (INTEGRATIONS, INTEGRATION_TEXT),
            (ACTIONS, ACTION_TEXT),
        ):
            statement = select(*(table.c[c] for c in columns)).where(
                table.c.org_id == org_id, *where
            )
            for row in await tx.all(statement):
                total += ROW + sum(map(measure, row))
        sizes = await tx.all(select(AVATARS.c.size).where(AVATARS.c.org_id == org_id))
        total += sum(ROW + size for (size,) in sizes)
    return total


async def check_counts(db: Store, *org_ids: str) -> None:
    """The counter of each organisation is what its rows hold (and what the app recounts)."""
    async with db.read() as tx:
        recounted = await recount(tx)
    for org_id in org_ids:
        expected = await documented(db, org_id)
        assert await used(db, org_id) == expected == recounted.get(org_id, 0)


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def refused(response: Any) -> None:
    assert response.status_code == 413, response.text
    body = response.json()
    assert (body["code"], body["status"], body["quota_bytes"]) == ("QUOTA_EXCEEDED", 413, QUOTA)
    assert response.headers["content-type"] == "application/problem+json"


def quota_error(body: dict[str, Any]) -> dict[str, Any]:
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"]["code"] == "QUOTA_EXCEEDED"
    assert error["extensions"]["quotaBytes"] == QUOTA
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def test_the_write_that_passes_the_quota_is_refused_and_stores_nothing(
    client, org, other_org, make_assistant, db
):
    assistant = await make_assistant(org)
    url = f"/orgs/c/assistants/{assistant['id']}/integrations"
    made: list[str] = []
    while True:
        body = {"integration_id": "big", "config": config_of(9_000)}
        response = await client.post(url, json=body, headers=org.headers)
        if response.status_code != 201:
            break
        made.append(response.json()["id"])
    refused(response)
    assert len(made) == 4  # the assistant and four 9,000-byte configs fit in 40,000
    before = await used(db, org.org_id)
    assert QUOTA - 9_000 - ROW < before <= QUOTA
    assert len(await stored_children(db, Integration, assistant["id"])) == 4
    await check_counts(db, org.org_id)

    # reads keep working; another organisation is not touched
    assert (
        await client.get(f"/orgs/c/assistants/{assistant['id']}", headers=org.headers)
    ).is_success
    assert len((await client.get(url, headers=org.headers)).json()) == 4
    theirs = await make_assistant(other_org)
    other = await client.post(
        f"/orgs/c/assistants/{theirs['id']}/integrations",
        json={"integration_id": "big", "config": config_of(9_000)},
        headers=other_org.headers,
    )
    assert other.status_code == 201
    await check_counts(db, org.org_id, other_org.org_id)

    # a delete gives its bytes back, and the same write then fits
    deleted = await client.delete(f"{url}/{made[0]}", headers=org.headers)
    assert deleted.status_code == 204
    assert await used(db, org.org_id) == before - (ROW + len("big") + 9_000)
    again = await client.post(
        url, json={"integration_id": "big", "config": config_of(9_000)}, headers=org.headers
    )
    assert again.status_code == 201
    await check_counts(db, org.org_id, other_org.org_id)


async def test_a_patch_that_grows_past_the_quota_changes_nothing_and_one_that_shrinks_gives_back(
    client, org, make_assistant, stored, db
):
    assistant = await make_assistant(org, config={"instructions": "i" * 30_000})
    url = f"/orgs/c/assistants/{assistant['id']}"
    before = await stored(assistant["id"])
    grown = await client.patch(
        url, json={"name": "Renamed", "config": {"instructions": "i" * 45_000}}, headers=org.headers
    )
    refused(grown)
    assert await stored(assistant["id"]) == before  # no version, no revision, nothing
    revisions = await client.get(f"{url}/revisions", headers=org.headers)
    assert [r["version"] for r in revisions.json()] == [1]

    shrunk = await client.patch(
        url, json={"config": {"instructions": "short"}}, headers=org.headers
    )
    assert shrunk.status_code == 200
    await check_counts(db, org.org_id)
    assert await used(db, org.org_id) < 1_000
    regrown = await client.patch(
        url, json={"config": {"instructions": "i" * 35_000}}, headers=org.headers
    )
    assert regrown.status_code == 200
    await check_counts(db, org.org_id)


async def test_graphql_answers_quota_exceeded_and_stores_nothing(
    client, gql, org, make_assistant, stored, db
):
    assistant = await make_assistant(org, config={"instructions": "i" * 30_000})
    before = await stored(assistant["id"])
    grow = {"org": "c", "id": assistant["id"], "input": {"config": {"instructions": "i" * 45_000}}}
    response = await client.post(
        "/graphql", json={"query": UPDATE_ASSISTANT, "variables": grow}, headers=org.headers
    )
    assert response.status_code == 200  # a mutation's error, as BAD_USER_INPUT
    quota_error(response.json())
    assert await stored(assistant["id"]) == before

    action = {
        "actionId": "TOOLS:HTTP_REQUEST",
        "name": "Fetch",
        "config": {"input": config_of(12_000)},
    }
    create = {"org": "c", "assistant": assistant["id"], "input": action}
    quota_error(await gql(CREATE_ACTION, create, org))
    assert await stored_children(db, Action, assistant["id"]) == []

    shrink = {"org": "c", "id": assistant["id"], "input": {"config": {"instructions": "short"}}}
    assert (await gql(UPDATE_ASSISTANT, shrink, org))["data"]["updateAssistant"]["version"] == 2
    made = await gql(CREATE_ACTION, create, org)
    assert "errors" not in made, made
    await check_counts(db, org.org_id)


async def test_deleting_an_assistant_gives_back_its_bytes_and_its_childrens(
    client, gql, org, make_assistant, db
):
    keep = await make_assistant(org, name="Kept")
    kept_bytes = await used(db, org.org_id)
    doomed = await make_assistant(org, config={"instructions": "i" * 5_000})
    base = f"/orgs/c/assistants/{doomed['id']}"
    for n in range(3):
        body = {"integration_id": f"i{n}", "config": config_of(3_000)}
        assert (
            await client.post(f"{base}/integrations", json=body, headers=org.headers)
        ).is_success
        body = {"action_id": "A", "name": f"a{n}", "config": {"input": config_of(2_000)}}
        assert (await client.post(f"{base}/actions", json=body, headers=org.headers)).is_success
    await check_counts(db, org.org_id)
    assert await used(db, org.org_id) > kept_bytes + 20_000

    answer = await gql(DELETE_ASSISTANT, {"org": "c", "id": doomed["id"]}, org)
    assert "errors" not in answer, answer
    assert await used(db, org.org_id) == kept_bytes
    await check_counts(db, org.org_id)
    assert (await client.get(f"/orgs/c/assistants/{keep['id']}", headers=org.headers)).is_success


async def test_an_avatar_past_the_quota_is_refused_and_no_file_is_written(
    client, org, db, settings
):
    response = await client.post(
        "/orgs/c/avatars",
        content=PNG + bytes(QUOTA),
        headers={**org.headers, "Content-Type": "image/png"},
    )
    refused(response)
    async with db.read() as tx:
        assert await tx.scalar(select(func.count()).select_from(AVATARS)) == 0
    assert files_in(settings.avatars_dir) == []

    fits = await client.post(
        "/orgs/c/avatars",
        content=PNG + bytes(1_000),
        headers={**org.headers, "Content-Type": "image/png"},
    )
    assert fits.status_code == 201
    await check_counts(db, org.org_id)
    assert await used(db, org.org_id) == ROW + len(PNG) + 1_000


async def test_the_counter_after_creates_updates_and_deletes_equals_the_rows(
    client, gql, org, other_org, make_assistant, db
):
    first = await make_assistant(
        org,
        name="Ünïcødé bot ✓",
        config={
            "instructions": "Réponds en français",
            "conversation": {"suggested_messages": ["héllo", "bye"]},
            "tts": {"voice_id": "v1"},
        },
    )
    second = await make_assistant(other_org, name="Other")
    base = f"/orgs/c/assistants/{first['id']}"
    integration = (
        await client.post(
            f"{base}/integrations",
            json={"integration_id": "whatsapp", "connection_id": "c1", "config": {"é": [1, 2]}},
            headers=org.headers,
        )
    ).json()
    actions = [
        (
            await client.post(
                f"{base}/actions",
                json={"action_id": "A", "name": f"n{n}", "instructions": "do ✓" * n},
                headers=org.headers,
            )
        ).json()
        for n in range(3)
    ]
    await check_counts(db, org.org_id, other_org.org_id)

    steps = [
        client.patch(
            base,
            json={"config": {"conversation": {"welcome_banner": "Bienvenue ✓"}}},
            headers=org.headers,
        ),
        client.patch(base, json={"enabled": False}, headers=org.headers),
        client.patch(
            f"{base}/actions/{actions[0]['id']}",
            json={"config": {"input": {"url": "https://x"}, "definitions": []}},
            headers=org.headers,
        ),
        client.delete(f"{base}/actions/{actions[1]['id']}", headers=org.headers),
        client.patch(
            f"/orgs/c/assistants/{second['id']}",
            json={"config": {"instructions": "longer than before"}},
            headers=other_org.headers,
        ),
    ]
    for step in steps:
        assert (await step).is_success
        await check_counts(db, org.org_id, other_org.org_id)

    update = {"org": "c", "id": integration["id"], "input": {"config": {"small": True}}}
    assert "errors" not in await gql(UPDATE_INTEGRATION, update, org)
    grow = {"org": "c", "id": first["id"], "input": {"name": "A much longer name ✓✓✓"}}
    assert "errors" not in await gql(UPDATE_ASSISTANT, grow, org)
    assert "errors" not in await gql(DELETE_ACTION, {"org": "c", "id": actions[2]["id"]}, org)
    uploaded = await client.post(
        "/orgs/c/avatars",
        content=PNG + bytes(100),
        headers={**org.headers, "Content-Type": "image/png"},
    )
    assert uploaded.status_code == 201
    await check_counts(db, org.org_id, other_org.org_id)

    assert "errors" not in await gql(DELETE_ASSISTANT, {"org": "c", "id": first["id"]}, org)
    await check_counts(db, org.org_id, other_org.org_id)
    assert await used(db, org.org_id) == ROW + len(PNG) + 100  # the avatar stays


async def test_an_update_that_keeps_the_size_runs_no_storage_statement(
    client, org, make_assistant, db
):
    assistant = await make_assistant(org, name="Bot A")
    url = f"/orgs/c/assistants/{assistant['id']}"
    for patch, charged in (
        ({"enabled": False}, 0),
        ({"name": "Bot B"}, 0),  # another name of the same length
        ({"name": "Bot BB"}, 1),
        ({"name": "Bot"}, 1),
    ):
        with statements(db) as seen:
            response = await client.patch(url, json=patch, headers=org.headers)
        assert response.status_code == 200
        assert sum("UPDATE organisations" in s for s in seen) == charged, seen
    await check_counts(db, org.org_id)


async def test_concurrent_writes_never_pass_the_quota_together(client, org, make_assistant, db):
    """Writes to ten assistants at once (no assistant lock orders them): the organisation's
    counter lets only those that fit through."""
    assistants = [await make_assistant(org, name=f"a{n}") for n in range(10)]
    free = QUOTA - await used(db, org.org_id)
    size = ROW + len("big") + 9_000
    responses = await asyncio.gather(
        *(
            client.post(
                f"/orgs/c/assistants/{a['id']}/integrations",
                json={"integration_id": "big", "config": config_of(9_000)},
                headers=org.headers,
            )
            for a in assistants
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * (free // size) + [413] * (10 - free // size)
    assert await used(db, org.org_id) <= QUOTA
    await check_counts(db, org.org_id)


# -- migration 0006: the rows that existed before are counted once ---------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a database with nothing in it (not even the migrations)."""
    if request.param == "sqlite":
        yield Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", _env_file=None)
        return
    server = request.getfixturevalue("postgres_template")
    name = server.new_name("test")
    server.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield Settings(database_url=server.url_for(name), _env_file=None)
    finally:
        server.drop_later(name)


OLD_ROWS = [
    "INSERT INTO organisations (id, name, created_at) VALUES ('o1', 'One', '2026-01-01')",
    "INSERT INTO organisations (id, name, created_at) VALUES ('o2', 'Two', '2026-01-01')",
    "INSERT INTO organisations (id, name, created_at) VALUES ('o3', 'Empty', '2026-01-01')",
    "INSERT INTO avatars (id, org_id, content_type, size, sha256, created_at) "
    "VALUES ('av1', 'o1', 'image/png', 5000, 'x', '2026-01-01')",
]


def assistant_row(seq: int, org: str, name: str, instructions: str, deleted: bool) -> str:
    return (
        "INSERT INTO assistants (seq, id, org_id, name, enabled, deleted, version, language, "
        "model, instructions, knowledge_scope, timezone, thread_mode, enable_memories, "
        "enable_transfer_to_human_tool, suggested_messages, enable_end_conversation_tool, "
        "enable_block_contact_tool, enable_private_chats, enable_auto_resolve, "
        "enable_auto_follow_ups, enable_auto_csat, enable_update_contact_tool, created_at, "
        f"updated_at) VALUES ({seq}, 'as{seq}', '{org}', '{name}', true, {str(deleted).lower()}, "
        f"1, 'auto', 'gpt', '{instructions}', 'all', 'UTC', 'new', false, false, "
        '\'["hé", "b"]\', false, false, false, false, false, false, false, '
        "'2026-01-01', '2026-01-01')"
    )


async def _seed(settings: Settings) -> None:
    store = open_store(settings)
    try:
        async with store.write() as tx:
            for statement in [
                *OLD_ROWS,
                assistant_row(1, "o1", "Bot ✓", "Be kind", False),
                assistant_row(2, "o1", "Gone", "x" * 1000, True),
                assistant_row(3, "o2", "Two", "", False),
                "INSERT INTO integrations (id, org_id, assistant_id, integration_id, enabled, "
                "config, created_at, updated_at) VALUES ('i1', 'o1', 'as1', 'whatsapp', true, "
                "'{\"a\": [1, 2], \"é\": \"ü\"}', '2026-01-01', '2026-01-01')",
                "INSERT INTO actions (id, org_id, assistant_id, action_id, enabled, name, "
                "instructions, connection_id, config, position, created_at, updated_at) VALUES "
                "('a1', 'o2', 'as3', 'A', true, 'Fetch', 'Go', 'c1', "
                "'{\"input\": {}, \"definitions\": []}', 100, '2026-01-01', '2026-01-01')",
            ]:
                await tx.execute(text(statement))
    finally:
        await store.close()


async def _usage_and_recount(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    store = open_store(settings)
    try:
        async with store.read() as tx:
            stored = {o: int(u) for o, u in await tx.all(select(ORGS.c.id, ORGS.c.storage_used))}
            return stored, await recount(tx)
    finally:
        await store.close()


def test_the_migration_counts_the_rows_that_existed_before(empty: Settings):
    command.upgrade(alembic_config(empty), "0005")
    asyncio.run(_seed(empty))
    upgrade(empty)
    stored, recounted = asyncio.run(_usage_and_recount(empty))
    text_bytes = len("Bot ✓".encode()) + len("auto") + len("gpt") + len("Be kind") + len("all")
    text_bytes += len("UTC") + len("new") + len(orjson.dumps(["hé", "b"]))
    one = ROW + text_bytes  # the assistant (the deleted one counts nothing)
    one += ROW + len("whatsapp") + len(orjson.dumps({"a": [1, 2], "é": "ü"}))
    one += ROW + 5000  # the avatar
    assert stored["o1"] == one
    assert stored == {"o1": one, "o2": recounted["o2"], "o3": 0}
    assert {o: u for o, u in stored.items() if u} == recounted
