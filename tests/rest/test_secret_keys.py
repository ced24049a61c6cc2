"""Secret keys: `generate_secret_key` on create and `POST …/rotate-secret-key`."""

from __future__ import annotations

import base64
import re

import pytest

URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def key_bytes(key: str) -> int:
    """How many random bytes a URL-safe base64 key (unpadded) carries."""
    assert URL_SAFE.match(key), key
    return len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))


@pytest.mark.parametrize("body", [{}, {"generate_secret_key": False}])
async def test_no_key_unless_asked(org, make_assistant, stored, body):
    created = await make_assistant(org, **body)
    assert created["secret_key"] is None
    assert (await stored(created["id"]))["secret_key"] is None


async def test_generate_secret_key_on_create(org, make_assistant, stored):
    first = await make_assistant(org, generate_secret_key=True)
    second = await make_assistant(org, generate_secret_key=True)
    assert key_bytes(first["secret_key"]) >= 32
    assert first["secret_key"] != second["secret_key"]
    assert (await stored(first["id"]))["secret_key"] == first["secret_key"]


async def test_generate_secret_key_must_be_a_boolean(client, org):
    response = await client.post(
        "/orgs/c/assistants", json={"name": "x", "generate_secret_key": "yes"}, headers=org.headers
    )
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["generate_secret_key"]


async def test_secret_key_cannot_be_set(client, org, make_assistant, stored):
    created = await make_assistant(org)
    response = await client.patch(
        f"/orgs/c/assistants/{created['id']}", json={"secret_key": "mine"}, headers=org.headers
    )
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["secret_key"]
    assert (await stored(created["id"]))["secret_key"] is None


async def test_rotate_gives_a_fresh_key_each_time(client, org, make_assistant, stored):
    created = await make_assistant(org)
    url = f"/orgs/{org.org_id}/assistants/{created['id']}/rotate-secret-key"
    keys = []
    previous = created
    for version in (2, 3, 4):
        response = await client.post(url, headers=org.headers)
        assert response.status_code == 200
        body = response.json()
        assert response.headers["etag"] == f'"{version}"'
        assert body["version"] == version
        assert body["updated_at"] > previous["updated_at"]
        assert body["created_at"] == created["created_at"]
        unchanged = {
            k: v for k, v in body.items() if k not in ("secret_key", "version", "updated_at")
        }
        assert unchanged == {
            k: v for k, v in created.items() if k not in ("secret_key", "version", "updated_at")
        }
        assert key_bytes(body["secret_key"]) >= 32
        row = await stored(created["id"])
        assert (row["secret_key"], row["version"]) == (body["secret_key"], version)
        keys.append(body["secret_key"])
        previous = body
    assert len(set(keys)) == 3
    read = await client.get(f"/orgs/c/assistants/{created['id']}", headers=org.headers)
    assert read.json()["secret_key"] == keys[-1]


async def test_rotate_ignores_a_body(client, org, make_assistant):
    created = await make_assistant(org, generate_secret_key=True)
    response = await client.post(
        f"/orgs/c/assistants/{created['id']}/rotate-secret-key",
        json={"secret_key": "chosen"},
        headers=org.headers,
    )
    assert response.status_code == 200
    assert response.json()["secret_key"] not in ("chosen", created["secret_key"])


async def test_rotate_unknown_is_404(client, org):
    response = await client.post("/orgs/c/assistants/nope/rotate-secret-key", headers=org.headers)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


async def test_rotate_isolation(client, org, other_org, make_assistant, stored):
    theirs = await make_assistant(other_org, generate_secret_key=True)
    before = await stored(theirs["id"])
    own = await client.post(
        f"/orgs/c/assistants/{theirs['id']}/rotate-secret-key", headers=org.headers
    )
    assert own.status_code == 404
    other = await client.post(
        f"/orgs/{other_org.org_id}/assistants/{theirs['id']}/rotate-secret-key",
        headers=org.headers,
    )
    assert other.status_code == 403
    anonymous = await client.post(f"/orgs/c/assistants/{theirs['id']}/rotate-secret-key")
    assert anonymous.status_code == 401
    assert await stored(theirs["id"]) == before
