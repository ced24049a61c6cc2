"""Statements: SQLAlchemy Core built from the SQLModel tables, compiled once per dialect.

A `Statement` wraps a Core statement built once (at import, or once per shape behind a bounded
cache); the first transaction of a dialect that runs it compiles it (`stmt.compile(dialect=…)`)
into a `Compiled`: the SQL text, the names of its parameters in positional order (with the
values the statement binds itself and each parameter's bind processor), and one reader per
record class that turns a driver row into a record, every value converted once by its column
type's result processor. A bare Core statement (a cold path's dynamic one) compiles per call.

Only public SQLAlchemy API: `compile(dialect=…)`, `compiled.string`, `compiled.positiontup`,
`compiled.binds`, `BindParameter.required`/`effective_value`, `exported_columns`,
`TypeEngine.dialect_impl`, `bind_processor`, `result_processor`, `ext.compiler.compiles`.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Insert, String, TypeDecorator, Update, insert, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import NullType, TypeEngine

SQLITE, POSTGRESQL = "sqlite", "postgresql"


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# One dialect object per database, configured once: JSON through orjson (text for SQLite's
# TEXT columns, bytes that the asyncpg codec passes through for PostgreSQL's json).
DIALECTS: dict[str, Dialect] = {
    SQLITE: SQLiteDialect_aiosqlite(json_serializer=_json_text, json_deserializer=orjson.loads),
    # no-untyped-call: SQLAlchemy leaves this dialect's __init__ unannotated
    POSTGRESQL: PGDialect_asyncpg(  # type: ignore[no-untyped-call]
        json_serializer=orjson.dumps, json_deserializer=orjson.loads
    ),
}

Processor = Callable[[Any], Any]
_MISSING: Any = object()


class ListParam(TypeDecorator[list[Any]]):
    """A list bound as ONE parameter: a PostgreSQL array, or a JSON array text for SQLite's
    `json_each` (so that `in_list` compiles once, whatever the length of the list)."""

    impl = String
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.item_type = item_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == POSTGRESQL:
            return dialect.type_descriptor(ARRAY(self.item_type))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == POSTGRESQL:
            return list(value)
        return orjson.dumps(list(value)).decode()


class InList(ColumnElement[Any]):
    """`column IN <the list bound to one parameter>`: `= ANY($1)` on PostgreSQL, `IN (SELECT
    value FROM json_each(?))` on SQLite. (Typed NullType so that SQLite's compiler does not add
    `= 1` as it does to a Boolean expression.)"""

    inherit_cache = True
    type = NullType()

    def __init__(self, column: ColumnElement[Any], parameter: BindParameter[Any]) -> None:
        self.column = column
        self.parameter = parameter


def in_list(column: Any, name: str) -> InList:
    """`column` is one of the values of the list passed as parameter `name`."""
    return InList(column, BindParameter(name, type_=ListParam(column.type)))


@compiles(InList, POSTGRESQL)
def _in_list_postgresql(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY({compiler.process(element.parameter, **kw)})"


@compiles(InList, SQLITE)
def _in_list_sqlite(element: InList, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN (SELECT value FROM json_each({compiler.process(element.parameter, **kw)}))"


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    impl = type_.dialect_impl(dialect)
    processor: Processor | None = impl.bind_processor(dialect)
    return processor


def _result_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    impl = type_.dialect_impl(dialect)
    processor: Processor | None = impl.result_processor(dialect, None)
    return processor


def _reader(
    keys: Sequence[str], processors: Sequence[Processor | None], into: type | None
) -> Callable[[Any], Any]:
    """`read(row)`: a record of class `into` (or a tuple) from one driver row, each value through
    its column's result processor. Generated once per statement and class, so that reading a row
    is a run of plain attribute stores (as `dataclasses` generates its `__init__`)."""
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": into}
    values = []
    for index, processor in enumerate(processors):
        if processor is None:
            values.append(f"row[{index}]")
        else:
            namespace[f"p{index}"] = processor
            values.append(f"p{index}(row[{index}])")
    if into is None:
        body = f"    return ({''.join(v + ', ' for v in values)})"
    else:
        slots = set(getattr(into, "__slots__", ()))
        for key in keys:
            if not key.isidentifier() or keyword.iskeyword(key) or key not in slots:
                raise TypeError(f"{into.__name__} has no attribute for the column '{key}'")
        stores = "".join(f"    r.{k} = {v}\n" for k, v in zip(keys, values, strict=True))
        body = f"    r = _new(_cls)\n{stores}    return r"
    exec(f"def read(row):\n{body}\n", namespace)  # noqa: S102  (generated from column keys)
    read: Callable[[Any], Any] = namespace["read"]
    return read


@dataclass(slots=True, eq=False)
class Compiled:
    """One statement compiled for one dialect."""

    sql: str
    parameters: tuple[tuple[str, Processor | None, Any], ...]  # (name, bind processor, default)
    keys: tuple[str, ...]  # the result columns' keys (the records' attribute names)
    processors: tuple[Processor | None, ...]
    readers: dict[type | None, Callable[[Any], Any]] = field(default_factory=dict)

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """The positional parameters of one execution, each through its bind processor."""
        out = []
        for name, process, default in self.parameters:
            value = values.get(name, default)
            if value is _MISSING:
                raise KeyError(f"no value for the parameter '{name}'")
            out.append(value if process is None else process(value))
        return out

    def reader(self, into: type | None) -> Callable[[Any], Any]:
        read = self.readers.get(into)
        if read is None:
            read = self.readers[into] = _reader(self.keys, self.processors, into)
        return read


def compile_for(clause: ClauseElement, dialect: Dialect) -> Compiled:
    """Compiles `clause`; a value written into the statement is the default of its parameter.
    (Lists go through `in_list`: an expanding IN would change the SQL with each length.)"""
    compiled: Any = clause.compile(dialect=dialect)
    binds: dict[str, BindParameter[Any]] = compiled.binds
    parameters = tuple(
        (
            name,
            _bind_processor(binds[name].type, dialect),
            _MISSING if binds[name].required else binds[name].effective_value,
        )
        for name in compiled.positiontup or ()
    )
    if any(bind.expanding for bind in binds.values()):
        raise TypeError("an expanding IN compiles per length: use in_list() instead")
    columns = list(getattr(clause, "exported_columns", ()))
    return Compiled(
        sql=compiled.string,
        parameters=parameters,
        keys=tuple(column.key for column in columns),
        processors=tuple(_result_processor(column.type, dialect) for column in columns),
    )


C = TypeVar("C", bound=ClauseElement)


class Statement(Generic[C]):
    """A Core statement built once, compiled once per dialect on its first execution.

    `Statement(clause, postgresql=other)` runs `other` on PostgreSQL (the same parameters and
    result columns, written another way there).
    """

    __slots__ = ("_by_dialect", "_compiled", "clause")

    def __init__(self, clause: C, **by_dialect: ClauseElement) -> None:
        self.clause = clause
        self._by_dialect = by_dialect
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            clause = self._by_dialect.get(dialect.name, self.clause)
            found = self._compiled[dialect.name] = compile_for(clause, dialect)
        return found

    def __repr__(self) -> str:
        return f"Statement({str(self.clause)[:60]!r}…)"


def compiled(statement: Statement[Any] | ClauseElement, dialect: Dialect) -> Compiled:
    if isinstance(statement, Statement):
        return statement.compiled(dialect)
    return compile_for(statement, dialect)


def insert_statement(table: Any, *, returning: bool = False) -> Statement[Insert]:
    """INSERT of every column but an autoincrement key, one parameter per column (named after
    it); with `returning`, the whole new row comes back."""
    columns = [c for c in table.c if c is not table.autoincrement_column]
    values = {c.key: BindParameter(c.key, type_=c.type) for c in columns}
    clause = insert(table).values(values)
    return Statement(clause.returning(*table.c) if returning else clause)


@lru_cache(maxsize=512)
def update_statement(table: Any, key: str, columns: tuple[str, ...]) -> Statement[Update]:
    """UPDATE of these columns of the row whose `key` is the parameter `v_<key>`, the new
    values in `v_<column>`: built once per table and set of columns."""
    values = {c: BindParameter(f"v_{c}", type_=table.c[c].type) for c in columns}
    clause = update(table).where(table.c[key] == BindParameter(f"v_{key}")).values(values)
    return Statement(clause)


def update_parameters(key: str, key_value: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of an `update_statement`."""
    return {f"v_{key}": key_value, **{f"v_{c}": value for c, value in values.items()}}
