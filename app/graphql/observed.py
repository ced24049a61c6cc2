"""Metrics of the operations the websocket runs (graphql-transport-ws goes through Strawberry's
`Schema.subscribe`, with its extensions); those over HTTP are counted by the engine
(app/graphql/engine.py `count`, called by the view), which runs no extension."""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any

from strawberry.extensions import SchemaExtension

from app.observability import metrics


class OperationMetrics(SchemaExtension):
    """graphql_operations_total, graphql_operation_duration_seconds (a subscription's: while it
    was open) and graphql_errors_total, as for HTTP: `rejected` when it never ran, `error` when
    a result carried errors, `success` otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.errored = False

    def on_operation(self) -> Iterator[None]:
        started = perf_counter()
        try:
            yield
        finally:  # the websocket's stream may end it by closing (GeneratorExit)
            self.count(perf_counter() - started)

    def count(self, seconds: float) -> None:
        observed = metrics.active
        if observed is None:
            return
        context = self.execution_context
        try:
            kind = context.operation_type.value
        except Exception:  # noqa: BLE001  (a document that does not parse has no type)
            kind = "unknown"
        if context.pre_execution_errors:
            outcome = metrics.REJECTED
        else:
            outcome = metrics.ERROR if self.errored else metrics.SUCCESS
        name = _name(context)
        observed.operation(kind, name, outcome, seconds)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        errors = getattr(result, "errors", None)  # coded by StreamErrorCodes, which runs first
        if errors and metrics.active is not None:
            self.errored = True
            metrics.active.graphql_errors([{"extensions": e.extensions or {}} for e in errors])
        yield


def _name(context: Any) -> str | None:
    try:
        name: str | None = context.operation_name
    except Exception:  # noqa: BLE001  (no document)
        return None
    return name
