"""The one-way flow: domain and models know no transport; the transports ignore each other."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    paths = [APP / folder] if folder.endswith(".py") else sorted((APP / folder).rglob("*.py"))
    for path in paths:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(APP))] = names
    return found


def offenders(folder: str, banned: tuple[str, ...]) -> list[str]:
    return [
        f"{path} imports {name}"
        for path, names in imports_of(folder).items()
        for name in names
        if name.startswith(banned)
    ]


def test_domain_imports_no_transport():
    assert offenders("domain", ("strawberry", "starlette", "app.graphql", "app.rest")) == []


def test_models_import_nothing_from_the_app():
    assert offenders("models.py", ("app", "strawberry", "starlette")) == []


def test_graphql_and_rest_never_import_each_other():
    assert offenders("graphql", ("app.rest",)) == []
    assert offenders("rest", ("app.graphql",)) == []


ASYNC_SQLALCHEMY = ("sqlalchemy.ext.asyncio",)
# The store (app/store/) owns the connections; the migrations keep SQLAlchemy's engine.
MAY_USE_ASYNC_SQLALCHEMY = ("store/", "migrate.py")


def names_imported(path: Path) -> set[str]:
    """Modules imported by a file, and the names imported from them."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(alias.name for alias in node.names)
    return names


def test_no_sqlalchemy_session_or_engine_on_a_request_path():
    """No module of the app but the store and the migrations imports SQLAlchemy's asyncio
    layer (AsyncSession, AsyncEngine, async_sessionmaker …): requests go through the store."""
    found = []
    for path in sorted(APP.rglob("*.py")):
        relative = str(path.relative_to(APP))
        if relative.startswith(MAY_USE_ASYNC_SQLALCHEMY):
            continue
        names = names_imported(path)
        if any(n.startswith(ASYNC_SQLALCHEMY) for n in names) or names & {
            "AsyncSession",
            "AsyncEngine",
            "async_sessionmaker",
            "create_async_engine",
        }:
            found.append(relative)
    assert found == []


def test_the_alembic_environment_uses_the_migration_engine():
    env = APP.parent / "migrations" / "env.py"
    assert "app.migrate" in names_imported(env)
