"""One page of 100 of 100,000 assistants of one organisation is read through an index, not a
full scan: EXPLAIN (PostgreSQL, after ANALYZE as autovacuum would run it) and EXPLAIN QUERY PLAN
(SQLite, without statistics, as the server runs it) of every sort in both directions, with and
without a cursor, and of the common filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, text

from app.domain.access import Access
from app.domain.assistant_find import AssistantFilter, Order, page_statement
from app.models import Assistant
from app.store import Store

TABLE = Assistant.__table__
ROWS = 100_000
CHUNK = 10_000
SERIES = {
    "sqlite": "WITH RECURSIVE n(i) AS "
    "(SELECT {start} UNION ALL SELECT i + 1 FROM n WHERE i < {end}) "
    "INSERT INTO assistants ({columns}) SELECT {values} FROM n",
    "postgresql": "INSERT INTO assistants ({columns}) SELECT {values} "
    "FROM generate_series({start}, {end}) AS n(i)",
}
MOMENT = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f000', '2026-01-01', '+' || ({n}) || ' seconds')",
    "postgresql": "timestamptz '2026-01-01 00:00:00+00' + ({n}) * interval '1 second'",
}
SPECIAL = {
    "id": "'a' || i",
    "org_id": ":org",
    "name": "'Assistant ' || ((i * 7919) % {rows})",
    "enabled": "(i % 5 != 0)",
    "deleted": "(i % 50 = 0)",
    "version": "1",
    "ref": "'r' || i",
    "language": "CASE i % 4 WHEN 0 THEN 'en' WHEN 1 THEN 'fr' WHEN 2 THEN 'de' ELSE 'pt-BR' END",
    "model": "CASE i % 3 WHEN 0 THEN 'gpt-4o-mini' WHEN 1 THEN 'gpt-4o' ELSE 'claude' END",
}


def value_of(column: Any, dialect: str) -> str:
    if column.name in SPECIAL:
        return SPECIAL[column.name].format(rows=ROWS)
    if column.name in ("created_at", "updated_at"):
        n = "i" if column.name == "created_at" else f"(i * 9973) % {ROWS}"
        return MOMENT[dialect].format(n=n)
    if column.nullable:
        return "NULL"
    if isinstance(column.type, Boolean):
        return "false" if dialect == "postgresql" else "0"
    if isinstance(column.type, JSON):
        return "'[]'"
    return "'x'"


async def fill(db: Store, org_id: str) -> None:
    """ROWS assistants in one organisation (one in 50 deleted)."""
    dialect = db.dialect.name
    columns = [c for c in TABLE.c if c.name != "seq"]
    for start in range(1, ROWS, CHUNK):  # each within DATABASE_TIMEOUT_SECONDS
        sql = SERIES[dialect].format(
            start=start,
            end=start + CHUNK - 1,
            columns=", ".join(c.name for c in columns),
            values=", ".join(value_of(c, dialect) for c in columns),
        )
        async with db.write() as tx:
            await tx.execute(text(sql), {"org": org_id})
    if dialect == "postgresql":
        async with db.write() as tx:
            await tx.execute(text("ANALYZE assistants"))


async def plan(db: Store, statement: Any, parameters: dict[str, Any]) -> list[str]:
    compiled = statement.compiled(db.dialect)
    prefix = "EXPLAIN " if db.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    async with db.read() as tx:
        rows, _ = await tx._run(prefix + compiled.sql, compiled.arguments(parameters), True)
    return [str(row[0] if db.dialect.name == "postgresql" else row[3]) for row in rows]


def reads_an_index(lines: list[str]) -> bool:
    """Through an index of the assistants (one of migration 0011's, or the primary key in the
    default order), and never a scan of the whole table."""
    joined = "\n".join(lines)
    full_scan = "Seq Scan" in joined or "SCAN assistants" in [line.strip() for line in lines]
    return not full_scan and ("Index" in joined or ("USING" in joined and "INDEX" in joined))


def sorts_by_itself(lines: list[str]) -> bool:
    """The rows come in the index's order: no sort step."""
    return not any("TEMP B-TREE" in line or line.lstrip().startswith("Sort") for line in lines)


SORTS = [
    Order(field, descending)
    for field in ("created_at", "updated_at", "name")
    for descending in (False, True)
]
AFTER = {
    "created_at": datetime(2026, 1, 1, 12, tzinfo=UTC),
    "updated_at": datetime(2026, 1, 1, 12, tzinfo=UTC),
    "name": "Assistant 5",
}
FILTERS = [
    AssistantFilter(enabled=True),
    AssistantFilter(language="fr"),
    AssistantFilter(model="claude"),
    AssistantFilter(enabled=True, language="en"),
    AssistantFilter(updated_since=datetime(2026, 1, 1, 20, tzinfo=UTC)),
    AssistantFilter(ref="r4242"),
]
# (a search for a substring reads the organisation's assistants until a page is found: in the
# order of the sort's index, or, on PostgreSQL when it expects few matches, in one scan)


@pytest.fixture
async def big_org(db, org):
    await fill(db, org.org_id)
    return Access.everything(org.org_id)


async def test_every_sort_and_the_common_filters_read_an_index(db, big_org):
    checked = 0
    for order in SORTS:
        for after in (None, (AFTER[order.field], 50_000)):
            statement, parameters = page_statement(big_org, AssistantFilter(), order, 101, 0, after)
            lines = await plan(db, statement, parameters)
            assert reads_an_index(lines), (order, after, lines)
            assert sorts_by_itself(lines), (order, after, lines)
            checked += 1
    for order in (Order(), Order("updated_at", True), Order("name")):
        for found in FILTERS:
            statement, parameters = page_statement(big_org, found, order, 101)
            lines = await plan(db, statement, parameters)
            assert reads_an_index(lines), (order, found, lines)
            checked += 1
    assert checked == 12 + 18


async def test_a_page_of_the_big_organisation_is_right(client, org, big_org):
    response = await client.get(
        "/orgs/c/assistants",
        params={"sort": "-updated_at", "enabled": "true", "language": "en", "take": 100},
        headers=org.headers,
    )
    assert response.status_code == 200
    page = response.json()
    assert len(page) == 100
    assert all(a["enabled"] and a["config"]["language"] == "en" for a in page)
    updated = [a["updated_at"] for a in page]
    assert updated == sorted(updated, reverse=True)
    # i % 20 == 0 is enabled=false (i % 5) or deleted (i % 50): of i % 4 == 0, the rest
    assert response.headers["pagination-count"] == str(ROWS // 4 - ROWS // 20)
