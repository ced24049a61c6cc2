"""Every operation has a declared scope: each REST route of the OpenAPI document and each root
field of the schema calls a use case that declares the scope it needs (`@requires`), and what
the documentation says each needs is what the use cases declare."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from types import CodeType
from typing import Any

import pytest
from starlette.routing import Route

from app.domain.access import ANY_SCOPE, Scope, check_use, required_scope, requires
from app.graphql.schema import schema
from app.main import create_app
from app.openapi import OPERATIONS, documented_scope, openapi_document
from app.settings import Settings
from tests.helpers.schema_fields import root_fields


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes(constant)


def scopes_called(function: Callable[..., Any]) -> set[str]:
    """The scopes declared by the use cases a function calls (names it reads from its module)."""
    function = inspect.unwrap(function)
    names = {name for code in _codes(function.__code__) for name in code.co_names}
    found = set()
    for name in names:
        scope = required_scope(function.__globals__.get(name))
        if scope is not None:
            found.add(scope)
    return found


def rest_endpoints() -> dict[tuple[str, str], Callable[..., Any]]:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    endpoints = {}
    for route in app.routes:
        if isinstance(route, Route):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
            for method in route.methods or ():
                endpoints[method, path] = route.endpoint
    return endpoints


def test_every_rest_route_of_the_openapi_document_calls_a_scoped_use_case():
    endpoints = rest_endpoints()
    unscoped, wrong = [], []
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if operation.get("security") == []:  # public: /healthz, /readyz, avatar images
                continue
            scopes = scopes_called(endpoints[method.upper(), path])
            documented = [s for r in operation.get("security", []) for s in r.get("bearer", [])]
            if not scopes:
                unscoped.append(f"{method.upper()} {path}")
            elif scopes != (set(documented) or {ANY_SCOPE}):
                wrong.append(f"{method.upper()} {path}: calls {scopes}, documents {documented}")
    assert unscoped == []
    assert wrong == []


def test_the_documented_scopes():
    documented = {(op.method, op.path): documented_scope(op) for op in OPERATIONS}
    assert documented["PATCH", "/orgs/{org_id}/assistants/{assistant_id}"] == Scope.WRITE
    assert documented["GET", "/orgs/{org_id}/events"] == Scope.READ
    assert documented["POST", "/orgs/{org_id}/avatars"] == Scope.WRITE
    assert documented["POST", "/orgs/{org_id}/api-keys"] == Scope.MANAGE
    assert documented["GET", "/orgs/{org_id}/api-keys/current"] is None
    assert documented["GET", "/healthz"] is None


EXPECTED = {
    "Query.assistant": {Scope.READ},
    "Query.assistants": {Scope.READ},
    "Query.apiKeys": {Scope.MANAGE},
    "Query.viewer": {ANY_SCOPE},
    "Mutation.createAssistant": {Scope.WRITE},
    "Mutation.updateAssistant": {Scope.WRITE},
    "Mutation.createApiKey": {Scope.MANAGE},
    "Mutation.revokeApiKey": {Scope.MANAGE},
    "Subscription.assistantChanged": {Scope.READ},
    "Query.webhooks": {Scope.WEBHOOKS},
    "Query.webhook": {Scope.WEBHOOKS},
    "Mutation.createWebhook": {Scope.WEBHOOKS},
    "Mutation.testWebhook": {Scope.WEBHOOKS},
    "Mutation.redeliverWebhookDelivery": {Scope.WEBHOOKS},
}


def test_every_root_field_of_the_schema_calls_a_scoped_use_case():
    found = {
        f"{kind}.{schema.config.name_converter.apply_naming_config(name)}": scopes_called(resolver)
        for kind, name, resolver in root_fields()
    }
    assert [name for name, scopes in found.items() if not scopes] == []
    assert [name for name, scopes in found.items() if len(scopes) > 1] == []
    for name, scopes in EXPECTED.items():
        assert found[name] == scopes, name
    for name, scopes in found.items():  # mutations write (keys and webhooks aside)
        if name.startswith("Mutation.") and "ApiKey" not in name and "Webhook" not in name:
            assert scopes == {Scope.WRITE}, name


def test_a_function_without_a_scoped_use_case_is_caught():
    async def sneaky() -> None:
        pass

    assert scopes_called(sneaky) == set()


async def test_the_declaration_is_the_check():
    from app.domain.access import Access
    from app.domain.errors import InsufficientScope

    @requires(Scope.WRITE)
    async def write_something(*, access: Access) -> str:
        return "written"

    reader = Access(key_id="k", org_id="o", scopes=frozenset({Scope.READ}))
    writer = Access(key_id="k", org_id="o", scopes=frozenset({Scope.WRITE}))
    assert required_scope(write_something) == Scope.WRITE
    assert await write_something(access=writer) == "written"
    with pytest.raises(InsufficientScope) as refused:
        await write_something(access=reader)
    assert refused.value.scope == Scope.WRITE
    check_use(writer, write_something)
