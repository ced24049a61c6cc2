"""An assistant's `ref`: its name in bundles, unique among the live assistants of its
organisation (docs/bundles.md). The unique index `ux_assistants_org_ref` holds the rule in the
database; the check below names the field before any row is written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, bindparam, func, literal, select

from app.domain.errors import DomainError, FieldError
from app.models import Assistant
from app.store import Statement, Tx

# mypy ignore below: SQLModel's metaclass sets __table__
_TABLE = Assistant.__table__  # type: ignore[attr-defined]
_HOLDER = Statement(
    select(_TABLE.c.id).where(
        _TABLE.c.org_id == bindparam("org_id"),
        _TABLE.c.ref == bindparam("ref"),
        _TABLE.c.deleted.is_(False),
    )
)

# PostgreSQL: writers of one (organisation, ref) take turns until they commit, so the check
# below sees a ref another transaction just took (SQLite's writers already take turns)
_REFS_LOCK_SPACE = 0x72656673  # "refs": the first key of the two-key advisory locks
_TURN = Statement(
    select(
        func.pg_advisory_xact_lock(
            literal(_REFS_LOCK_SPACE, Integer), func.hashtext(bindparam("key"))
        )
    )
)


class RefTaken(DomainError):
    """Another live assistant of the organisation already has this `ref`; nothing changed."""

    code = "REF_TAKEN"

    def __init__(self, ref: str, holder: str, path: tuple[str | int, ...] = ("ref",)) -> None:
        super().__init__(
            f"the ref '{ref}' is already taken by assistant '{holder}' in this organisation",
            [FieldError(path, f"'{ref}' is already taken in this organisation")],
        )
        self.ref = ref


async def ref_holder(tx: Tx, org_id: str, ref: str) -> str | None:
    """The id of the live assistant of the organisation with this `ref`, or None."""
    found = await tx.scalar(_HOLDER, {"org_id": org_id, "ref": ref})
    return None if found is None else str(found)


async def check_ref_free(tx: Tx, org_id: str, values: dict[str, Any], own_id: str | None) -> None:
    """REF_TAKEN when the `ref` among the column values about to be written belongs to another
    assistant (one indexed lookup, only when a ref is written)."""
    ref = values.get("ref")
    if ref is None:
        return
    if tx.dialect_name == "postgresql":
        await tx.execute(_TURN, {"key": f"{org_id}\x1f{ref}"})
    holder = await ref_holder(tx, org_id, ref)
    if holder is not None and holder != own_id:
        raise RefTaken(ref, holder)
