"""The open streams' API keys, re-checked: every `events_key_check_seconds` one query finds the
keys revoked or expired since their streams opened, and those streams close (UNAUTHENTICATED)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.domain.change_events import dead_keys
from app.domain.errors import Unauthenticated
from app.events.sources import LISTEN_LOST, Source
from app.settings import Settings
from app.store import Store

if TYPE_CHECKING:
    from app.events.broker import Stream

logger = logging.getLogger("app.events")


async def check_keys(
    store: Store, settings: Settings, source: Source, open_streams: Callable[[], list[Stream]]
) -> None:
    """Closes, within `events_key_check_seconds`, the streams whose API key was revoked or
    has expired (until the source stops)."""
    while not await source.pause(settings.events_key_check_seconds):
        streams = open_streams()
        keys = {stream.key_id for stream in streams}
        try:
            async with store.read() as tx:
                dead = await dead_keys(tx, keys)
        except (*LISTEN_LOST, sqlite3.Error) as exc:
            logger.warning("events: cannot check API keys (%s)", exc)
            continue
        for stream in streams:
            if (reason := dead.get(stream.key_id)) is not None:
                stream.close(Unauthenticated(reason))
