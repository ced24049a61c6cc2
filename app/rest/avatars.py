"""`POST /orgs/{org_id}/avatars` (upload) and the public `GET /avatars/{avatar_id}`."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.domain.access import check_use
from app.domain.avatars import create_avatar, get_avatar, read_avatar
from app.domain.documents import avatar_url
from app.domain.errors import FieldError, ValidationFailed
from app.http.content import media_type
from app.rest.common import json_response, org_transaction, settings_of, store_of

CACHE_FOREVER = "public, max-age=31536000, immutable"


async def _image_bytes(request: Request) -> bytes:
    """The raw body, or the multipart field `file`; what it claims to be is never trusted."""
    if media_type(request.headers) != "multipart/form-data":
        return await request.body()
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationFailed(
                "invalid input: file", [FieldError(("file",), "send the image as the field 'file'")]
            )
        return await upload.read()


async def upload(request: Request) -> Response:
    async with org_transaction(request, write=False) as (_tx, access):
        check_use(access, create_avatar)  # before the body is read (the write lock is not held)
    data = await _image_bytes(request)
    settings = settings_of(request)
    async with store_of(request).write() as tx:
        avatar = await create_avatar(
            tx,
            access=access,
            data=data,
            directory=settings.avatars_dir,
            max_bytes=settings.max_avatar_bytes,
            storage_quota=settings.org_storage_quota,
        )
    return json_response({"id": avatar.id, "url": avatar_url(settings.base_url, avatar.id)}, 201)


async def download(request: Request) -> Response:
    async with store_of(request).read() as tx:
        avatar = await get_avatar(tx, avatar_id=request.path_params["avatar_id"])
    tag = f'"{avatar.sha256}"'
    headers = {"Cache-Control": CACHE_FOREVER, "ETag": tag, "X-Content-Type-Options": "nosniff"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    data = await read_avatar(avatar, settings_of(request).avatars_dir)
    return Response(data, media_type=avatar.content_type, headers=headers)


routes = [
    Route("/orgs/{org_id}/avatars", upload, methods=["POST"]),
    Route("/avatars/{avatar_id}", download, methods=["GET"]),
]
