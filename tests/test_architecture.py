"""The one-way flow: domain and models know no transport; the transports ignore each other; the
shared HTTP package (app/http/) imports neither transport; the store imports no domain; a test
module imports no other test module, only tests/helpers/; no import cycle among
the app's modules (imports made at load time)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
TESTS = APP.parent / "tests"


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


def test_domain_imports_nothing_of_http():
    """HTTP-only errors, body parsing, middleware and rate limits live in app/http/."""
    assert offenders("domain", ("starlette", "app.http", "app.rest", "app.graphql")) == []


def test_the_shared_http_package_imports_no_transport():
    """The middleware answers its refusals with renderers handed over by `create_app`."""
    assert offenders("http", ("app.rest", "app.graphql", "strawberry")) == []


def test_the_store_imports_no_domain():
    """A lower floor never reaches up: the store's errors are declared in app/errors.py."""
    assert offenders("store", ("app.domain", "app.http", "app.rest", "app.graphql")) == []


def test_the_error_base_imports_nothing_from_the_app():
    assert offenders("errors.py", ("app", "starlette", "strawberry")) == []


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


HELPERS = "tests.helpers"


def imported_from_tests(source: str, module: str) -> set[str]:
    """The modules of `tests` (and names in them) that the source of `module` imports, relative
    imports resolved: `from tests.rest.test_x import FULL` gives `tests.rest.test_x.FULL`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, *([base] if base else [])])
            names = [base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name == "tests" or name.startswith("tests."))
    return found


def helpers_only_offenders(path: Path, source: str) -> list[str]:
    """What a file under tests/ imports from tests/ but tests/helpers/ (a test module, conftest)."""
    relative = path.relative_to(TESTS.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    module = ".".join(parts) + (".__init__" if relative.name == "__init__" else "")
    return [
        f"{relative}.py imports {name}"
        for name in sorted(imported_from_tests(source, module))
        if name != HELPERS and not name.startswith(f"{HELPERS}.")
    ]


def test_a_test_module_imports_only_helpers_of_the_tests():
    """Shared test code lives in tests/helpers/: no file under tests/ imports a test module or
    `tests.conftest` (pytest collects those; importing one runs it twice and hides what is
    shared)."""
    paths = [p for p in sorted(TESTS.rglob("*.py")) if "js" not in p.relative_to(TESTS).parts]
    assert len(paths) > 50
    found = [line for path in paths for line in helpers_only_offenders(path, path.read_text())]
    assert found == []


def test_the_test_import_rule_sees_every_spelling():
    """The rule above catches absolute, relative, `import x` and nested imports of test modules
    and conftest, and lets tests/helpers/ through."""
    where = TESTS / "graphql" / "test_x.py"
    bad = {
        "from tests.rest.test_lists import FULL": "tests.rest.test_lists.FULL",
        "from tests.conftest import Org": "tests.conftest.Org",
        "import tests.test_scopes": "tests.test_scopes",
        "from tests import conftest": "tests.conftest",
        "from .test_update_assistant import UPDATE": "tests.graphql.test_update_assistant.UPDATE",
        "from ..test_scopes import root_fields": "tests.test_scopes.root_fields",
        "from .. import conftest": "tests.conftest",
        "def f():\n    from tests.server import ROOT": "tests.server.ROOT",
    }
    for source, name in bad.items():
        assert helpers_only_offenders(where, source) == [f"tests/graphql/test_x.py imports {name}"]
    fine = [
        "from tests.helpers.rows import insert_children",
        "import tests.helpers.keys",
        "from tests import helpers",
        "from ..helpers.factories import Org",
        "from app.models import Assistant",
    ]
    assert [helpers_only_offenders(where, source) for source in fine] == [[]] * len(fine)


# -- no import cycle among the app's modules ----------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def load_time_imports(path: Path, known: set[str]) -> set[str]:
    """The app modules `path` imports when it loads: its top-level imports (not those inside a
    function, nor under `if TYPE_CHECKING:`), a `from package import module` as that module."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from its first module)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_the_app_has_no_import_cycle():
    paths = sorted(APP.rglob("*.py"))
    known = {module_name(path) for path in paths}
    graph = {module_name(path): load_time_imports(path, known) for path in paths}
    for module in graph:  # a package's __init__ is not a cycle of its own modules
        graph[module].discard(module)
    assert import_cycles(graph) == []


def test_the_cycle_rule_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_every_type_ignore_says_why():
    """A `# type: ignore[code]` is followed by `# why` on its line, or preceded by a comment
    (one comment may explain a run of such lines)."""
    unexplained = []
    for path in sorted(APP.rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "# type: ignore" not in line:
                continue
            if "#" in line.split("# type: ignore", 1)[1]:
                continue
            above = number - 1
            while above >= 0 and "# type: ignore" in lines[above]:
                above -= 1  # a run of ignored lines under one comment
            if above >= 0 and lines[above].strip().startswith("#"):
                continue
            unexplained.append(f"{path.relative_to(APP)}:{number + 1}")
    assert unexplained == []
