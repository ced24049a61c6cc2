"""Reading an assistant's history: its revisions, newest first, and one revision."""

from __future__ import annotations

from app.domain.access import Access, Scope, requires
from app.domain.assistants import find_assistant
from app.domain.errors import NotFound
from app.domain.revisions import count_revisions, get_revision, list_revisions
from app.store import Tx
from app.store.records import RevisionRecord


@requires(Scope.READ)
async def list_assistant_revisions(
    tx: Tx,
    *,
    access: Access,
    assistant_id: str,
    limit: int,
    offset: int = 0,
    before_version: int | None = None,
    read_already: bool = False,
) -> tuple[list[RevisionRecord], int]:
    """A window of the revisions of an assistant the caller sees, newest first, and how many
    it has in all: at an `offset` (pages) or below a version (cursors). `read_already`: the
    caller holds the assistant itself (a field of it), so it is not looked up again."""
    if read_already:
        if not access.sees(assistant_id):
            raise NotFound(f"no assistant '{assistant_id}' in this organisation")
    else:
        assistant_id = (await find_assistant(tx, access, assistant_id)).id
    rows = await list_revisions(
        tx, assistant_id=assistant_id, limit=limit, offset=offset, before_version=before_version
    )
    return rows, await count_revisions(tx, assistant_id=assistant_id)


@requires(Scope.READ)
async def get_assistant_revision(
    tx: Tx, *, access: Access, assistant_id: str, version: int
) -> RevisionRecord:
    assistant = await find_assistant(tx, access, assistant_id)
    return await get_revision(tx, assistant_id=assistant.id, version=version)
