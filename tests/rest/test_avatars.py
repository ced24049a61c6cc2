"""Avatars: upload (raw body or multipart `file`), the public GET, and `avatar_id` on assistants."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select

from app.models import Avatar
from app.store.records import AvatarRecord
from tests.helpers.graphql_answers import answer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64))
GIF = b"GIF89a\x01\x00\x01\x00" + bytes(range(64))
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(range(64))
IMAGES = [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (WEBP, "image/webp")]
MAX = 2 * 1024 * 1024


async def avatar_count(db) -> int:
    async with db.read() as tx:
        return int(await tx.scalar(select(func.count()).select_from(Avatar)) or 0)


async def upload_raw(client, org, data, content_type="application/octet-stream", org_id="c"):
    return await client.post(
        f"/orgs/{org_id}/avatars",
        content=data,
        headers={**org.headers, "Content-Type": content_type},
    )


@pytest.mark.parametrize(("data", "content_type"), IMAGES)
async def test_raw_upload_then_public_get(client, org, db, settings, data, content_type):
    response = await upload_raw(client, org, data, "image/png")  # the claim is never trusted
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "url": f"https://api.test/avatars/{body['id']}"}
    async with db.read() as tx:
        table = Avatar.__table__
        row = await tx.first(select(table).where(table.c.id == body["id"]), None, AvatarRecord)
    assert (row.org_id, row.content_type, row.size) == (org.org_id, content_type, len(data))
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert (settings.avatars_dir / body["id"]).read_bytes() == data
    assert [p.name for p in settings.avatars_dir.iterdir()] == [body["id"]]  # no temp files

    served = await client.get(f"/avatars/{body['id']}")  # no key
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == content_type
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-content-type-options"] == "nosniff"
    etag = served.headers["etag"]
    assert etag == f'"{row.sha256}"'
    again = await client.get(f"/avatars/{body['id']}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


async def test_multipart_upload(client, org, settings):
    response = await client.post(
        "/orgs/c/avatars",
        files={"file": ("me.txt", JPEG, "text/plain")},
        headers=org.headers,
    )
    assert response.status_code == 201
    avatar_id = response.json()["id"]
    assert (settings.avatars_dir / avatar_id).read_bytes() == JPEG
    served = await client.get(f"/avatars/{avatar_id}")
    assert served.headers["content-type"] == "image/jpeg"
    assert served.content == JPEG


async def test_multipart_without_file_field(client, org, db):
    response = await client.post(
        "/orgs/c/avatars", files={"image": ("a.png", PNG, "image/png")}, headers=org.headers
    )
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in response.json()["errors"]] == ["file"]
    assert await avatar_count(db) == 0


@pytest.mark.parametrize(
    ("data", "claimed"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
        (b"hello, world", "image/png"),
        (b"", "image/png"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "image/webp"),
        (b"\x89PNG", "image/png"),
        (b"%PDF-1.7", "image/jpeg"),
    ],
)
async def test_not_an_image_is_400(client, org, db, settings, data, claimed):
    response = await upload_raw(client, org, data, claimed)
    assert response.status_code == 400
    problem = response.json()
    assert problem["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in problem["errors"]] == ["file"]
    assert await avatar_count(db) == 0
    assert not settings.avatars_dir.exists() or not any(settings.avatars_dir.iterdir())


async def test_multipart_file_that_is_not_an_image(client, org, db):
    response = await client.post(
        "/orgs/c/avatars", files={"file": ("a.png", b"GIF8", "image/png")}, headers=org.headers
    )
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["file"]
    assert await avatar_count(db) == 0


async def test_size_limit(client, org, db):
    exact = PNG + b"\x00" * (MAX - len(PNG))
    assert (await upload_raw(client, org, exact)).status_code == 201
    too_big = await upload_raw(client, org, exact + b"\x00")
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert await avatar_count(db) == 1


async def test_upload_needs_a_key_and_own_org(client, org, other_org, db):
    anonymous = await client.post("/orgs/c/avatars", content=PNG)
    assert anonymous.status_code == 401
    forbidden = await upload_raw(client, org, PNG, org_id=other_org.org_id)
    assert forbidden.status_code == 403
    assert await avatar_count(db) == 0


async def test_unknown_avatar_is_404(client):
    for avatar_id in ("nope", "x" * 100, "..%2Fassistants.db"):
        response = await client.get(f"/avatars/{avatar_id}")
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "NOT_FOUND"


async def test_avatar_on_an_assistant(client, org, make_assistant, stored):
    avatar_id = (await upload_raw(client, org, PNG)).json()["id"]
    created = await make_assistant(org, avatar_id=avatar_id)
    assert created["avatar_url"] == f"https://api.test/avatars/{avatar_id}"
    assert (await stored(created["id"]))["avatar_id"] == avatar_id
    other_id = (await upload_raw(client, org, GIF)).json()["id"]
    patched = await client.patch(
        f"/orgs/c/assistants/{created['id']}", json={"avatar_id": other_id}, headers=org.headers
    )
    assert patched.json()["avatar_url"] == f"https://api.test/avatars/{other_id}"
    cleared = await client.patch(
        f"/orgs/c/assistants/{created['id']}", json={"avatar_id": None}, headers=org.headers
    )
    assert cleared.json()["avatar_url"] is None
    assert (await stored(created["id"]))["avatar_id"] is None


async def test_another_orgs_avatar_is_refused(client, org, other_org, make_assistant, stored):
    theirs = (await upload_raw(client, other_org, PNG)).json()["id"]
    created = await make_assistant(org)
    before = await stored(created["id"])
    patched = await client.patch(
        f"/orgs/c/assistants/{created['id']}", json={"avatar_id": theirs}, headers=org.headers
    )
    assert patched.status_code == 400
    assert [e["path"] for e in patched.json()["errors"]] == ["avatar_id"]
    assert await stored(created["id"]) == before
    listed = await client.get("/orgs/c/assistants", headers=org.headers)
    create = await client.post(
        "/orgs/c/assistants", json={"name": "x", "avatar_id": theirs}, headers=org.headers
    )
    assert create.status_code == 400
    assert [e["path"] for e in create.json()["errors"]] == ["avatar_id"]
    after = await client.get("/orgs/c/assistants", headers=org.headers)
    assert after.json() == listed.json()


AVATAR_QUERY = """
mutation($id: ID!, $avatar: String) {
  updateAssistant(orgId: "c", assistantId: $id, input: {avatarId: $avatar}) { avatarId avatarUrl }
}
"""


async def test_graphql_avatar_id(client, gql, org, other_org, make_assistant, stored):
    mine = (await upload_raw(client, org, WEBP)).json()["id"]
    theirs = (await upload_raw(client, other_org, WEBP)).json()["id"]
    created = await make_assistant(org)
    body = await gql(AVATAR_QUERY, {"id": created["id"], "avatar": mine}, org)
    assert body == answer(
        {"updateAssistant": {"avatarId": mine, "avatarUrl": f"https://api.test/avatars/{mine}"}}, 0
    )
    refused = await gql(AVATAR_QUERY, {"id": created["id"], "avatar": theirs}, org)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert refused["errors"][0]["extensions"]["fields"][0]["path"] == ["avatarId"]
    assert (await stored(created["id"]))["avatar_id"] == mine
