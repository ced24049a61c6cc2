"""Every REST JSON answer (a resource, a list, a problem) carries `Cache-Control: no-store` and
`X-Content-Type-Options: nosniff`, once each; an avatar keeps its own cache headers."""

from __future__ import annotations

import httpx

from tests.helpers.factories import Org

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


def assert_not_stored(response: httpx.Response) -> None:
    assert response.headers["content-type"] in ("application/json", "application/problem+json")
    assert response.headers.get_list("cache-control") == ["no-store"], response.headers
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_resources_lists_and_problems_are_never_cached_or_sniffed(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = await client.post("/orgs/c/assistants", json={"name": "A"}, headers=org.headers)
    assert created.status_code == 201
    path = f"/orgs/c/assistants/{created.json()['id']}"
    answers = [
        created,
        await client.patch(path, json={"name": "B"}, headers=org.headers),
        await client.get(path, headers=org.headers),
        await client.get("/orgs/c/assistants", headers=org.headers),
        await client.get("/orgs/c/api-keys/current", headers=org.headers),
        await client.patch(path, json={"name": 5}, headers=org.headers),  # 400
        await client.get(path),  # 401
        await client.get("/orgs/c/assistants/nothing-here", headers=org.headers),  # 404
        await client.get("/no/such/route"),  # 404 of the router
        await client.patch(path, content=b"x" * (2 << 20), headers=org.headers),  # 413
        await client.get("/healthz"),
        await client.get("/readyz"),
    ]
    assert [r.status_code for r in answers] == [
        201, 200, 200, 200, 200, 400, 401, 404, 404, 413, 200, 200
    ]  # fmt: skip
    for response in answers:
        assert_not_stored(response)


async def test_an_avatar_keeps_its_cache_headers(client: httpx.AsyncClient, org: Org) -> None:
    uploaded = await client.post("/orgs/c/avatars", content=PNG, headers=org.headers)
    assert_not_stored(uploaded)
    image = await client.get(f"/avatars/{uploaded.json()['id']}")
    assert image.status_code == 200
    assert image.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-type"] == "image/png"
