"""Argument annotations shared by every resolver."""

from __future__ import annotations

from typing import Annotated

import strawberry

OrgId = Annotated[
    strawberry.ID,
    strawberry.argument(description="The organisation's id, or `c` for the API key's own."),
]
AssistantId = Annotated[strawberry.ID, strawberry.argument(description="The assistant's id.")]
