"""What the delivery engine costs and how it claims (docs/webhooks.md, "Claims, leases and
cost"), on SQLite and PostgreSQL: a change with a webhook adds one statement; claims take each
webhook's earliest first attempts (and every due retry) in batches; a claim that no process
finished is claimed again once its lease has passed; the lean HTTP/1.1 pool reads every kind
of answer and keeps its connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.auth import create_organisation
from app.domain.webhook_deliveries import claim_due, finish_attempt
from app.domain.webhook_events import DELIVERY_INSERT, delivery_values, payload_of
from app.main import create_app
from app.models import utcnow
from app.settings import Settings
from app.store import Store
from app.webhooks.engine import client_of, lease_of
from tests.helpers.factories import Org
from tests.helpers.statements import statements
from tests.helpers.webhook_rows import insert_webhook


@pytest.fixture
async def quiet_app(settings: Settings) -> AsyncIterator[Starlette]:
    """The app without its delivery engine: the deliveries stay as the requests left them."""
    application = create_app(settings.model_copy(update={"webhooks_delivery": "off"}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def acme(quiet_app: Starlette) -> Org:
    store: Store = quiet_app.state.db
    async with store.write() as tx:
        org, key_id, token = await create_organisation(tx, name="Acme")
    return Org(org.id, key_id, token)


async def add_deliveries(db: Store, org_id: str, webhook_id: str, count: int) -> None:
    now = utcnow() - timedelta(seconds=1)
    async with db.write() as tx:
        for n in range(count):
            payload = payload_of("assistant.updated", now, {"id": str(n)})
            values = delivery_values(
                webhook_id=webhook_id,
                org_id=org_id,
                event_id=str(n),
                event_type="assistant.updated",
                payload=payload,
                now=now,
            )
            await tx.execute(DELIVERY_INSERT, values)


async def claim(db: Store, *, per_webhook: int, at: Any = None, lease: float = 30.0) -> list[Any]:
    now = at or utcnow()
    async with db.write() as tx:
        return await claim_due(
            tx,
            now=now,
            until=now + timedelta(seconds=lease),
            limit=64,
            busy=[],
            per_webhook=per_webhook,
        )


def events(claimed: list[Any]) -> list[tuple[str, str]]:
    return [(d.webhook_id, d.event_id) for d in claimed]


async def test_a_change_with_one_webhook_costs_one_statement_more(
    quiet_app: Starlette, acme: Org
) -> None:
    transport = httpx.ASGITransport(app=quiet_app)
    db: Store = quiet_app.state.db
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        made = await http.post(
            f"/orgs/{acme.org_id}/assistants", json={"name": "Bot"}, headers=acme.headers
        )
        path = f"/orgs/{acme.org_id}/assistants/{made.json()['id']}"
        await http.patch(path, json={"name": "Name 0"}, headers=acme.headers)  # the key's first use
        with statements(db) as without:
            done = await http.patch(path, json={"name": "Name 1"}, headers=acme.headers)
            assert done.status_code == 200, done.text
        await insert_webhook(db, acme.org_id)
        with statements(db) as with_one:
            done = await http.patch(path, json={"name": "Name 2"}, headers=acme.headers)
            assert done.status_code == 200, done.text
    assert len(with_one) == len(without) + 1
    added = [s for s in with_one if "webhook_deliveries" in s and "INSERT" in s.upper()]
    assert len(added) == 1


async def test_claims_take_each_webhooks_earliest_first_attempts_in_batches(
    quiet_app: Starlette, acme: Org
) -> None:
    db: Store = quiet_app.state.db
    first, second = await insert_webhook(db, acme.org_id), await insert_webhook(db, acme.org_id)
    await add_deliveries(db, acme.org_id, first, 5)
    await add_deliveries(db, acme.org_id, second, 2)
    claimed = await claim(db, per_webhook=2)
    assert sorted(events(claimed)) == sorted(
        [(first, "0"), (first, "1"), (second, "0"), (second, "1")]
    )
    # the claimed ones are held: the next claim goes on in commit order, skipping none
    assert events(await claim(db, per_webhook=2)) == [(first, "2"), (first, "3")]
    # one of them is attempted and fails: its retry is claimed with the next first attempt
    done = next(d for d in claimed if (d.webhook_id, d.event_id) == (first, "0"))
    now = utcnow()
    async with db.write() as tx:
        assert await finish_attempt(
            tx,
            done,
            lease=done.locked_until,
            attempt={"at": "x", "error": "timeout"},
            status="pending",
            next_attempt_at=now - timedelta(seconds=1),
            now=now,
        )
    assert sorted(events(await claim(db, per_webhook=2))) == [(first, "0"), (first, "4")]
    assert await claim(db, per_webhook=2) == []


async def test_a_claim_nobody_finished_is_claimed_again_after_its_lease(
    quiet_app: Starlette, acme: Org
) -> None:
    """A process that died holding deliveries: once the lease has passed another claims them,
    in the same order."""
    db: Store = quiet_app.state.db
    webhook = await insert_webhook(db, acme.org_id)
    await add_deliveries(db, acme.org_id, webhook, 3)
    start = utcnow()
    held = await claim(db, per_webhook=4, at=start, lease=20)
    assert [d.event_id for d in held] == ["0", "1", "2"]
    assert await claim(db, per_webhook=4, at=start + timedelta(seconds=19)) == []
    again = await claim(db, per_webhook=4, at=start + timedelta(seconds=21))
    assert [d.event_id for d in again] == ["0", "1", "2"]
    assert [d.id for d in again] == [d.id for d in held]  # the same webhook-id on the wire


async def test_a_long_backlog_drains_in_commit_order(quiet_app: Starlette, acme: Org) -> None:
    db: Store = quiet_app.state.db
    webhook = await insert_webhook(db, acme.org_id)
    await add_deliveries(db, acme.org_id, webhook, 120)
    order: list[int] = []
    while claimed := await claim(db, per_webhook=4):
        now = utcnow()
        async with db.write() as tx:
            for delivery in claimed:
                order.append(int(delivery.event_id or 0))
                await finish_attempt(
                    tx,
                    delivery,
                    lease=delivery.locked_until,
                    attempt={"at": "x", "status_code": 204},
                    status="delivered",
                    next_attempt_at=None,
                    now=now,
                )
    assert order == list(range(120))


def test_the_lease_is_two_timeouts_and_a_margin() -> None:
    assert lease_of(Settings()) == timedelta(seconds=30)
    assert lease_of(Settings(webhook_timeout_seconds=3)) == timedelta(seconds=16)


# -- the HTTP/1.1 pool, against a scripted receiver on loopback ----------------------------------


class Scripted:
    """Answers each request read on a connection with the next of `answers` (raw bytes)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = answers
        self.connections = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def exchange(answers: list[bytes], posts: int) -> tuple[Scripted, list[httpx.Response]]:
    scripted = Scripted(answers)
    server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = client_of(Settings(webhooks_allow_private=True, webhooks_allow_http=True))
    try:
        got = [
            await client.post(f"http://127.0.0.1:{port}/hook?x=1", content=b'{"n": %d}' % n)
            for n in range(posts)
        ]
    finally:
        await client.aclose()
        server.close()
    return scripted, got


async def test_the_pool_reads_every_kind_of_answer_and_keeps_its_connection() -> None:
    answers = [
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\nretry-after: 7\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    ]
    scripted, got = await exchange(answers, 4)
    assert [r.status_code for r in got] == [204, 200, 202, 500]
    assert [r.content for r in got] == [b"", b"hello", b"", b"abcde"]
    assert got[3].headers["retry-after"] == "7"
    assert scripted.connections == 1  # one connection, kept alive
    first = scripted.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert first.lower().count(b"content-length:") == 1
    assert first.endswith(b'{"n": 0}')


async def test_the_pool_opens_a_new_connection_after_one_the_receiver_closed() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
        b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
    ]
    scripted, got = await exchange(answers, 3)
    assert [r.status_code for r in got] == [200, 200, 201]
    assert got[1].content == b"until the end"
    assert scripted.connections == 3
