"""Finding assistants: filters, sorts and keyset cursors over one organisation's assistants
(docs/finding-assistants.md).

Each shape of a request (its sort, which filters it sets, whether the key is restricted to some
assistants, whether it starts after a cursor) is one statement, built on first use and compiled
once per dialect like every statement of the store. A sort reads its index of migration 0011 in
order, `seq` breaking ties, so a page of 100 reads about 100 index entries; the filters of
`enabled`, `language` and `model` are counted from their index alone, and `ref` is found by its
unique index.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Select,
    String,
    bindparam,
    false,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy import literal_column as sql_text

from app.domain.access import Access, Scope, requires
from app.domain.assistants import MAX_SEQ, TABLE, _visible_to
from app.domain.errors import FieldError, ValidationFailed
from app.store import Statement, Tx, in_list
from app.store.records import AssistantRecord

SORTS = ("created_at", "updated_at", "name")
# the name is sorted by its first 256 characters, as its index holds it (app/models.py)
_NAME_KEY = sql_text("substr(assistants.name, 1, 256)", String)
_KEYS: dict[str, ColumnElement[Any]] = {
    "created_at": TABLE.c.created_at,
    "updated_at": TABLE.c.updated_at,
    "name": _NAME_KEY,
}
CURSOR_PREFIX = "assistant"  # today's cursors: "assistant:<seq>" (the default order)
# the longest value of each text filter (the longest the column holds; search: a name)
TEXT_LIMITS = {"search": 1024, "language": 64, "model": 200, "ref": 64}


@dataclass(frozen=True, slots=True)
class Order:
    """A sort: `field` one of SORTS, or None for the default order (oldest first, by `seq`)."""

    field: str | None = None
    descending: bool = False

    @property
    def tag(self) -> str:
        """The sort as REST writes it (`-name`), and as a cursor names it."""
        return f"{'-' if self.descending else ''}{self.field or 'seq'}"


DEFAULT_ORDER = Order()


@dataclass(frozen=True, slots=True)
class AssistantFilter:
    """What the assistants found must match; None leaves a field out."""

    search: str | None = None  # a case-insensitive substring of the name or the ref
    enabled: bool | None = None
    language: str | None = None
    model: str | None = None
    ref: str | None = None
    updated_since: datetime | None = None

    def set_fields(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["search"] == "":  # an empty search box finds everything
            values["search"] = None
        return {name: value for name, value in values.items() if value is not None}


NO_FILTER = AssistantFilter()


def check_filter(found: AssistantFilter, prefix: tuple[str, ...] = ()) -> None:
    """Every text value bounded and free of U+0000; a validation error naming each offending
    field (under `prefix`: ("filter",) in GraphQL) otherwise."""
    errors = []
    for name, limit in TEXT_LIMITS.items():
        value = getattr(found, name, None)
        if value is None:
            continue
        if "\x00" in value:
            errors.append(FieldError((*prefix, name), "must not contain U+0000"))
        elif len(value) > limit:
            errors.append(FieldError((*prefix, name), f"must be at most {limit} characters"))
        elif not value and name != "search":
            errors.append(FieldError((*prefix, name), "must not be empty"))
    if errors:
        names = ", ".join(".".join(map(str, e.path)) for e in errors)
        raise ValidationFailed(f"invalid filter: {names}", errors)


def _holds(column: ColumnElement[str], dialect: str, unicode: bool) -> ColumnElement[bool]:
    """The column holds the search's text, whatever the case of either. SQLite's LIKE ignores
    the case of ASCII letters only: a search with other letters compares both lower-cased by
    Python (`unicode_lower`, registered on each SQLite connection)."""
    condition: ColumnElement[bool]
    if dialect == "postgresql":
        condition = column.ilike(bindparam("f_pattern", type_=String), escape="\\")
    elif unicode:
        lowered = func.unicode_lower(column, type_=String)
        condition = func.instr(lowered, bindparam("f_lowered", type_=String)) > 0
    else:
        condition = column.like(bindparam("f_pattern", type_=String), escape="\\")
    return condition


def _search_condition(dialect: str, unicode: bool) -> ColumnElement[bool]:
    """The name or the ref holds the search's text."""
    return or_(_holds(TABLE.c.name, dialect, unicode), _holds(TABLE.c.ref, dialect, unicode))


def _conditions(
    dialect: str, names: tuple[str, ...], bound: bool, unicode: bool
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        TABLE.c.org_id == bindparam("org_id"),
        TABLE.c.deleted.is_(False),
    ]
    if bound:  # a key restricted to some assistants
        where.append(in_list(TABLE.c.id, "assistant_ids"))
    for name in names:
        if name == "search":
            where.append(_search_condition(dialect, unicode))
        elif name == "enabled":
            where.append(TABLE.c.enabled == bindparam("f_enabled", type_=Boolean))
        elif name == "ref":  # in the words of its partial unique index, which serves it
            where.append(TABLE.c.ref == bindparam("f_ref", type_=TABLE.c.ref.type))
            where.append(TABLE.c.deleted == false())
        elif name == "updated_since":
            since = bindparam("f_updated_since", type_=TABLE.c.updated_at.type)
            where.append(TABLE.c.updated_at >= since)
        else:
            where.append(TABLE.c[name] == bindparam(f"f_{name}", type_=TABLE.c[name].type))
    return where


def _page_clause(
    dialect: str, order: Order, names: tuple[str, ...], bound: bool, unicode: bool, after: bool
) -> Select[Any]:
    where = _conditions(dialect, names, bound, unicode)
    if order.field is None:
        columns: list[ColumnElement[Any]] = [TABLE.c.seq]
        if after:
            where.append(TABLE.c.seq > bindparam("after_seq"))
    else:
        key = _KEYS[order.field]
        columns = [key, TABLE.c.seq]
        if after:
            mark = tuple_(bindparam("after_key", type_=key.type), bindparam("after_seq"))
            where.append(tuple_(*columns) < mark if order.descending else tuple_(*columns) > mark)
    sort = [c.desc() if order.descending else c.asc() for c in columns]
    return (
        select(TABLE)
        .where(*where)
        .order_by(*sort)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


# one statement per shape; the shapes are finite (7 sorts, 32 sets of filters, 2 kinds of key,
# 2 of search, with or without a cursor), and only those asked for are built
@lru_cache(maxsize=1024)
def _page_statement(
    order: Order, names: tuple[str, ...], bound: bool, unicode: bool, after: bool
) -> Statement[Select[Any]]:
    return Statement(
        _page_clause("sqlite", order, names, bound, unicode, after),
        postgresql=_page_clause("postgresql", order, names, bound, unicode, after),
    )


@lru_cache(maxsize=256)
def _count_statement(names: tuple[str, ...], bound: bool, unicode: bool) -> Statement[Any]:
    def clause(dialect: str) -> Select[Any]:
        where = _conditions(dialect, names, bound, unicode)
        return select(func.count()).select_from(TABLE).where(*where)

    return Statement(clause("sqlite"), postgresql=clause("postgresql"))


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _parameters(access: Access, values: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The statement's parameters of a filter, and whether its search needs `unicode_lower`."""
    parameters = _visible_to(access)
    unicode = False
    for name, value in values.items():
        if name == "search":
            unicode = not value.isascii()
            parameters["f_pattern"] = f"%{_escaped(value)}%"
            parameters["f_lowered"] = value.lower()
        else:
            parameters[f"f_{name}"] = value
    return parameters, unicode


def page_statement(
    access: Access,
    found: AssistantFilter,
    order: Order,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
) -> tuple[Statement[Select[Any]], dict[str, Any]]:
    """The statement of one page and its parameters."""
    values = found.set_fields()
    parameters, unicode = _parameters(access, values)
    parameters.update(limit=limit, offset=offset)
    if after is not None:
        parameters["after_key"], parameters["after_seq"] = after[0], min(after[1], MAX_SEQ)
    names = tuple(sorted(values))
    statement = _page_statement(order, names, access.bound, unicode, after is not None)
    return statement, parameters


@requires(Scope.READ)
async def find_assistants(
    tx: Tx,
    *,
    access: Access,
    found: AssistantFilter = NO_FILTER,
    order: Order = DEFAULT_ORDER,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
) -> list[AssistantRecord]:
    """The assistants the caller sees that match `found`, in `order`: a window after a
    position (`after`, (key, seq) from `position_of`) or at an `offset` (for pages)."""
    statement, parameters = page_statement(access, found, order, limit, offset, after)
    return await tx.all(statement, parameters, AssistantRecord)


@requires(Scope.READ)
async def count_found(tx: Tx, *, access: Access, found: AssistantFilter = NO_FILTER) -> int:
    """How many assistants the caller sees match `found`."""
    values = found.set_fields()
    parameters, unicode = _parameters(access, values)
    statement = _count_statement(tuple(sorted(values)), access.bound, unicode)
    return int(await tx.scalar(statement, parameters) or 0)


# -- cursors -------------------------------------------------------------------------------


def cursor_of(order: Order, row: AssistantRecord) -> str:
    """The cursor of a row in this order: today's `assistant:<seq>` in the default order,
    else the sort's tag with the row's key and seq (which `position_of` reads back)."""
    seq = row.seq or 0
    if order.field is None:
        text = f"{CURSOR_PREFIX}:{seq}"
    else:
        key = getattr(row, order.field)
        value = key.isoformat() if isinstance(key, datetime) else key[:256]
        text = f"{CURSOR_PREFIX}.{order.tag}:" + orjson.dumps([value, seq]).decode()
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def _not_a_cursor(argument: str, why: str = "not a cursor of this connection") -> ValidationFailed:
    return ValidationFailed(f"'{argument}' is {why}", [FieldError((argument,), why)])


def _key_of(field: str, value: Any) -> Any:
    if field == "name":
        if isinstance(value, str):
            return value
        raise ValueError(value)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment


def position_of(order: Order, cursor: str, argument: str = "after") -> tuple[Any, int]:
    """(key, seq) of a cursor made in this order; a validation error naming `argument` when it
    is not a cursor, or one of another order."""
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except (UnicodeError, binascii.Error, ValueError):
        text = ""
    head, _, body = text.partition(":")
    kind, _, tag = head.partition(".")
    if kind != CURSOR_PREFIX:
        raise _not_a_cursor(argument)
    if (tag or "seq") != order.tag:
        shown = "the default order" if not tag else f"the sort `{tag}`"
        raise _not_a_cursor(argument, f"a cursor of another order ({shown})")
    try:
        if order.field is None:
            if not body.isdigit() or len(body) > 18:
                raise ValueError(body)
            return (None, int(body))
        key, seq = orjson.loads(body)
        if type(seq) is not int or seq < 0:
            raise ValueError(seq)
        return _key_of(order.field, key), seq
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise _not_a_cursor(argument) from None
