"""Webhooks (docs/webhooks.md) through the ASGI app, with its delivery engine running, against
a real receiver on loopback (WEBHOOKS_ALLOW_HTTP and WEBHOOKS_ALLOW_PRIVATE on for that), on
SQLite and PostgreSQL; the signatures checked with the `standardwebhooks` package."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import standardwebhooks
from sqlalchemy import select, update
from starlette.applications import Starlette

from app.auth import create_organisation
from app.domain.webhook_deliveries import prune_deliveries
from app.domain.webhook_events import DELIVERIES
from app.main import create_app
from app.models import utcnow
from app.settings import Settings
from app.store import Store
from tests.helpers.factories import Org
from tests.helpers.webhook_receiver import Receiver, Script
from tests.helpers.webhook_rows import insert_delivery, insert_webhook

OPEN = {"webhooks_allow_http": True, "webhooks_allow_private": True}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {**OPEN, "webhook_retry_schedule": "0.2,0.2,0.2", "webhook_poll_seconds": 0.1}


@pytest.fixture
async def hooks_app(settings: Settings, overrides: dict[str, Any]) -> AsyncIterator[Starlette]:
    application = create_app(settings.model_copy(update=overrides))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(hooks_app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=hooks_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


@pytest.fixture
async def acme(hooks_app: Starlette) -> Org:
    store: Store = hooks_app.state.db
    async with store.write() as tx:
        org, key_id, token = await create_organisation(tx, name="Acme")
    return Org(org.id, key_id, token)


async def make_webhook(api: httpx.AsyncClient, org: Org, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/orgs/{org.org_id}/webhooks", json=body, headers=org.headers)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def make_assistant(api: httpx.AsyncClient, org: Org) -> dict[str, Any]:
    response = await api.post(
        f"/orgs/{org.org_id}/assistants", json={"name": "Bot"}, headers=org.headers
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def rename(api: httpx.AsyncClient, org: Org, assistant_id: str, name: str) -> None:
    response = await api.patch(
        f"/orgs/{org.org_id}/assistants/{assistant_id}", json={"name": name}, headers=org.headers
    )
    assert response.status_code == 200, response.text


async def arrived(receiver: Receiver, count: int, seconds: float = 20.0) -> list[Any]:
    return await asyncio.to_thread(receiver.wait_for, count, seconds)


def verified(secret: str, request: Any) -> dict[str, Any]:
    payload: dict[str, Any] = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    return payload


async def test_a_change_is_delivered_signed_and_verifies(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    hook = await make_webhook(api, acme, url=receiver.url, description="CRM sync")
    assert hook["secret"].startswith("whsec_")
    assert {
        k: v for k, v in hook.items() if k not in ("id", "secret", "created_at", "updated_at")
    } == {
        "url": receiver.url,
        "description": "CRM sync",
        "event_types": None,
        "assistant_ids": None,
        "enabled": True,
        "disabled_reason": None,
    }
    assistant = await make_assistant(api, acme)
    await rename(api, acme, assistant["id"], "Renamed")
    created, updated = sorted(await arrived(receiver, 2), key=lambda r: r.json["data"]["version"])
    first, second = verified(hook["secret"], created), verified(hook["secret"], updated)
    assert first["type"] == "assistant.created"
    assert second["type"] == "assistant.updated"
    assert second["data"] == {
        "id": second["data"]["id"],
        "org_id": acme.org_id,
        "assistant_id": assistant["id"],
        "version": 2,
        "change_type": "updated",
        "changes": [{"path": "name", "from": "Bot", "to": "Renamed"}],
    }
    assert int(second["data"]["id"]) > int(first["data"]["id"])
    assert created.headers["webhook-id"] != updated.headers["webhook-id"]
    # the log: newest first, delivered, one attempt each with its answer
    log = await api.get(
        f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries", headers=acme.headers
    )
    assert log.status_code == 200
    await asyncio.sleep(0.3)  # the attempt is recorded just after the receiver answered
    log = await api.get(
        f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries", headers=acme.headers
    )
    rows = log.json()
    assert [r["type"] for r in rows] == ["assistant.updated", "assistant.created"]
    assert [r["status"] for r in rows] == ["delivered", "delivered"]
    assert rows[0]["id"] == updated.headers["webhook-id"]
    attempt = rows[0]["attempts"][0]
    assert attempt["status_code"] == 200
    assert attempt["error"] is None
    assert attempt["response_body"] == "ok"
    one = await api.get(
        f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries/{rows[0]['id']}",
        headers=acme.headers,
    )
    assert one.json() == rows[0]


async def test_the_secret_is_never_listed_nor_read(api: httpx.AsyncClient, acme: Org) -> None:
    hook = await make_webhook(api, acme, url="https://example.com/hook")
    listed = await api.get(f"/orgs/{acme.org_id}/webhooks", headers=acme.headers)
    read = await api.get(f"/orgs/{acme.org_id}/webhooks/{hook['id']}", headers=acme.headers)
    assert "secret" not in listed.json()[0]
    assert "secret" not in read.json()
    assert hook["secret"] not in listed.text + read.text


async def test_failures_are_retried_on_the_schedule_then_delivered(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    receiver.script = Script(statuses=[500, 503])
    hook = await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    three = await arrived(receiver, 3)
    assert len({r.headers["webhook-id"] for r in three}) == 1  # one delivery, three attempts
    for request in three:
        verified(hook["secret"], request)
    await asyncio.sleep(0.3)
    rows = (
        await api.get(f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries", headers=acme.headers)
    ).json()
    assert rows[0]["status"] == "delivered"
    assert [a["status_code"] for a in rows[0]["attempts"]] == [500, 503, 200]


async def test_after_the_last_retry_the_delivery_fails(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    receiver.script = Script(default=500)
    hook = await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    await arrived(receiver, 4)  # the first attempt and 3 retries
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 4
    url = f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries"
    failed = (await api.get(url, params={"status": "failed"}, headers=acme.headers)).json()
    assert len(failed) == 1
    assert len(failed[0]["attempts"]) == 4
    assert failed[0]["next_attempt_at"] is None
    pending = (await api.get(url, params={"status": "pending"}, headers=acme.headers)).json()
    assert pending == []
    # redelivery: the same delivery (same webhook-id), once more
    receiver.script = Script()
    again = await api.post(f"{url}/{failed[0]['id']}/redeliver", headers=acme.headers)
    assert again.status_code == 202
    fifth = (await arrived(receiver, 5))[4]
    assert fifth.headers["webhook-id"] == failed[0]["id"]


async def test_410_disables_the_webhook_at_once(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    receiver.script = Script(default=410)
    hook = await make_webhook(api, acme, url=receiver.url)
    assistant = await make_assistant(api, acme)
    await arrived(receiver, 1)
    await asyncio.sleep(0.5)
    read = await api.get(f"/orgs/{acme.org_id}/webhooks/{hook['id']}", headers=acme.headers)
    assert (read.json()["enabled"], read.json()["disabled_reason"]) == (False, "gone")
    await rename(api, acme, assistant["id"], "Again")
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1  # nothing more to a disabled webhook
    # re-enabling clears the reason
    receiver.script = Script()
    patched = await api.patch(
        f"/orgs/{acme.org_id}/webhooks/{hook['id']}", json={"enabled": True}, headers=acme.headers
    )
    assert (patched.json()["enabled"], patched.json()["disabled_reason"]) == (True, None)


@pytest.fixture
def failing_fast(overrides: dict[str, Any]) -> dict[str, Any]:
    overrides.update(webhook_disable_after=0.0, webhook_retry_schedule="0.1,0.1,0.1,0.1")
    return overrides


async def test_a_webhook_that_keeps_failing_is_disabled(
    failing_fast: dict[str, Any], api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    receiver.script = Script(default=500)
    hook = await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    await arrived(receiver, 1)  # failing since this attempt, for 0 s (WEBHOOK_DISABLE_AFTER)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == 1
    read = (
        await api.get(f"/orgs/{acme.org_id}/webhooks/{hook['id']}", headers=acme.headers)
    ).json()
    assert (read["enabled"], read["disabled_reason"]) == (False, "failing")


async def test_event_types_and_assistant_ids_filter(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    first = await make_assistant(api, acme)
    second = await make_assistant(api, acme)
    await make_webhook(
        api, acme, url=receiver.url, event_types=["assistant.updated"], assistant_ids=[second["id"]]
    )
    await rename(api, acme, first["id"], "Not sent")
    await rename(api, acme, second["id"], "Sent")
    (one,) = await arrived(receiver, 1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1
    assert one.json["data"]["assistant_id"] == second["id"]


async def test_rotation_signs_with_both_secrets(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    hook = await make_webhook(api, acme, url=receiver.url)
    rotated = await api.post(
        f"/orgs/{acme.org_id}/webhooks/{hook['id']}/rotate-secret", headers=acme.headers
    )
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != hook["secret"]
    await make_assistant(api, acme)
    (request,) = await arrived(receiver, 1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    verified(new_secret, request)
    verified(hook["secret"], request)


async def test_the_test_ping_is_sent_now_and_answers_its_attempt(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    hook = await make_webhook(api, acme, url=receiver.url)
    answer = await api.post(f"/orgs/{acme.org_id}/webhooks/{hook['id']}/test", headers=acme.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["type"], body["status"], body["attempt"]["status_code"]) == (
        "ping",
        "delivered",
        200,
    )
    (request,) = receiver.received
    assert verified(hook["secret"], request)["type"] == "ping"


async def test_the_cli_verifies_a_delivery(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    hook = await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    (request,) = await arrived(receiver, 1)
    sent = json.dumps({"headers": request.headers, "body": request.body.decode()})
    for secret, code in ((hook["secret"], 0), ("whsec_" + "A" * 44, 1)):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "webhooks", "verify", "--secret", secret,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await process.communicate(sent.encode())
        assert process.returncode == code


GQL_CREATE = """
mutation($url: String!) {
  createWebhook(orgId: "c", input: {url: $url, eventTypes: ["assistant.updated"]}) {
    webhook { id url eventTypes assistantIds enabled disabledReason description }
    secret
  }
}"""
GQL_DELIVERIES = """
query($id: ID!) {
  webhook(orgId: "c", id: $id) {
    id
    deliveries(first: 5, status: DELIVERED) {
      totalCount
      nodes { id type status eventId attempts { statusCode error durationMs } }
    }
  }
  webhooks(orgId: "c") { totalCount nodes { id } }
}"""


async def gql(api: httpx.AsyncClient, org: Org, query: str, **variables: Any) -> dict[str, Any]:
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=org.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_graphql_manages_webhooks_and_reads_their_deliveries(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    made = (await gql(api, acme, GQL_CREATE, url=receiver.url))["data"]["createWebhook"]
    hook_id, secret = made["webhook"]["id"], made["secret"]
    assert made["webhook"] == {
        "id": hook_id,
        "url": receiver.url,
        "eventTypes": ["assistant.updated"],
        "assistantIds": None,
        "enabled": True,
        "disabledReason": None,
        "description": "",
    }
    assistant = await make_assistant(api, acme)
    await rename(api, acme, assistant["id"], "Renamed")
    (request,) = await arrived(receiver, 1)
    assert verified(secret, request)["type"] == "assistant.updated"
    await asyncio.sleep(0.3)
    data = (await gql(api, acme, GQL_DELIVERIES, id=hook_id))["data"]
    assert data["webhooks"] == {"totalCount": 1, "nodes": [{"id": hook_id}]}
    deliveries = data["webhook"]["deliveries"]
    assert deliveries["totalCount"] == 1
    (node,) = deliveries["nodes"]
    assert (node["id"], node["type"], node["status"]) == (
        request.headers["webhook-id"],
        "assistant.updated",
        "DELIVERED",
    )
    assert [(a["statusCode"], a["error"]) for a in node["attempts"]] == [(200, None)]
    # update, rotate, test, redeliver, delete
    updated = await gql(
        api,
        acme,
        'mutation($id: ID!) { updateWebhook(orgId: "c", id: $id, input: {description: "x", '
        "eventTypes: null}) { description eventTypes } }",
        id=hook_id,
    )
    assert updated["data"]["updateWebhook"] == {"description": "x", "eventTypes": None}
    rotated = await gql(
        api,
        acme,
        'mutation($id: ID!) { rotateWebhookSecret(orgId: "c", id: $id) { webhook { id } secret } }',
        id=hook_id,
    )
    assert rotated["data"]["rotateWebhookSecret"]["secret"] != secret
    pinged = await gql(
        api,
        acme,
        'mutation($id: ID!) { testWebhook(orgId: "c", id: $id) { type status '
        "attempts { statusCode } } }",
        id=hook_id,
    )
    assert pinged["data"]["testWebhook"] == {
        "type": "ping",
        "status": "DELIVERED",
        "attempts": [{"statusCode": 200}],
    }
    again = await gql(
        api,
        acme,
        'mutation($w: ID!, $d: ID!) { redeliverWebhookDelivery(orgId: "c", webhookId: $w, '
        "deliveryId: $d) { id status } }",
        w=hook_id,
        d=node["id"],
    )
    assert again["data"]["redeliverWebhookDelivery"] == {"id": node["id"], "status": "PENDING"}
    await arrived(receiver, 3)  # the ping, then the redelivery
    deleted = await gql(
        api, acme, 'mutation($id: ID!) { deleteWebhook(orgId: "c", id: $id) }', id=hook_id
    )
    assert deleted["data"]["deleteWebhook"] == hook_id
    gone = await gql(api, acme, GQL_DELIVERIES, id=hook_id)
    assert gone["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_the_cli_lists_an_organisations_webhooks_without_secrets(
    api: httpx.AsyncClient, acme: Org, settings: Settings
) -> None:
    hook = await make_webhook(api, acme, url="https://93.184.215.14/hook", description="d")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "webhooks", "list", acme.org_id,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": settings.database_url, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0
    listed = json.loads(out)
    assert [(w["id"], w["description"]) for w in listed] == [(hook["id"], "d")]
    assert hook["secret"] not in out.decode()


async def test_redirects_are_not_followed_and_retry_after_is_honoured(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    receiver.script = Script(
        statuses=[302, 503], headers={"Location": receiver.url + "/elsewhere", "Retry-After": "1"}
    )
    hook = await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    first, second, third = await arrived(receiver, 3)
    assert [r.path for r in (first, second, third)] == ["/hook"] * 3  # never the Location
    assert second.at - first.at >= 0.9  # Retry-After: 1 is longer than the 0.2 s schedule
    assert third.at - second.at >= 0.9
    await asyncio.sleep(0.3)
    (row,) = (
        await api.get(f"/orgs/{acme.org_id}/webhooks/{hook['id']}/deliveries", headers=acme.headers)
    ).json()
    assert [a["status_code"] for a in row["attempts"]] == [302, 503, 200]


async def test_deliveries_are_counted_in_the_metrics(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    await make_webhook(api, acme, url=receiver.url)
    await make_assistant(api, acme)
    await arrived(receiver, 1)
    await asyncio.sleep(0.3)
    text = (await api.get("/metrics")).text
    assert 'webhook_deliveries_total{outcome="delivered"}' in text
    assert "webhook_delivery_seconds_count" in text
    assert "webhook_pending" in text


async def test_finished_deliveries_older_than_the_log_days_are_removed(
    hooks_app: Starlette, acme: Org
) -> None:
    store: Store = hooks_app.state.db
    webhook_id = await insert_webhook(store, acme.org_id)
    old = await insert_delivery(store, acme.org_id, webhook_id)
    async with store.write() as tx:
        await tx.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == old)
            .values(created_at=utcnow() - timedelta(days=31))
        )
    kept = await insert_delivery(store, acme.org_id, webhook_id)
    async with store.write() as tx:
        removed = await prune_deliveries(tx, before=utcnow() - timedelta(days=30))
    assert removed == 1
    async with store.read() as tx:
        left = await tx.all(select(DELIVERIES.c.id))
    assert [row[0] for row in left] == [kept]


@pytest.fixture
def closed(overrides: dict[str, Any]) -> dict[str, Any]:
    overrides.update(webhooks_allow_http=False, webhooks_allow_private=False)
    return overrides


async def test_graphql_refuses_a_blocked_url_naming_url(
    closed: dict[str, Any], api: httpx.AsyncClient, acme: Org
) -> None:
    answer = await gql(api, acme, GQL_CREATE, url="https://[::ffff:169.254.169.254]/")
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "url" in json.dumps(error["extensions"])
    listed = await gql(api, acme, '{ webhooks(orgId: "c") { totalCount } }')
    assert listed["data"]["webhooks"]["totalCount"] == 0


@pytest.fixture
def one_at_a_time(overrides: dict[str, Any]) -> dict[str, Any]:
    overrides.update(webhook_concurrency_per_webhook=1)
    return overrides


async def test_first_attempts_arrive_in_commit_order(
    one_at_a_time: dict[str, Any], api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    """With WEBHOOK_CONCURRENCY_PER_WEBHOOK=1 a webhook's first attempts are made one after
    another, in commit order (with more, they start in that order)."""
    await make_webhook(api, acme, url=receiver.url)
    assistant = await make_assistant(api, acme)
    for n in range(15):
        await rename(api, acme, assistant["id"], f"Name {n}")
    received = await arrived(receiver, 16)
    assert [r.json["data"]["version"] for r in received] == list(range(1, 17))


async def test_a_published_release_is_delivered_as_assistant_published(
    api: httpx.AsyncClient, acme: Org, receiver: Receiver
) -> None:
    """Publishing (docs/releases.md) is an event like every change: `assistant.published`, with
    the release and the environment, the draft's version unchanged."""
    assistant = await make_assistant(api, acme)
    hook = await make_webhook(api, acme, url=receiver.url, event_types=["assistant.published"])
    published = await api.post(
        f"/orgs/{acme.org_id}/assistants/{assistant['id']}/releases",
        json={"environment": "production", "note": "first"},
        headers=acme.headers,
    )
    assert published.status_code == 201, published.text
    (request,) = await arrived(receiver, 1)
    payload = verified(hook["secret"], request)
    assert payload["type"] == "assistant.published"
    data = payload["data"]
    assert {k: data[k] for k in ("assistant_id", "version", "change_type", "release")} == {
        "assistant_id": assistant["id"],
        "version": 1,
        "change_type": "published",
        "release": 1,
    }
    assert data["environment"] == "production"
