"""What a webhook may be (docs/webhooks.md): https only, no user or password, no host that
resolves to a loopback, private, link-local, shared, multicast, reserved or unspecified address
(IPv4, IPv6, IPv4-mapped), the 20-per-organisation cap, the fields' bounds, and the scope."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.keys import ALL, make_key
from tests.helpers.webhook_receiver import Receiver
from tests.helpers.webhook_rows import insert_webhook

BLOCKED = [
    "https://127.0.0.1/hook",
    "https://127.8.9.10/hook",
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "https://240.0.0.1/hook",
    "https://255.255.255.255/hook",
    "https://[::1]/hook",
    "https://[::]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[fe80::1]/hook",
    "https://[ff02::1]/hook",
    "https://localhost/hook",
    "https://localhost:8443/hook",
]
MALFORMED = [
    "http://93.184.215.14/hook",  # http without WEBHOOKS_ALLOW_HTTP
    "ftp://93.184.215.14/hook",
    "https://user:pass@93.184.215.14/hook",
    "https://user@93.184.215.14/hook",
    "not a url",
    "https:///nohost",
    "",
]


async def create(client: httpx.AsyncClient, org: Org, body: Any) -> httpx.Response:
    return await client.post(f"/orgs/{org.org_id}/webhooks", json=body, headers=org.headers)


async def listed(client: httpx.AsyncClient, org: Org) -> list[Any]:
    response = await client.get(f"/orgs/{org.org_id}/webhooks", headers=org.headers)
    assert response.status_code == 200
    rows: list[Any] = response.json()
    return rows


@pytest.mark.parametrize("url", BLOCKED + MALFORMED)
async def test_a_url_that_may_not_receive_is_refused_naming_url(
    client: httpx.AsyncClient, org: Org, url: str
) -> None:
    response = await create(client, org, {"url": url})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_FAILED"
    assert [e["path"] for e in body["errors"]] == ["url"]
    assert await listed(client, org) == []


async def test_a_public_address_is_accepted_and_patch_checks_the_url_again(
    client: httpx.AsyncClient, org: Org
) -> None:
    made = await create(client, org, {"url": "https://93.184.215.14/hook"})
    assert made.status_code == 201, made.text
    assert made.headers["location"].endswith(made.json()["id"])
    path = f"/orgs/{org.org_id}/webhooks/{made.json()['id']}"
    refused = await client.patch(path, json={"url": "https://10.1.1.1/"}, headers=org.headers)
    assert refused.status_code == 400
    assert [e["path"] for e in refused.json()["errors"]] == ["url"]
    read = await client.get(path, headers=org.headers)
    assert read.json()["url"] == "https://93.184.215.14/hook"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "https://93.184.215.14/", "description": "x" * 501}, "description"),
        ({"url": "https://93.184.215.14/", "event_types": ["assistant.nope"]}, "event_types.0"),
        ({"url": "https://93.184.215.14/", "event_types": []}, "event_types"),
        ({"url": "https://93.184.215.14/", "assistant_ids": []}, "assistant_ids"),
        ({"url": "https://93.184.215.14/", "assistant_ids": ["nope"]}, "assistant_ids.0"),
        ({"url": "https://93.184.215.14/", "enabled": None}, "enabled"),
        ({"url": "https://93.184.215.14/", "secret": "mine"}, "secret"),
        ({}, "url"),
    ],
)
async def test_invalid_fields_are_named_and_nothing_is_made(
    client: httpx.AsyncClient, org: Org, body: dict[str, Any], field: str
) -> None:
    response = await create(client, org, body)
    assert response.status_code == 400, response.text
    assert field in [e["path"] for e in response.json()["errors"]]
    assert await listed(client, org) == []


async def test_an_organisation_holds_at_most_20_webhooks(
    client: httpx.AsyncClient, org: Org
) -> None:
    for n in range(20):
        made = await create(client, org, {"url": f"https://93.184.215.14/{n}"})
        assert made.status_code == 201
    refused = await create(client, org, {"url": "https://93.184.215.14/21"})
    assert refused.status_code == 400
    assert [e["path"] for e in refused.json()["errors"]] == ["webhooks"]
    page = await client.get(
        f"/orgs/{org.org_id}/webhooks", params={"page": 2, "take": 15}, headers=org.headers
    )
    assert len(page.json()) == 5
    assert page.headers["pagination-count"] == "20"


async def test_webhooks_need_their_own_scope(client: httpx.AsyncClient, org: Org) -> None:
    older = await make_key(client, org, ALL)  # every scope but webhooks:manage
    refused = await create(client, older, {"url": "https://93.184.215.14/"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "INSUFFICIENT_SCOPE"
    assert refused.json()["required_scope"] == "webhooks:manage"
    own = await make_key(client, org, ["webhooks:manage"])
    assert (await create(client, own, {"url": "https://93.184.215.14/"})).status_code == 201


async def test_another_organisations_webhook_is_not_found(
    client: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    made = await create(client, org, {"url": "https://93.184.215.14/"})
    path = f"/orgs/{other_org.org_id}/webhooks/{made.json()['id']}"
    for method in ("GET", "PATCH", "DELETE"):
        response = await client.request(method, path, json={}, headers=other_org.headers)
        assert response.status_code == 404, method


async def test_an_attempt_to_a_blocked_address_fails_without_connecting(
    client: httpx.AsyncClient, org: Org, db: Store
) -> None:
    """The rule is applied again on the address an attempt connects to: a webhook whose host
    now resolves to loopback (here stored so, as after DNS rebinding) is never reached."""
    receiver = Receiver().start()
    try:
        webhook_id = await insert_webhook(db, org.org_id, receiver.url.replace("http:", "https:"))
        answer = await client.post(
            f"/orgs/{org.org_id}/webhooks/{webhook_id}/test", headers=org.headers
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["attempt"]["error"]) == ("failed", "blocked_address")
        assert body["attempt"]["status_code"] is None
        assert receiver.received == []
    finally:
        receiver.stop()
