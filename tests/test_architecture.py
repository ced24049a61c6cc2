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
