"""Durability: a server SIGKILLed in the middle of a stream of updates restarts with every
acknowledged update present and none half-applied (SQLite in WAL mode with `synchronous` from the
settings; PostgreSQL commits before it answers), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.helpers.server_process import Server

pytestmark = pytest.mark.slow

KILL_AFTER_ACKS = 25  # acknowledged updates before the kill, in each round
MAX_UPDATES = 2000  # a bound on the stream, never reached: the kill comes first
# One round per kill delay after the 25th acknowledgement, so that the kill lands at different
# moments of the next request (sent, being processed, committing); the checks never depend on it.
KILL_DELAYS = (0.0, 0.004, 0.012)


@dataclass
class Stream:
    """Sequential PATCHes numbered 1, 2, …: update k sets name `n<k>` and instructions `i<k>`."""

    url: str
    headers: dict[str, str]
    first: int
    acked: list[int] = field(default_factory=list)
    in_flight: int | None = None
    enough: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, http: httpx.AsyncClient) -> None:
        for k in range(self.first, self.first + MAX_UPDATES):
            self.in_flight = k
            body = {"name": f"n{k}", "config": {"instructions": f"i{k}"}}
            try:
                response = await http.patch(self.url, json=body, headers=self.headers)
            except httpx.TransportError:
                return  # the server died under this request: it may or may not be applied
            assert response.status_code == 200, response.text
            assert response.json()["version"] == k + 2  # created, update 0, then 1..k
            self.acked.append(k)
            self.in_flight = None
            if len(self.acked) >= KILL_AFTER_ACKS:
                self.enough.set()
        raise AssertionError("the server was never killed")


def kill_after(server: Server, delay: float) -> None:
    time.sleep(delay)
    server.kill()


async def stream_then_kill(
    server: Server, url: str, headers: dict[str, str], first: int, delay: float
) -> Stream:
    stream = Stream(url, headers, first)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        task = asyncio.create_task(stream.run(http))
        waiter = asyncio.create_task(stream.enough.wait())
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()  # raises what went wrong
        await asyncio.to_thread(kill_after, server, delay)  # while the stream goes on
        await asyncio.wait_for(task, timeout=60)
    return stream


def stored_update(document: dict[str, Any]) -> int:
    """The number k of the update the stored assistant shows; all of it, never half."""
    k = int(document["name"].removeprefix("n"))
    assert document["config"]["instructions"] == f"i{k}"
    return k


async def test_sigkill_mid_stream_keeps_every_acknowledged_update(
    settings: Settings, tmp_path: Path, org, stored
):
    server = Server(settings, tmp_path, workers=2).start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            created = await http.post(
                "/orgs/c/assistants", json={"name": "n0"}, headers=org.headers
            )
        assert created.status_code == 201, created.text
        assistant_id = created.json()["id"]
        await http_patch_instructions_zero(server, assistant_id, org.headers)
        url = f"/orgs/c/assistants/{assistant_id}"
        applied = 0
        for delay in KILL_DELAYS:
            stream = await stream_then_kill(server, url, org.headers, applied + 1, delay)
            assert len(stream.acked) >= KILL_AFTER_ACKS
            assert stream.acked == list(range(applied + 1, stream.acked[-1] + 1))
            server.start()  # the same database, a new process group
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                after = (await http.get(url, headers=org.headers)).json()
            applied = stored_update(after)
            assert applied in {stream.acked[-1], stream.in_flight}
            assert after["version"] == applied + 2  # created, instructions "i0", then k updates
            row = await stored(assistant_id)
            assert (row["name"], row["instructions"], row["version"]) == (
                f"n{applied}",
                f"i{applied}",
                applied + 2,
            )
    finally:
        server.stop()


async def http_patch_instructions_zero(
    server: Server, assistant_id: str, headers: dict[str, str]
) -> None:
    """Update 0: both streamed columns now carry a number (version 2)."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        response = await http.patch(
            f"/orgs/c/assistants/{assistant_id}",
            json={"config": {"instructions": "i0"}},
            headers=headers,
        )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
