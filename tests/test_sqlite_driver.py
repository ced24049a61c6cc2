"""app/sqlite_driver.py: the trips to aiosqlite's thread that a request costs on SQLite.

A read transaction's BEGIN (deferred) and COMMIT (nothing written) run on the event loop, so a
read costs one trip per query; a write costs two (BEGIN IMMEDIATE, which may wait for another
process, and COMMIT, the fsync), its statements running on the loop under the write lock. A
transaction opened for reading that does write still commits on the thread, and durably.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from app.sqlite_driver import OneHopConnection
from tests.test_batched_reads import statements

pytestmark = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """Every function sent to a connection's thread from now on."""
    sent: list[Callable[..., Any]] = []
    original = OneHopConnection._execute

    async def counting(
        self: OneHopConnection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        sent.append(fn)
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneHopConnection, "_execute", counting)
    return sent


async def test_a_read_costs_one_trip_per_query(client, org, db, make_assistant, trips):
    created = await make_assistant(org)
    trips.clear()
    with statements(db) as seen:
        response = await client.get(f"/orgs/c/assistants/{created['id']}", headers=org.headers)
    assert response.status_code == 200
    queries = [s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert [s.strip() for s in seen if s not in queries] == ["BEGIN"]
    assert len(trips) == len(queries)  # neither BEGIN nor COMMIT went to the thread


async def test_a_write_costs_two_trips(client, org, make_assistant, trips):
    created = await make_assistant(org)
    trips.clear()
    response = await client.patch(
        f"/orgs/c/assistants/{created['id']}", json={"name": "Renamed"}, headers=org.headers
    )
    assert response.status_code == 200
    assert len(trips) == 2  # BEGIN IMMEDIATE and COMMIT


async def test_a_read_transaction_that_writes_commits_on_the_thread(db, trips):
    async with db.read() as session:
        await session.execute(
            text("INSERT INTO organisations (id, name, created_at) VALUES ('o-x', 'X', '2026')")
        )
        trips.clear()
    assert len(trips) == 1  # the COMMIT
    async with db.read() as session:
        assert (
            await session.execute(text("SELECT name FROM organisations WHERE id = 'o-x'"))
        ).all()
