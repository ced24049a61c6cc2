"""Webhooks from real servers (`python -m app serve --workers 2`, tests/helpers/server_process.py)
to a real receiver on loopback, on SQLite and PostgreSQL: a change acknowledged just before every
process is SIGKILLed is delivered after a restart; two workers never deliver one delivery twice;
a receiver that sleeps does not hold up the API."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from sqlalchemy import select

from app.auth import create_organisation
from app.domain.webhook_events import DELIVERIES
from app.settings import Settings
from app.store import open_store
from tests.helpers.factories import Org
from tests.helpers.server_process import Server
from tests.helpers.webhook_receiver import Receiver, Script

pytestmark = pytest.mark.slow

OPEN = {
    "WEBHOOKS_ALLOW_HTTP": "true",
    "WEBHOOKS_ALLOW_PRIVATE": "true",
    "WEBHOOK_RETRY_SCHEDULE": "0.5,0.5,0.5",
    "WEBHOOK_POLL_SECONDS": "0.2",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


async def new_org(settings: Settings) -> Org:
    store = open_store(settings)
    try:
        async with store.write() as tx:
            org, key_id, token = await create_organisation(tx, name="Acme")
    finally:
        await store.close()
    return Org(org.id, key_id, token)


async def setup(http: httpx.AsyncClient, org: Org, url: str) -> tuple[str, str]:
    """A webhook to `url` and an assistant: (the webhook's secret, the assistant's id)."""
    made = await http.post(f"/orgs/{org.org_id}/webhooks", json={"url": url}, headers=org.headers)
    assert made.status_code == 201, made.text
    assistant = await http.post(
        f"/orgs/{org.org_id}/assistants", json={"name": "Bot"}, headers=org.headers
    )
    assert assistant.status_code == 201, assistant.text
    return made.json()["secret"], assistant.json()["id"]


async def renames(
    http: httpx.AsyncClient, org: Org, assistant_id: str, count: int, tag: str = ""
) -> list[httpx.Response]:
    path = f"/orgs/{org.org_id}/assistants/{assistant_id}"
    answers = []
    for n in range(count):
        answer = await http.patch(path, json={"name": f"Name {tag}{n}"}, headers=org.headers)
        assert answer.status_code == 200, answer.text
        answers.append(answer)
    return answers


async def arrived(receiver: Receiver, count: int, seconds: float = 30.0) -> list[Any]:
    return await asyncio.to_thread(receiver.wait_for, count, seconds)


async def test_an_acknowledged_change_is_delivered_after_every_process_is_killed(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    org = await new_org(settings)
    # first: deliveries recorded, none attempted (WEBHOOKS_DELIVERY=off), then SIGKILL
    quiet = Server(settings, tmp_path, workers=2, env={**OPEN, "WEBHOOKS_DELIVERY": "off"})
    with quiet:
        async with httpx.AsyncClient(base_url=quiet.base_url, timeout=30) as http:
            secret, assistant_id = await setup(http, org, receiver.url)
            await renames(http, org, assistant_id, 1)
        quiet.kill()
    assert receiver.received == []
    # then a server that delivers: both changes arrive, signed, in commit order
    with Server(settings, tmp_path, workers=2, env=OPEN):
        created, updated = sorted(
            await arrived(receiver, 2), key=lambda r: r.json["data"]["version"]
        )
    hook = standardwebhooks.Webhook(secret)
    first = hook.verify(created.body, created.headers)
    second = hook.verify(updated.body, updated.headers)
    assert (first["type"], second["type"]) == ("assistant.created", "assistant.updated")
    assert second["data"]["version"] == 2


async def test_an_attempt_cut_by_sigkill_is_made_again_after_a_restart(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    """The receiver holds the request while every process dies: the delivery's lease expires
    and the restarted server attempts it again (at least once)."""
    org = await new_org(settings)
    env = {**OPEN, "WEBHOOK_TIMEOUT_SECONDS": "1", "WEBHOOK_CONCURRENCY": "4"}
    server = Server(settings, tmp_path, workers=1, env=env).start()
    try:
        receiver.script = Script(delay=3.0)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            _secret, _assistant = await setup(http, org, receiver.url)
        await asyncio.sleep(0.5)  # the attempt is in flight, held by the receiver
        server.kill()
        receiver.script = Script()
        server.start()
        cut, again = await arrived(receiver, 2, 60.0)
        assert cut.headers["webhook-id"] == again.headers["webhook-id"]
        assert again.json["type"] == "assistant.created"
    finally:
        server.stop()


async def test_two_workers_never_deliver_a_delivery_twice(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    org = await new_org(settings)
    with Server(settings, tmp_path, workers=2, env=OPEN) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            _secret, assistant_id = await setup(http, org, receiver.url)
            await asyncio.gather(*(renames(http, org, assistant_id, 10, tag) for tag in "abc"))
        received = await arrived(receiver, 31)
        await asyncio.sleep(1.0)  # nothing more comes
    ids = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert len(ids) == 31
    assert [i for i, n in ids.items() if n > 1] == []
    versions = sorted(r.json["data"]["version"] for r in received)
    assert versions == list(range(1, 32))


async def test_a_receiver_that_sleeps_does_not_hold_up_the_api(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    """Every update is answered while the sleeping receiver has taken only a few deliveries:
    the API never waits for a delivery."""
    receiver.script = Script(delay=2.0)
    org = await new_org(settings)
    env = {**OPEN, "WEBHOOK_CONCURRENCY_PER_WEBHOOK": "2"}
    with Server(settings, tmp_path, workers=2, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            _secret, assistant_id = await setup(http, org, receiver.url)
            await renames(http, org, assistant_id, 20)
            # 21 deliveries, at most 2 at once per worker, 2 s each: most still wait
            assert len(receiver.received) < 21
            healthz = await http.get("/healthz")
            assert healthz.status_code == 200


async def test_sigterm_lets_an_attempt_in_flight_finish_and_starts_no_other(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = Script(delay=2.0)
    org = await new_org(settings)
    env = {**OPEN, "WEBHOOK_CONCURRENCY_PER_WEBHOOK": "1"}  # the second waits for the first
    server = Server(settings, tmp_path, workers=1, env=env).start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            _secret, assistant_id = await setup(http, org, receiver.url)
            await asyncio.sleep(0.5)  # the first attempt is in flight
            await renames(http, org, assistant_id, 1)
    finally:
        await asyncio.to_thread(server.stop)  # SIGTERM: returns once the process has exited
    assert len(receiver.received) == 1  # the attempt in flight finished; no new one started
    store = open_store(settings)
    try:
        async with store.read() as tx:
            columns = (DELIVERIES.c.type, DELIVERIES.c.status)
            rows = await tx.all(select(*columns).order_by(DELIVERIES.c.seq))
    finally:
        await store.close()
    assert [tuple(r) for r in rows] == [
        ("assistant.created", "delivered"),
        ("assistant.updated", "pending"),
    ]
