"""Room on the disks the server writes to: what a full disk looks like as an error, and the
readiness check's probe (docs/database-faults.md)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

# errno of a write the disk had no room for: no space, over quota, file too large
FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# SQLite's SQLITE_FULL
SQLITE_FULL_MESSAGE = "database or disk is full"
# ready means each data directory has room for at least this much
MIN_FREE_BYTES = 64 * 1024


def is_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk had no room for a write."""
    if isinstance(exc, OSError) and exc.errno in FULL:
        return True
    return str(exc).lower().startswith(SQLITE_FULL_MESSAGE)


def _existing(directory: Path) -> Path:
    """The directory, or its nearest ancestor that exists (where it would be made)."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(_existing(directory))
    blocks = stats.f_bfree if os.geteuid() == 0 else stats.f_bavail  # root may use the reserve
    return blocks * stats.f_frsize


def _probe(directory: Path) -> None:
    """Writes MIN_FREE_BYTES beside the data, to the disk (fsync), then removes them."""
    probe = _existing(directory) / f".readyz-probe-{os.getpid()}"
    try:
        with probe.open("wb") as file:
            file.write(b"\0" * MIN_FREE_BYTES)
            file.flush()
            os.fsync(file.fileno())
    finally:
        probe.unlink(missing_ok=True)


def room_to_write(directories: Iterable[Path], probe: bool) -> bool:
    """Whether every directory has room for MIN_FREE_BYTES; with `probe` (a write failed for
    a full disk since the last write that succeeded), a write of that size must also succeed
    in each. Blocking: run it on a thread."""
    try:
        for directory in directories:
            if free_bytes(directory) < MIN_FREE_BYTES:
                return False
            if probe:
                _probe(directory)
    except OSError:
        return False
    return True
