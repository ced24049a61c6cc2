"""Logging set-up: one JSON object per line on stderr.

A record's `extra` fields become keys of its line (the access log passes `request_id`, `org_id`,
`method`, `route`, `path`, `status` and `duration_ms` this way); a traceback goes in `exc_info`.
A line is at most MAX_LINE_BYTES: a longer one keeps its keys, and its
longest texts are cut (a traceback keeps its end, where the exception is), with `"truncated":
true`; it is never dropped.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

# The attributes every LogRecord has; anything else was passed as `extra`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_HANDLER_NAME = "app-json"
# (trace_id, span_id) of the active span, or None; set by app/observability/tracing.py when
# tracing is on (None otherwise: nothing from OpenTelemetry is looked at).
trace_ids: Callable[[], tuple[str, str] | None] | None = None
MAX_LINE_BYTES = 64 * 1024
_CUT = " …[cut] "


def _shorten(text: str, keep: int, tail: bool) -> str:
    keep = max(keep, 0)
    return _CUT + text[len(text) - keep :] if tail else text[:keep] + _CUT


def capped(line: dict[str, Any]) -> bytes:
    """The line as JSON of at most MAX_LINE_BYTES: its longest strings cut until it fits."""
    data = orjson.dumps(line, default=str)
    if len(data) <= MAX_LINE_BYTES:
        return data
    line = {
        k: v if v is None or isinstance(v, bool | int | float) else str(v) for k, v in line.items()
    }
    line["truncated"] = True
    for _ in range(32):  # each round cuts the longest text by the excess (by half at most)
        key = max((k for k, v in line.items() if isinstance(v, str)), key=lambda k: len(line[k]))
        text: str = line[key]
        excess = len(data) - MAX_LINE_BYTES + 2 * len(_CUT)
        line[key] = _shorten(text, max(len(text) - excess, len(text) // 2), key == "exc_info")
        data = orjson.dumps(line)
        if len(data) <= MAX_LINE_BYTES:
            return data
    return orjson.dumps({k: line[k] for k in ("time", "level", "logger") if k in line})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if trace_ids is not None and (ids := trace_ids()) is not None:
            line["trace_id"], line["span_id"] = ids
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return capped(line).decode()


# mypy ignore below: StreamHandler's type parameter is the stream
class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the whole process; calling it again changes only the level
    (the app calls it too, so every uvicorn worker process logs the same way)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # a line per request: the webhook engine's attempts are in the delivery log already
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(handler.get_name() == _HANDLER_NAME for handler in root.handlers):
        return
    handler = StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
