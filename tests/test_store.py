"""The store itself (app/store/), on SQLite and on PostgreSQL: values of every column type go in
and come back the same, `FOR UPDATE` / `BEGIN IMMEDIATE` serialise read-merge-writes, a failed
statement rolls the whole transaction back, statements compile once, and a connection that
died is replaced."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import asyncpg
import pytest
from sqlalchemy import String, bindparam, cast, func, select, update

from app.domain.errors import NotFound
from app.models import Assistant, Integration, Organisation, new_id
from app.settings import Settings
from app.store import Statement, Store, TransactionClosed, in_list, open_store
from app.store import statements as compiling
from app.store.records import AssistantRecord, IntegrationRecord, as_dict, replaced
from app.store.statements import insert_statement, update_parameters, update_statement

ORGS = Organisation.__table__
ASSISTANTS = Assistant.__table__
INTEGRATIONS = Integration.__table__

INSERT_ORG = insert_statement(ORGS)
INSERT_ASSISTANT = insert_statement(ASSISTANTS, returning=True)
INSERT_INTEGRATION = insert_statement(INTEGRATIONS, returning=True)
ASSISTANT = Statement(select(ASSISTANTS).where(ASSISTANTS.c.id == bindparam("id")))
ASSISTANT_FOR_UPDATE = Statement(
    select(ASSISTANTS).where(ASSISTANTS.c.id == bindparam("id")).with_for_update()
)
INTEGRATION = Statement(select(INTEGRATIONS).where(INTEGRATIONS.c.id == bindparam("id")))
ORG_NAME = Statement(select(ORGS.c.name).where(ORGS.c.id == bindparam("id")))
ORGS_IN = Statement(select(ORGS.c.id).where(in_list(ORGS.c.id, "ids")).order_by(ORGS.c.id))
COUNT_ORGS = Statement(select(func.count()).select_from(ORGS))
MOMENT = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    made = open_store(settings)
    try:
        yield made
    finally:
        await made.close()


async def make_org(store: Store, name: str = "Acme") -> str:
    org_id = new_id()
    async with store.write() as tx:
        await tx.execute(
            INSERT_ORG, {"id": org_id, "name": name, "created_at": MOMENT, "storage_used": 0}
        )
    return org_id


def assistant_values(org_id: str, **changes: Any) -> dict[str, Any]:
    model = Assistant(
        id=new_id(),
        org_id=org_id,
        name="Zoë 🤖",
        model="gpt",
        created_at=MOMENT,
        updated_at=MOMENT + timedelta(microseconds=1),
        suggested_messages=["hi", "ünïcode ✓", ""],
    )
    values = model.model_dump(exclude={"seq"})
    values.update(changes)
    return values


async def test_every_column_type_round_trips(store: Store):
    org_id = await make_org(store)
    values = assistant_values(
        org_id,
        enabled=False,
        enable_memories=True,
        welcome_banner=None,
        stt_model="whisper",
        version=2**31 - 1,
    )
    config = {"nested": {"list": [1, 2.5, True, None, "x"], "deep": {"a": {}}}, "ü": "✓"}
    async with store.write() as tx:
        inserted = await tx.first(INSERT_ASSISTANT, values, AssistantRecord)
        child = {
            "id": new_id(),
            "org_id": org_id,
            "assistant_id": values["id"],
            "integration_id": "whatsapp",
            "enabled": True,
            "connection_id": None,
            "config": config,
            "error": None,
            "created_at": MOMENT,
            "updated_at": MOMENT,
        }
        returned_child = await tx.first(INSERT_INTEGRATION, child, IntegrationRecord)
    async with store.read() as tx:
        read = await tx.first(ASSISTANT, {"id": values["id"]}, AssistantRecord)
        read_child = await tx.first(INTEGRATION, {"id": child["id"]}, IntegrationRecord)
    assert inserted == read
    assert isinstance(read.seq, int)
    assert read.seq > 0
    assert {k: v for k, v in as_dict(read).items() if k != "seq"} == values
    for name in ("enabled", "deleted", "enable_memories", "enable_auto_csat"):
        assert type(getattr(read, name)) is bool, name
    assert read.created_at == MOMENT
    assert read.created_at.tzinfo is UTC
    assert read.updated_at - read.created_at == timedelta(microseconds=1)
    assert read.suggested_messages == ["hi", "ünïcode ✓", ""]
    assert as_dict(returned_child) == as_dict(read_child) == child
    assert read_child.config == config
    assert type(read_child.config["nested"]["list"][2]) is bool


async def test_sqlite_timestamps_are_stored_as_before(store: Store):
    """SQLite keeps SQLAlchemy's text format (naive UTC, microseconds always written), so the
    rows written before the store and the ordering by text still hold."""
    if not store.is_sqlite:
        pytest.skip("SQLite's storage format")
    org_id = await make_org(store)
    async with store.write() as tx:
        await tx.first(INSERT_ASSISTANT, assistant_values(org_id), AssistantRecord)
    async with store.read() as tx:
        column = cast(ASSISTANTS.c.created_at, String)
        stored = await tx.scalar(select(column).where(ASSISTANTS.c.org_id == org_id))
    assert stored == "2026-03-04 05:06:07.891234"


async def test_rows_come_back_as_tuples_or_records(store: Store):
    org_id = await make_org(store, "Tuples")
    async with store.read() as tx:
        assert await tx.all(ORG_NAME, {"id": org_id}) == [("Tuples",)]
        assert await tx.first(ORG_NAME, {"id": "nope"}) is None
        assert await tx.scalar(ORG_NAME, {"id": org_id}) == "Tuples"
        assert await tx.scalar(COUNT_ORGS) >= 1


async def test_in_list_binds_a_list_as_one_parameter(store: Store):
    ids = sorted([await make_org(store, f"o{n}") for n in range(3)])
    with mock.patch.object(compiling, "compile_for", wraps=compiling.compile_for) as compile_for:
        async with store.read() as tx:
            assert await tx.all(ORGS_IN, {"ids": ids}) == [(i,) for i in ids]
            assert await tx.all(ORGS_IN, {"ids": [ids[0], "missing"]}) == [(ids[0],)]
            assert await tx.all(ORGS_IN, {"ids": []}) == []
    assert compile_for.call_count <= 1  # the same SQL whatever the length of the list


async def test_a_statement_compiles_once_per_dialect(store: Store):
    statement = Statement(select(ORGS.c.id).where(ORGS.c.name == bindparam("name")))
    with mock.patch.object(compiling, "compile_for", wraps=compiling.compile_for) as compile_for:
        for _ in range(3):
            async with store.read() as tx:
                await tx.all(statement, {"name": "x"})
        assert compile_for.call_count == 1
        async with store.read() as tx:  # a bare Core statement (a cold path's) compiles per call
            await tx.all(select(ORGS.c.id).where(ORGS.c.name == "x"))
            await tx.all(select(ORGS.c.id).where(ORGS.c.name == "x"))
        assert compile_for.call_count == 3


async def test_values_written_into_a_statement_are_its_defaults(store: Store):
    org_id = await make_org(store, "Literal")
    async with store.read() as tx:
        assert await tx.scalar(select(ORGS.c.name).where(ORGS.c.id == org_id)) == "Literal"


async def test_an_expanding_in_is_refused(store: Store):
    async with store.read() as tx:
        with pytest.raises(TypeError, match="in_list"):
            await tx.all(select(ORGS.c.id).where(ORGS.c.id.in_(["a", "b"])))


async def insert_twice(store: Store, org_id: str) -> None:
    async with store.write() as tx:
        await tx.execute(
            INSERT_ORG, {"id": org_id, "name": "kept?", "created_at": MOMENT, "storage_used": 0}
        )
        await tx.execute(
            INSERT_ORG, {"id": org_id, "name": "twice", "created_at": MOMENT, "storage_used": 0}
        )


async def insert_then_raise(store: Store, org_id: str) -> None:
    async with store.write() as tx:
        await tx.execute(
            INSERT_ORG, {"id": org_id, "name": "gone", "created_at": MOMENT, "storage_used": 0}
        )
        raise NotFound("nothing")


async def test_a_failed_statement_rolls_back_the_whole_transaction(store: Store):
    org_id = new_id()
    with pytest.raises((sqlite3.IntegrityError, asyncpg.UniqueViolationError)):
        await insert_twice(store, org_id)
    async with store.read() as tx:
        assert await tx.first(ORG_NAME, {"id": org_id}) is None
    await make_org(store, "next")  # the connection went back to the pool in a clean state


async def test_an_exception_in_the_block_rolls_back(store: Store):
    org_id = new_id()
    with pytest.raises(NotFound):
        await insert_then_raise(store, org_id)
    async with store.read() as tx:
        assert await tx.first(ORG_NAME, {"id": org_id}) is None


async def test_a_transaction_cannot_be_used_after_its_block(store: Store):
    async with store.read() as tx:
        pass
    with pytest.raises(TransactionClosed):
        await tx.scalar(COUNT_ORGS)


async def test_rowcount_and_update_statements(store: Store):
    org_id = await make_org(store)
    async with store.write() as tx:
        inserted = await tx.first(INSERT_ASSISTANT, assistant_values(org_id), AssistantRecord)
        values = {"name": "renamed", "enabled": False, "updated_at": MOMENT + timedelta(days=1)}
        statement = update_statement(ASSISTANTS, "seq", tuple(sorted(values)))
        assert update_statement(ASSISTANTS, "seq", tuple(sorted(values))) is statement
        assert await tx.execute(statement, update_parameters("seq", inserted.seq, values)) == 1
        assert await tx.execute(statement, update_parameters("seq", -1, values)) == 0
        read = await tx.first(ASSISTANT, {"id": inserted.id}, AssistantRecord)
    assert read == replaced(inserted, **values)
    assert inserted.name == "Zoë 🤖"  # replaced() leaves the record as it was


BUMP = Statement(
    update(ASSISTANTS)
    .where(ASSISTANTS.c.id == bindparam("id"))
    .values(version=bindparam("version"), instructions=bindparam("instructions"))
)


async def bump(store: Store, assistant_id: str, mark: str, pause: float) -> None:
    """A read-merge-write: read the version under the lock, wait, write version + 1."""
    async with store.write() as tx:
        row = await tx.first(ASSISTANT_FOR_UPDATE, {"id": assistant_id}, AssistantRecord)
        await asyncio.sleep(pause)
        values = {"id": assistant_id, "version": row.version + 1, "instructions": mark}
        await tx.execute(BUMP, values)


async def test_concurrent_read_merge_writes_take_turns(store: Store, settings: Settings):
    """FOR UPDATE (PostgreSQL) or BEGIN IMMEDIATE (SQLite) serialise them: no update is lost,
    within one store and between two stores (two processes) of the same database."""
    org_id = await make_org(store)
    async with store.write() as tx:
        created = await tx.first(INSERT_ASSISTANT, assistant_values(org_id), AssistantRecord)
    other = open_store(settings)
    try:
        writers = [bump(store, created.id, f"a{n}", 0.02) for n in range(5)]
        writers += [bump(other, created.id, f"b{n}", 0.02) for n in range(5)]
        await asyncio.gather(*writers)
    finally:
        await other.close()
    async with store.read() as tx:
        final = await tx.first(ASSISTANT, {"id": created.id}, AssistantRecord)
    assert final.version == created.version + 10


async def test_statements_are_seen_by_the_listeners(store: Store):
    seen: list[str] = []
    store.statement_listeners.append(seen.append)
    async with store.read() as tx:
        await tx.scalar(COUNT_ORGS)
        await tx.scalar(COUNT_ORGS)
    reads = list(seen)
    seen.clear()
    await make_org(store)
    store.statement_listeners.remove(seen.append)
    count = COUNT_ORGS.compiled(store.dialect).sql
    if store.is_sqlite:
        assert reads == ["BEGIN", count, count]  # BEGIN goes with the first statement
        assert seen[0] == "BEGIN IMMEDIATE"
    else:
        assert reads == [count, count]  # no BEGIN for reads at READ COMMITTED
        assert seen[0] == "BEGIN"
    assert seen[1].startswith("INSERT INTO organisations")


async def test_an_empty_transaction_sends_nothing(store: Store):
    seen: list[str] = []
    store.statement_listeners.append(seen.append)
    async with store.write():
        pass
    async with store.read():
        pass
    assert seen == []


async def test_nul_in_a_parameter(store: Store):
    """PostgreSQL refuses U+0000 in text: the lookup is NOT_FOUND there, and finds nothing on
    SQLite (nothing stored holds it)."""
    async with store.read() as tx:
        if store.is_sqlite:
            assert await tx.first(ORG_NAME, {"id": "a\x00b"}) is None
            assert await tx.all(ORGS_IN, {"ids": ["a\x00b"]}) == []
        else:
            with pytest.raises(NotFound):
                await tx.first(ORG_NAME, {"id": "a\x00b"})
            with pytest.raises(NotFound):
                await tx.all(ORGS_IN, {"ids": ["a\x00b"]})
    assert await store.ping()


async def test_a_cancelled_transaction_leaves_a_clean_connection(store: Store):
    """Cancelled while a statement is on its way (a client that went away): the transaction
    is rolled back once the statement is done, and the connection serves the next one."""
    org_id = await make_org(store)
    sleeper = (
        select(func.count()).select_from(ORGS) if store.is_sqlite else select(func.pg_sleep(5))
    )

    async def hold() -> None:
        async with store.write() as tx:
            await tx.execute(update(ORGS).where(ORGS.c.id == org_id).values(name="cancelled"))
            await tx.all(sleeper)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.2 if not store.is_sqlite else 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(10):  # every connection of the pool is usable
        async with store.write() as tx:
            assert await tx.scalar(ORG_NAME, {"id": org_id}) == "Acme"


async def test_a_dead_postgres_connection_is_replaced(store: Store, settings: Settings):
    if store.is_sqlite:
        pytest.skip("PostgreSQL's connections only")
    async with store.read() as tx:
        pid = await tx.scalar(select(func.pg_backend_pid()))
    killer = open_store(settings)
    try:
        async with killer.read() as tx:
            assert await tx.scalar(select(func.pg_terminate_backend(pid))) is True
    finally:
        await killer.close()
    await asyncio.sleep(0.1)
    async with store.read() as tx:
        assert await tx.scalar(select(func.pg_backend_pid())) != pid
    assert await store.ping()


async def test_transactions_get_connections_in_the_order_they_asked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """When every connection is taken, waiting transactions get them first come, first served:
    transactions that keep asking while connections are handed back never overtake those
    already waiting (on PostgreSQL asyncpg's pool alone lets them: a long latency tail)."""
    from app.store import postgres

    monkeypatch.setattr(postgres, "POOL_MAX", 1)
    monkeypatch.setattr("app.store.sqlite.POOL_SIZE", 1)
    store = open_store(settings)
    order: list[str] = []

    async def take(name: str) -> None:
        async with store.read() as tx:
            await tx.scalar(COUNT_ORGS)
            order.append(name)

    try:
        await take("warm")  # the connection is open
        first = store.read()
        await first.__aenter__()
        tasks = [asyncio.create_task(take(f"w{i}")) for i in range(5)]
        await asyncio.sleep(0.05)  # all five wait for the one connection

        async def keep_asking() -> None:
            for i in range(30):
                tasks.append(asyncio.create_task(take(f"late{i}")))
                await asyncio.sleep(0)

        asking = asyncio.create_task(keep_asking())
        await first.__aexit__(None, None, None)
        await asking
        await asyncio.gather(*tasks)
    finally:
        await store.close()
    assert order[1:6] == [f"w{i}" for i in range(5)]
