"""Whole GraphQL answers as served: every answer over HTTP ends with `extensions.cost`."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY


def answer(data: Any, requested: int) -> dict[str, Any]:
    """An answer holding `data`, for an operation of cost `requested` (the points left depend on
    what the key spent before: any number)."""
    return {"data": data, "extensions": {"cost": {"requested": requested, "pointsRemaining": ANY}}}


def without_cost(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without its `extensions.cost` (and `extensions`, when nothing else is left)."""
    extensions = {k: v for k, v in body.get("extensions", {}).items() if k != "cost"}
    rest = {k: v for k, v in body.items() if k != "extensions"}
    return {**rest, "extensions": extensions} if extensions else rest
