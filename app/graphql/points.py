"""What one GraphQL request spends from its API key's points budget, and
the `extensions.cost` of its answer.

A request spends max(1, ceil(cost / 100)) points just before it runs; one refused before it runs
(it does not parse or validate, costs more than GRAPHQL_MAX_COST, names no operation, or its
variables do not coerce) spends 1, when its answer is made. Beyond the budget it is
429 RATE_LIMITED with `Retry-After`, and nothing runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.graphql.cost import points_for
from app.http.errors import RateLimited

if TYPE_CHECKING:
    from app.http.ratelimit import PointsBudget


class Spending:
    """One request's cost and the points left in its tightest bucket once it is charged."""

    __slots__ = ("buckets", "budget", "remaining", "requested")

    def __init__(self, budget: PointsBudget, buckets: tuple[str, ...]) -> None:
        self.budget = budget
        self.buckets = buckets
        self.requested = 0  # the cost of the operation asked for, once known
        self.remaining: int | None = None  # set when charged

    @property
    def charged(self) -> bool:
        return self.remaining is not None

    async def charge(self, cost: int, *, runs: bool = True) -> None:
        """Spends the points of `cost` (1 when nothing runs); RateLimited beyond the budget."""
        self.requested = cost
        points = points_for(cost) if runs else 1
        verdict = await self.budget.spend(self.buckets, points)
        self.remaining = verdict.remaining
        if not verdict.allowed:
            raise RateLimited(
                f"the GraphQL points of this API key are spent: {self.budget.points} per 60 "
                f"seconds, and this request needs {points}; retry in {verdict.reset_after} seconds",
                retry_after=verdict.reset_after,
            )

    async def settle(self) -> None:
        """Charges a request that did not run (1 point), unless it was charged already."""
        if self.remaining is None:
            await self.charge(self.requested, runs=False)

    @property
    def extension(self) -> dict[str, int]:
        """`extensions.cost` of the answer."""
        return {"requested": self.requested, "pointsRemaining": self.remaining or 0}
