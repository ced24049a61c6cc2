"""What the fast paths take from libraries' private parts, pinned and checked.

Each library whose private parts the app relies on is pinned to an exact version in
`requirements.lock` (what `make install` installs); an upgrade must pass through this file.
The behaviour behind each reliance is checked where it is used (the differential tests of
tests/graphql/test_engine.py and test_compiled_execution.py, test_no_thread_is_started_per_request
in test_rate_limit.py); here: the versions, and that every name the app reaches for still exists
with the parameters it is called with.
"""

from __future__ import annotations

import inspect
from importlib import metadata
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[1] / "requirements.lock"
# the libraries whose private parts the app uses
RELIED_ON = ("strawberry-graphql", "graphql-core", "limits", "sqlalchemy", "aiosqlite", "asyncpg")


def pinned() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


@pytest.mark.parametrize("name", RELIED_ON)
def test_installed_versions_are_the_pinned_ones(name: str) -> None:
    assert metadata.version(name) == pinned()[name], (
        f"{name} differs from requirements.lock: check its private parts used by the app "
        "(tests/test_private_parts.py) before pinning the new version"
    )


def parameters(function: object) -> list[str]:
    return list(inspect.signature(function).parameters)  # type: ignore[arg-type]


def test_graphql_core_executor_parts() -> None:
    """app/graphql/execution.py overrides and calls these methods of graphql-core's executor."""
    from graphql import build_schema, parse
    from graphql.execution.collect_fields import (  # noqa: F401  (names the app imports)
        CollectedFields,
        FieldDetailsList,
        GroupedFieldSet,
    )
    from graphql.execution.executor import Executor

    assert parameters(Executor.execute_fields) == [
        "self",
        "parent_type",
        "source_value",
        "path",
        "grouped_field_set",
        "position_context",
    ]
    assert parameters(Executor.execute_field)[:6] == [
        "self",
        "parent_type",
        "source",
        "field_details_list",
        "path",
        "position_context",
    ]
    assert parameters(Executor.collect_subfields) == ["self", "return_type", "field_details_list"]
    assert parameters(Executor.complete_list_value) == [
        "self",
        "return_type",
        "field_details_list",
        "info",
        "path",
        "result",
        "position_context",
    ]
    assert parameters(Executor.handle_field_error) == [
        "self",
        "raw_error",
        "return_type",
        "field_details_list",
        "path",
    ]
    for name in ("execute_collected_subfields", "settle_in_background", "build"):
        assert callable(getattr(Executor, name))
    # the per-request memo of collected sub-fields, shared by CompiledExecutionContext
    executor = Executor.build(build_schema("type Query { a: Int }"), parse("{ a }"))
    assert executor._relevant_sub_fields == {}  # type: ignore[union-attr]
    assert "hide_suggestions" in parameters(Executor.build)
    assert set(CollectedFields._fields) >= {"grouped_field_set", "new_defer_usages"}


def test_strawberry_parts() -> None:
    """The engine and the executor use these Strawberry names that are not its public API."""
    from strawberry.execution.is_awaitable import optimized_is_awaitable  # noqa: F401
    from strawberry.schema.exceptions import (
        CannotGetOperationTypeError,
        InvalidOperationTypeError,
    )
    from strawberry.schema.name_converter import NameConverter
    from strawberry.schema.schema import (  # noqa: F401
        StrawberryGraphQLCoreExecutionContext,
        validate_document,
    )
    from strawberry.utils.operation import get_first_operation  # noqa: F401

    from app.graphql.schema import schema

    assert parameters(validate_document) == ["schema", "document", "validation_rules"]
    assert parameters(NameConverter.apply_naming_config) == ["self", "name"]
    assert CannotGetOperationTypeError("x").as_http_error_reason()
    assert InvalidOperationTypeError  # its message is compared by tests/graphql/test_engine.py
    field = schema._schema.query_type.fields["assistant"]  # type: ignore[union-attr]
    assert field.extensions["strawberry-definition"].python_name == "assistant"


def test_limits_redis_parts() -> None:
    """app/http/ratelimit_redis.py (SharedStorage) sends limits' own Lua scripts in one pipeline: it
    reaches for the storage's bridge, its registered scripts and its key helpers."""
    from limits.aio.storage import RedisStorage

    storage = RedisStorage("async+redis://127.0.0.1:1/0", implementation="redispy")
    bridge = storage.bridge
    for script in (
        "lua_acquire_moving_window",
        "lua_moving_window",
        "lua_acquire_sliding_window",
        "lua_sliding_window",
    ):
        registered = getattr(bridge, script)
        assert isinstance(registered.sha, str)
        assert isinstance(registered.script, str | bytes)
    assert parameters(bridge.prefixed_key) == ["key"]
    assert parameters(bridge.get_connection) == ["readonly"]
    assert storage._current_window_key("k") != storage._previous_window_key("k")
