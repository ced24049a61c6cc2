"""Avatar use cases: store an uploaded image (checked by its bytes), read it back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from sqlalchemy import bindparam, select

from app.domain.access import Access, Scope, requires
from app.domain.audit import record_audit
from app.domain.errors import FieldError, NotFound, PayloadTooLarge, StorageFull, ValidationFailed
from app.domain.storage import avatar_bytes, charge
from app.models import Avatar, new_id, utcnow
from app.store import Statement, Tx, disk
from app.store.records import AvatarRecord
from app.store.statements import insert_statement

ACCEPTED = "PNG, JPEG, WebP or GIF"


def image_type(data: bytes) -> str | None:
    """The media type the magic number at the start of `data` names, if it is an accepted one."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _write_atomically(directory: Path, name: str, data: bytes) -> None:
    """The file appears whole or not at all (written beside it, then renamed over)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, directory / name)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _check_image(data: bytes, max_bytes: int) -> str:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"an avatar may be at most {max_bytes} bytes")
    content_type = image_type(data)
    if content_type is None:
        message = f"not a {ACCEPTED} image" if data else "the image is empty"
        raise ValidationFailed(f"invalid input: file: {message}", [FieldError(("file",), message)])
    return content_type


# mypy ignore below: SQLModel's metaclass sets __table__
TABLE = Avatar.__table__  # type: ignore[attr-defined]
_INSERT = insert_statement(TABLE, returning=True)
_ONE = Statement(select(TABLE).where(TABLE.c.id == bindparam("avatar_id")))


@requires(Scope.WRITE)
async def create_avatar(
    tx: Tx, *, access: Access, data: bytes, directory: Path, max_bytes: int, storage_quota: int
) -> AvatarRecord:
    """Stores the bytes under `directory` (named by the new id) and the metadata in the table;
    they count against ORG_STORAGE_QUOTA (app/domain/storage.py), checked before the file is
    written."""
    values = {
        "id": new_id(),
        "org_id": access.org_id,
        "content_type": _check_image(data, max_bytes),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "created_at": utcnow(),
    }
    avatar = await tx.first(_INSERT, values, AvatarRecord)
    assert avatar is not None
    await charge(tx, access.org_id, avatar_bytes(avatar.size), storage_quota)
    await record_audit(tx, access, "avatar.create", "avatar", avatar.id)
    try:
        await asyncio.to_thread(_write_atomically, directory, avatar.id, data)
    except OSError as exc:  # nothing of the file is left (and the row rolls back)
        if disk.is_full(exc):
            raise StorageFull("the disk is full; the avatar was not stored") from exc
        raise
    return avatar


async def get_avatar(tx: Tx, *, avatar_id: str) -> AvatarRecord:
    avatar = None
    if len(avatar_id) <= 64 and "\x00" not in avatar_id:
        avatar = await tx.first(_ONE, {"avatar_id": avatar_id}, AvatarRecord)
    if avatar is None:
        raise NotFound(f"no avatar '{avatar_id}'")
    return avatar


async def read_avatar(avatar: AvatarRecord, directory: Path) -> bytes:
    path = directory / avatar.id
    try:
        return await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise NotFound(f"no avatar '{avatar.id}'") from None
